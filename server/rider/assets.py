"""Static files as the browser gets them: gzipped once, validated by ETag, cached as told.

The rider app must load over a slow connection in under 150 kB (docs/rider.md),
so every file is compressed once when the server starts, never per request,
and a browser that already holds a file gets a bodiless 304 for it. No I/O
here beyond what the caller hands in.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from litestar import Response

# Below this, gzip's header costs about what it saves.
_MIN_GZIP_BYTES = 256

# Revalidate every time (a 304 is a few hundred bytes): the app, its manifest and its
# service worker must never be stale, or a fixed bug would live on in riders' phones.
REVALIDATE = "no-cache"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str
    gzipped: bytes | None

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Asset:
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        worth = len(body) >= _MIN_GZIP_BYTES and len(packed) < len(body)
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, media_type, f'"{digest}"', packed if worth else None)


def _accepts_gzip(headers: Mapping[str, str]) -> bool:
    for part in headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*") and params.replace(" ", "") != "q=0":
            return True
    return False


def _matches(headers: Mapping[str, str], etag: str) -> bool:
    wanted = headers.get("if-none-match")
    if not wanted:
        return False
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return "*" in tags or etag in tags


def asset_response(
    headers: Mapping[str, str], asset: Asset, cache_control: str = REVALIDATE
) -> Response[bytes]:
    """``asset`` for a request with ``headers``: 304 when the browser has it, gzip if it may."""
    out = {"ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if _matches(headers, asset.etag):
        return Response(b"", status_code=304, headers=out)
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(headers):
        body = asset.gzipped
        out["Content-Encoding"] = "gzip"
    return Response(body, status_code=200, media_type=asset.media_type, headers=out)
