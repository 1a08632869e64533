"""Axolotl: one ``axolotl train`` YAML per stage (AxolotlInputConfig), merged with ``axolotl merge-lora``.

On several GPUs Axolotl starts through ``accelerate launch -m axolotl.cli.train`` with the export's accelerate
config. Its KTO prompt formats exist for the llama3 and ChatML templates only; its only ORPO format reads
chosen/rejected as message lists (the README shows the conversion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports.export import launch
from reports.export.context import header, needs_merge, serve_context, stage_paths
from reports.export.registry import ExportFormat, register_format
from reports.export.yamltext import shell_word

NAME = "axolotl"
VERSION = "0.19.0"
#: its ``rl`` per preference objective
RL = {"dpo": "dpo", "orpo": "orpo", "kto": "kto"}
#: Axolotl's ORPO format reads chosen/rejected as [user, assistant] message lists
#: (axolotl/prompt_strategies/orpo/chat_template.py ``argilla``)
ORPO_DATA_PATH = "data/preference_messages.jsonl"


def install_packages(quantized: bool, launch_kind: str) -> list[str]:
    """The README's pip install arguments: Axolotl itself requires bitsandbytes and peft (its setup.py)."""
    return [f"'axolotl=={VERSION}'", *launch.packages(launch_kind)]


def _dataset(s: Mapping[str, Any], kto_format: str | None) -> dict[str, Any] | None:
    """The ``datasets`` entry of a stage (None: Axolotl has no prompt format for it)."""
    dataset: dict[str, Any] = {"path": s["data_path"], "split": "train"}
    if s["objective"] == "sft":
        dataset.update(type="chat_template", field_messages="messages")
    elif s["objective"] == "cpt":
        dataset.update(type="completion", field="text")
    elif s["objective"] == "dpo":
        # prompt/chosen/rejected strings through the config's chat template
        # (axolotl/prompt_strategies/dpo/chat_template.py ``default``)
        dataset.update(type="chat_template.default", field_messages="prompt", field_chosen="chosen",
                       field_rejected="rejected")
    elif s["objective"] == "orpo":
        dataset.update(path=ORPO_DATA_PATH, type="chat_template.argilla")
    elif s["objective"] == "kto":
        if kto_format is None:
            return None
        dataset.update(type=kto_format)
    return dataset


def _after_merge(ctx: Mapping[str, Any], p: Mapping[str, Any]) -> list[dict[str, str]]:
    """What a chat stage's merged folder needs beside what `axolotl merge-lora` writes.

    merge-lora copies the base model's tokenizer files and generation config into merged/ ("Copying non-model
    files to output directory", axolotl/cli/utils/lora_merge.py), and Axolotl never changes the eos token
    (eot_tokens only trains the turn end: axolotl/prompt_strategies/chat_template.py). From a base checkpoint that
    leaves merged/ without a chat template and stopping on the base's end-of-text, not on the turn end the model
    learnt: vLLM would generate past every answer. So the trained template is copied, and the turn end is added
    to the generation config's eos ids (vLLM stops on each of them, as on Llama 3 instruct's list)."""
    merged = p["merged_dir"]
    steps = [{"run": f"cp {p['output_dir']}/chat_template.jinja {merged}/", "result": f"{merged}/chat_template.jinja",
              "what": "the chat template Axolotl trained with, beside the merged model"}]
    eot = ctx["family"].end_of_turn
    if eot and ctx["model"].get("checkpoint") != "instruct":
        code = (f'from transformers import AutoTokenizer, GenerationConfig; m = "{merged}"; '
                f'g = GenerationConfig.from_pretrained(m); e = g.eos_token_id; '
                f'e = e if isinstance(e, list) else [e]; '
                f't = AutoTokenizer.from_pretrained(m).convert_tokens_to_ids("{eot}"); '
                f'g.eos_token_id = e + [t] if t not in e else e; g.save_pretrained(m)')
        steps.append({"run": f"python -c {shell_word(code)}", "result": f"{merged}/generation_config.json",
                      "what": f"the merged model stops at {eot}, the turn end it was trained on"})
    return steps


TEXT_PARAMETERS = ["^model.language_model.", "^lm_head."]


def context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    paths = stage_paths(ctx, NAME, "yml")
    fam = ctx["family"]
    template = fam.chat_template(NAME)
    stages, missing = [], []
    for i, (s, p) in enumerate(zip(ctx["stages"], paths)):
        dataset = _dataset(s, fam.kto_formats.get(NAME))
        if dataset is None:
            missing.append({"stage": s["name"], "method": s["method"],
                            "why": f"Axolotl's KTO prompt formats are written for the llama3 and ChatML "
                                   f"templates only; this base model uses `{template}`. Use the "
                                   f"LLaMA-Factory or TRL configs for this plan"})
            continue
        if s["objective"] == "orpo":
            s = {**s, "data_shape": "pairs_messages"}
        accelerate = f"--config_file {ctx['launch']['accelerate_config']}" if ctx["multi_gpu"] else ""
        run = (f"accelerate launch {accelerate} -m axolotl.cli.train {p['config']}"
               if ctx["multi_gpu"] else f"axolotl train {p['config']}")
        extra = [(k, v) for k, v in dataset.items() if k not in ("path", "split", "type")]
        stages.append({**s, **p, "dataset": dataset, "dataset_fields": extra, "data_path": dataset["path"],
                       "rl": RL.get(s["objective"]), "run": run, "header": header(run, ctx),
                       "merge": f"axolotl merge-lora {p['config']}" if needs_merge(ctx, i) else None,
                       "after_merge": _after_merge(ctx, p) if needs_merge(ctx, i) and s["objective"] != "cpt"
                       else [],
                       "merge_config": None,
                       # KTO's trainer needs the label column, which the HF Trainer would otherwise drop
                       # (Axolotl's config check: "Set `remove_unused_columns: False` when using kto")
                       "remove_unused_columns": False if s["objective"] == "kto" else None,
                       "prepared_path": f"outputs/{NAME}/prepared/{s['name']}"})
    if missing:
        stages = []
    return {"stages": stages, "missing": missing, "extra_files": [],
            "adapter": "qlora" if ctx["quantized"] else "lora", "chat_template": template,
            # Axolotl trains the eos token of each assistant turn, not the template's own turn end (<|im_end|>,
            # <|eot_id|>): without it the model never learns to stop (axolotl/prompt_strategies/chat_template.py)
            "eot_tokens": [fam.end_of_turn] if fam.end_of_turn else None,
            "install": "pip install " + " ".join(install_packages(ctx["quantized"], ctx["launch"]["kind"])),
            "serve": serve_context(ctx, paths[-1]),
            "orpo_messages": any(s["objective"] == "orpo" for s in ctx["stages"]),
            # Axolotl's unfrozen_parameters (utils/freeze.py freeze_layers_except: everything else frozen, dots
            # literal): a multimodal wrapper's text decoder and head (transformers 5 Gemma3ForConditionalGeneration:
            # model.language_model.*, lm_head.*)
            "text_parameters": TEXT_PARAMETERS,
            "orpo_data_path": ORPO_DATA_PATH}


def render(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, str]:
    r = ctx["_renderer"]
    return {s["config"]: r.yaml_file("axolotl/train.yml.j2", ctx=ctx, f=f, s=s) for s in f["stages"]}


def notes(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> list[str]:
    # axolotl/telemetry/manager.py: on by default, off with AXOLOTL_DO_NOT_TRACK=1 (or DO_NOT_TRACK=1); seen in the
    # real-run tests, a machine without internet waits on its upload retries after a failure
    return ["Axolotl sends usage telemetry unless `AXOLOTL_DO_NOT_TRACK=1` is set; on a machine without internet "
            "access set it, or a failed run waits on the upload's retries before it exits."]


register_format(ExportFormat(NAME, "Axolotl", VERSION, context, render, readme="axolotl/README.md.j2",
                             template_key="chat_template", notes=notes))
