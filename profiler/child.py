"""What runs inside each profiling child process: describe the device, or measure one training setup.

``child_main`` is the process target (``profiler.run`` starts it, one process per measurement). It sends
progress events and then one result dict over a pipe and never raises: an out-of-memory is a result
(``status: oom``), any other failure is a result too (``status: error``). A crash that kills the process
(segfault, the kernel's OOM killer) is noticed by the parent, which has the child's log.

The child redirects its stdout/stderr to a log file the parent names, so library chatter (warnings,
progress bars) stays off the user's terminal and the parent can quote the log when something breaks.

How each figure is taken
  * timing: ``warmup_steps`` steps first (the first step allocates optimizer states and autotunes
    kernels), then ``steps`` timed steps, each bracketed by ``torch.cuda.synchronize()`` on CUDA;
    the step time is the median, with min and max alongside.
  * CUDA memory: ``torch.cuda.reset_peak_memory_stats()`` after the warm-up, then the caching
    allocator's ``max_memory_allocated`` / ``max_memory_reserved`` over the timed steps. The device
    memory of the process at its peak is NVML's reading of this process (or, where NVML cannot see this
    process id, as in containers, the device's used memory minus the reading taken before this process
    created its CUDA context) after the timed steps, less the allocator's current reservation, plus its
    peak reservation: what is not the allocator's (CUDA context, cuBLAS/cuDNN handles, managed memory of
    paged optimizers) plus the allocator's peak.
  * CPU memory: the process's peak resident set over the timed steps (``VmHWM`` after writing 5 to
    ``/proc/self/clear_refs``, which resets it; Linux proc(5)).
  * an optional memory limit: on CUDA ``torch.cuda.set_per_process_memory_fraction`` (the caching
    allocator refuses to reserve more); on CPU ``RLIMIT_AS`` set to the address space in use before the
    model is built plus the limit (an address-space cap: coarser than resident memory).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_LOG_TAIL_CHARS = 2000


# ---- process plumbing ---------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Send fds 1 and 2 to /dev/null inside the block (C libraries print at import)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def import_stack() -> None:
    """Import the fine-tuning stack once, quietly (the CPU forkserver preloads this; see profiler.run)."""
    with _quiet_fds():
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from transformers import AutoModelForCausalLM  # noqa: F401

        with contextlib.suppress(Exception):
            import peft  # noqa: F401  (imports bitsandbytes when present)
        with contextlib.suppress(Exception):
            import bitsandbytes  # noqa: F401


def _redirect_output(log_path: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


def child_main(conn: Any, task: dict[str, Any], log_path: str) -> None:
    """Process target: run ``task`` and send ``("progress", event)``... then ``("result", dict)``."""
    _redirect_output(log_path)
    try:
        if task["kind"] == "info":
            result = device_info(task["device"])
        else:
            result = measure(task, lambda event: conn.send(("progress", event)))
    except BaseException as e:  # noqa: BLE001 - report everything: the parent records it, the run goes on
        result = {"status": "error", "error": _one_line(e), "error_log_tail": traceback.format_exc()[-_LOG_TAIL_CHARS:]}
    try:
        conn.send(("result", result))
    finally:
        conn.close()


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


# ---- readings -----------------------------------------------------------------------------------
def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM, VmSize) in bytes; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (write 5 to /proc/self/clear_refs; Linux >= 4.0, proc(5))."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _meminfo_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


class _Nvml:
    """NVML readings (pynvml, from the nvidia-ml-py package) for the GPU this process sees as cuda:0."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nv = pynvml
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        if visible.startswith(("GPU-", "MIG-")):
            self.handle = pynvml.nvmlDeviceGetHandleByUUID(visible)
        else:
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(int(visible) if visible.isdigit() else 0)

    @classmethod
    def open(cls) -> _Nvml | None:
        try:
            return cls()
        except Exception:  # noqa: BLE001 - no pynvml, no driver library, a handle refused: readings fall back
            return None

    def device_used_bytes(self) -> int | None:
        try:
            return int(self.nv.nvmlDeviceGetMemoryInfo(self.handle).used)
        except self.nv.NVMLError:
            return None

    def process_used_bytes(self, pid: int) -> int | None:
        try:
            for p in self.nv.nvmlDeviceGetComputeRunningProcesses(self.handle):
                if p.pid == pid and p.usedGpuMemory:
                    return int(p.usedGpuMemory)
        except self.nv.NVMLError:
            return None
        return None

    def driver_version(self) -> str | None:
        try:
            v = self.nv.nvmlSystemGetDriverVersion()
            return v.decode() if isinstance(v, bytes) else str(v)
        except self.nv.NVMLError:
            return None


class _CudaProcessMemory:
    """This process's device memory, by the best reading available (see the module docstring)."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.nvml = _Nvml.open()
        self.before = self.nvml.device_used_bytes() if self.nvml else None  # read before our context exists

    def used_bytes(self) -> tuple[int | None, str]:
        if self.nvml is not None:
            own = self.nvml.process_used_bytes(os.getpid())
            if own is not None:
                return own, "NVML: this process's used GPU memory"
            used = self.nvml.device_used_bytes()
            if used is not None and self.before is not None:
                return used - self.before, ("NVML: device used memory minus the reading before this process's "
                                            "CUDA context (assumes no other process changed its use)")
        free, total = self.torch.cuda.mem_get_info()
        return total - free, "torch.cuda.mem_get_info: whole-device used memory (other processes included)"


def versions() -> dict[str, Any]:
    """Library versions from the installed distributions (no import: the info child stays light)."""
    import platform
    from importlib import metadata

    import torch

    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": dist("transformers") or "?",
        "peft": dist("peft"), "bitsandbytes": dist("bitsandbytes"), "accelerate": dist("accelerate"),
    }


def device_info(kind: str) -> dict[str, Any]:
    """The device and library versions, as this process sees them (the parent never touches CUDA)."""
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            return {"status": "error", "error": f"torch {torch.__version__} sees no CUDA GPU"}
        props = torch.cuda.get_device_properties(0)
        nvml = _Nvml.open()
        device = {
            "kind": "cuda", "name": torch.cuda.get_device_name(0), "total_memory_bytes": int(props.total_memory),
            "driver_version": nvml.driver_version() if nvml else None, "cuda_version": torch.version.cuda,
            "compute_capability": f"{props.major}.{props.minor}", "cpu_count": os.cpu_count(),
        }
    else:
        device = {"kind": "cpu", "name": _cpu_name(), "total_memory_bytes": _meminfo_total_bytes(),
                  "cpu_count": os.cpu_count()}
    return {"status": "ok", "device": device, "versions": versions()}


# ---- out of memory ------------------------------------------------------------------------------
_OOM_TEXT = ("out of memory", "can't allocate memory", "cublas_status_alloc_failed", "std::bad_alloc")


def is_oom(e: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), MemoryError, or an allocator's RuntimeError (CPU under a limit)."""
    import torch

    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and any(t in str(e).lower() for t in _OOM_TEXT)


def requested_bytes(message: str) -> int | None:
    """The allocation that failed, from the allocator's message (CUDA: 'Tried to allocate 1.95 GiB';
    CPU: 'you tried to allocate 123456 bytes')."""
    m = re.search(r"[Tt]ried to allocate ([\d.]+) (B|KiB|MiB|GiB|TiB)", message)
    if m:
        return int(float(m.group(1)) * _UNITS[m.group(2)])
    m = re.search(r"tried to allocate (\d+) bytes", message)
    return int(m.group(1)) if m else None


# ---- the measurement ----------------------------------------------------------------------------
def _cap_address_space(limit_bytes: int) -> Callable[[], None]:
    """RLIMIT_AS = address space in use now + ``limit_bytes``; returns the undo."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = _proc_status_bytes("VmSize") or 0
    new = in_use + limit_bytes
    if hard != resource.RLIM_INFINITY:
        new = min(new, hard)
    resource.setrlimit(resource.RLIMIT_AS, (new, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def measure(task: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Build the model ``task`` describes on its device, run warm-up then timed steps, read the peaks.

    ``task``: config (config.json fields, already truncated to the depth wanted), setup (TrainingSetup
    fields), device, steps, warmup_steps, memory_limit_bytes (or None), seed.
    """
    import torch

    from estimators.anatomy import compute_anatomy
    from estimators.setup import TrainingSetup
    from estimators.throughput import flops_per_token
    from profiler.build import build_model, build_optimizer
    from profiler.tensors import record_saved_tensors, state_bytes

    t_start = time.perf_counter()
    setup_fields = dict(task["setup"])
    setup_fields["lora_targets"] = tuple(setup_fields.get("lora_targets", ("all-linear",)))
    setup = TrainingSetup(**setup_fields)
    cfg, device = task["config"], task["device"]
    steps, warmup, limit = int(task["steps"]), int(task["warmup_steps"]), task.get("memory_limit_bytes")
    cuda = device == "cuda"
    out: dict[str, Any] = {"status": "ok"}
    phase = "setup"
    undo_cap: Callable[[], None] | None = None
    cuda_mem = None

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    try:
        import_stack()  # before any memory limit: imports map address space too (no-op when preloaded)
        # also imports the family's modeling module (on the meta device) before the limit
        out["flops_per_token"] = flops_per_token(compute_anatomy(cfg), setup).total
        if cuda:
            cuda_mem = _CudaProcessMemory(torch)  # reads the device before this process's context exists
            torch.cuda.set_device(0)
            torch.zeros(1, device="cuda")  # creates the context
            sync()
            out["device_baseline_bytes"], _ = cuda_mem.used_bytes()
            if limit:
                total = torch.cuda.get_device_properties(0).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total))
        else:
            # start the intra-op thread pool before any cap: thread stacks need address space too
            (torch.ones(256, 256) @ torch.ones(256, 256)).sum().item()
            out["device_baseline_bytes"] = _proc_status_bytes("VmRSS")
            if limit:
                undo_cap = _cap_address_space(int(limit))

        phase = "build"
        send({"phase": "build", "pid": os.getpid()})
        model = build_model(cfg, setup, device=device, seed=int(task.get("seed", 0)))
        optimizer = build_optimizer(model, setup)
        out["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        gen = torch.Generator().manual_seed(int(task.get("seed", 0)))
        vocab = int(model.config.get_text_config().vocab_size)  # a multimodal wrapper keeps it in text_config
        ids = torch.randint(0, vocab, (setup.micro_batch, setup.seq_len), generator=gen).to(device)

        def step() -> float:
            sync()
            t0 = time.perf_counter()
            # gradients are freed before the next forward, as the trainers do after optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            sync()
            return time.perf_counter() - t0

        phase = "warmup"
        for i in range(warmup):
            send({"phase": "warmup", "step": i + 1, "steps": warmup, "step_s": step()})
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            peak_source = None
        else:
            peak_source = ("process peak RSS over the timed steps (VmHWM after clear_refs)" if _reset_rss_peak()
                           else "process peak RSS over the child's life (VmHWM; clear_refs unavailable)")
        phase = "timed"
        times = []
        for i in range(steps):
            times.append(step())
            send({"phase": "timed", "step": i + 1, "steps": steps, "step_s": times[-1]})
        _read_peaks(torch, out, cuda, cuda_mem, peak_source)
        out["step_time_s"] = statistics.median(times)
        out["step_time_min_s"], out["step_time_max_s"] = min(times), max(times)
        out["state"] = dataclasses.asdict(state_bytes(model, optimizer))

        phase = "saved-tensors"  # one more forward, after the peaks are read: what autograd keeps for backward
        optimizer.zero_grad(set_to_none=True)
        try:
            with record_saved_tensors(model) as rec:
                loss = model(input_ids=ids, labels=ids).loss
                out["saved_for_backward_bytes"] = rec.total_bytes
            del loss, rec
        except BaseException as e:
            if not is_oom(e):
                raise
            out["saved_for_backward_bytes"] = None
    except BaseException as e:  # noqa: BLE001 - an OOM is a result; anything else is reported, not raised
        if not is_oom(e):
            out.update(status="error", error=f"{phase}: {_one_line(e)}",
                       error_log_tail=traceback.format_exc()[-_LOG_TAIL_CHARS:])
        else:
            msg = str(e).strip().splitlines()[0][:500] if str(e).strip() else type(e).__name__
            out.update(status="oom", oom={"phase": phase, "requested_bytes": requested_bytes(str(e)), "message": msg})
            with contextlib.suppress(Exception):
                _read_peaks(torch, out, cuda, cuda_mem, "up to the failure")
    finally:
        if undo_cap is not None:
            undo_cap()
    out["wall_s"] = time.perf_counter() - t_start
    return out


def _read_peaks(torch: Any, out: dict[str, Any], cuda: bool, cuda_mem: _CudaProcessMemory | None,
                source: str | None) -> None:
    if cuda:
        with contextlib.suppress(Exception):  # after a failed kernel the sync can raise too
            torch.cuda.synchronize()
        out["peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        out["peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
        if cuda_mem is not None:
            used, how = cuda_mem.used_bytes()
            if used is not None:
                # not the allocator's (context, library handles, managed memory) + the allocator's peak
                other = used - int(torch.cuda.memory_reserved())
                out["device_peak_bytes"] = other + out["peak_reserved_bytes"]
                out["device_peak_source"] = f"{how}, less the allocator's current reservation, plus its peak"
                if source == "up to the failure":
                    out["device_peak_source"] += " (up to the failure)"
    else:
        out["device_peak_bytes"] = _proc_status_bytes("VmHWM")
        if out["device_peak_bytes"] is None:  # not Linux: the whole child's peak
            import resource

            scale = 1 if sys.platform == "darwin" else 1024
            out["device_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
            source = "process peak RSS over the child's life (ru_maxrss)"
        out["device_peak_source"] = source
