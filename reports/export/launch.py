"""Several GPUs: the launch files (accelerate config, DeepSpeed ZeRO-3 JSON) and what a launch needs installed.

One part for every trainer: ``launch_context`` says which files a plan's layout needs (DDP, DeepSpeed ZeRO-3 with
optional CPU offload, FSDP2), ``launch_files`` renders them for the exported formats that start their GPUs
through ``accelerate launch`` (``ExportFormat.uses_accelerate``); the trainers' own configs point at them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from reports.export.yamltext import ExportError

#: accelerate launch configs per layout, and the DeepSpeed config ZeRO-3 adds
ACCELERATE_CONFIGS = {"ddp": "accelerate/multi_gpu.yaml", "zero3": "accelerate/deepspeed_zero3.yaml",
                      "fsdp2": "accelerate/fsdp2.yaml"}
DEEPSPEED_CONFIG = "deepspeed/zero3.json"
#: the plan's sharding -> the launch kind (one GPU: single; zero2 is estimated but never exported)
KINDS = {"none": "ddp", "zero3": "zero3", "fsdp": "fsdp2"}
#: packages a launch kind needs beside the trainer
PACKAGES = {"zero3": ("deepspeed",)}


def launch_context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The several-GPU launch files of the plan's layout (none on one GPU)."""
    if ctx["gpu_count"] <= 1:
        return {"accelerate_config": None, "deepspeed_config": None, "kind": "single"}
    kind = KINDS.get(ctx["sharding"])
    if kind is None:
        raise ExportError(f"plan: estimates.training.sharding is {ctx['sharding']!r}, which has no exported launch "
                          f"(use none, zero3 or fsdp)")
    return {"accelerate_config": ACCELERATE_CONFIGS[kind],
            "deepspeed_config": DEEPSPEED_CONFIG if kind == "zero3" else None, "kind": kind}


def packages(kind: str) -> list[str]:
    """What a launch kind adds to a trainer's install line (deepspeed for ZeRO-3, else nothing)."""
    return list(PACKAGES.get(kind, ()))


def deepspeed_zero3(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """DeepSpeed ZeRO-3 for the HF Trainer integration: "auto" values are filled from the training arguments
    (transformers docs, DeepSpeed > ZeRO-3 example config); CPU offload when the plan needs it."""
    off = ctx["offload"]
    return {
        "bf16": {"enabled": "auto"},
        "zero_optimization": {
            "stage": 3,
            "offload_optimizer": {"device": "cpu" if off["optimizer"] else "none", "pin_memory": True},
            "offload_param": {"device": "cpu" if off["params"] else "none", "pin_memory": True},
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,
        },
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
    }


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def launch_files(ctx: Mapping[str, Any], exported: Sequence[Mapping[str, Any]], header: Any) -> dict[str, str]:
    """The accelerate config (for the exported formats that launch through accelerate) and the DeepSpeed JSON;
    ``header(command, ctx)`` is the files' opening comment."""
    launch = ctx["launch"]
    files: dict[str, str] = {}
    users = [f for f in exported if f["uses_accelerate"]]
    if launch["accelerate_config"] and users:
        commands = " or ".join(f["stages"][0]["run"] for f in users)
        files[launch["accelerate_config"]] = ctx["_renderer"].yaml_file(
            f"accelerate/{launch['kind']}.yaml.j2", ctx=ctx, header=header(commands, ctx))
    if launch["deepspeed_config"] and exported:
        files[launch["deepspeed_config"]] = json_text(deepspeed_zero3(ctx))
    return files
