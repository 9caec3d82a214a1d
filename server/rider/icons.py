"""The rider app's icons (192 and 512 px PNGs), drawn here: our own art, no binary files.

A bus seen from the front on the app's blue, painted row by row as horizontal
spans of a few shapes and written as a PNG with the standard library. Drawn
once per size, on first request.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib
from collections.abc import Callable

RGB = tuple[int, int, int]
Span = Callable[[float], tuple[float, float] | None]

BLUE: RGB = (0x0B, 0x4F, 0x94)  # --brand in style.css
WHITE: RGB = (0xFF, 0xFF, 0xFF)
AMBER: RGB = (0xFF, 0xC8, 0x1E)
SIZES = (192, 512)


def rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float) -> Span:
    """The x-span of a rounded rectangle at height y (all in units of the icon's side)."""

    def span(y: float) -> tuple[float, float] | None:
        if not y0 <= y <= y1:
            return None
        dy = max(y0 + r - y, y - (y1 - r), 0.0)
        inset = r - math.sqrt(max(r * r - dy * dy, 0.0)) if dy > 0 else 0.0
        return x0 + inset, x1 - inset

    return span


def circle(cx: float, cy: float, r: float) -> Span:
    def span(y: float) -> tuple[float, float] | None:
        dy = y - cy
        if abs(dy) > r:
            return None
        half = math.sqrt(r * r - dy * dy)
        return cx - half, cx + half

    return span


# Painted in order, later shapes over earlier ones.
BUS: list[tuple[Span, RGB]] = [
    (rounded_rect(0.25, 0.74, 0.37, 0.86, 0.03), WHITE),  # wheels
    (rounded_rect(0.63, 0.74, 0.75, 0.86, 0.03), WHITE),
    (rounded_rect(0.20, 0.14, 0.80, 0.80, 0.09), WHITE),  # body
    (rounded_rect(0.27, 0.27, 0.73, 0.52, 0.04), BLUE),  # windscreen
    (rounded_rect(0.33, 0.18, 0.67, 0.23, 0.02), BLUE),  # destination sign
    (circle(0.32, 0.65, 0.045), AMBER),  # headlights
    (circle(0.68, 0.65, 0.045), AMBER),
    (rounded_rect(0.42, 0.63, 0.58, 0.67, 0.015), BLUE),  # grille
]


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@functools.cache
def icon_png(size: int) -> bytes:
    """The app icon, ``size`` pixels square (the background fills it: safe as maskable)."""
    rows = []
    for py in range(size):
        row = bytearray(bytes(BLUE) * size)
        y = (py + 0.5) / size
        for shape, colour in BUS:
            found = shape(y)
            if found is None:
                continue
            a = max(0, round(found[0] * size))
            b = min(size, round(found[1] * size))
            if b > a:
                row[a * 3 : b * 3] = bytes(colour) * (b - a)
        rows.append(bytes(row))
    return _png(size, size, rows)
