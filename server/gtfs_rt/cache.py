"""The VehiclePositions feed encoded once per change and served as bytes to every request.

A request only compares the live hub's change counter and the clock; the
feed is rebuilt when vehicles changed (at most once a second, so every
version gets a header second of its own: validator E017), when the oldest
vehicle in it turns GTFS_RT_MAX_AGE old, and at least every ``REFRESH_S`` (W007, W008).
The header timestamp is raised in the store (``raise_watermark``) so that no
replica publishes one lower than another already did (E018): D50.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.transit import gtfs_realtime_pb2 as rt

from server.gtfs_rt.feed import MAX_AGE_S, FeedVehicle, Problem, build, header_time
from server.live.hub import Hub
from server.store.base import Transit
from server.transit import TransitCache
from server.vehicle import RIDER_STATES

REFRESH_S = 15.0
MIN_INTERVAL_S = 1.0
WATERMARK = "gtfs_rt_vehicle_positions"


def feed_vehicles(hub: Hub) -> list[FeedVehicle]:
    """The adapter from live state: public ids only.

    The route is the vehicle's assignment, else the device's own (``pos.route``,
    D41); the trip is the vehicle's assignment (docs/fleet.md).
    """
    out = []
    for vehicle in hub.vehicles.values():
        pos = vehicle.pos
        if not pos.in_service or vehicle.state not in RIDER_STATES:
            continue
        fix = pos.fix
        # The course (D80): the fix's own heading while it moves; standing, the way it
        # last drove, not the receiver's noise, since apps draw the bearing as an arrow.
        bearing = vehicle.course.heading if vehicle.course is not None else fix.heading
        out.append(FeedVehicle(vehicle.public_id, pos.name, fix.lat, fix.lon, bearing,
                               fix.speed, fix.t, pos.route, pos.fleet.trip_id))  # fmt: skip
    return out


@dataclass(slots=True)
class Encoded:
    header_s: int
    protobuf: bytes
    problems: tuple[Problem, ...] = ()
    entities: int = 0
    _json: bytes | None = None

    async def json(self) -> bytes:
        """The message as JSON, made on first ask and off the event loop: few consumers
        want it, and protobuf's JSON printer takes seconds for 10,000 vehicles."""
        if self._json is None:
            self._json = await asyncio.to_thread(_to_json, self.protobuf)
        return self._json


def _to_json(protobuf: bytes) -> bytes:
    message = rt.FeedMessage.FromString(protobuf)
    text: Any = json_format.MessageToJson(message, preserving_proto_field_name=True)
    return bytes(text.encode())


@dataclass
class FeedCache:
    max_age_s: int = MAX_AGE_S  # GTFS_RT_MAX_AGE
    clock: Callable[[], float] = time.monotonic
    encoded: Encoded | None = None
    _hub_version: int = -1
    _built_mono: float = 0.0
    _due_mono: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _stale(self, hub: Hub, mono: float) -> bool:
        if self.encoded is None:
            return True
        if mono - self._built_mono < MIN_INTERVAL_S:
            return False
        return hub.version != self._hub_version or mono >= self._due_mono

    async def current(self, hub: Hub, transit: TransitCache, store: Transit) -> Encoded:
        mono = self.clock()
        if not self._stale(hub, mono) or (self._lock.locked() and self.encoded is not None):
            # Fresh, or a rebuild is under way: the last version until the new one is ready.
            assert self.encoded is not None
            return self.encoded
        async with self._lock:
            if self._stale(hub, self.clock()):
                await self._rebuild(hub, transit, store)
        assert self.encoded is not None
        return self.encoded

    async def _rebuild(self, hub: Hub, transit: TransitCache, store: Transit) -> None:
        version = hub.version
        now = datetime.now(UTC)
        vehicles = feed_vehicles(hub)
        index = await transit.index(store)
        last = self.encoded
        header = header_time(vehicles, now, last.header_s if last else 0)
        # Off the event loop: 10,000 vehicles take a good part of a second to encode.
        message, problems = await asyncio.to_thread(
            build, vehicles, index, now, header, self.max_age_s
        )
        same_second = last is not None and header == last.header_s
        if same_second and last is not None and message.SerializeToString() != last.protobuf:
            header += 1  # new content within the second of the last: a header of its own (E017)
        published = await store.raise_watermark(WATERMARK, header)
        if published != message.header.timestamp:
            message, problems = await asyncio.to_thread(
                build, vehicles, index, now, published, self.max_age_s
            )
        header = published
        protobuf = await asyncio.to_thread(message.SerializeToString)
        self.encoded = Encoded(header, protobuf, tuple(problems),
                               len(message.entity))  # fmt: skip
        self._hub_version = version
        self._built_mono = self.clock()
        fresh = [v.t for v in vehicles if (now - v.t).total_seconds() <= self.max_age_s]
        expires = min(fresh, default=now) + timedelta(seconds=self.max_age_s + 1) - now
        due = REFRESH_S if not fresh else min(REFRESH_S, max(0.0, expires.total_seconds()))
        self._due_mono = self._built_mono + due
