"""Profile Llama-3.1-8B (random weights from the catalog config) on the GPU at hand: full fine-tuning, LoRA and
QLoRA at seq 2048, micro-batch 1 and 4, measured at full depth and extrapolated from 4 and 8 of its 32 layers.

Run on the GPU machine, from the repository root::

    python3 benchmarks/profile_gpu.py --part layers   # 4 and 8 layers, extrapolated to 32 (a few minutes)
    python3 benchmarks/profile_gpu.py --part full     # full depth: each child builds an 8B model (~1-2 min)
    python3 benchmarks/profile_gpu.py --table         # the Markdown table for the closing note

Both parts write one file, ``benchmarks/profiles/llama-3.1-8b-<gpu>.json`` (``<gpu>`` from NVML, e.g.
``nvidia-h100-80gb-hbm3``), so the extrapolated entries carry their error against the full-depth
measurements. Every part resumes: a command cut short (the device tool stops a command after 10 minutes)
continues where it stopped when run again, and entries already measured are not measured twice.
``--dry-run`` prints the commands; ``--cpu-smoke`` runs the same sequence with a tiny 4-layer llama on the
CPU (seq 32, batch 1 and 2, layers 1) into a temporary folder, to check the plumbing on a machine without a GPU.

On the GPU machine nothing can be fetched. Its image has torch, transformers, peft, accelerate, click, pyyaml,
jinja2 and nvidia-ml-py, but not **bitsandbytes** (QLoRA) nor **pydantic**: carry their wheels (see the
device tool's README). Here, in the repository root::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \\
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \\
        bitsandbytes==0.50.2 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 \\
        typing-inspection==0.4.5

and start each command there (``carry: [".whl"]``) with::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit;

Check first that the carried bitsandbytes loads its CUDA library on that image's CUDA (``python3 -c "import
bitsandbytes"`` prints no error); a QLoRA child that cannot import it is recorded as ``status: error``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "benchmarks" / "profiles"
MODEL = "llama-3.1-8b"
GIB = float(1 << 30)


def gpu_tag() -> str:
    """The GPU's name from NVML, normalised (no CUDA context is created here)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - no NVML here: a neutral tag
        return "gpu"
    return "-".join(name.lower().replace("_", " ").split())


def commands(out: Path, part: str, *, model: str = MODEL, device: str = "cuda", seq: str = "2048",
             batches: str = "1,4", steps: int = 10, warmup: int = 2, layers: int = 4) -> list[list[str]]:
    base = [sys.executable, "-m", "advisor.cli", "profile", "--model", model, "--methods", "full,lora,qlora",
            "--seq-len", seq, "--batch-size", batches, "--steps", str(steps), "--warmup", str(warmup),
            "--device", device, "--out", str(out)]
    by_part = {"layers": [[*base, "--layers", str(layers)]], "full": [base]}
    return by_part["layers"] + by_part["full"] if part == "all" else by_part[part]


def table(out: Path) -> str:
    """Markdown: memory, tokens/s and MFU per method at full depth (measured and extrapolated)."""
    sys.path.insert(0, str(ROOT))
    from profiler.schema import load_profile

    p = load_profile(out)
    d = p.device
    lines = [
        f"{p.model.name} ({p.model.num_layers} layers, random weights) on {d.name}"
        + (f" (catalog {d.catalog_gpu}, {d.peak_bf16_dense_tflops:g} dense bf16 TFLOP/s)" if d.catalog_gpu else "")
        + f"; torch {p.versions.torch}, CUDA {d.cuda_version}, driver {d.driver_version}, transformers "
        f"{p.versions.transformers}, peft {p.versions.peft}, bitsandbytes {p.versions.bitsandbytes}",
        "",
        ("| method | seq | batch | source | fits | peak allocated GiB | peak reserved GiB | device peak GiB "
         "| tokens/s | MFU | extrapolation error (reserved / step time) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def g(v: int | None) -> str:
        return f"{v / GIB:.2f}" if v is not None else "-"

    for e in p.entries:
        if e.layers != p.model.num_layers:
            continue
        src = e.source if e.source == "measured" else f"from {e.extrapolated_from_layers[0]}/" \
            f"{e.extrapolated_from_layers[1]} layers"
        fits = {True: "yes", False: "no (OOM)", None: f"error: {e.error}"}[e.fits]
        err = "-"
        if e.extrapolation_error:
            r = e.extrapolation_error.get("peak_reserved_bytes", e.extrapolation_error.get("device_peak_bytes"))
            t = e.extrapolation_error.get("step_time_s")
            err = f"{r:+.1%} / {t:+.1%}" if r is not None and t is not None else "-"
        tps = f"{e.tokens_per_s:,.0f}" if e.tokens_per_s else "-"
        mfu = f"{e.mfu:.1%}" if e.mfu is not None else "-"
        lines.append(f"| {e.technique} | {e.seq_len} | {e.micro_batch} | {src} | {fits} | {g(e.peak_allocated_bytes)} "
                     f"| {g(e.peak_reserved_bytes)} | {g(e.device_peak_bytes)} | {tps} | {mfu} | {err} |")
    wall = sum(e.wall_s or 0 for e in p.entries if e.source == "measured")
    lines += ["", f"children's wall time (build + steps, all measured entries): {wall / 60:.1f} min"]
    return "\n".join(lines)


def _run(cmds: list[list[str]], dry_run: bool) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
           "PYTHONUNBUFFERED": "1"}
    for cmd in cmds:
        print("$ " + " ".join(cmd[1:] if cmd[0] == sys.executable else cmd), flush=True)
        if dry_run:
            continue
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
        print(f"(exit {rc}, {time.perf_counter() - t0:.0f} s)", flush=True)
        if rc != 0:
            sys.exit(rc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("layers", "full", "all"), default="all")
    ap.add_argument("--out", type=Path, help="profile file (default: benchmarks/profiles/llama-3.1-8b-<gpu>.json)")
    ap.add_argument("--layers", type=int, default=4, help="K for the extrapolated part (K and 2K layers)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    ap.add_argument("--table", action="store_true", help="print the Markdown table of --out and stop")
    ap.add_argument("--cpu-smoke", action="store_true", help="same sequence, tiny llama on the CPU, temp folder")
    args = ap.parse_args()

    if args.cpu_smoke:
        tmp = Path(tempfile.mkdtemp(prefix="profile-gpu-smoke-"))
        sys.path.insert(0, str(ROOT))
        from estimators.families import tiny_config

        (tmp / "model").mkdir()
        (tmp / "model" / "config.json").write_text(json.dumps({**tiny_config("llama"), "num_hidden_layers": 4}))
        out = args.out or tmp / "profile.json"
        _run(commands(out, args.part, model=str(tmp / "model"), device="cpu", seq="32", batches="1,2", steps=2,
                      warmup=1, layers=1), args.dry_run)
        if not args.dry_run:
            print(table(out))
        return

    out = args.out or PROFILES / f"{MODEL}-{gpu_tag()}.json"
    if args.table:
        print(table(out))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(commands(out, args.part, layers=args.layers), args.dry_run)
    if not args.dry_run:
        print(table(out))


if __name__ == "__main__":
    main()
