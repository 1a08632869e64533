"""Helpers shared by the test modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: what planning, catalog estimates, the report and `--help` must never import
HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes")
#: a vendor of the tests' own whose hosted fine-tuning is open to new jobs (the built-in vendors' are closed or
#: absent): ``Catalog.load([ACME_CATALOG])``, or ``advise --catalog ACME_CATALOG ...``
ACME_CATALOG = ROOT / "tests" / "acme_vendor.yaml"


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


# ---- profiles ------------------------------------------------------------------------------------------------
def profile_of_plan(plan, entries):
    """A CUDA profile of the plan's base model on its GPU, with the given (micro_batch, fits, peak, tokens/s)."""
    from dataclasses import asdict

    from estimators.setup import TrainingSetup
    from profiler.schema import Entry, Profile

    t, base = plan.estimates.training, plan.estimates.base_model
    rows = []
    for mb, fits, peak, tps in entries:
        setup = TrainingSetup(technique=t.technique, seq_len=t.stages[0].seq_len, micro_batch=mb,
                              lora_r=t.lora.r, lora_alpha=t.lora.alpha)
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(setup).items() if k != "notes"}
        rows.append(Entry(technique=t.technique, seq_len=setup.seq_len, micro_batch=mb, layers=base.num_layers,
                          source="measured", status="ok" if fits else "oom", fits=fits, setup=d, steps=10,
                          warmup_steps=3, tokens_per_step=mb * setup.seq_len, device_peak_bytes=peak,
                          tokens_per_s=tps))
    return Profile(created="2026-11-23T00:00:00Z",
                   device={"kind": "cuda", "name": "NVIDIA A100-SXM4-80GB", "catalog_gpu": t.gpu},
                   versions={"python": "3.11", "torch": "2.13.0", "transformers": "5.23.0", "advise": "0.1.0"},
                   model={"name": base.name, "hub_id": base.hub_id, "model_type": base.model_type,
                          "num_layers": base.num_layers, "params_total": base.params_total,
                          "config_sha256": "0" * 64},
                   entries=rows)


def h100_profile(kind: str = "cuda"):
    """A profile of llama-3.1-8b on an H100 (``profiler.schema.Profile``): an OOM, three shapes, one 4-layer entry."""
    from dataclasses import asdict

    from estimators.setup import TrainingSetup
    from profiler.schema import Profile

    def entry(tech: str, seq: int, mb: int, peak: float | None, tps: float | None, status: str = "ok",
              layers: int = 32) -> dict[str, Any]:
        setup = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(TrainingSetup(
            technique=tech, seq_len=seq, micro_batch=mb,
            optimizer="paged-adamw-8bit" if tech == "qlora" else "adamw")).items() if k != "notes"}
        e = {"technique": tech, "seq_len": seq, "micro_batch": mb, "layers": layers, "source": "measured",
             "status": status, "fits": status == "ok", "setup": setup, "steps": 10, "warmup_steps": 2,
             "tokens_per_step": seq * mb, "device_peak_bytes": None if peak is None else int(peak * 2**30),
             "tokens_per_s": tps}
        if status == "oom":
            e["oom"] = {"phase": "timed", "message": "CUDA out of memory"}
        return e

    prof = {"schema_version": 1, "created": "2026-11-23T00:00:00Z",
            "device": {"kind": kind, "name": "NVIDIA H100 80GB HBM3", "catalog_gpu": "H100-80GB"},
            "versions": {"python": "3.11", "torch": "2.13.0", "transformers": "5.0", "advise": "0.1.0"},
            "model": {"name": "llama-3.1-8b", "hub_id": "meta-llama/Llama-3.1-8B", "model_type": "llama",
                      "num_layers": 32, "params_total": 8030261248, "config_sha256": "0" * 64},
            "entries": [entry("full", 2048, 1, None, None, "oom"), entry("lora", 1280, 8, 20.4, 8800.0),
                        entry("lora", 2048, 1, 19.5, 7400.0), entry("lora", 2048, 1, 3.0, 50000.0, layers=4),
                        entry("qlora", 2048, 1, 8.9, 5200.0)]}
    return Profile.model_validate(prof)
