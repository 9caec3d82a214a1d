"""Which clients might care about a vehicle at a place on a route. No I/O.

Checking every client's filter for every fix costs clients * fixes; with
thousands of screens and thousands of fixes a second that is the whole CPU.
The index narrows a fix to the clients whose route list names its route, whose
box covers its grid cell, or who watch everything (no filter, or a box too
big to grid). Candidates still get their exact filter checked by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from server.live.filters import BBox, Filter

C = TypeVar("C", bound=Hashable)
K = TypeVar("K", bound=Hashable)

# 0.1° ≈ 11 km north-south: a city-zoom map box covers a handful of cells.
CELL_DEG = 0.1
# Boxes larger than this many cells (country zoom) are cheaper checked directly.
MAX_CELLS = 256

Cell = tuple[int, int]


def cell_of(lat: float, lon: float) -> Cell:
    return (math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG))


def cells_of(bbox: BBox) -> list[Cell] | None:
    """The grid cells a box touches, or None when there are more than MAX_CELLS."""
    min_lon, min_lat, max_lon, max_lat = bbox
    rows = range(math.floor(min_lat / CELL_DEG), math.floor(max_lat / CELL_DEG) + 1)
    wraps = min_lon > max_lon
    spans = [(min_lon, 180.0), (-180.0, max_lon)] if wraps else [(min_lon, max_lon)]
    cols = [
        col
        for lo, hi in spans
        for col in range(math.floor(lo / CELL_DEG), math.floor(hi / CELL_DEG) + 1)
    ]
    if len(rows) * len(cols) > MAX_CELLS:
        return None
    return [(row, col) for row in rows for col in cols]


class ClientIndex(Generic[C]):
    def __init__(self) -> None:
        self._by_route: dict[str | None, set[C]] = {}
        self._by_cell: dict[Cell, set[C]] = {}
        self._everywhere: set[C] = set()
        # Where each client is filed, so removal never scans.
        self._keys: dict[C, tuple[list[str], list[Cell], bool]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, client: object) -> bool:
        return client in self._keys

    def add(self, client: C, flt: Filter) -> None:
        self.remove(client)
        routes: list[str] = []
        cells: list[Cell] = []
        everywhere = False
        if flt.routes is not None:
            # A route list is the sharper key; the box is checked per candidate.
            routes = sorted(flt.routes)
            for route in routes:
                self._by_route.setdefault(route, set()).add(client)
        elif flt.bbox is not None and (grid := cells_of(flt.bbox)) is not None:
            cells = grid
            for cell in cells:
                self._by_cell.setdefault(cell, set()).add(client)
        else:
            everywhere = True
            self._everywhere.add(client)
        self._keys[client] = (routes, cells, everywhere)

    def remove(self, client: C) -> None:
        keys = self._keys.pop(client, None)
        if keys is None:
            return
        routes, cells, everywhere = keys
        for route in routes:
            _discard(self._by_route, route, client)
        for cell in cells:
            _discard(self._by_cell, cell, client)
        if everywhere:
            self._everywhere.discard(client)

    def candidates(self, lat: float, lon: float, route: str | None) -> Iterator[C]:
        """Clients that may match a vehicle here; each appears once."""
        by_route = self._by_route.get(route, ()) if route is not None else ()
        by_cell = self._by_cell.get(cell_of(lat, lon), ())
        # A client is filed under exactly one kind of key, so the sets are disjoint.
        yield from by_route
        yield from by_cell
        yield from self._everywhere

    def all(self) -> Iterator[C]:
        return iter(list(self._keys))


def _discard(table: dict[K, set[C]], key: K, client: C) -> None:
    bucket = table.get(key)
    if bucket is not None:
        bucket.discard(client)
        if not bucket:
            del table[key]
