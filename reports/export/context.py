"""The values every trainer's configs share, computed once from the plan (``build_context``).

Nothing here names a trainer: the plan's stages, model, technique, data files, launch and serving become plain
values (strings, numbers, lists) that each format's module (``reports/export/<trainer>.py``) adds its own keys to
and the templates print. The plan has been validated already (``advisor.contract.plan``), so enumerated values
are known keys of the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from advisor.contract.plan import HostedFineTuning, Plan, TrainingPlan
from advisor.contract.units import money
from advisor.contract.vocab import DATA_KINDS, METHODS, OBJECTIVES, OPTIMIZERS, PRECISIONS, SERVING, TECHNIQUES
from estimators.families import chat_family
from reports.export import launch
from reports.export.registry import TESTED_TORCH
from reports.export.yamltext import Raw, one_line, sanitize_name, shell_word

#: vLLM's --max-lora-rank accepts these values only (vllm/config/lora.py, MaxLoRARanks)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

#: one JSONL line of each data shape (the seeds' shapes; ``advise data check`` validates them)
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
#: a vendor's own line format where it differs from the seeds' (OpenAI fine-tuning guide, DPO section)
HOSTED_SHAPES = {
    ("openai", "dpo"): '{"input": {"messages": [{"role": "user", "content": "..."}]}, "preferred_output": '
                       '[{"role": "assistant", "content": "..."}], "non_preferred_output": [{"role": "assistant", '
                       '"content": "..."}]}',
}


#: the labelling script a distillation plan exports (templates/export/label_with_teacher.py.j2)
TEACHER_SCRIPT = "data/label_with_teacher.py"
#: where the exported configs expect the answers' eval file (the chat stages score it, never train on it)
EVAL_PATH = "data/eval.jsonl"
#: the script that scores the served tuned model against today's model on the eval set (templates/export/)
COMPARE_SCRIPT = "eval/compare.py"
COMPARE_OUT = "eval/side_by_side.jsonl"

#: the held-out split when the answers give no eval file: about HOLDOUT_EXAMPLES rows, between 1% and 10% of the
#: data (the trainers' own examples hold out 5-10%: LLaMA-Factory examples val_size 0.1, Axolotl examples
#: val_set_size 0.05); 5% when the count is unknown
HOLDOUT_EXAMPLES, HOLDOUT_MIN, HOLDOUT_MAX, HOLDOUT_DEFAULT = 200, 0.01, 0.1, 0.05


def holdout_fraction(examples: int | None) -> float:
    """The share of a stage's data held out for evaluation (two decimals)."""
    if not examples:
        return HOLDOUT_DEFAULT
    return round(min(HOLDOUT_MAX, max(HOLDOUT_MIN, HOLDOUT_EXAMPLES / examples)), 2)


def build_context(plan: Plan, validated_with: Mapping[str, str]) -> dict[str, Any]:
    """Everything the templates print that is not a trainer's own, computed from the plan once."""
    rec = plan.recommendation
    rule_ids = [one_line(w.id, 60) for w in plan.why if w.id]
    ctx: dict[str, Any] = {
        "advise_version": one_line(plan.advise_version, 40),
        "project": one_line(plan.project),
        "summary": plan.summary,
        "rule_ids": rule_ids,
        "rules_text": ", ".join(rule_ids) or "none",
        "slug": sanitize_name(plan.project, "adapter"),
        "approach": rec.approach,
        "validated_with": {k: Raw(v) for k, v in validated_with.items()},
        "tested_torch": Raw(TESTED_TORCH),
        "first_steps": list(plan.prerequisite_steps),
        "data_errors": plan.data.errors() if plan.data is not None else [],
    }
    training = plan.estimates.training
    if rec.approach == "hosted_fine_tune":
        ctx.update(kind="hosted", hosted=_hosted_context(plan.estimates.hosted_fine_tuning))
    elif not rec.self_hosted or not rec.method:
        ctx.update(kind="none", next_steps=[s.what for s in plan.next_steps])
    elif not rec.technique or training is None or plan.estimates.base_model is None:
        ctx.update(kind="blocked", prerequisite_steps=list(plan.prerequisite_steps))
    else:
        ctx.update(kind="train", **_training_context(plan, training))
    return ctx


def _number_text(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,g}"


def _hosted_context(h: HostedFineTuning | None) -> dict[str, Any]:
    if h is None:
        return {"offer": None}
    stages = []
    for s in h.stages:
        kind = DATA_KINDS[METHODS[s.method].data_kind]
        shape = HOSTED_SHAPES.get((h.provider, s.method), DATA_SHAPES[kind.shape])
        stages.append({"method": s.method, "epochs_text": _number_text(s.epochs),
                       "examples_text": _number_text(s.examples), "usd_text": money(s.usd),
                       "data_path": kind.export_path, "shape": shape,
                       "checkable": (h.provider, s.method) not in HOSTED_SHAPES,
                       "check_command": f"advise data check {shell_word(kind.export_path)}"})
    return {"offer": h.offer, "provider": h.provider, "base_model": h.base_model, "status": h.status,
            "training_usd_text": money(h.training_usd), "source": h.source, "stages": stages}


def _training_context(plan: Plan, t: TrainingPlan) -> dict[str, Any]:
    base = plan.estimates.base_model
    assert base is not None
    technique = TECHNIQUES[t.technique]
    gpu_count, sharding = t.gpu_count, t.sharding
    fam = chat_family(base.family, base.model_type)
    ctx: dict[str, Any] = {
        "model": {"hub_id": base.hub_id or base.name, "name": base.name, "model_type": base.model_type,
                  "family_known": fam.known, "checkpoint": base.checkpoint, "gated": base.gated,
                  "frozen_vision_params": base.params_frozen_vision},
        "family": fam,
        "technique": t.technique,
        "technique_text": technique.label,
        "adapters": t.adapters,
        "adapter_layout": t.adapter_layout,
        "adapter": technique.adapter,
        "quantized": technique.quantized,
        "dora": t.technique == "dora",
        "bf16": t.precision == "bf16",
        "dtype": PRECISIONS[t.precision].torch_name,
        "gradient_checkpointing": t.gradient_checkpointing,
        # with FSDP, checkpoint through FSDP's own activation checkpointing, not the trainer's (transformers
        # docs, FSDP: "use fsdp_activation_checkpointing instead of gradient_checkpointing")
        "trainer_gradient_checkpointing": t.gradient_checkpointing and not (gpu_count > 1 and sharding == "fsdp"),
        "fsdp_activation_checkpointing": t.gradient_checkpointing and sharding == "fsdp",
        "accelerate_precision": "bf16" if t.precision == "bf16" else "no",
        "attn": {"hf": t.attn_implementation},
        # transformers' OptimizerNames: TRL's and LLaMA-Factory's `optim`, Axolotl's `optimizer`
        "optimizer": OPTIMIZERS[t.optimizer].transformers_name,
        "lr_scheduler": t.lr_scheduler,
        "warmup_ratio": t.warmup_ratio,
        "logging_steps": t.logging_steps,
        "micro_batch": t.micro_batch,
        "gpu": t.gpu,
        "gpu_count": gpu_count,
        "multi_gpu": gpu_count > 1,
        "sharding": sharding if gpu_count > 1 else "none",
        "offload": {"optimizer": t.offload in ("optimizer", "params"), "params": t.offload == "params",
                    "optimizer_device": "cpu" if t.offload in ("optimizer", "params") else "none",
                    "param_device": "cpu" if t.offload == "params" else "none",
                    # FSDP offloads parameters, gradients and optimizer states together (torch CPUOffload)
                    "fsdp_offload_params": t.offload in ("optimizer", "params")},
        "serving": plan.serving.strategy,
        "adapters_served": plan.answers.deployment.adapters,
    }
    if t.lora is not None and technique.adapter:
        r = t.lora.r
        targets = list(t.lora.targets)
        ctx["lora"] = {"r": r, "alpha": t.lora.alpha, "dropout": t.lora.dropout, "targets": targets,
                       "all_linear": targets == ["all-linear"], "adapted_parameters": list(t.lora.adapted_parameters),
                       # dotted identifiers (the plan contract checks them): printed as they are in comments
                       "adapted_text": Raw(", ".join(t.lora.adapted_parameters)),
                       "target_regex": t.lora.target_regex,
                       "vllm_max_rank": min((v for v in VLLM_LORA_RANKS if v >= r), default=r)}
    if t.quantization is not None and technique.quantized:
        q = t.quantization
        ctx["quant"] = {"quant_type": q.bnb_4bit_quant_type, "double_quant": q.bnb_4bit_use_double_quant,
                        "compute_dtype": q.bnb_4bit_compute_dtype}

    data_answers = plan.answers.data
    stages = []
    multi = len(t.stages) > 1
    for i, s in enumerate(t.stages):
        kind = DATA_KINDS[OBJECTIVES[s.objective].data_kind]
        name = sanitize_name(METHODS[s.method].file_stem, f"stage{i + 1}")
        stages.append({
            "index": i + 1,
            "name": f"{i + 1}-{name}" if multi else name,
            "method": s.method,
            "objective": s.objective,
            "learning_rate": s.learning_rate,
            "epochs": s.epochs if s.epochs != int(s.epochs) else int(s.epochs),
            "seq_len_tokens": s.seq_len,
            "grad_accum": s.grad_accum,
            "global_batch_sequences": s.global_batch_sequences,
            "beta": s.beta,
            "examples": s.examples,
            "examples_assumed": s.examples_assumed,
            "data_path": kind.export_path,
            "data_shape": kind.shape,
            "data_from": getattr(data_answers, kind.answers_file) if kind.answers_file else None,
            "data_answer": kind.answers_file,
            "dataset_name": f"advise_{PurePosixPath(kind.export_path).stem}",
            "packing": OBJECTIVES[s.objective].packing,
            "chat": kind.shape == "chat",
        })
    ctx["stages"] = stages
    ctx["stage_count"] = len(stages)
    seen: dict[str, dict[str, Any]] = {}
    for s in stages:
        d = seen.setdefault(s["data_path"], {"path": s["data_path"], "shape": s["data_shape"],
                                             "example": DATA_SHAPES[s["data_shape"]], "from": s["data_from"],
                                             "answer": s["data_answer"], "stages": []})
        d["stages"].append(s["name"])
    for d in seen.values():
        d["stages_text"] = ", ".join(d["stages"])
    ctx["data_files"] = list(seen.values())
    ctx["eval_file"] = data_answers.eval_file
    # the answers' eval file is copied beside the training data and scored by the chat stages each epoch
    chat = [s["name"] for s in stages if s["chat"]]
    ctx["eval_data_path"] = EVAL_PATH if data_answers.eval_file and chat else None
    if ctx["eval_data_path"]:
        ctx["data_files"].append({"path": EVAL_PATH, "shape": "chat", "example": DATA_SHAPES["chat"],
                                  "from": data_answers.eval_file, "answer": "eval_file", "stages": chat,
                                  "stages_text": ", ".join(chat) + " (evaluation only)"})
    ctx["eval_dataset_name"] = f"advise_{PurePosixPath(EVAL_PATH).stem}"
    for st in stages:
        # a stage that does not score the answers' eval file holds out a split of its own data for an eval loss
        st["holdout"] = None if ctx["eval_data_path"] and st["chat"] else holdout_fraction(st["examples"])
    ctx["teacher"] = _teacher(plan, stages)
    ctx["evaluation"] = _evaluation(plan, stages, ctx["eval_data_path"])
    ctx["launch"] = launch.launch_context(ctx)
    return ctx


def _teacher(plan: Plan, stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A distillation plan's labelling step: the teacher (today's API) answers the prompts that become the training
    data. Its price is today's cost per request (the plan's bill / requests) x the examples to label: the prompts
    are assumed to be like today's requests."""
    distil = next((s for s in stages if s["method"] == "distillation"), None)
    if distil is None:
        return None
    model = plan.answers.model.current_api
    inf = plan.estimates.inference
    per_request = (inf.today_usd_per_month / inf.requests_per_month
                   if inf and inf.today_usd_per_month and inf.requests_per_month else None)
    examples = distil["examples"]
    command = (f"python {TEACHER_SCRIPT} PROMPTS.jsonl {distil['data_path']} --model "
               f"{shell_word(model) if model else 'TEACHER_MODEL'}")
    return {"script": TEACHER_SCRIPT, "out": distil["data_path"], "model": model,
            "model_arg": shell_word(model) if model else "TEACHER_MODEL", "examples": examples,
            "usd_text": None if per_request is None else money(per_request * examples), "command": command,
            "assumed": distil["examples_assumed"], "max_tokens": answer_tokens(plan)}


def answer_tokens(plan: Plan) -> int:
    """The answer budget of the exported API scripts: twice the plan's output tokens per request (at least 256)."""
    return max(256, 2 * (plan.answers.workload.output_tokens_per_request or 0))


def _evaluation(plan: Plan, stages: list[dict[str, Any]], eval_path: str | None) -> dict[str, Any] | None:
    """The README's evaluation step: the served tuned model against today's model (the answers' current API; a
    placeholder the user names when there is none), scored on the eval set."""
    if not any(s["objective"] != "cpt" for s in stages):
        return None
    current = plan.answers.model.current_api
    return {"script": COMPARE_SCRIPT, "data": EVAL_PATH, "out": COMPARE_OUT, "given": eval_path is not None,
            "baseline": current, "baseline_arg": shell_word(current) if current else "BASELINE_MODEL",
            "max_tokens": answer_tokens(plan)}


def compare_command(ev: Mapping[str, Any], tuned: str) -> str:
    """The evaluation script's command line for the tuned model served under the name ``tuned``."""
    return f"python {ev['script']} {ev['data']} {ev['out']} --tuned {tuned} --baseline {ev['baseline_arg']}"


def header(command: str, ctx: Mapping[str, Any], prefix: str = "# ") -> Raw:
    """The comment every generated file opens with: the command that runs it, the version, the rules behind it."""
    lines = [f"Run from the export folder: {one_line(command, 2000)}",
             f"Generated by advise {one_line(ctx['advise_version'], 40)} from the plan for: {one_line(ctx['project'])}",
             f"Rules behind it: {one_line(ctx['rules_text'], 2000)}"]
    if not prefix:  # inside an HTML comment (the README): "--" may not appear there, "-->" would end it
        lines = [line.replace("--", "- -") for line in lines]
    return Raw("\n".join(prefix + line for line in lines))


# ---- stages, merges and serving, for any trainer -----------------------------------------------------------------
def stage_paths(ctx: Mapping[str, Any], fmt: str, ext: str) -> list[dict[str, Any]]:
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


def needs_merge(ctx: Mapping[str, Any], i: int) -> bool:
    """An adapter stage is merged when a later stage starts from it, or when the plan serves a merged model."""
    if not ctx["adapter"]:
        return False
    if i < len(ctx["stages"]) - 1:
        return True
    return not SERVING[ctx["serving"]].adapter or ctx["dora"]


def serve_context(ctx: Mapping[str, Any], last: Mapping[str, Any]) -> dict[str, Any]:
    """How to serve what the last stage produced (vLLM multi-LoRA / one adapter, or a merged model)."""
    if not ctx["adapter"]:
        return {"mode": "model", "path": last["output_dir"]}
    if SERVING[ctx["serving"]].adapter and not ctx["dora"]:
        return {"mode": "adapter", "base": last["model"], "adapter": last["output_dir"],
                "max_loras": max(1, ctx["adapters_served"]) if ctx["serving"] == "multi_lora" else 1}
    return {"mode": "merged", "path": last["merged_dir"]}


def serving_note(ctx: Mapping[str, Any], mode: str) -> str:
    """What the plan's serving strategy says to do with what the trainers produced (``vocab.SERVING``)."""
    if mode == "adapter" or ctx["serving"] == "full_model":
        return SERVING[ctx["serving"]].note
    return SERVING["merged"].note


def steps_and_serving(ctx: Mapping[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    """The README's run steps for one format (train, merge, ...) and its serve command."""
    what = f"the {ctx['technique_text']} adapter" if ctx["adapter"] else "the fine-tuned model"
    steps = list(f.get("pre_steps") or [])  # what a trainer needs before its first stage (TRL: the chat template)
    for s in f["stages"]:
        steps.append({"run": s["run"], "result": s["output_dir"], "what": what})
        if s["merge"]:
            steps.append({"run": s["merge"], "result": s["merged_dir"],
                          "what": f"the adapter merged into its base, in {ctx['dtype']}"})
            steps += s.get("after_merge") or []  # what a trainer's merge leaves out (Axolotl: the chat template)
    serve = f["serve"]
    if serve["mode"] == "adapter":
        # vLLM multi-LoRA (vLLM docs, LoRA adapters): the adapter rank must not exceed --max-lora-rank; the
        # trainer saves the chat template next to the adapter
        serve["command"] = (f"vllm serve {shell_word(serve['base'])} --enable-lora --max-lora-rank "
                            f"{int(ctx['lora']['vllm_max_rank'])} --max-loras {int(serve['max_loras'])} --lora-modules "
                            f"{shell_word(ctx['slug'] + '=' + serve['adapter'])} "
                            f"--chat-template {shell_word(serve['adapter'] + '/chat_template.jinja')}")
        serve["model_name"] = shell_word(ctx["slug"])
    else:
        serve["command"] = f"vllm serve {shell_word(serve['path'])}"
        serve["model_name"] = shell_word(serve["path"])  # vLLM serves a folder under its path
    if ctx.get("evaluation"):
        f["evaluate"] = compare_command(ctx["evaluation"], serve["model_name"])
    f["steps"] = steps
    return f
