"""``advise profile``: real training steps for each method x shape, each in its own child process.

``run_profile(request, progress)`` measures what ``ProfileRequest`` asks and returns the ``Profile``; the
file at ``request.out`` is rewritten atomically after every measurement, so an interrupt or a crash loses
nothing already measured, and a rerun with the same ``out`` skips every entry already measured with the
same settings (failed measurements, ``status: error``, are retried).

* **Child processes.** Every measurement (one method, one shape, one depth) runs in a process of its own
  (``profiler.child``): a fresh CUDA context and caching allocator, so an out-of-memory or a crash cannot
  poison the next measurement. On CUDA each child is a fresh interpreter (multiprocessing ``spawn``). On
  CPU children are forked from a ``forkserver`` that imported torch/transformers/peft/bitsandbytes once and
  never touched a tensor: the children are still separate processes with their own memory, but skip ~6 s
  of imports each, which dominates tiny CPU runs (the tests, CI).
* **Depth extrapolation** (``layers=K``): models too large or too slow for the card are measured as
  truncated copies with K and 2K decoder layers (``num_hidden_layers`` changed in the config) and
  extrapolated linearly to the full depth N: f(N) = f(K) + (f(2K) - f(K)) (N - K) / K (a negative
  per-layer part, timing noise, counts as 0). Every decoder
  layer of these models is the same size and does the same work, so memory and step time are a fixed part
  (embeddings, lm_head, logits and loss, CUDA context) plus a per-layer part. FLOPs of the extrapolated
  entry are counted for the full model (``estimators.throughput.flops_per_token``), not extrapolated. Where
  a measured full-depth entry with the same settings exists, the extrapolated entry records its error.
* **Largest micro-batch** (``find_max_batch``): double from the first batch size until a probe does not fit,
  then bisect between the last fit and the first failure (``search_max_batch``); every probe is an entry.
  With ``layers`` the probes are the extrapolated full-depth predictions.
* **MFU** = achieved FLOP/s / the catalog GPU's dense bf16 peak, with the FLOPs per token the estimator
  uses (``flops_per_token``), so measured and estimated MFU are the same quantity (PaLM, Chowdhery et al.
  2022, appendix B). Not computed on CPU.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advisor.contract.errors import AdviseError
from advisor.contract.vocab import TECHNIQUES
from estimators.catalog import GPU, ModelSpec
from estimators.setup import TrainingSetup
from profiler.schema import (
    DeviceInfo,
    Entry,
    MaxBatch,
    ModelInfo,
    OOMInfo,
    Profile,
    StateBytes,
    Versions,
    load_profile,
    write_profile,
)

DEFAULT_MAX_BATCH_LIMIT = 1024
CPU_NOTES = (
    "CPU run: step times, tokens/s and TFLOP/s are indicative only (shared CPUs swing up to 10x between runs)",
    "CPU run: device_peak_bytes is the process's peak resident memory (RSS), not device memory; no MFU",
)
CUDA_NOTES = (
    ("peak_allocated/reserved: torch caching allocator over the timed steps; device_peak_bytes includes the "
     "CUDA context (see device_peak_source)"),
)
#: entry fields that grow linearly with the number of decoder layers (extrapolated and error-checked)
LINEAR_FIELDS = ("peak_allocated_bytes", "peak_reserved_bytes", "device_peak_bytes", "saved_for_backward_bytes",
                 "step_time_s", "step_time_min_s", "step_time_max_s", "trainable_params")
_INT_FIELDS = {"peak_allocated_bytes", "peak_reserved_bytes", "device_peak_bytes", "saved_for_backward_bytes",
               "trainable_params"}
_LOG_TAIL_CHARS = 2000


def _r(x: float | None, digits: int = 6) -> float | None:
    """Round to ``digits`` significant digits (stable JSON)."""
    return None if x is None else float(f"{x:.{digits}g}")


def _advise_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("advise")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile. ``setup_fields`` are further ``TrainingSetup`` fields; empty = the plan's defaults."""

    model: ModelSpec
    out: Path
    methods: tuple[str, ...] = ("full", "lora", "qlora")
    seq_lens: tuple[int, ...] = (2048,)
    micro_batches: tuple[int, ...] = (1,)
    device: str = "cuda"
    steps: int = 10
    warmup_steps: int = 2
    layers: int | None = None
    find_max_batch: bool = False
    max_batch_limit: int = DEFAULT_MAX_BATCH_LIMIT
    memory_limit_bytes: int | None = None
    gpu: GPU | None = None  # the catalog GPU for MFU; None: look the device name up with gpu_lookup
    gpu_lookup: Callable[[str], GPU | None] | None = None
    setup_fields: Mapping[str, Any] = field(default_factory=dict)
    start_method: str | None = None  # None: spawn on CUDA, forkserver on CPU
    advise_version: str = field(default_factory=_advise_version)
    seed: int = 0

    def setup(self, technique: str, seq_len: int, micro_batch: int) -> TrainingSetup:
        return TrainingSetup(technique=technique, seq_len=seq_len, micro_batch=micro_batch, **dict(self.setup_fields))


@dataclass(frozen=True)
class ProgressEvent:
    """What ``run_profile`` reports while it works (the CLI prints it; nothing else depends on it).

    kind: start | build | step | done | skip | max_batch. ``index`` counts measurements in this run
    (1-based); ``planned`` is how many are planned (None while a batch search runs).
    """

    kind: str
    label: str
    index: int = 0
    planned: int | None = None
    phase: str | None = None
    step: int | None = None
    steps: int | None = None
    step_s: float | None = None
    eta_s: float | None = None  # this measurement
    total_eta_s: float | None = None  # the whole run, where it can be told
    entry: Entry | None = None
    max_batch: MaxBatch | None = None
    pid: int | None = None  # the measuring child process (build events)


@dataclass(frozen=True)
class BatchSearch:
    max_micro_batch: int  # 0: nothing fits
    first_failing_micro_batch: int | None  # None: the limit fits
    probes: tuple[int, ...]
    error: str | None = None


def search_max_batch(fits: Callable[[int], bool | None], start: int = 1,
                     limit: int = DEFAULT_MAX_BATCH_LIMIT) -> BatchSearch:
    """The largest micro-batch for which ``fits`` holds: double from ``start`` until a probe fails (or
    ``limit`` fits), then bisect between the last fit and the first failure. Memory grows with the batch,
    so fits is monotone; ``fits`` returning None (a failed measurement) stops the search."""
    if start < 1 or limit < 1:
        raise AdviseError(f"batch search needs start and limit >= 1; got {start}, {limit}")
    probes: list[int] = []
    lo, hi = 0, None

    def probe(b: int) -> bool | None:
        probes.append(b)
        return fits(b)

    b = min(start, limit)
    while True:
        ok = probe(b)
        if ok is None:
            return BatchSearch(lo, hi, tuple(probes), f"the measurement at micro-batch {b} failed")
        if not ok:
            hi = b
            break
        lo = b
        if b >= limit:
            break
        b = min(2 * b, limit)
    while hi is not None and hi - lo > 1:
        mid = (lo + hi) // 2
        ok = probe(mid)
        if ok is None:
            return BatchSearch(lo, hi, tuple(probes), f"the measurement at micro-batch {mid} failed")
        lo, hi = (mid, hi) if ok else (lo, mid)
    return BatchSearch(lo, hi, tuple(probes))


# ---- model configs ------------------------------------------------------------------------------
def config_sha256(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def truncated_config(config: Mapping[str, Any], layers: int) -> dict[str, Any]:
    """The config with ``layers`` decoder layers (per-layer lists such as ``layer_types`` cut to match)."""
    cfg = copy.deepcopy(dict(config))
    n = cfg.get("num_hidden_layers")
    if not isinstance(n, int):
        raise AdviseError("--layers: the model config has no num_hidden_layers to truncate; profile it at full depth")
    cfg["num_hidden_layers"] = layers
    for key in ("layer_types",):  # transformers 5 writes one entry per layer for sliding-window models
        v = cfg.get(key)
        if isinstance(v, list) and len(v) == n:
            cfg[key] = v[:layers]
    return cfg


def linear_in_depth(at_k: float, at_2k: float, k: int, n: int) -> float:
    """f(N) on the line through (K, f(K)) and (2K, f(2K)): a fixed part plus a per-layer part.

    More layers never cost less memory or time, so a negative per-layer part (two noisy timings) counts as 0.
    """
    per_layer = max(at_2k - at_k, 0) / k
    return at_k + per_layer * (n - k)


# ---- child processes ----------------------------------------------------------------------------
def _signal_name(code: int) -> str:
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
    return name + (" (often the kernel's out-of-memory killer)" if name == "SIGKILL" else "")


class _Launcher:
    """Starts one child process per task and relays its progress events; never raises for a child's failure."""

    def __init__(self, start_method: str, log_dir: Path) -> None:
        if start_method not in multiprocessing.get_all_start_methods():
            start_method = "spawn"
        self.ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self.ctx.set_forkserver_preload(["profiler._preload"])
            # the server serves CPU runs only: hide GPUs from it, so that no import there (bitsandbytes probes
            # CUDA) creates a CUDA state that its forked children could not use
            from multiprocessing import forkserver

            saved = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
            try:
                forkserver.ensure_running()
            finally:
                if saved is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = saved
        self.start_method = start_method
        self.log_dir = log_dir
        self.count = 0

    def run(self, task: dict[str, Any], on_event: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        from profiler.child import child_main

        self.count += 1
        log = self.log_dir / f"child-{self.count}.log"
        recv, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=child_main, args=(send, task, str(log)), name=f"advise-profile-{self.count}")
        result = None
        try:
            proc.start()
            send.close()
            while True:
                try:
                    if recv.poll(0.5):
                        kind, payload = recv.recv()
                        if kind == "progress":
                            on_event(payload)
                        else:
                            result = payload
                    elif not proc.is_alive() and not recv.poll(0):
                        break
                except EOFError:
                    break
            proc.join()
        except BaseException:  # Ctrl-C or a bug here: take the child down with us, then re-raise
            if proc.is_alive():
                proc.kill()
                proc.join()
            raise
        finally:
            recv.close()
        if result is None:
            code = proc.exitcode
            how = f"exit code {code}" if code is None or code >= 0 else _signal_name(code)
            result = {"status": "error", "error": f"the child process died ({how}) without a result",
                      "error_log_tail": self._log_tail(log)}
        return result

    @staticmethod
    def _log_tail(log: Path) -> str | None:
        try:
            return log.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL_CHARS:] or None
        except OSError:
            return None


# ---- the run ------------------------------------------------------------------------------------
def _validate(req: ProfileRequest) -> None:
    errors = []
    bad = [m for m in req.methods if m not in TECHNIQUES]
    if bad or not req.methods:
        errors.append(f"--methods must name some of {', '.join(TECHNIQUES)}; got '{','.join(req.methods)}'")
    if req.device not in ("cuda", "cpu"):
        errors.append(f"--device must be cuda or cpu; got '{req.device}'")
    if req.steps < 1:
        errors.append(f"--steps must be >= 1; got {req.steps}")
    if req.warmup_steps < 0:
        errors.append(f"--warmup must be >= 0; got {req.warmup_steps}")
    if not req.seq_lens or min(req.seq_lens) < 1:
        errors.append("--seq-len must be whole numbers >= 1")
    if not req.micro_batches or min(req.micro_batches) < 1:
        errors.append("--batch-size must be whole numbers >= 1")
    if req.find_max_batch and len(req.micro_batches) > 1:
        errors.append("--find-max-batch starts from one --batch-size; give a single value")
    n = req.model.anatomy.num_layers
    if req.layers is not None and not (1 <= req.layers and 2 * req.layers < n):
        errors.append(f"--layers {req.layers}: K and 2K layers must be fewer than the model's {n} decoder layers "
                      f"(use 1 <= K <= {max((n - 1) // 2, 0)}), or profile it without --layers")
    if req.memory_limit_bytes is not None and req.memory_limit_bytes <= 0:
        errors.append("--memory-limit-gib must be > 0")
    out_dir = Path(req.out).parent
    if not out_dir.is_dir():
        errors.append(f"--out {req.out}: folder {out_dir} does not exist")
    else:
        from advisor.contract.files import PROFILE_MARK, OutputError, check_target, file_starts_with, probe_writable

        try:  # a link, a device or a file advise did not write is refused before any child starts
            check_target(Path(req.out), "--out", may_replace=file_starts_with(PROFILE_MARK))
            probe_writable(out_dir, "--out", Path(req.out))
        except OutputError as e:
            errors.append(str(e))
    if not errors and not bad:
        for m in req.methods:
            try:
                req.setup(m, req.seq_lens[0], req.micro_batches[0])
            except AdviseError as e:
                errors.append(f"{m}: {e}")
    if errors:
        raise AdviseError("; ".join(errors))


def _check_same_model(existing: Profile, out: Path, model: ModelInfo) -> None:
    if existing.model.config_sha256 != model.config_sha256:
        raise AdviseError(f"--out {out} holds a profile of {existing.model.name}; this run profiles {model.name} "
                          "(another config): choose another --out")


def _check_same_run(existing: Profile, out: Path, device: DeviceInfo, versions: Versions) -> None:
    """Entries in one file must compare like with like: same device and library versions."""
    if (existing.device.kind, existing.device.name) != (device.kind, device.name):
        raise AdviseError(f"--out {out} was measured on {existing.device.name} ({existing.device.kind}); this is "
                          f"{device.name} ({device.kind}): choose another --out")
    for lib in ("torch", "transformers", "peft", "bitsandbytes"):
        have, now = getattr(existing.versions, lib), getattr(versions, lib)
        if have != now:
            raise AdviseError(f"--out {out} was measured with {lib} {have}; this run has {lib} {now}: "
                              "choose another --out")


class _Run:
    def __init__(self, req: ProfileRequest, progress: Callable[[ProgressEvent], None] | None) -> None:
        self.req = req
        self.progress = progress or (lambda _e: None)
        self.model = req.model
        self.full_layers = req.model.anatomy.num_layers
        self.index = 0
        self.walls: list[float] = []
        self.planned: int | None = None
        if not req.find_max_batch:
            self.planned = len(req.methods) * len(req.seq_lens) * len(req.micro_batches) * (2 if req.layers else 1)
        self.profile: Profile | None = None
        self.launcher: _Launcher | None = None

    # ---- header ---------------------------------------------------------------------------------
    def _model_info(self) -> ModelInfo:
        m = self.model
        return ModelInfo(name=m.name, hub_id=m.hub_id, model_type=str(m.config.get("model_type", m.family)),
                         num_layers=self.full_layers, params_total=m.anatomy.params_total,
                         config_sha256=config_sha256(m.config))

    def _start(self) -> None:
        req = self.req
        existing = None
        if Path(req.out).exists():
            try:
                existing = load_profile(req.out)
            except AdviseError as e:
                raise AdviseError(f"--out: {e}; choose another --out, or move the file away to start afresh") from None
        model = self._model_info()
        if existing is not None:
            _check_same_model(existing, req.out, model)  # before any child runs
        info = self.launcher.run({"kind": "info", "device": req.device}, lambda _e: None)
        if info.get("status") != "ok":
            raise AdviseError(f"--device {req.device}: the profiling child could not start: {info.get('error')}")
        dev = dict(info["device"])
        gpu = req.gpu
        if gpu is None and dev["kind"] == "cuda" and req.gpu_lookup is not None:
            gpu = req.gpu_lookup(dev["name"])
        if gpu is not None and dev["kind"] == "cuda":
            dev["catalog_gpu"], dev["peak_bf16_dense_tflops"] = gpu.name, gpu.bf16_dense_tflops
        device = DeviceInfo(**dev)
        versions = Versions(**info["versions"], advise=req.advise_version)
        if existing is not None:
            _check_same_run(existing, req.out, device, versions)
            self.profile = existing
            # the catalog match may have been added since (--gpu): refresh it, entries keep their MFU
            self.profile.device = device
        else:
            notes = list(CPU_NOTES if device.kind == "cpu" else CUDA_NOTES)
            if device.kind == "cuda" and device.peak_bf16_dense_tflops is None:
                notes.append(f"'{device.name}' is not a catalog GPU: no MFU (name one with --gpu)")
            created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
            self.profile = Profile(created=created, device=device, versions=versions, model=model, notes=notes)
        self._save()

    def _save(self) -> None:
        write_profile(self.profile, self.req.out)

    # ---- one measurement ------------------------------------------------------------------------
    def _settings(self, setup: TrainingSetup) -> tuple[Any, ...]:
        return (json.dumps(_setup_dict(setup), sort_keys=True), self.req.steps, self.req.warmup_steps,
                self.req.memory_limit_bytes)

    def _label(self, technique: str, seq_len: int, micro_batch: int, layers: int) -> str:
        depth = "" if layers == self.full_layers else f", {layers} of {self.full_layers} layers"
        return f"{technique} seq {seq_len} x batch {micro_batch}{depth}"

    def measured(self, technique: str, seq_len: int, micro_batch: int, layers: int) -> Entry:
        """The measured entry for this point: from the file when it was measured with the same settings."""
        req = self.req
        setup = req.setup(technique, seq_len, micro_batch)
        key = (technique, seq_len, micro_batch, layers, "measured")
        label = self._label(technique, seq_len, micro_batch, layers)
        self.index += 1
        old = self.profile.entry(key)
        if old is not None and old.status in ("ok", "oom") and old.settings == self._settings(setup):
            self.progress(ProgressEvent("skip", label, self.index, self.planned, entry=old,
                                        total_eta_s=self._total_eta(0.0)))
            return old
        cfg = dict(self.model.config) if layers == self.full_layers else truncated_config(self.model.config, layers)
        task = {"kind": "measure", "config": cfg, "setup": _setup_dict(setup), "device": req.device,
                "steps": req.steps, "warmup_steps": req.warmup_steps, "memory_limit_bytes": req.memory_limit_bytes,
                "seed": req.seed}
        self.progress(ProgressEvent("start", label, self.index, self.planned, total_eta_s=self._total_eta(0.0)))
        t0 = time.perf_counter()
        step_times: list[float] = []
        total_steps = req.warmup_steps + req.steps

        def on_event(ev: dict[str, Any]) -> None:
            if ev.get("phase") == "build":
                self.progress(ProgressEvent("build", label, self.index, self.planned, phase="build", pid=ev.get("pid")))
                return
            step_times.append(float(ev["step_s"]))
            done = len(step_times)
            eta = statistics.mean(step_times) * (total_steps - done)
            self.progress(ProgressEvent("step", label, self.index, self.planned, phase=ev["phase"], step=ev["step"],
                                        steps=ev["steps"], step_s=ev["step_s"], eta_s=eta,
                                        total_eta_s=self._total_eta(eta)))

        result = self.launcher.run(task, on_event)
        self.walls.append(time.perf_counter() - t0)
        entry = self._entry_from_result(result, setup, layers)
        self.profile.upsert(entry)
        self._refresh_extrapolation_errors()
        self._save()
        self.progress(ProgressEvent("done", label, self.index, self.planned, entry=entry,
                                    total_eta_s=self._total_eta(0.0)))
        return entry

    def _total_eta(self, current_eta: float) -> float | None:
        if self.planned is None or not self.walls:
            return None
        return current_eta + statistics.mean(self.walls) * max(self.planned - self.index, 0)

    def _entry_from_result(self, res: dict[str, Any], setup: TrainingSetup, layers: int) -> Entry:
        status = res.get("status", "error")
        tokens = setup.sequences_per_micro_batch * setup.seq_len
        step = res.get("step_time_s") if status == "ok" else None
        tps = tokens / step if step else None
        flops = res.get("flops_per_token")
        achieved = flops * tps / 1e12 if flops and tps else None
        peak = self.profile.device.peak_bf16_dense_tflops if self.profile.device.kind == "cuda" else None
        state = res.get("state")
        oom = res.get("oom")
        error = res.get("error")
        if error and error.startswith("the child process died") and self.req.memory_limit_bytes:
            error += " (under a memory limit a native library can crash on a failed allocation instead of raising)"
        return Entry(
            technique=setup.technique, seq_len=setup.seq_len, micro_batch=setup.micro_batch, layers=layers,
            source="measured", status=status, fits={"ok": True, "oom": False}.get(status),
            setup=_setup_dict(setup), steps=self.req.steps, warmup_steps=self.req.warmup_steps,
            memory_limit_bytes=self.req.memory_limit_bytes, tokens_per_step=tokens,
            trainable_params=res.get("trainable_params"),
            peak_allocated_bytes=res.get("peak_allocated_bytes"), peak_reserved_bytes=res.get("peak_reserved_bytes"),
            device_peak_bytes=res.get("device_peak_bytes"), device_peak_source=res.get("device_peak_source"),
            device_baseline_bytes=res.get("device_baseline_bytes"),
            state=StateBytes(**state) if state else None,
            saved_for_backward_bytes=res.get("saved_for_backward_bytes"),
            step_time_s=_r(step), step_time_min_s=_r(res.get("step_time_min_s")) if step else None,
            step_time_max_s=_r(res.get("step_time_max_s")) if step else None,
            tokens_per_s=_r(tps), flops_per_token=_r(flops), achieved_tflops=_r(achieved),
            mfu=_r(achieved / peak) if achieved and peak else None,
            oom=OOMInfo(**oom) if oom else None, error=error, error_log_tail=res.get("error_log_tail"),
            wall_s=_r(res.get("wall_s")),
        )

    # ---- extrapolation --------------------------------------------------------------------------
    def extrapolated(self, technique: str, seq_len: int, micro_batch: int) -> Entry:
        """Measure K and 2K layers (unless already measured) and extrapolate to the full depth."""
        k, n = self.req.layers, self.full_layers
        at_k = self.measured(technique, seq_len, micro_batch, k)
        at_2k = self.measured(technique, seq_len, micro_batch, 2 * k) if at_k.status == "ok" else None
        if at_2k is None:
            self.index += 1  # the 2K measurement is not needed: K layers already failed
        entry = self._extrapolate(at_k, at_2k, k, n)
        self.profile.upsert(entry)
        self._refresh_extrapolation_errors()
        self._save()
        return self.profile.entry(entry.key) or entry

    def _extrapolate(self, at_k: Entry, at_2k: Entry | None, k: int, n: int) -> Entry:
        setup = self.req.setup(at_k.technique, at_k.seq_len, at_k.micro_batch)
        base: dict[str, Any] = {
            "technique": at_k.technique, "seq_len": at_k.seq_len, "micro_batch": at_k.micro_batch, "layers": n,
            "source": "extrapolated", "extrapolated_from_layers": [k, 2 * k], "setup": at_k.setup,
            "steps": at_k.steps, "warmup_steps": at_k.warmup_steps, "memory_limit_bytes": at_k.memory_limit_bytes,
            "tokens_per_step": at_k.tokens_per_step,
        }
        failed = next((e for e in (at_k, at_2k) if e is not None and e.status != "ok"), None)
        if failed is not None:  # more layers need more memory: the full depth fails too
            oom = None
            if failed.oom is not None:
                oom = OOMInfo(phase=f"{failed.layers} layers: {failed.oom.phase}",
                              requested_bytes=failed.oom.requested_bytes, message=failed.oom.message)
            return Entry(**base, status=failed.status, fits=False if failed.status == "oom" else None, oom=oom,
                         error=f"{failed.layers} layers: {failed.error}" if failed.error else None)
        vals: dict[str, Any] = {}
        for f in LINEAR_FIELDS:
            a, b = getattr(at_k, f), getattr(at_2k, f)
            if a is not None and b is not None:
                v = linear_in_depth(a, b, k, n)
                vals[f] = round(v) if f in _INT_FIELDS else _r(v)
        state = None
        if at_k.state is not None and at_2k.state is not None:
            state = StateBytes(**{f: round(linear_in_depth(getattr(at_k.state, f), getattr(at_2k.state, f), k, n))
                                  for f in StateBytes.model_fields})
        from estimators.throughput import flops_per_token

        flops = flops_per_token(self.model.anatomy, setup).total
        step = vals.get("step_time_s")
        tps = at_k.tokens_per_step / step if step else None
        achieved = flops * tps / 1e12 if tps else None
        peak = self.profile.device.peak_bf16_dense_tflops if self.profile.device.kind == "cuda" else None
        entry = Entry(
            **base, status="ok", state=state, tokens_per_s=_r(tps), flops_per_token=_r(flops),
            achieved_tflops=_r(achieved), mfu=_r(achieved / peak) if achieved and peak else None,
            device_peak_source=f"linear in depth from {k} and {2 * k} layers; {at_2k.device_peak_source}",
            device_baseline_bytes=at_2k.device_baseline_bytes, **vals,
        )
        return entry.model_copy(update={"fits": self._predicted_fit(entry)})

    def _predicted_fit(self, e: Entry) -> bool | None:
        """Would the full-depth model fit? The extrapolated peak against the device (or the limit)."""
        dev, limit = self.profile.device, self.req.memory_limit_bytes
        if dev.kind == "cuda":
            if limit:  # the limit caps what the caching allocator reserves
                return None if e.peak_reserved_bytes is None else e.peak_reserved_bytes <= limit
            peak = e.device_peak_bytes or e.peak_reserved_bytes
        else:
            if limit:  # the limit caps growth above what the process held before the model
                if e.device_peak_bytes is None or e.device_baseline_bytes is None:
                    return None
                return e.device_peak_bytes - e.device_baseline_bytes <= limit
            peak = e.device_peak_bytes
        return None if peak is None or dev.total_memory_bytes is None else peak <= dev.total_memory_bytes

    def _refresh_extrapolation_errors(self) -> None:
        """extrapolated / measured - 1 per metric, where the full depth was also measured with the same settings."""
        for e in list(self.profile.entries):
            if e.source != "extrapolated":
                continue
            errors = None
            m = self.profile.entry((e.technique, e.seq_len, e.micro_batch, e.layers, "measured"))
            if e.status == "ok" and m is not None and m.status == "ok" and m.settings == e.settings:
                errors = {}
                pairs = [(f, getattr(e, f), getattr(m, f)) for f in (*LINEAR_FIELDS, "tokens_per_s")]
                if e.state is not None and m.state is not None:
                    pairs += [(f"state.{f}", getattr(e.state, f), getattr(m.state, f)) for f in StateBytes.model_fields]
                for name, ex, me in pairs:
                    if ex is not None and me:
                        errors[name] = _r(ex / me - 1)
            if errors != e.extrapolation_error:
                self.profile.upsert(e.model_copy(update={"extrapolation_error": errors}))

    # ---- points and searches --------------------------------------------------------------------
    def point(self, technique: str, seq_len: int, micro_batch: int) -> Entry:
        if self.req.layers:
            return self.extrapolated(technique, seq_len, micro_batch)
        return self.measured(technique, seq_len, micro_batch, self.full_layers)

    def search(self, technique: str, seq_len: int) -> MaxBatch:
        found = search_max_batch(lambda b: self.point(technique, seq_len, b).fits, self.req.micro_batches[0],
                                 self.req.max_batch_limit)
        record = MaxBatch(technique=technique, seq_len=seq_len, layers=self.full_layers,
                          source="extrapolated" if self.req.layers else "measured",
                          max_micro_batch=found.max_micro_batch,
                          first_failing_micro_batch=found.first_failing_micro_batch,
                          limit_micro_batch=self.req.max_batch_limit, probes=list(found.probes), error=found.error)
        self.profile.upsert_max_batch(record)
        self._save()
        self.progress(ProgressEvent("max_batch", f"{technique} seq {seq_len}", self.index, self.planned,
                                    max_batch=record))
        return record

    def run(self) -> Profile:
        req = self.req
        log_dir = Path(tempfile.mkdtemp(prefix="advise-profile-"))
        try:
            start = req.start_method or ("spawn" if req.device == "cuda" else "forkserver")
            self.launcher = _Launcher(start, log_dir)
            self._start()
            for technique in req.methods:
                for seq_len in req.seq_lens:
                    if req.find_max_batch:
                        self.search(technique, seq_len)
                    else:
                        for b in req.micro_batches:
                            self.point(technique, seq_len, b)
            return self.profile
        finally:
            shutil.rmtree(log_dir, ignore_errors=True)


def _setup_dict(setup: TrainingSetup) -> dict[str, Any]:
    d = asdict(setup)
    d.pop("notes", None)
    d["lora_targets"] = list(setup.lora_targets)
    return d


def run_profile(req: ProfileRequest, progress: Callable[[ProgressEvent], None] | None = None) -> Profile:
    """Measure what ``req`` asks (see the module docstring); the file at ``req.out`` is current after every step."""
    from advisor.contract.files import FileLock

    _validate(req)
    with FileLock(req.out, "--out"):  # a second run on the same file is refused, not interleaved
        return _Run(req, progress).run()


def default_gpu_lookup(catalog: Any) -> Callable[[str], GPU | None]:
    """Map ``torch.cuda.get_device_name()`` ('NVIDIA H100 80GB HBM3') to a catalog GPU: the catalog lists
    each card's nvidia-smi name, normalised, among its aliases."""
    from advisor.contract.errors import UnknownNameError

    def lookup(name: str) -> GPU | None:
        for candidate in (name, name.removeprefix("NVIDIA ").strip()):
            try:
                return catalog.gpu(candidate)
            except UnknownNameError:
                continue
        return None

    return lookup

