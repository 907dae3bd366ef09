"""Memory sizes as people write them: ``65536``, ``64K``, ``1.5MiB``, ``2MB``."""

from __future__ import annotations

import re

# Bare letters and IEC names are powers of 1024; SI names (kB, MB, GB) powers of 1000.
UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}
_SIZE = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes from ``text`` (a number with an optional unit: B, K/KiB, KB, M/MiB, MB, G/GiB,
    GB; case-insensitive). ValueError, with a message saying what is accepted, for anything
    unparseable, zero or negative."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in UNITS:
        raise ValueError(
            f"{text!r} is not a size; give bytes or a number with a unit, e.g. 65536, 64K, "
            "1.5MiB, 2MB"
        )
    size = round(float(match.group(1)) * UNITS[unit])
    if size <= 0:
        raise ValueError(f"{text!r}: the size must be positive")
    return size


def format_bytes(size: float) -> str:
    """``512 B``, ``1.5 KiB``, ``64.0 MiB``."""
    if abs(size) < 1024:
        return f"{int(size)} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
