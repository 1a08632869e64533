"""Export a plan as ready-to-run training configs: Axolotl, LLaMA-Factory, TRL, and the multi-GPU launch files.

``export_configs(plan, out_dir, formats=("all",), force=False) -> list[Path]``

Works from the plan's JSON (what ``advise plan --json`` prints and ``plan.json`` holds); imports nothing from
``advisor/``. Every value a trainer needs is computed once here, in Python (``build_context``), and handed to
Jinja2 templates under ``templates/<format>/`` that only loop and branch on prepared values. Each output
format registers one renderer (``register_format``); names are unique.

Each generated YAML and Markdown file opens with a comment: the command that runs it, the advise version and the
rule ids behind the plan. JSON has no comment syntax, so ``dataset_info.json`` and the DeepSpeed config are
described in the README instead. The same plan gives byte-identical files; nothing is written outside
``out_dir``; a non-empty ``out_dir`` is only overwritten with ``force``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from advisor.contract.errors import AdviseError, UnknownNameError
from estimators.families import family as family_of

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

#: the trainer releases the exported configs were validated against (tests/reports/test_export*.py runs each
#: trainer's own parser on them; .ci/run installs exactly these for Axolotl and LLaMA-Factory)
VALIDATED_WITH = {"axolotl": "0.19.0", "llamafactory": "0.9.5", "trl": "1.16.0"}

#: vLLM's --max-lora-rank accepts these values only (vllm/config/lora.py, MaxLoRARanks)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

# ---- plan values -> trainer values ---------------------------------------------------------------------------
#: transformers ``OptimizerNames`` (used as ``optim`` by TRL and LLaMA-Factory, ``optimizer`` by Axolotl);
#: adamw_torch_fused is the transformers default for torch >= 2.8
HF_OPTIMIZERS = {"adamw": "adamw_torch_fused", "adamw-8bit": "adamw_bnb_8bit", "paged-adamw-8bit": "paged_adamw_8bit"}
#: LLaMA-Factory's ``flash_attn`` choices (llamafactory/extras/constants.py ``AttentionFunction``)
LLAMAFACTORY_ATTN = {"sdpa": "sdpa", "eager": "disabled", "flash_attention_2": "fa2"}
DTYPES = {"bf16": "bfloat16", "fp32": "float32"}
TECHNIQUE_TEXT = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA", "dora": "DoRA"}
ADAPTER_TECHNIQUES = ("lora", "qlora", "dora")

#: the data file each training objective reads, the answers field that names the user's file, and its shape
DATA_FILES: dict[str, dict[str, str | None]] = {
    "sft": {"path": "data/train.jsonl", "answer": "train_file", "shape": "chat"},
    "cpt": {"path": "data/corpus.jsonl", "answer": None, "shape": "text"},
    "dpo": {"path": "data/preference.jsonl", "answer": "preference_file", "shape": "pairs"},
    "orpo": {"path": "data/preference.jsonl", "answer": "preference_file", "shape": "pairs"},
    "kto": {"path": "data/feedback.jsonl", "answer": "preference_file", "shape": "kto"},
}
#: one JSONL line of each shape (the seeds' shapes; ``advise data check`` validates them)
DATA_SHAPES = {
    "chat": '{"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}, '
            '{"role": "assistant", "content": "..."}]}',
    "pairs": '{"prompt": "...", "chosen": "...", "rejected": "..."}',
    "kto": '{"prompt": "...", "completion": "...", "label": true}',
    "text": '{"text": "..."}',
    "pairs_messages": '{"prompt": "...", "chosen": [{"role": "user", "content": "..."}, {"role": "assistant", '
                      '"content": "..."}], "rejected": [{"role": "user", "content": "..."}, '
                      '{"role": "assistant", "content": "..."}]}',
}
#: LLaMA-Factory dataset_info.json entries per data shape (LLaMA-Factory data/README.md: sharegpt with OpenAI
#: role tags, ranking for pairs, kto_tag for KTO, a prompt column for pre-training text)
LLAMAFACTORY_DATASETS: dict[str, dict[str, Any]] = {
    "chat": {"formatting": "sharegpt", "columns": {"messages": "messages"},
             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                      "assistant_tag": "assistant", "system_tag": "system"}},
    "pairs": {"ranking": True, "columns": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}},
    "kto": {"columns": {"prompt": "prompt", "response": "completion", "kto_tag": "label"}},
    "text": {"columns": {"prompt": "text"}},
}
#: a vendor's own line format where it differs from the seeds' (OpenAI fine-tuning guide, DPO section)
HOSTED_SHAPES = {
    ("openai", "dpo"): '{"input": {"messages": [{"role": "user", "content": "..."}]}, "preferred_output": '
                       '[{"role": "assistant", "content": "..."}], "non_preferred_output": [{"role": "assistant", '
                       '"content": "..."}]}',
}
STAGE_NAMES = {"continued_pretraining": "cpt"}
#: what each trainer's command line calls each objective (None: not offered)
#: TRL has no merge command: the export writes this peft script when a stage's adapter is merged
TRL_MERGE_SCRIPT = "trl/merge.py"
TRL_COMMANDS = {"sft": "sft", "cpt": "sft", "dpo": "dpo", "kto": "kto", "orpo": None}
LLAMAFACTORY_STAGES = {"sft": "sft", "cpt": "pt", "dpo": "dpo", "orpo": "dpo", "kto": "kto"}
AXOLOTL_RL = {"dpo": "dpo", "orpo": "orpo", "kto": "kto"}

_SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_YAML_PLAIN = re.compile(r"[A-Za-z_./][A-Za-z0-9_./+-]*")


class ExportError(AdviseError):
    """The plan cannot be exported (a missing or invalid field, an unsafe output path). One line."""


class Raw(str):
    """Text a template emits as it is (a comment block), not as a YAML scalar."""


# ---- the registry --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportFormat:
    """One output format: ``context(ctx)`` computes its values from the shared context (stages it can run, the
    ones it cannot and why, commands); ``render(ctx, values)`` returns ``{relative path: text}``."""

    name: str
    title: str
    context: Callable[[Mapping[str, Any]], dict[str, Any]]
    render: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, str]]


FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add ``fmt`` to ``FORMATS``; a name can be registered once (like PEFT's ``register_peft_method``)."""
    if not _SAFE_NAME.fullmatch(fmt.name) or fmt.name == "all":
        raise ValueError(f"format name {fmt.name!r}: use lower-case letters, digits, '.', '_' or '-' (not 'all')")
    if fmt.name in FORMATS:
        raise ValueError(f"format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


# ---- small helpers -------------------------------------------------------------------------------------------
def sanitize_name(text: str, fallback: str = "run") -> str:
    """A file or folder name from free text: lower-case ASCII letters, digits, '.', '_' and '-' only."""
    name = re.sub(r"[^a-z0-9._-]+", "-", str(text).lower())
    name = re.sub(r"\.{2,}", ".", name).strip("-._")[:64].strip("-._")
    return name or fallback


def one_line(text: Any, limit: int = 120) -> str:
    """User text made safe for a one-line comment: printable characters, whitespace collapsed, cut at ``limit``."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3].rstrip() + "..."


def yaml_float(x: float) -> str:
    """A float YAML 1.1 (PyYAML) reads back as the same float: it needs a '.' and a signed exponent."""
    if not math.isfinite(x):
        raise ExportError(f"cannot write {x!r} as a training value")
    s = repr(float(x))
    if "e" not in s:
        return s
    mantissa, exponent = s.split("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}"


def yaml_scalar(value: Any) -> str:
    """The YAML text of a prepared value (Jinja's ``finalize`` for the YAML templates)."""
    import yaml

    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return yaml_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, str):
        if _YAML_PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
            return value
        return yaml_quote(value)
    raise TypeError(f"no YAML form for {type(value).__name__}")


def _yaml_char(ch: str) -> str:
    code = ord(ch)
    if ch in '"\\':
        return "\\" + ch
    # printable and not a YAML 1.1 line break or BOM (YAML 1.1 spec, 5.1 and 5.4): written as it is
    if 0x20 <= code <= 0x7E or (0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029)) \
            or (0xE000 <= code <= 0xFFFD and code != 0xFEFF) or code >= 0x10000:
        return ch
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def yaml_quote(text: str) -> str:
    """A YAML double-quoted scalar that reads back as ``text`` (escapes per the YAML 1.1 spec, 5.7)."""
    return '"' + "".join(_yaml_char(ch) for ch in text) + '"'


def _get(plan: Mapping[str, Any], dotted: str, kind: type | tuple[type, ...] | None = None) -> Any:
    cur: Any = plan
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            raise ExportError(f"plan: missing field {dotted}; re-create the plan with `advise plan --json` "
                              f"(or `--out DIR`) and export that")
        cur = cur[part]
    if kind is not None and not isinstance(cur, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ExportError(f"plan: field {dotted} must be {names}, got {type(cur).__name__}; re-create the plan "
                          f"with `advise plan`")
    return cur


# ---- the context: every value computed once -----------------------------------------------------------------
def build_context(plan: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the templates print, computed from the plan once. Raises ``ExportError`` on a bad plan."""
    if not isinstance(plan, Mapping):
        raise ExportError(f"plan: must be a JSON object (what `advise plan --json` prints), got "
                          f"{type(plan).__name__}")
    rec = _get(plan, "recommendation", Mapping)
    why = _get(plan, "why", list)
    rule_ids = [one_line(w.get("id"), 60) for w in why if isinstance(w, Mapping) and w.get("id")]
    ctx: dict[str, Any] = {
        "advise_version": str(_get(plan, "advise_version")),
        "project": one_line(_get(plan, "project")),
        "summary": str(plan.get("summary") or ""),
        "rule_ids": rule_ids,
        "rules_text": ", ".join(rule_ids) or "none",
        "slug": sanitize_name(_get(plan, "project"), "adapter"),
        "approach": rec.get("approach"),
        "validated_with": {k: Raw(v) for k, v in VALIDATED_WITH.items()},
    }
    training = (plan.get("estimates") or {}).get("training") if isinstance(plan.get("estimates"), Mapping) else None
    if rec.get("approach") == "hosted_fine_tune":
        ctx.update(kind="hosted", hosted=_hosted_context(plan))
    elif rec.get("approach") != "fine_tune" or not rec.get("method"):
        ctx.update(kind="none", next_steps=[str(s.get("what")) for s in plan.get("next_steps") or []
                                            if isinstance(s, Mapping)])
    elif not rec.get("technique") or not isinstance(training, Mapping):
        ctx.update(kind="blocked", prerequisite_steps=[str(s) for s in plan.get("prerequisite_steps") or []])
    else:
        ctx.update(kind="train", **_training_context(plan, training))
    return ctx


def _hosted_context(plan: Mapping[str, Any]) -> dict[str, Any]:
    h = (plan.get("estimates") or {}).get("hosted_fine_tuning")
    if not isinstance(h, Mapping):
        return {"offer": None}
    stages = []
    for s in h.get("stages") or []:
        method = str(s.get("method"))
        data = DATA_FILES.get("sft" if method in ("sft", "distillation") else method, DATA_FILES["sft"])
        shape = HOSTED_SHAPES.get((str(h.get("provider")), method), DATA_SHAPES[str(data["shape"])])
        stages.append({"method": method, "epochs_text": _number_text(s.get("epochs")),
                       "examples_text": _number_text(s.get("examples")), "usd_text": _usd_text(s.get("usd")),
                       "data_path": data["path"], "shape": shape,
                       "checkable": (str(h.get("provider")), method) not in HOSTED_SHAPES})
    return {"offer": h.get("offer"), "provider": h.get("provider"), "base_model": h.get("base_model"),
            "status": h.get("status"), "training_usd_text": _usd_text(h.get("training_usd")),
            "source": h.get("source"), "stages": stages}


def _number_text(x: Any) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,g}"
    return "?"


def _usd_text(x: Any) -> str:
    return f"${x:,.2f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "unknown"


def _training_context(plan: Mapping[str, Any], t: Mapping[str, Any]) -> dict[str, Any]:
    base = _get(plan, "estimates.base_model", Mapping)
    hub_id = base.get("hub_id") or base.get("name")
    if not isinstance(hub_id, str) or not hub_id:
        raise ExportError("plan: field estimates.base_model.hub_id is empty; give model.base in the answers")
    model_type = str(base.get("model_type") or base.get("family") or "")
    technique = _get(plan, "estimates.training.technique", str)
    if technique not in ("full", *ADAPTER_TECHNIQUES):
        raise ExportError(f"plan: estimates.training.technique is {technique!r}; expected full, lora, qlora or dora")
    precision = str(t.get("precision", "bf16"))
    if precision not in DTYPES:
        raise ExportError(f"plan: estimates.training.precision is {precision!r}; expected bf16 or fp32")
    optimizer = str(t.get("optimizer", "adamw"))
    if optimizer not in HF_OPTIMIZERS:
        raise ExportError(f"plan: estimates.training.optimizer is {optimizer!r}; expected one of "
                          f"{', '.join(HF_OPTIMIZERS)}")
    attn = str(t.get("attn_implementation", "sdpa"))
    if attn not in LLAMAFACTORY_ATTN:
        raise ExportError(f"plan: estimates.training.attn_implementation is {attn!r}; expected sdpa, eager or "
                          f"flash_attention_2")
    gpu_count = int(_get(plan, "estimates.training.gpu_count", int))
    sharding = str(t.get("sharding", "none"))
    if sharding not in ("none", "zero3", "fsdp"):
        raise ExportError(f"plan: estimates.training.sharding is {sharding!r}; expected none, zero3 or fsdp")
    offload = str(_get(plan, "estimates.training.offload", str))
    if offload not in ("none", "optimizer", "params"):
        raise ExportError(f"plan: estimates.training.offload is {offload!r}; expected none, optimizer or params")
    micro_batch = int(_get(plan, "estimates.training.micro_batch", int))
    lora = t.get("lora") if technique in ADAPTER_TECHNIQUES else None
    if technique in ADAPTER_TECHNIQUES and not isinstance(lora, Mapping):
        raise ExportError(f"plan: estimates.training.lora is missing for technique {technique}")
    quant = t.get("quantization") if technique == "qlora" else None
    if technique == "qlora" and not isinstance(quant, Mapping):
        raise ExportError("plan: estimates.training.quantization is missing for technique qlora")

    family = family_of(model_type)
    data_answers = ((plan.get("answers") or {}).get("data") or {}) if isinstance(plan.get("answers"), Mapping) else {}
    raw_stages = _get(plan, "estimates.training.stages", list)
    if not raw_stages:
        raise ExportError("plan: estimates.training.stages is empty; nothing to train")

    ctx: dict[str, Any] = {
        "model": {"hub_id": hub_id, "name": base.get("name"), "model_type": model_type,
                  "family_known": family.known},
        "family": family,
        "chat_template": {t: family.chat_template(t) for t in VALIDATED_WITH},
        "technique": technique,
        "technique_text": TECHNIQUE_TEXT[technique],
        "adapter": technique in ADAPTER_TECHNIQUES,
        "quantized": technique == "qlora",
        "dora": technique == "dora",
        "bf16": precision == "bf16",
        "dtype": DTYPES[precision],
        "gradient_checkpointing": bool(t.get("gradient_checkpointing", True)),
        # with FSDP, checkpoint through FSDP's own activation checkpointing, not the trainer's (transformers
        # docs, FSDP: "use fsdp_activation_checkpointing instead of gradient_checkpointing")
        "trainer_gradient_checkpointing": bool(t.get("gradient_checkpointing", True))
        and not (gpu_count > 1 and sharding == "fsdp"),
        "fsdp_activation_checkpointing": bool(t.get("gradient_checkpointing", True)) and sharding == "fsdp",
        "accelerate_precision": "bf16" if precision == "bf16" else "no",
        "attn": {"hf": attn, "llamafactory": LLAMAFACTORY_ATTN[attn]},
        "optimizer": HF_OPTIMIZERS[optimizer],
        "lr_scheduler": str(_get(plan, "estimates.training.lr_scheduler", str)),
        "warmup_ratio": float(_get(plan, "estimates.training.warmup_ratio", (int, float))),
        "logging_steps": int(_get(plan, "estimates.training.logging_steps", int)),
        "micro_batch": micro_batch,
        "gpu": t.get("gpu"),
        "gpu_count": gpu_count,
        "multi_gpu": gpu_count > 1,
        "sharding": sharding if gpu_count > 1 else "none",
        "offload": {"optimizer": offload in ("optimizer", "params"), "params": offload == "params",
                    "optimizer_device": "cpu" if offload in ("optimizer", "params") else "none",
                    "param_device": "cpu" if offload == "params" else "none",
                    # FSDP offloads parameters, gradients and optimizer states together (torch CPUOffload)
                    "fsdp_offload_params": offload in ("optimizer", "params")},
        "serving": str((plan.get("serving") or {}).get("strategy", "merged")),
        "adapters_served": int(((plan.get("answers") or {}).get("deployment") or {}).get("adapters", 1) or 1),
    }
    if ctx["adapter"]:
        r = int(lora["r"])
        targets = [str(x) for x in lora.get("targets") or ["all-linear"]]
        ctx["lora"] = {"r": r, "alpha": int(lora["alpha"]), "dropout": float(lora["dropout"]),
                       "targets": targets, "all_linear": targets == ["all-linear"],
                       "llamafactory_target": "all" if targets == ["all-linear"] else ",".join(targets),
                       "vllm_max_rank": min((v for v in VLLM_LORA_RANKS if v >= r), default=r)}
    if ctx["quantized"]:
        ctx["quant"] = {"quant_type": str(quant.get("bnb_4bit_quant_type", "nf4")),
                        "double_quant": bool(quant.get("bnb_4bit_use_double_quant", True)),
                        "compute_dtype": str(quant.get("bnb_4bit_compute_dtype", "bfloat16"))}

    stages = []
    multi = len(raw_stages) > 1
    for i, s in enumerate(raw_stages):
        if not isinstance(s, Mapping):
            raise ExportError(f"plan: estimates.training.stages[{i}] must be an object")
        method = str(s.get("method"))
        objective = str(s.get("objective") or method)
        if objective not in DATA_FILES:
            raise ExportError(f"plan: estimates.training.stages[{i}].objective is {objective!r}; expected one of "
                              f"{', '.join(DATA_FILES)}")
        name = sanitize_name(STAGE_NAMES.get(method, method), f"stage{i + 1}")
        data = DATA_FILES[objective]
        for key in ("seq_len", "epochs", "learning_rate", "grad_accum"):
            if not isinstance(s.get(key), (int, float)) or isinstance(s.get(key), bool) or s[key] <= 0:
                raise ExportError(f"plan: estimates.training.stages[{i}].{key} must be a positive number")
        stages.append({
            "index": i + 1,
            "name": f"{i + 1}-{name}" if multi else name,
            "method": method,
            "objective": objective,
            "learning_rate": float(s["learning_rate"]),
            "epochs": float(s["epochs"]) if float(s["epochs"]) != int(s["epochs"]) else int(s["epochs"]),
            "seq_len_tokens": int(s["seq_len"]),
            "grad_accum": int(s["grad_accum"]),
            "global_batch_sequences": int(s.get("global_batch_sequences") or micro_batch * gpu_count
                                          * int(s["grad_accum"])),
            "beta": float(s["beta"]) if s.get("beta") is not None else None,
            "examples": s.get("examples"),
            "data_path": data["path"],
            "data_shape": data["shape"],
            "data_from": data_answers.get(data["answer"]) if data["answer"] else None,
            "data_answer": data["answer"],
            "dataset_name": f"advise_{PurePosixPath(str(data['path'])).stem}",
            "packing": objective == "cpt",
            "chat": data["shape"] == "chat",
        })
    ctx["stages"] = stages
    ctx["stage_count"] = len(stages)
    seen: dict[str, dict[str, Any]] = {}
    for s in stages:
        d = seen.setdefault(s["data_path"], {"path": s["data_path"], "shape": s["data_shape"],
                                             "example": DATA_SHAPES[s["data_shape"]], "from": s["data_from"],
                                             "answer": s["data_answer"], "stages": []})
        d["stages"].append(s["name"])
    ctx["data_files"] = list(seen.values())
    ctx["eval_file"] = data_answers.get("eval_file")
    ctx["launch"] = _launch_context(ctx)
    return ctx


def _launch_context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The several-GPU launch files and commands (accelerate config, DeepSpeed JSON)."""
    n, sharding = ctx["gpu_count"], ctx["sharding"]
    if n <= 1:
        return {"accelerate_config": None, "deepspeed_config": None, "kind": "single"}
    if sharding == "zero3":
        return {"accelerate_config": "accelerate/deepspeed_zero3.yaml", "deepspeed_config": "deepspeed/zero3.json",
                "kind": "zero3"}
    if sharding == "fsdp":
        return {"accelerate_config": "accelerate/fsdp2.yaml", "deepspeed_config": None, "kind": "fsdp2"}
    return {"accelerate_config": "accelerate/multi_gpu.yaml", "deepspeed_config": None, "kind": "ddp"}


def _header(command: str, ctx: Mapping[str, Any], prefix: str = "# ") -> Raw:
    lines = [f"Run from the export folder: {command}",
             f"Generated by advise {ctx['advise_version']} from the plan for: {ctx['project']}",
             f"Rules behind it: {ctx['rules_text']}"]
    return Raw("\n".join(prefix + line for line in lines))


# ---- per-format values ---------------------------------------------------------------------------------------
def _stage_paths(ctx: Mapping[str, Any], fmt: str, ext: str) -> list[dict[str, Any]]:
    """Per stage: config path, output dir, the model it starts from (the previous stage, merged when it is
    an adapter) and where its merged model lands."""
    out = []
    model = ctx["model"]["hub_id"]
    for s in ctx["stages"]:
        output_dir = f"outputs/{fmt}/{s['name']}"
        merged_dir = f"{output_dir}/merged" if ctx["adapter"] else None
        out.append({"config": f"{fmt}/{s['name']}.{ext}", "output_dir": output_dir, "model": model,
                    "merged_dir": merged_dir})
        model = merged_dir or output_dir
    return out


def _serve_context(ctx: Mapping[str, Any], last: Mapping[str, Any]) -> dict[str, Any]:
    """How to serve what the last stage produced (vLLM multi-LoRA / one adapter, or a merged model)."""
    if not ctx["adapter"]:
        return {"mode": "model", "path": last["output_dir"]}
    if ctx["serving"] in ("multi_lora", "single_adapter") and not ctx["dora"]:
        return {"mode": "adapter", "base": last["model"], "adapter": last["output_dir"],
                "max_loras": max(1, ctx["adapters_served"]) if ctx["serving"] == "multi_lora" else 1}
    return {"mode": "merged", "path": last["merged_dir"]}


def _needs_merge(ctx: Mapping[str, Any], i: int) -> bool:
    """An adapter stage is merged when a later stage starts from it, or when the plan serves a merged model."""
    if not ctx["adapter"]:
        return False
    if i < len(ctx["stages"]) - 1:
        return True
    return ctx["serving"] not in ("multi_lora", "single_adapter") or ctx["dora"]


def _multi_gpu_launch(ctx: Mapping[str, Any]) -> str:
    return f"--config_file {ctx['launch']['accelerate_config']}" if ctx["multi_gpu"] else ""


def trl_context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    paths = _stage_paths(ctx, "trl", "yaml")
    missing = [s for s in ctx["stages"] if TRL_COMMANDS[s["objective"]] is None]
    stages = []
    for i, (s, p) in enumerate(zip(ctx["stages"], paths)):
        command = TRL_COMMANDS[s["objective"]]
        run = f"trl {command} --config {p['config']}" if command else None
        if run and ctx["multi_gpu"]:
            run += f" --accelerate_config {ctx['launch']['accelerate_config']}"
        merge = f"python {TRL_MERGE_SCRIPT} {p['output_dir']} {p['merged_dir']}" if _needs_merge(ctx, i) else None
        stages.append({**s, **p, "command": command, "run": run, "merge": merge, "merge_config": None,
                       "config_class": {"sft": "SFTConfig", "dpo": "DPOConfig", "kto": "KTOConfig"}.get(str(command)),
                       "header": _header(run or "-", ctx),
                       "chat_template_path": ctx["chat_template"]["trl"] if s["chat"] and i == 0 else None,
                       "quant_storage": ctx["dtype"] if ctx["quantized"] and ctx["sharding"] != "none" else None})
    if missing:
        stages = []
    merges = [s["merge"] for s in stages if s["merge"]]
    extra = [{"path": TRL_MERGE_SCRIPT, "what": "TRL: merge an adapter into its base (peft)", "runs": merges,
              "note": ""}] if merges else []
    return {"stages": stages, "extra_files": extra, "missing": [
        {"stage": s["name"], "method": s["method"],
         "why": "TRL's command line has no ORPO command (ORPO lives in trl.experimental.orpo, a Python API); "
                "use the Axolotl or LLaMA-Factory configs for this plan"} for s in missing],
        "install": f"pip install 'trl=={VALIDATED_WITH['trl']}' peft bitsandbytes"
                   + (" deepspeed" if ctx["launch"]["kind"] == "zero3" else ""),
        "serve": _serve_context(ctx, paths[-1])}


def axolotl_context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    paths = _stage_paths(ctx, "axolotl", "yml")
    template = ctx["chat_template"]["axolotl"]
    stages, missing = [], []
    for i, (s, p) in enumerate(zip(ctx["stages"], paths)):
        dataset: dict[str, Any] = {"path": s["data_path"], "split": "train"}
        data_path = s["data_path"]
        if s["objective"] in ("sft",):
            dataset.update(type="chat_template", field_messages="messages")
        elif s["objective"] == "cpt":
            dataset.update(type="completion", field="text")
        elif s["objective"] == "dpo":
            # prompt/chosen/rejected strings through the config's chat template
            # (axolotl/prompt_strategies/dpo/chat_template.py ``default``)
            dataset.update(type="chat_template.default", field_messages="prompt", field_chosen="chosen",
                           field_rejected="rejected")
        elif s["objective"] == "orpo":
            # Axolotl's only ORPO format reads chosen/rejected as [user, assistant] message lists
            # (axolotl/prompt_strategies/orpo/chat_template.py ``argilla``)
            data_path = "data/preference_messages.jsonl"
            dataset.update(path=data_path, type="chat_template.argilla")
            s = {**s, "data_shape": "pairs_messages"}
        elif s["objective"] == "kto":
            kto_type = ctx["family"].kto_formats.get("axolotl")
            if kto_type is None:
                missing.append({"stage": s["name"], "method": s["method"],
                                "why": f"Axolotl's KTO prompt formats are written for the llama3 and ChatML "
                                       f"templates only; this base model uses `{template}`. Use the "
                                       f"LLaMA-Factory or TRL configs for this plan"})
                continue
            dataset.update(type=kto_type)
        run = (f"accelerate launch {_multi_gpu_launch(ctx)} -m axolotl.cli.train {p['config']}"
               if ctx["multi_gpu"] else f"axolotl train {p['config']}")
        extra = [(k, v) for k, v in dataset.items() if k not in ("path", "split", "type")]
        stages.append({**s, **p, "dataset": dataset, "dataset_fields": extra, "data_path": data_path,
                       "rl": AXOLOTL_RL.get(s["objective"]), "run": run, "header": _header(run, ctx),
                       "merge": f"axolotl merge-lora {p['config']}" if _needs_merge(ctx, i) else None,
                       "merge_config": None,
                       # KTO's trainer needs the label column, which the HF Trainer would otherwise drop
                       # (Axolotl's config check: "Set `remove_unused_columns: False` when using kto")
                       "remove_unused_columns": False if s["objective"] == "kto" else None,
                       "prepared_path": f"outputs/axolotl/prepared/{s['name']}"})
    if missing:
        stages = []
    return {"stages": stages, "missing": missing, "extra_files": [],
            "adapter": "qlora" if ctx["quantized"] else "lora",
            "install": f"pip install 'axolotl=={VALIDATED_WITH['axolotl']}'"
                       + (" deepspeed" if ctx["launch"]["kind"] == "zero3" else ""),
            "serve": _serve_context(ctx, paths[-1]),
            "orpo_messages": any(s["objective"] == "orpo" for s in ctx["stages"])}


def llamafactory_context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    paths = _stage_paths(ctx, "llamafactory", "yaml")
    stages = []
    for i, (s, p) in enumerate(zip(ctx["stages"], paths)):
        run = f"llamafactory-cli train {p['config']}"
        if ctx["multi_gpu"]:
            # llamafactory-cli starts torchrun itself with FORCE_TORCHRUN (LLaMA-Factory README, multi-GPU)
            run = f"FORCE_TORCHRUN=1 NNODES=1 NPROC_PER_NODE={ctx['gpu_count']} {run}"
        merge_config = f"llamafactory/merge-{s['name']}.yaml" if _needs_merge(ctx, i) else None
        merge = f"llamafactory-cli export {merge_config}" if merge_config else None
        stages.append({**s, **p, "stage": LLAMAFACTORY_STAGES[s["objective"]],
                       "pref_loss": {"dpo": "sigmoid", "orpo": "orpo"}.get(s["objective"]),
                       "run": run, "header": _header(run, ctx), "merge": merge, "merge_config": merge_config,
                       "merge_header": _header(merge, ctx) if merge else None})
    return {"stages": stages, "missing": [],
            "extra_files": [{"path": "data/dataset_info.json", "what": "LLaMA-Factory's registry of the data files "
                             "below", "runs": [], "note": "read by the LLaMA-Factory configs"}] if stages else [],
            "finetuning_type": "lora" if ctx["adapter"] else "full",
            "disable_gradient_checkpointing": not ctx["trainer_gradient_checkpointing"],
            # merged checkpoints are written in shards of this many GB (LLaMA-Factory examples/merge_lora)
            "export_size_gb": 5,
            "install": f"pip install 'llamafactory=={VALIDATED_WITH['llamafactory']}'"
                       + (" deepspeed" if ctx["launch"]["kind"] == "zero3" else ""),
            "serve": _serve_context(ctx, paths[-1]), "dataset_dir": "data",
            "datasets": {f"advise_{PurePosixPath(d['path']).stem}": {
                "file_name": PurePosixPath(d["path"]).name, **LLAMAFACTORY_DATASETS[d["shape"]]}
                for d in ctx["data_files"]}}


def _steps_and_serving(ctx: Mapping[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    """The README's run steps for one format (train, merge, ...) and its serve command."""
    what = f"the {ctx['technique_text']} adapter" if ctx["adapter"] else "the fine-tuned model"
    steps = []
    for s in f["stages"]:
        steps.append({"run": s["run"], "result": s["output_dir"], "what": what})
        if s["merge"]:
            steps.append({"run": s["merge"], "result": s["merged_dir"],
                          "what": f"the adapter merged into its base, in {ctx['dtype']}"})
    serve = f["serve"]
    if serve["mode"] == "adapter":
        # vLLM multi-LoRA (vLLM docs, LoRA adapters): the adapter rank must not exceed --max-lora-rank; the
        # trainer saves the chat template next to the adapter
        serve["command"] = (f"vllm serve {serve['base']} --enable-lora --max-lora-rank {ctx['lora']['vllm_max_rank']} "
                            f"--max-loras {serve['max_loras']} --lora-modules {ctx['slug']}={serve['adapter']} "
                            f"--chat-template {serve['adapter']}/chat_template.jinja")
    else:
        serve["command"] = f"vllm serve {serve['path']}"
    f["steps"] = steps
    return f


# ---- rendering -----------------------------------------------------------------------------------------------
def _environment(finalize: Callable[[Any], str] | None):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False, finalize=finalize,
    )


class _Renderer:
    def __init__(self) -> None:
        self.yaml = _environment(yaml_scalar)
        self.text = _environment(None)

    def yaml_file(self, template: str, **values: Any) -> str:
        return self.yaml.get_template(template).render(**values)

    def text_file(self, template: str, **values: Any) -> str:
        return self.text.get_template(template).render(**values)


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def render_axolotl(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, str]:
    r = ctx["_renderer"]
    return {s["config"]: r.yaml_file("axolotl/train.yml.j2", ctx=ctx, f=f, s=s) for s in f["stages"]}


def render_llamafactory(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, str]:
    r = ctx["_renderer"]
    files = {}
    for s in f["stages"]:
        files[s["config"]] = r.yaml_file("llamafactory/train.yaml.j2", ctx=ctx, f=f, s=s)
        if s["merge_config"]:
            files[s["merge_config"]] = r.yaml_file("llamafactory/merge.yaml.j2", ctx=ctx, f=f, s=s)
    if f["stages"]:
        files[f"{f['dataset_dir']}/dataset_info.json"] = _json_text(f["datasets"])
        assert f["extra_files"][0]["path"] == f"{f['dataset_dir']}/dataset_info.json"
    return files


def render_trl(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, str]:
    r = ctx["_renderer"]
    files = {s["config"]: r.yaml_file("trl/train.yaml.j2", ctx=ctx, f=f, s=s) for s in f["stages"]}
    merges = [s["merge"] for s in f["stages"] if s["merge"]]
    if merges:
        files[TRL_MERGE_SCRIPT] = r.text_file("trl/merge.py.j2", ctx=ctx, header=_header(" then ".join(merges), ctx))
    return files


register_format(ExportFormat("axolotl", "Axolotl", axolotl_context, render_axolotl))
register_format(ExportFormat("llamafactory", "LLaMA-Factory", llamafactory_context, render_llamafactory))
register_format(ExportFormat("trl", "TRL", trl_context, render_trl))


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


SERVING_NOTES = {
    "adapter": "Serve the base model with the adapter loaded per request (vLLM multi-LoRA); adapters are "
               "megabytes each and many share one base.",
    "merged": "Merge the adapter into the base (the last merge step above does it) and serve the merged model as a "
              "plain model.",
    "model": "Serve the fine-tuned model as it is.",
}


def _notes(ctx: Mapping[str, Any], exported: list[Mapping[str, Any]]) -> list[str]:
    """Caveats the README states, each from a value of the plan or of an exported format."""
    notes = []
    names = {f["name"] for f in exported}
    trl_source = ctx["chat_template"]["trl"]
    if trl_source and any(s["chat"] for s in ctx["stages"]):
        notes.append(f"`{ctx['model']['hub_id']}` is a base checkpoint without a chat template: the configs train "
                     f"it in its family's instruct format (TRL clones the template from `{trl_source}`). Its "
                     f"special tokens may be untrained in a base model; if generations do not stop, train from "
                     f"the instruct checkpoint instead.")
    if not ctx["family"].system_role and any(s["chat"] for s in ctx["stages"]):
        notes.append(f"{ctx['family'].title}'s chat template has no system role: fold system messages into the "
                     f"first user message, or the template raises an error.")
    if "trl" in names and any(s["chat"] for s in ctx["stages"]):
        notes.append("TRL's SFT computes the loss on the whole conversation (its `assistant_only_loss` needs a "
                     "template with generation markers); Axolotl and LLaMA-Factory train on the assistant turns "
                     "only.")
    if any(isinstance(s.get("examples"), int) and s.get("examples_assumed") for s in ctx["stages"]):
        notes.append("The plan had no example count for a stage and assumed one: re-plan with the real counts "
                     "(batch and epochs depend on them).")
    if ctx.get("eval_file"):
        notes.append(f"Keep `{ctx['eval_file']}` out of the training files; score the tuned model on it against "
                     f"today's model before shipping.")
    return notes


def _common_files(ctx: dict[str, Any], chosen: list[str]) -> dict[str, str]:
    r = ctx["_renderer"]
    files: dict[str, str] = {}
    train = ctx["kind"] == "train"
    exported = [ctx["formats"][n] for n in chosen if ctx["formats"][n]["stages"]] if train else []
    skipped = [ctx["formats"][n] for n in chosen if not ctx["formats"][n]["stages"]] if train else []
    accelerate_users = [f for f in exported if f["name"] in ("trl", "axolotl")]
    launch = ctx["launch"] if train else None
    if launch and launch["accelerate_config"] and accelerate_users:
        users = " or ".join(f["stages"][0]["run"] for f in accelerate_users)
        files[launch["accelerate_config"]] = r.yaml_file(
            f"accelerate/{launch['kind']}.yaml.j2", ctx=ctx, header=_header(users, ctx))
    if launch and launch["deepspeed_config"] and exported:
        files[launch["deepspeed_config"]] = _json_text(deepspeed_zero3(ctx))
    values: dict[str, Any] = {"ctx": ctx, "formats": exported, "skipped": skipped,
                              "header": _header("the commands in this README, in order", ctx, prefix="")}
    if train:
        serve_modes = {f["serve"]["mode"] for f in exported}
        for d in ctx["data_files"]:
            d["stages_text"] = ", ".join(d["stages"])
        values.update(
            files_accelerate=bool(launch and launch["accelerate_config"] and accelerate_users),
            axolotl_orpo=any(f["name"] == "axolotl" and f.get("orpo_messages") for f in exported),
            pairs_messages=DATA_SHAPES["pairs_messages"],
            serving_note=" ".join(SERVING_NOTES[m] for m in sorted(serve_modes)),
            serve_mode_adapter="adapter" in serve_modes,
        )
        ctx["notes"] = _notes(ctx, exported)
    files["README.md"] = r.text_file("accelerate/README.md.j2", **values)
    return files


def render_all(plan: Mapping[str, Any], formats: Iterable[str] = ("all",)) -> dict[str, str]:
    """Every file of the export, by relative path, in memory (nothing written)."""
    chosen = resolve_formats(formats)
    ctx = build_context(plan)
    ctx["_renderer"] = _Renderer()
    files: dict[str, str] = {}
    if ctx["kind"] == "train":
        ctx["formats"] = {n: _steps_and_serving(ctx, {"name": n, "title": FORMATS[n].title,
                                                      **FORMATS[n].context(ctx)}) for n in chosen}
        for name in chosen:
            files.update(FORMATS[name].render(ctx, ctx["formats"][name]))
    files.update(_common_files(ctx, chosen))
    return dict(sorted(files.items()))


def resolve_formats(formats: Iterable[str]) -> list[str]:
    names = [formats] if isinstance(formats, str) else list(formats)
    if not names or "all" in names:
        return list(FORMATS)
    out = []
    for n in names:
        if n not in FORMATS:
            raise UnknownNameError("format", n, [*FORMATS, "all"], hint=f"(formats: {', '.join([*FORMATS, 'all'])})")
        if n not in out:
            out.append(n)
    return out


# ---- writing -------------------------------------------------------------------------------------------------
def _relative_parts(rel: str) -> tuple[str, ...]:
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or any(not _SAFE_NAME.fullmatch(part) and part != "README.md"
                                              for part in p.parts):
        raise ExportError(f"refusing to write {rel!r}: not a plain relative path inside the export folder")
    return p.parts


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a directory; give a directory path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir}: directory is not empty; pass --force to overwrite, or pick a new one")


def export_configs(plan: dict, out_dir: Path, formats: Iterable[str] = ("all",), force: bool = False) -> list[Path]:
    """Write the plan's training configs under ``out_dir``; returns the files written, sorted.

    ``formats``: names from ``FORMATS`` or "all". Raises ``ExportError`` (an ``AdviseError``) for a plan that
    cannot be exported, a non-empty ``out_dir`` without ``force``, or a path that would leave ``out_dir``.
    """
    files = render_all(plan, formats)  # everything is rendered before anything is written
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    written = []
    for rel, text in files.items():
        parts = _relative_parts(rel)
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        parent = target.parent.resolve()
        if parent != root and root not in parent.parents:
            raise ExportError(f"refusing to write {rel}: {target.parent} leads outside {out_dir}")
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise ExportError(f"refusing to write {rel}: {target} is a link or not a file; remove it first")
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8", newline="\n")
        tmp.replace(target)
        written.append(out_dir.joinpath(*parts))
    return written
