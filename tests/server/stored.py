"""How many fixes a store holds, read through its own interface (a test helper)."""

from __future__ import annotations

from datetime import UTC, datetime

from server.store import Store

# Wider than any fix a test stores.
ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


async def count_fixes(store: Store, device_id: int | None = None) -> int:
    """The fixes stored for ``device_id``, or for every device: ``track()`` over all time."""
    ids = [d.id for d in await store.list_devices()] if device_id is None else [device_id]
    return sum([len(await store.track(i, *ALL_TIME)) for i in ids])
