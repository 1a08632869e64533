"""Numbers for people, and numbers for byte-stable JSON: one module for the terminal, the report and the configs.

Every money amount, duration, memory size and count that advise prints, writes into a report or an exported
README goes through these functions, so the same figure reads the same everywhere.
"""

from __future__ import annotations

GIB = 1 << 30
DAYS_PER_MONTH = 30.4  # 365 / 12


def money(usd: float | None) -> str:
    """$1,234 from $100 up, $12.34 below, "under $0.01" for a positive amount below a cent, "$0" for nothing;
    negative amounts keep their sign ("-(under $0.01)" below a cent)."""
    if usd is None:
        return "unknown"
    if usd == 0:
        return "$0"
    sign = "-" if usd < 0 else ""
    usd = abs(usd)
    if usd < 0.01:
        return "-(under $0.01)" if sign else "under $0.01"
    return f"{sign}${usd:,.0f}" if usd >= 100 else f"{sign}${usd:,.2f}"


def hourly(usd_per_hour: float | None) -> str:
    """A GPU's hourly price: $1.39/GPU-hour."""
    return "unknown" if usd_per_hour is None else f"{money(usd_per_hour)}/GPU-hour"


def duration(seconds: float | None) -> str:
    """A duration in the unit that reads best: 45 s, 12 min, 3.5 h, 4.2 days."""
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    if hours < 72:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def duration_hours(hours: float | None) -> str:
    """``duration`` of a time given in hours."""
    return "unknown" if hours is None else duration(hours * 3600)


def months_text(months: float | None) -> str:
    """A payback time: 'never' (None), 'under a day', days below a month, then months."""
    if months is None:
        return "never"
    if months * DAYS_PER_MONTH < 1:
        return "under a day"
    return f"{months:.1f} months" if months >= 1 else f"{months * DAYS_PER_MONTH:.1f} days"


def gib(n: float | None) -> str:
    """Bytes as GiB: one decimal from 10 GiB up, two below (12.3 GiB, 0.75 GiB)."""
    if n is None:
        return "unknown"
    v = n / GIB
    return f"{v:,.1f} GiB" if abs(v) >= 10 else f"{v:,.2f} GiB"


def host_ram_text(host_bytes: int | None, sharding: str, offload: str, gpu_count: int) -> str:
    """The CPU RAM a run with CPU offload needs on its machine ('' without offload):
    'needs 1,051.3 GiB of CPU RAM per machine for DeepSpeed ZeRO-3 optimizer offload (4 GPUs on one machine)'."""
    if not host_bytes or offload == "none":
        return ""
    from advisor.contract.vocab import SHARDING

    what = "parameter and optimizer" if offload == "params" else "optimizer"
    gpus = f"{gpu_count} GPU{'' if gpu_count == 1 else 's'}"
    return (f"needs {gib(host_bytes)} of CPU RAM per machine for {SHARDING.title(sharding)} {what} offload "
            f"({gpus} on one machine)")


def count(n: float | None) -> str:
    """A count with thousands separators; a non-whole number keeps two decimals; '-' when unknown."""
    if n is None:
        return "-"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.2f}"
    return f"{int(n):,}"


def plural(n: int, noun: str) -> str:
    """'1 line', '2 lines', '1,000 lines'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def round_sig(x: float, digits: int = 6) -> float:
    """``x`` to ``digits`` significant digits, so the same inputs give byte-identical JSON across platforms."""
    return float(f"{x:.{digits}g}")


def round_sig_or_none(x: float | None) -> float | None:
    return None if x is None else round_sig(x)
