"""``bustracker gtfs import FILE.zip``: check a feed whole, then swap it in atomically.

Parsing and checking happen before the store is touched, so a refused feed
changes nothing; the swap itself is one transaction (``Store.replace_feed``).
The version is the zip's SHA-256: importing the same file again changes nothing
a reader can see but the import time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from server.gtfs.model import FeedInfo
from server.gtfs.parse import GtfsError, parse_feed
from server.store.base import Transit


class ImportRefused(Exception):
    """The feed is broken: ``str()`` lists each problem on a line of its own."""


async def import_feed(store: Transit, path: Path) -> tuple[FeedInfo, tuple[str, ...]]:
    """Import the zip at ``path``; the stored feed's info and the warnings."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportRefused(f"{path}: {exc.strerror or exc}") from None
    try:
        with path.open("rb") as source:
            feed = parse_feed(source)
    except GtfsError as exc:
        raise ImportRefused(f"{path.name}: feed refused, nothing imported:\n{exc}") from None
    version = hashlib.sha256(data).hexdigest()[:16]
    return await store.replace_feed(feed, version), feed.warnings
