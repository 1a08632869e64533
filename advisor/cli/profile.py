"""``advise profile``: measure real memory and speed of full fine-tuning, LoRA and QLoRA on the device at hand.

A thin layer over ``profiler.run.run_profile``: it resolves the model and the catalog GPU, prints progress
for every step with an ETA, and prints the profile as a table at the end. The data is the profile file
(``--out``, schema in ``profiler.schema``), written after every measurement; nothing here computes figures.
torch is imported inside the command only, so ``advise --help`` stays light.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from advisor import __version__
from advisor.cli.common import AdviseUsageError, FiniteFloat, domain_errors, echo, load_catalog
from advisor.contract.units import duration, gib
from advisor.contract.vocab import DEVICES, TECHNIQUES

METHODS = tuple(TECHNIQUES)


class _IntList(click.ParamType):
    """Comma-separated whole numbers >= 1 (``2048`` or ``1,4``)."""

    name = "N[,N...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            items = tuple(int(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"'{value}' is not a comma-separated list of whole numbers", param, ctx)
        if not items or min(items) < 1:
            self.fail(f"'{value}': give whole numbers >= 1", param, ctx)
        return tuple(dict.fromkeys(items))


def _methods(value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(m.strip().lower() for m in value.split(",") if m.strip()))
    bad = [m for m in items if m not in METHODS]
    if bad or not items:
        raise AdviseUsageError(f"--methods: '{','.join(bad) or value}' is not a method; use some of {','.join(METHODS)}")
    return items


@click.command()
@click.option("--model", required=True, help="Catalog name, Hub id, or a local config.json / model directory.")
@click.option("--methods", default="full,lora,qlora", show_default=True,
              help="Comma-separated techniques: full, lora, qlora, dora.")
@click.option("--seq-len", "seq_lens", default="2048", show_default=True, type=_IntList(),
              help="Tokens per sequence (comma-separated for several).")
@click.option("--batch-size", "batch_sizes", default="1", show_default=True, type=_IntList(),
              help="Micro-batch (comma-separated for several; the first size with --find-max-batch).")
@click.option("--find-max-batch", is_flag=True,
              help="Find the largest micro-batch that fits: double from --batch-size, then bisect.")
@click.option("--max-batch-limit", default=1024, show_default=True, type=click.IntRange(min=1),
              help="Stop --find-max-batch growing here.")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(min=1), help="Timed training steps.")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0),
              help="Untimed steps first (optimizer states, kernel autotuning).")
@click.option("--layers", type=click.IntRange(min=1),
              help="Measure K and 2K decoder layers and extrapolate to the full depth (models too big or slow).")
@click.option("--out", default="profile.json", show_default=True, type=click.Path(dir_okay=False),
              help="Profile file: written after every measurement; a rerun resumes it.")
@click.option("--device", default="cuda", show_default=True, type=click.Choice(tuple(DEVICES)),
              help="cpu runs the same code on tiny models (tests, CI): time and peak RSS only.")
@click.option("--memory-limit-gib", type=FiniteFloat(min=0, min_open=True),
              help="Pretend the device has this much memory (CUDA: allocator cap; CPU: address-space cap).")
@click.option("--gpu", "gpu_name", help="Catalog GPU for the MFU peak when the device name is not in the catalog.")
@click.pass_context
@domain_errors
def profile(ctx: click.Context, model: str, methods: str, seq_lens: tuple[int, ...], batch_sizes: tuple[int, ...],
            find_max_batch: bool, max_batch_limit: int, steps: int, warmup: int, layers: int | None, out: str,
            device: str, memory_limit_gib: float | None, gpu_name: str | None) -> None:
    """Run real training steps of each method on this GPU (or CPU) and record memory and speed."""
    from profiler.run import ProfileRequest, default_gpu_lookup, run_profile

    techniques = _methods(methods)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise AdviseUsageError(
                f"--device cuda: torch {torch.__version__} sees no CUDA GPU on this machine; run on a GPU machine, "
                "or pass --device cpu to profile a tiny model on the CPU")
    cat = load_catalog(ctx)
    spec = cat.resolve_model(model)
    req = ProfileRequest(
        model=spec, out=Path(out), methods=techniques, seq_lens=seq_lens, micro_batches=batch_sizes, device=device,
        steps=steps, warmup_steps=warmup, layers=layers, find_max_batch=find_max_batch,
        max_batch_limit=max_batch_limit,
        memory_limit_bytes=int(memory_limit_gib * (1 << 30)) if memory_limit_gib else None,
        gpu=cat.gpu(gpu_name) if gpu_name else None, gpu_lookup=default_gpu_lookup(cat),
        advise_version=__version__,
    )
    t0 = time.perf_counter()
    printer = _Progress(sys.stdout.isatty())
    result = run_profile(req, printer)
    printer.close()
    _print_profile(result, out, time.perf_counter() - t0)


# ---- printing -----------------------------------------------------------------------------------
def _eta(s: float | None) -> str:
    return "" if s is None else duration(s)


class _Progress:
    """One line per step (on a terminal the step line is rewritten in place), one line per result."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.open_line = False

    def _emit(self, text: str, final: bool) -> None:
        if self.tty and not final:
            echo(f"\r\x1b[K{text}", nl=False)
            self.open_line = True
            return
        echo(f"\r\x1b[K{text}" if self.tty and self.open_line else text)
        self.open_line = False

    def close(self) -> None:
        if self.open_line:
            echo("")
            self.open_line = False

    def __call__(self, ev: Any) -> None:
        head = f"[{ev.index}/{ev.planned}]" if ev.planned else f"[{ev.index}]"
        run_eta = f", run ETA {_eta(ev.total_eta_s)}" if ev.total_eta_s is not None else ""
        if ev.kind == "start":
            self._emit(f"{head} {ev.label}: starting a child process{run_eta}", final=False)
        elif ev.kind == "build":
            self._emit(f"{head} {ev.label}: building the model (pid {ev.pid})", final=False)
        elif ev.kind == "step":
            what = "warm-up" if ev.phase == "warmup" else "timed"
            self._emit(f"{head} {ev.label}: {what} step {ev.step}/{ev.steps} {ev.step_s:.3f} s, "
                       f"ETA {_eta(ev.eta_s)}{run_eta}", final=not self.tty)
        elif ev.kind in ("done", "skip"):
            prefix = "already measured: " if ev.kind == "skip" else ""
            self._emit(f"{head} {ev.label}: {prefix}{_verdict(ev.entry)}", final=True)
        elif ev.kind == "max_batch":
            m = ev.max_batch
            fail = f", {m.first_failing_micro_batch} does not" if m.first_failing_micro_batch else \
                f" (the limit {m.limit_micro_batch} fits)"
            err = f"; stopped: {m.error}" if m.error else ""
            self._emit(f"largest micro-batch for {ev.label}: {m.max_micro_batch} fits{fail}{err}", final=True)


def _verdict(e: Any) -> str:
    if e.status == "error":
        return f"failed ({e.error})"
    if e.status == "oom":
        asked = f", asked for {gib(e.oom.requested_bytes)}" if e.oom and e.oom.requested_bytes else ""
        return f"does not fit (out of memory in {e.oom.phase if e.oom else '?'}{asked})"
    mem = gib(e.peak_reserved_bytes) + " reserved" if e.peak_reserved_bytes is not None else \
        (gib(e.device_peak_bytes) + " peak RSS" if e.device_peak_bytes is not None else "?")
    mfu = f", MFU {e.mfu:.0%}" if e.mfu is not None else ""
    return f"fits, {mem}, {e.step_time_s:.3f} s/step, {e.tokens_per_s:,.0f} tokens/s{mfu}"


def _print_profile(p: Any, out: str, wall_s: float) -> None:
    d = p.device
    where = d.name + (f" = {d.catalog_gpu} ({d.peak_bf16_dense_tflops:g} dense bf16 TFLOP/s)" if d.catalog_gpu else "")
    echo("")
    echo(f"{p.model.name}: {p.model.num_layers} layers, {p.model.params_total:,} parameters, on {d.kind.upper()} {where}")
    echo(f"torch {p.versions.torch}, transformers {p.versions.transformers}, peft {p.versions.peft}, "
         f"bitsandbytes {p.versions.bitsandbytes}" + (f", CUDA {d.cuda_version}, driver {d.driver_version}"
                                                       if d.kind == "cuda" else ""))
    cpu = d.kind == "cpu"
    mem_head = "peak RSS" if cpu else "reserved"
    echo(f"  {'method':6} {'seq':>6} {'batch':>5} {'layers':>10} {'fits':>5} {'allocated':>11} {mem_head:>11} "
         f"{'device':>11} {'s/step':>8} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>5}")
    for e in p.entries:
        depth = f"{e.layers}" + (" (ext.)" if e.source == "extrapolated" else "")
        fits = {True: "yes", False: "no", None: "?"}[e.fits]
        if e.status == "error":
            echo(f"  {e.technique:6} {e.seq_len:>6} {e.micro_batch:>5} {depth:>10} {fits:>5} failed: {e.error}")
            continue

        def g(v: int | None) -> str:
            return gib(v) if v is not None else "-"

        rss_or_reserved = e.device_peak_bytes if cpu else e.peak_reserved_bytes
        echo(f"  {e.technique:6} {e.seq_len:>6} {e.micro_batch:>5} {depth:>10} {fits:>5} "
             f"{g(e.peak_allocated_bytes):>11} {g(rss_or_reserved):>11} {g(None if cpu else e.device_peak_bytes):>11} "
             f"{f'{e.step_time_s:.4g}' if e.step_time_s is not None else '-':>8} "
             f"{f'{e.tokens_per_s:,.0f}' if e.tokens_per_s else '-':>10} "
             f"{f'{e.achieved_tflops:.3g}' if e.achieved_tflops else '-':>8} "
             f"{f'{e.mfu:.0%}' if e.mfu is not None else '-':>5}")
        if e.extrapolation_error:
            errs = ", ".join(f"{k} {v:+.1%}" for k, v in e.extrapolation_error.items()
                             if k in ("peak_reserved_bytes", "device_peak_bytes", "step_time_s"))
            if errs:
                echo(f"  {'':6} {'':>6} {'':>5} {'':>10}       extrapolation error vs measured: {errs}")
    for m in p.max_batch:
        fail = f" ({m.first_failing_micro_batch} does not)" if m.first_failing_micro_batch else " (limit reached)"
        echo(f"  largest micro-batch, {m.technique} seq {m.seq_len}: {m.max_micro_batch}{fail}")
    for n in p.notes:
        echo(f"  note: {n}")
    echo(f"profile written to {out} ({duration(wall_s)})")
