"""Helpers shared by the test modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what planning, catalog estimates, the report and `--help` must never import
HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes")


def modules_after(code: str, *args: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (``sys.argv[1:]`` = ``args``) from the repo root."""
    script = f"{code}\nimport json as _j, sys as _s\nprint('\\n' + _j.dumps(sorted(_s.modules)))"
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def assert_imports_none_of(code: str, forbidden: tuple[str, ...] = HEAVY, *args: str) -> set[str]:
    """Fail if running ``code`` imports any of ``forbidden`` (a package or any module below it)."""
    mods = modules_after(code, *args)
    hit = sorted(m for m in mods if any(m == f or m.startswith(f + ".") for f in forbidden))
    assert not hit, f"imported {hit}"
    return mods


def cli_code(args: list[str]) -> str:
    """Code that runs ``advise ARGS`` in-process and fails on a non-zero exit."""
    return ("from click.testing import CliRunner\nfrom advisor.cli import main\n"
            f"r = CliRunner().invoke(main, {args!r})\nassert r.exit_code == 0, r.output")
