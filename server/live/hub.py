"""The per-process fan-out: the latest position of every vehicle and who is watching.

One hub per server process. It is fed by the process's single subscription to
the live bus (every process sees every position), keeps the newest position of
each vehicle, and tells each connected client which vehicles changed in its
view. All of it runs on the event loop without awaiting, so there is no
subscribe/unsubscribe race to guard against and a client can never make the
hub wait.

Vehicle states (online, no_gps, offline, out_of_service) come from the same
``vehicle_state`` (``server/vehicle.py``) that ``/v1/fleet/live`` uses. Each
process computes state changes from its own copy of the snapshot and tells
only its own clients, so nothing is announced twice across processes; the
copies agree because they are built from the same positions and
``received_at`` times.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server.live.client import ClientSession
from server.live.close_codes import CLOSE_UNAUTHORIZED
from server.live.filters import Filter
from server.live.index import ClientIndex, cell_of
from server.live.views import dumps, public_id, stream_operator_view, with_attrs
from server.model import LivePosition
from server.vehicle import (
    RIDER_STATES,
    Course,
    VehicleState,
    course_after,
    fresh_until,
    iso,
    public_view,
    vehicle_state,
)

# A reconnecting client asks for changes since the last frame it got. Positions
# are stamped with received_at before the database commit and published after
# it, so a change can reach a client after a frame stamped later than it:
# look back a little further and let the client keep the newest per vehicle.
SINCE_GRACE = timedelta(seconds=10)

# A client whose frame has been with the transport this long is not reading.
STALLED_AFTER_S = 1.0

# Event ids delivered lately: an event applied locally comes back from the bus.
_RECENT_EVENTS = 1024


def _rider_change(old: str, new: str) -> bool:
    """Whether riders see a state change (no_gps is offline to them; out of service: removal)."""
    return old in RIDER_STATES and new in RIDER_STATES and RIDER_STATES[old] != RIDER_STATES[new]


@dataclass(slots=True)
class Vehicle:
    pos: LivePosition
    state: VehicleState
    changed_at: datetime  # when anything a client sees last changed
    public_id: str
    offline_after_s: int  # the server's OFFLINE_AFTER, shown when the device has none
    course: Course | None = None  # the way it last drove (arrivals: server/arrivals.py)
    # Rendered on first use: most positions reach no client before the next one.
    _operator_json: str | None = None
    _public_json: str | None = None

    @property
    def operator_json(self) -> str:
        if self._operator_json is None:
            self._operator_json = dumps(
                stream_operator_view(self.pos, self.state, self.offline_after_s)
            )
        return self._operator_json

    @property
    def public_json(self) -> str:
        if self._public_json is None:
            self._public_json = dumps(public_view(self.pos, self.public_id, self.state))
        return self._public_json


class Hub:
    def __init__(
        self,
        *,
        offline_after_s: int,
        public_key: bytes | None,
        frame_interval_s: float = 0.25,
        max_clients: int = 20_000,
    ) -> None:
        self.offline_after_s = offline_after_s
        self.frame_interval_s = frame_interval_s
        self.max_clients = max_clients
        # The installation's key, read from the store when the bus starts (None until then).
        self.public_key = public_key
        self.vehicles: dict[int, Vehicle] = {}
        # Counts every change of ``vehicles``: readers that cache a rendering (the
        # GTFS-Realtime feed) compare it instead of the vehicles themselves.
        self.version = 0
        self._by_route: dict[str | None, set[int]] = {}
        self.clients: ClientIndex[ClientSession] = ClientIndex()
        self._events_sent: OrderedDict[int, None] = OrderedDict()
        self.counters = {
            "positions": 0,
            "stale_positions": 0,
            "state_changes": 0,
            "frames_rendered": 0,
        }

    # -- clients -----------------------------------------------------------------------

    def register(self, client: ClientSession) -> bool:
        """False when this process is full; the caller turns the client away."""
        if len(self.clients) >= self.max_clients:
            return False
        self.clients.add(client, client.filter)
        client.wake()
        return True

    def unregister(self, client: ClientSession) -> None:
        self.clients.remove(client)

    def set_filter(self, client: ClientSession, flt: Filter) -> None:
        client.filter = flt
        if client in self.clients:
            self.clients.add(client, flt)

    def close_all(self, code: int, reason: str) -> None:
        for client in self.clients.all():
            client.close(code, reason)

    def heartbeats(self, now_mono: float) -> None:
        for client in self.clients.all():
            if now_mono - client.last_sent >= client.heartbeat_s and not client.heartbeat_due:
                client.heartbeat_due = True
                client.wake()

    def expire(self, now: datetime) -> None:
        for client in self.clients.all():
            if client.expires_at is not None and now >= client.expires_at:
                client.close(CLOSE_UNAUTHORIZED, "token expired")

    def end_streams(self, user_id: int | None, family: str | None, reason: str) -> int:
        """Close the operator streams of ``user_id`` (any sign-in) or of one ``family``."""
        closed = 0
        for client in self.clients.all():
            owner = client.owner
            if owner is not None and (owner[0] == user_id or owner[1] == family):
                client.close(CLOSE_UNAUTHORIZED, reason)
                closed += 1
        return closed

    def apply_event(self, event_id: int, frame: str) -> bool:
        """A device event (SOS): to every operator, whatever their filter; once per id."""
        if event_id in self._events_sent:
            return False
        self._events_sent[event_id] = None
        if len(self._events_sent) > _RECENT_EVENTS:
            self._events_sent.popitem(last=False)
        for client in self.clients.all():
            if not client.public:
                client.push_event(frame)
        return True

    # -- positions in ------------------------------------------------------------------

    def apply_position(self, pos: LivePosition, now: datetime) -> bool:
        """A new live position from the bus; False if we already hold a newer fix.

        Publishes can arrive out of order (two requests of one bus racing, two
        processes), and the live position never moves back to an older fix.
        """
        old = self.vehicles.get(pos.device_id)
        if old is not None and pos.fix.t <= old.pos.fix.t:
            self.counters["stale_positions"] += 1
            return False
        self.counters["positions"] += 1
        self._replace(old, pos, pos.received_at, now)
        return True

    def apply_attrs(
        self, device_id: int, attrs: dict[str, Any], at: datetime, now: datetime
    ) -> bool:
        """An operator changed a vehicle (service, route, name, its fleet info); no new fix."""
        old = self.vehicles.get(device_id)
        if old is None:
            return False  # not reporting yet: its first fix will carry the attributes
        pos = with_attrs(old.pos, attrs)
        if pos == old.pos:
            return False
        self._replace(old, pos, max(at, old.changed_at), now)
        return True

    def resync(self, positions: Iterable[LivePosition], now: datetime, read_at: datetime) -> int:
        """Merge the store's live positions (start-up, or after the bus lost messages).

        ``read_at`` is when the read began: a vehicle changed on the bus since
        then is newer than what the read returned and keeps its attributes.
        """
        changed = 0
        for pos in positions:
            if self.apply_position(pos, now):
                changed += 1
                continue
            # Our fix is as new or newer, but the devices table is the truth for
            # what operators changed while we were not listening.
            if self.vehicles[pos.device_id].changed_at >= read_at:
                continue
            attrs: dict[str, Any] = {"name": pos.name, "route": pos.route}
            attrs.update(in_service=pos.in_service, seen=pos.seen, fleet=pos.fleet)
            if self.apply_attrs(pos.device_id, attrs, now, now):
                changed += 1
        return changed

    def check_states(self, now: datetime) -> int:
        """Flip vehicles whose last fix is too old to offline; returns how many flipped."""
        flipped = 0
        for vehicle in list(self.vehicles.values()):
            if vehicle.state not in ("online", "no_gps"):
                continue  # back online (or no_gps) happens only with a report
            state = vehicle_state(vehicle.pos, now, self.offline_after_s)
            if state == vehicle.state:
                continue
            # The moment it went follows from received_at (or the heartbeat) alone, so
            # every process dates the change the same for `since`.
            went = fresh_until(vehicle.pos, vehicle.state, self.offline_after_s)
            self._replace(vehicle, vehicle.pos, max(went, vehicle.changed_at), now)
            flipped += 1
        return flipped

    def _replace(
        self, old: Vehicle | None, pos: LivePosition, changed_at: datetime, now: datetime
    ) -> None:
        state = vehicle_state(pos, now, self.offline_after_s)
        if old is not None:
            vid = old.public_id
        elif self.public_key is None:
            raise RuntimeError("live hub has no public id key yet; LiveBus.start() sets it")
        else:
            vid = public_id(self.public_key, pos.device_id)
        vehicle = Vehicle(
            pos=pos,
            state=state,
            changed_at=changed_at,
            public_id=vid,
            offline_after_s=self.offline_after_s,
            course=course_after(old.course if old is not None else None, pos.fix),
        )
        key = pos.device_id
        self.vehicles[key] = vehicle
        self.version += 1
        if old is None or old.pos.route != pos.route:
            if old is not None:
                members = self._by_route.get(old.pos.route)
                if members is not None:
                    members.discard(key)
            self._by_route.setdefault(pos.route, set()).add(key)
        state_changed = old is not None and old.state != state
        if state_changed:
            self.counters["state_changes"] += 1
        for client in self._candidates(old.pos if old else None, pos):
            was = old is not None and self._visible(client, old.pos)
            now_visible = self._visible(client, pos)
            if not (was or now_visible):
                continue
            if old is None or old.pos != pos:
                client.outbox.touch(key)
            if state_changed and now_visible and was:
                assert old is not None
                if not client.public or _rider_change(old.state, state):
                    client.outbox.state(key, state)
            client.wake()

    def _candidates(self, old: LivePosition | None, new: LivePosition) -> Iterable[ClientSession]:
        fix = new.fix
        if old is None or (
            old.route == new.route
            and cell_of(old.fix.lat, old.fix.lon) == cell_of(fix.lat, fix.lon)
        ):
            return self.clients.candidates(fix.lat, fix.lon, new.route)
        both = set(self.clients.candidates(fix.lat, fix.lon, new.route))
        both.update(self.clients.candidates(old.fix.lat, old.fix.lon, old.route))
        return both

    @staticmethod
    def _visible(client: ClientSession, pos: LivePosition) -> bool:
        if client.public and not pos.in_service:
            return False
        return client.filter.matches(pos.fix.lat, pos.fix.lon, pos.route)

    # -- frames out --------------------------------------------------------------------

    def _scope(self, flt: Filter) -> Iterable[Vehicle]:
        if flt.routes is None:
            return list(self.vehicles.values())
        keys = set().union(*(self._by_route.get(r, ()) for r in flt.routes))
        return [self.vehicles[k] for k in sorted(keys)]

    def snapshot_frame(
        self, client: ClientSession, now: datetime, since: datetime | None = None
    ) -> str:
        """Everything in the client's view; with ``since``, only what changed after it."""
        self.counters["frames_rendered"] += 1
        cutoff = since - SINCE_GRACE if since is not None else None
        shown: list[str] = []
        removed: list[Any] = []
        for vehicle in self._scope(client.filter):
            if cutoff is not None and vehicle.changed_at < cutoff:
                continue
            if self._visible(client, vehicle.pos):
                shown.append(vehicle.public_json if client.public else vehicle.operator_json)
            elif cutoff is not None:
                removed.append(self._key_json(client, vehicle))
        head = f'{{"type":"snapshot","at":"{iso(now)}","filter":{dumps(client.filter.to_json())}'
        if since is not None:
            head += f',"since":"{iso(since)}","removed":{dumps(removed)}'
        return head + ',"vehicles":[' + ",".join(shown) + "]}"

    def change_frames(
        self, client: ClientSession, touched: list[int], states: dict[int, str], now: datetime
    ) -> list[str]:
        # Visibility is decided now, against the newest position: whatever
        # happened in between has been coalesced away.
        shown: list[str] = []
        removed: list[Any] = []
        for key in touched:
            vehicle = self.vehicles.get(key)
            if vehicle is None:
                continue
            if self._visible(client, vehicle.pos):
                shown.append(vehicle.public_json if client.public else vehicle.operator_json)
            else:
                removed.append(self._key_json(client, vehicle))
        frames: list[str] = []
        at = iso(now)
        if shown or removed:
            frames.append(
                f'{{"type":"update","at":"{at}","vehicles":[{",".join(shown)}],'
                f'"removed":{dumps(removed)}}}'
            )
        for key in states:
            vehicle = self.vehicles.get(key)
            if vehicle is None or not self._visible(client, vehicle.pos):
                continue
            state: str = vehicle.state
            if client.public:
                if state not in RIDER_STATES:
                    continue
                state = RIDER_STATES[state]
                ident: dict[str, Any] = {"id": vehicle.public_id}
            else:
                ident = {"device_id": key, "name": vehicle.pos.name}
            frames.append(dumps({"type": "state", **ident, "state": state, "at": at}))
        self.counters["frames_rendered"] += len(frames)
        return frames

    @staticmethod
    def _key_json(client: ClientSession, vehicle: Vehicle) -> Any:
        return vehicle.public_id if client.public else vehicle.pos.device_id

    @staticmethod
    def heartbeat_frame(now: datetime) -> str:
        return f'{{"type":"heartbeat","at":"{iso(now)}"}}'

    @staticmethod
    def error_frame(reason: str) -> str:
        return dumps({"type": "error", "error": reason})

    def connections(self) -> dict[tuple[str, str], int]:
        """Open clients by (``public``/``operator``, transport): what /metrics shows."""
        counts: dict[tuple[str, str], int] = {}
        for client in self.clients.all():
            key = ("public" if client.public else "operator", client.transport)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def stats(self) -> dict[str, Any]:
        clients = list(self.clients.all())
        by_kind: dict[str, int] = {}
        for client in clients:
            kind = f"{'public' if client.public else 'operator'}_{client.transport}"
            by_kind[kind] = by_kind.get(kind, 0) + 1
        waiting = [len(c.outbox) for c in clients]
        now_mono = time.monotonic()
        stalled = sum(
            1
            for c in clients
            if c.blocked_since is not None and now_mono - c.blocked_since > STALLED_AFTER_S
        )
        return {
            "vehicles": len(self.vehicles),
            "clients": len(clients),
            "clients_by_kind": by_kind,
            "clients_stalled": stalled,
            "outbox_max": max(waiting, default=0),
            "superseded": sum(c.outbox.superseded for c in clients),
            "frames_sent": sum(c.frames_sent for c in clients),
            **self.counters,
        }
