"""Numbers as text for people: money, durations and months, shared by the plan summary, the CLI and the
report so that the same figure reads the same everywhere."""

from __future__ import annotations

DAYS_PER_MONTH = 30.4  # 365 / 12


def money(usd: float | None) -> str:
    """$1,234 from $100 up, $12.34 below; negative amounts keep their sign."""
    if usd is None:
        return "unknown"
    sign = "-" if usd < 0 else ""
    usd = abs(usd)
    return f"{sign}${usd:,.0f}" if usd >= 100 else f"{sign}${usd:,.2f}"


def duration_hours(hours: float | None) -> str:
    """A duration given in hours, in the unit that reads best (s, min, h, days)."""
    if hours is None:
        return "unknown"
    s = hours * 3600
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if hours < 72:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def months_text(months: float | None) -> str:
    """A payback time: 'never' (None), 'under a day', days below a month, then months."""
    if months is None:
        return "never"
    if months * DAYS_PER_MONTH < 1:
        return "under a day"
    return f"{months:.1f} months" if months >= 1 else f"{months * DAYS_PER_MONTH:.1f} days"


def round_sig(x: float, digits: int = 6) -> float:
    """``x`` to ``digits`` significant digits, so the same inputs give byte-identical JSON across platforms."""
    return float(f"{x:.{digits}g}")


def round_sig_or_none(x: float | None) -> float | None:
    return None if x is None else round_sig(x)
