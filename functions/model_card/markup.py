"""Escaping and number formatting shared by the charts and the page.

Everything that comes from a report is untrusted: label names come from users' label configs,
suspect texts from their tasks. `text` makes any value safe as XML/HTML character data and as a
double- or single-quoted attribute value; `number` accepts only finite ints and floats (never
bools, strings or NaN), so no report value reaches the markup without being formatted.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

# Characters XML 1.0 forbids (C0 controls but tab/newline/return, lone surrogates, U+FFFE/U+FFFF):
# an SVG holding one is not well-formed, and a lone surrogate cannot even be encoded as UTF-8.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
DASH = "\u2014"  # shown for a missing value


def text(value: Any, limit: int | None = None) -> str:
    """`value` as escaped character data (``& < > " '`` escaped, forbidden characters dropped),
    cut to `limit` characters (before escaping) with an ellipsis."""
    plain = _NOT_XML.sub("", str(value))
    if limit is not None and len(plain) > limit:
        plain = plain[: max(limit - 1, 0)] + "\u2026"
    return html.escape(plain, quote=True)


def number(value: Any) -> float | None:
    """`value` as a finite float if it is an int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def count(value: Any) -> int | None:
    """`value` as a non-negative int if it is an integral number, else None."""
    found = number(value)
    return int(found) if found is not None and found >= 0 and found == int(found) else None


def decimal(value: Any, digits: int = 3) -> str:
    """``0.895`` for 0.8946 (digits=3); the dash for anything that is not a finite number."""
    found = number(value)
    return DASH if found is None else f"{found:.{digits}f}"


def percent(value: Any, digits: int = 1) -> str:
    """``61.6 %`` for 0.616; the dash for anything that is not a finite number."""
    found = number(value)
    return DASH if found is None else f"{100 * found:.{digits}f}\u00a0%"


def integer(value: Any) -> str:
    """``5,280`` for 5280; the dash for anything that is not a non-negative integer."""
    found = count(value)
    return DASH if found is None else f"{found:,}"


def short_count(value: int) -> str:
    """A count in at most 4-5 characters, for a small chart cell: ``980``, ``12.3k``, ``4.1M``."""
    if value < 10_000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:.0f}k" if value >= 100_000 else f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"
