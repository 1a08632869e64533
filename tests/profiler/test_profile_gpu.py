"""``advise profile`` on a CUDA GPU (``pytest -m gpu``): the same tiny models, the CUDA readings.

Deselected by default (no GPU on the CPU machines or in CI). Needs bitsandbytes for QLoRA and
nvidia-ml-py (pynvml) for the NVML readings; without pynvml the device figures fall back to
``torch.cuda.mem_get_info`` and say so in ``device_peak_source``.
"""

from __future__ import annotations

import json

import pytest

from estimators.catalog import Catalog
from estimators.families import tiny_config
from profiler.run import ProfileRequest, default_gpu_lookup, run_profile

pytestmark = pytest.mark.gpu

LLAMA = {**tiny_config("llama"), "num_hidden_layers": 4}


def _request(tmp_path, **kw):
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text(json.dumps(LLAMA))
    cat = Catalog.load()
    fields = {"methods": ("full", "lora", "qlora"), "seq_lens": (128,), "micro_batches": (2,), "device": "cuda",
              "steps": 3, "warmup_steps": 1, "gpu_lookup": default_gpu_lookup(cat), **kw}
    return ProfileRequest(model=cat.resolve_model(str(tmp_path / "model")), out=tmp_path / "p.json", **fields)


def test_cuda_profile_reads_allocator_and_device_peaks(tmp_path):
    import torch

    profile = run_profile(_request(tmp_path))
    assert profile.device.kind == "cuda" and profile.device.name == torch.cuda.get_device_name(0)
    assert profile.device.total_memory_bytes > 0 and profile.versions.torch == torch.__version__
    for e in profile.entries:
        assert e.status == "ok" and e.fits, e
        assert 0 < e.peak_allocated_bytes <= e.peak_reserved_bytes
        # the process's device memory at the peak includes the CUDA context on top of the allocator's peak
        assert e.device_peak_bytes >= e.peak_reserved_bytes and e.device_baseline_bytes > 0
        assert e.step_time_s > 0 and e.tokens_per_s > 0 and e.achieved_tflops > 0
        if profile.device.catalog_gpu:
            assert 0 < e.mfu < 1


def test_cuda_out_of_memory_under_an_allocator_limit_is_a_result(tmp_path):
    profile = run_profile(_request(tmp_path, methods=("full",), seq_lens=(1024,), micro_batches=(64,),
                                   memory_limit_bytes=64 << 20))
    (e,) = profile.entries
    assert (e.status, e.fits) == ("oom", False) and e.oom.requested_bytes > 0


def test_cuda_extrapolation_from_one_and_two_layers(tmp_path):
    full = run_profile(_request(tmp_path, methods=("lora",)))
    ext = run_profile(_request(tmp_path, methods=("lora",), layers=1))
    e = ext.entry(("lora", 128, 2, 4, "extrapolated"))
    assert e.extrapolation_error is not None and abs(e.extrapolation_error["state.optimizer_bytes"]) <= 1e-6
    assert full.entry(("lora", 128, 2, 4, "measured")).status == "ok"
    # allocator peaks of a 4-layer toy are dominated by the fixed part; within 25% is the sanity bound
    assert abs(e.extrapolation_error["peak_allocated_bytes"]) < 0.25
