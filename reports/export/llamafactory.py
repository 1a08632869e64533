"""LLaMA-Factory: ``llamafactory-cli train`` YAML per stage, ``llamafactory-cli export`` YAML per merge, and the
``dataset_info.json`` registry of the data files.

LLaMA-Factory reads a config into ModelArguments, DataArguments, TrainingArguments and FinetuningArguments
(unknown keys are an error); on several GPUs ``llamafactory-cli`` starts ``torchrun`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from reports.export import launch
from reports.export.context import header, needs_merge, serve_context, stage_paths
from reports.export.registry import ExportFormat, register_format

NAME = "llamafactory"
VERSION = "0.9.5"
#: its ``stage`` per objective (DPO and ORPO share the ``dpo`` stage with a ``pref_loss``)
STAGES = {"sft": "sft", "cpt": "pt", "dpo": "dpo", "orpo": "dpo", "kto": "kto"}
PREF_LOSS = {"dpo": "sigmoid", "orpo": "orpo"}
#: its ``flash_attn`` choices per transformers attn_implementation (llamafactory/extras/constants.py)
FLASH_ATTN = {"sdpa": "sdpa", "eager": "disabled", "flash_attention_2": "fa2"}
#: dataset_info.json entries per data shape (LLaMA-Factory data/README.md: sharegpt with OpenAI role tags,
#: ranking for pairs, kto_tag for KTO, a prompt column for pre-training text)
DATASETS: dict[str, dict[str, Any]] = {
    "chat": {"formatting": "sharegpt", "columns": {"messages": "messages"},
             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                      "assistant_tag": "assistant", "system_tag": "system"}},
    "pairs": {"ranking": True, "columns": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}},
    "kto": {"columns": {"prompt": "prompt", "response": "completion", "kto_tag": "label"}},
    "text": {"columns": {"prompt": "text"}},
}
DATASET_DIR = "data"
#: merged checkpoints are written in shards of this many GB (LLaMA-Factory examples/merge_lora)
EXPORT_SIZE_GB = 5


def install_packages(quantized: bool, launch_kind: str) -> list[str]:
    """The README's pip install arguments. QLoRA loads through bitsandbytes, which llamafactory does not require:
    without it the run stops at check_version("bitsandbytes>=0.39.0", mandatory=True)
    (llamafactory/model/model_utils/quantization.py)."""
    return [f"'llamafactory=={VERSION}'", *(["bitsandbytes"] if quantized else []), *launch.packages(launch_kind)]


def context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    paths = stage_paths(ctx, NAME, "yaml")
    fsdp = ctx["launch"]["kind"] == "fsdp2"
    stages = []
    for i, (s, p) in enumerate(zip(ctx["stages"], paths)):
        run = f"llamafactory-cli train {p['config']}"
        if fsdp:
            # torchrun never reads an FSDP config: LLaMA-Factory runs FSDP through `accelerate launch` of its
            # training entry point (examples/accelerate/fsdp_config.yaml with src/train.py, which is
            # llamafactory.launcher's __main__: run_exp() on the YAML in argv)
            run = f"accelerate launch --config_file {ctx['launch']['accelerate_config']} -m llamafactory.launcher " \
                  f"{p['config']}"
        elif ctx["multi_gpu"]:
            # llamafactory-cli starts torchrun itself with FORCE_TORCHRUN (LLaMA-Factory README, multi-GPU)
            run = f"FORCE_TORCHRUN=1 NNODES=1 NPROC_PER_NODE={ctx['gpu_count']} {run}"
        merge_config = f"{NAME}/merge-{s['name']}.yaml" if needs_merge(ctx, i) else None
        merge = f"llamafactory-cli export {merge_config}" if merge_config else None
        stages.append({**s, **p, "stage": STAGES[s["objective"]], "pref_loss": PREF_LOSS.get(s["objective"]),
                       "run": run, "header": header(run, ctx), "merge": merge, "merge_config": merge_config,
                       "merge_header": header(merge, ctx) if merge else None})
    lora = ctx.get("lora")
    return {"stages": stages, "missing": [], "uses_accelerate": fsdp,
            "extra_files": [{"path": f"{DATASET_DIR}/dataset_info.json", "what": "LLaMA-Factory's registry of the "
                             "data files below", "runs": [], "note": "read by the LLaMA-Factory configs"}]
            if stages else [],
            "template": ctx["family"].chat_template(NAME),
            "flash_attn": FLASH_ATTN[ctx["attn"]["hf"]],
            "lora_target": None if lora is None else ("all" if lora["all_linear"] else ",".join(lora["targets"])),
            "finetuning_type": "lora" if ctx["adapter"] else "full",
            # a full fine-tune in bf16 as the plan's memory estimate counts it: without pure_bf16 LLaMA-Factory
            # upcasts every trainable weight to fp32 (llamafactory/model/adapter.py, "Upcasting trainable params
            # to float32"); it refuses pure_bf16 under ZeRO-3 (hparams/parser.py), which keeps fp32 masters anyway
            "pure_bf16": not ctx["adapter"] and ctx["bf16"] and ctx["sharding"] != "zero3",
            "disable_gradient_checkpointing": not ctx["trainer_gradient_checkpointing"],
            "export_size_gb": EXPORT_SIZE_GB,
            "install": "pip install " + " ".join(install_packages(ctx["quantized"], ctx["launch"]["kind"])),
            "serve": serve_context(ctx, paths[-1]), "dataset_dir": DATASET_DIR,
            "datasets": {f"advise_{PurePosixPath(d['path']).stem}": {
                "file_name": PurePosixPath(d["path"]).name, **DATASETS[d["shape"]]}
                for d in ctx["data_files"]}}


def notes(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> list[str]:
    lora = ctx.get("lora") or {}
    if not (lora.get("adapted_parameters") and f["stages"]):
        return []
    # llamafactory/model/adapter.py builds LoraConfig(target_modules=...) from lora_target (module names, or "all":
    # find_all_linear_modules, nn.Linear only); peft's target_parameters is not among its arguments. Measured in
    # tests/realrun: on a Qwen3-MoE it trains the attention adapters alone
    return [f"LLaMA-Factory {VERSION} cannot adapt this model's fused experts (its `lora_target` takes module names "
            f"only): its configs train the attention adapters and leave {', '.join(lora['adapted_parameters'])} "
            f"frozen, fewer parameters than the plan counts. The Axolotl and TRL configs train them as planned."]


def render(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, str]:
    r = ctx["_renderer"]
    files = {}
    for s in f["stages"]:
        files[s["config"]] = r.yaml_file("llamafactory/train.yaml.j2", ctx=ctx, f=f, s=s)
        if s["merge_config"]:
            files[s["merge_config"]] = r.yaml_file("llamafactory/merge.yaml.j2", ctx=ctx, f=f, s=s)
    if f["stages"]:
        files[f"{f['dataset_dir']}/dataset_info.json"] = launch.json_text(f["datasets"])
    return files


register_format(ExportFormat(NAME, "LLaMA-Factory", VERSION, context, render, readme="llamafactory/README.md.j2",
                             template_key="template", notes=notes,
                             launcher="LLaMA-Factory starts `torchrun` itself (`FORCE_TORCHRUN=1`)"))
