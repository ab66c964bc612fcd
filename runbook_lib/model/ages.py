"""Ages and versions, computed and shown the same way by every section."""

from __future__ import annotations

import re
from datetime import datetime


def epoch(stamp) -> float | None:
    """An RFC 3339 time as Omni prints it (``2026-11-27T10:00:00Z``) in Unix seconds; None if it is not one."""
    if stamp in (None, ""):
        return None
    if isinstance(stamp, (int, float)):
        return float(stamp)
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def age(now: float, then: float | None) -> float | None:
    return None if then is None else max(0.0, now - then)


def human_age(seconds: float | None) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``v1.9.3`` / ``1.9.3`` / ``8.2-1`` -> (1, 9, 3) / (8, 2); None when it is not a version."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text or "").strip())
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def minor(text: str | None) -> tuple[int, ...] | None:
    """(major, minor) of a version, e.g. a cluster's Talos version; None when it has none."""
    v = version_tuple(text)
    return v[:2] if v else None
