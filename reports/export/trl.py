"""TRL: ``trl sft|dpo|kto --config`` YAML per stage, and a peft merge script (TRL has no merge command).

TRL's CLI reads each config into ScriptArguments, the objective's config class, ModelConfig and
DatasetMixtureConfig (unknown keys are an error). It has no ORPO command (ORPO lives in trl.experimental.orpo, a
Python API), so a plan with an ORPO stage is not exported for TRL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports.export import launch
from reports.export.context import (
    header,
    holdout_fraction,
    needs_merge,
    serve_context,
    stage_paths,
)
from reports.export.registry import ExportFormat, register_format
from reports.export.yamltext import shell_word

NAME = "trl"
VERSION = "1.16.0"
#: the export writes this peft script when a stage's adapter is merged
MERGE_SCRIPT = "trl/merge.py"
#: TRL's command per objective (None: no command)
COMMANDS = {"sft": "sft", "cpt": "sft", "dpo": "dpo", "kto": "kto", "orpo": None}
CONFIG_CLASSES = {"sft": "SFTConfig", "dpo": "DPOConfig", "kto": "KTOConfig"}
#: a base checkpoint's chat template, written by the README's first TRL step from the family's instruct tokenizer.
#: A .jinja path makes TRL set the template without clone_chat_template, which adds tokens and resizes the
#: embeddings: on a tied-embedding model PEFT then wraps lm_head and the loss fails ('TrainableTokensWrapper' object
#: has no attribute 'bias') (trl/trainer/sft_trainer.py, chat_template_path)
TEMPLATE_FILE = "trl/chat_template.jinja"
#: the stdlib script that turns prompt/answer strings into TRL's conversational rows (templates/trl/)
CONVERT_SCRIPT = "trl/to_conversational.py"
#: the data shapes TRL's preference trainers would otherwise read as plain strings, never templated
STRING_SHAPES = ("pairs", "kto")


def install_packages(quantized: bool, launch_kind: str) -> list[str]:
    """The README's pip install arguments: TRL's command line needs peft for adapters and bitsandbytes for QLoRA
    (both optional in TRL's own requirements)."""
    return [f"'trl=={VERSION}'", "peft", "bitsandbytes", *launch.packages(launch_kind)]


def context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    paths = stage_paths(ctx, NAME, "yaml")
    # an instruct checkpoint brings its own chat template and trained special tokens: nothing to set
    instruct_repo = None if ctx["model"].get("checkpoint") == "instruct" else ctx["family"].chat_template(NAME)
    template = TEMPLATE_FILE if instruct_repo else None
    # the template goes on the first stage that reads chats: after continued pre-training (raw text) that is the
    # SFT stage, which otherwise stops with "tokenizer.chat_template is not set"; later stages load its output,
    # template included
    first_chat = next((i for i, s in enumerate(ctx["stages"]) if s["chat"]), None)
    # `trl dpo` and `trl kto` read the template from the model's tokenizer (DPOConfig and KTOConfig have no
    # chat_template_path): a preference stage on a base checkpoint with no SFT stage before it has none
    untemplated = [s for i, s in enumerate(ctx["stages"]) if s["data_shape"] in STRING_SHAPES and template
                   and (first_chat is None or first_chat > i)]
    missing = [s for s in ctx["stages"] if COMMANDS[s["objective"]] is None]
    # each preference data file once: its TRL copy and the README command that writes it
    conversions = list({s["data_path"]: {"source": s["data_path"], "out": f"trl/{s['data_path']}",
                                         "run": f"python {CONVERT_SCRIPT} {s['data_path']} trl/{s['data_path']}"}
                        for s in ctx["stages"] if s["data_shape"] in STRING_SHAPES}.values())
    converted = {c["source"]: c["out"] for c in conversions}
    stages = []
    for i, (s, p) in enumerate(zip(ctx["stages"], paths)):
        command = COMMANDS[s["objective"]]
        run = f"trl {command} --config {p['config']}" if command else None
        if run and ctx["multi_gpu"]:
            run += f" --accelerate_config {ctx['launch']['accelerate_config']}"
        merge = f"python {MERGE_SCRIPT} {p['output_dir']} {p['merged_dir']}" if needs_merge(ctx, i) else None
        stages.append({**s, **p, "command": command, "data_path": converted.get(s["data_path"], s["data_path"]),
                       # TRL's command line cannot score a separate eval file: it always holds out a split
                       "trl_holdout": s["holdout"] or holdout_fraction(s["examples"]),
                       "run": run, "merge": merge, "merge_config": None,
                       "config_class": CONFIG_CLASSES.get(str(command)),
                       "header": header(run or "-", ctx),
                       "chat_template_path": template if i == first_chat else None,
                       # the template's turn end becomes the eos the model stops on (SFTConfig eos_token: TRL
                       # mirrors it into the model and generation configs)
                       "eos_token": ctx["family"].end_of_turn if template and i == first_chat else None,
                       "quant_storage": ctx["dtype"] if ctx["quantized"] and ctx["sharding"] != "none" else None})
    if missing or untemplated:
        stages = []
    merges = [s["merge"] for s in stages if s["merge"]]
    extra = [{"path": MERGE_SCRIPT, "what": "TRL: merge an adapter into its base (peft)", "runs": merges,
              "note": ""}] if merges else []
    if not stages:
        conversions = []
    if conversions:
        extra.append({"path": CONVERT_SCRIPT, "what": "TRL: prompt/answer strings into conversational rows, so the "
                      "preference stages are trained in the chat template", "runs": [c["run"] for c in conversions],
                      "note": ""})
    code = (f'from transformers import AutoTokenizer; open("{TEMPLATE_FILE}", "w").write('
            f'AutoTokenizer.from_pretrained("{instruct_repo}").chat_template)')
    pre_steps = [{"run": f"python -c {shell_word(code)}", "result": TEMPLATE_FILE,
                  "what": f"the chat template of {instruct_repo}, for a base checkpoint that has none"}] \
        if template and first_chat is not None and stages else []
    pre_steps += [{"run": c["run"], "result": c["out"], "what": "the preference data in TRL's conversational form"}
                  for c in conversions]
    why_missing = [
        {"stage": s["name"], "method": s["method"],
         "why": "TRL's command line has no ORPO command (ORPO lives in trl.experimental.orpo, a Python API); "
                "use the Axolotl or LLaMA-Factory configs for this plan"} for s in missing]
    why_missing += [
        {"stage": s["name"], "method": s["method"],
         "why": f"`trl {COMMANDS[s['objective']]}` takes the chat template from the model's tokenizer and "
                f"`{ctx['model']['hub_id']}` is a base checkpoint without one (its config class has no "
                f"chat_template_path); train from the instruct checkpoint or use the Axolotl or LLaMA-Factory "
                f"configs"} for s in untemplated]
    return {"stages": stages, "extra_files": extra, "pre_steps": pre_steps, "instruct_repo": instruct_repo,
            "missing": why_missing, "conversions": conversions,
        "chat_template_path": template,
        "install": "pip install " + " ".join(install_packages(ctx["quantized"], ctx["launch"]["kind"])),
        "serve": serve_context(ctx, paths[-1])}


def render(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, str]:
    r = ctx["_renderer"]
    files = {s["config"]: r.yaml_file("trl/train.yaml.j2", ctx=ctx, f=f, s=s) for s in f["stages"]}
    merges = [s["merge"] for s in f["stages"] if s["merge"]]
    if merges:
        files[MERGE_SCRIPT] = r.text_file("trl/merge.py.j2", ctx=ctx, header=header(" then ".join(merges), ctx))
    if f["conversions"]:
        runs = " then ".join(c["run"] for c in f["conversions"])
        files[CONVERT_SCRIPT] = r.text_file("trl/to_conversational.py.j2", ctx=ctx, script=CONVERT_SCRIPT,
                                            conversions=f["conversions"], header=header(runs, ctx))
    return files


def notes(ctx: Mapping[str, Any], f: Mapping[str, Any]) -> list[str]:
    out = []
    chat = any(s["chat"] for s in ctx["stages"])
    if f["chat_template_path"] and chat:
        out.append(f"`{ctx['model']['hub_id']}` is a base checkpoint without a chat template: the first TRL step "
                   f"writes `{f['chat_template_path']}` from `{f['instruct_repo']}` (its tokenizer only), and the "
                   f"configs train in that format, its turn end as the eos. The template's special tokens are in "
                   f"the base vocabulary but untrained; if generations do not stop, train from the instruct "
                   f"checkpoint instead.")
    if ctx.get("eval_data_path"):
        out.append(f"TRL's command line concatenates every file of its dataset mixture into the training set "
                   f"(trl/scripts/utils.py get_dataset), so its configs leave `{ctx['eval_data_path']}` out: score "
                   f"the tuned model on it after training; Axolotl and LLaMA-Factory score it every epoch.")
    frozen = ctx["model"].get("frozen_vision_params") or 0
    if frozen and not ctx["adapter"] and f["stages"]:
        # trl sft has no key that freezes parameters (its ModelConfig / SFTConfig); Axolotl has unfrozen_parameters,
        # LLaMA-Factory freezes the vision tower by default (freeze_vision_tower)
        out.append(f"TRL's command line trains every parameter of a full fine-tune, the {frozen:,} of this model's "
                   f"vision tower and projector too, which the plan keeps frozen: more gradient and optimizer memory "
                   f"than the plan's estimate. The Axolotl and LLaMA-Factory configs train the text decoder only.")
    if chat:
        out.append("TRL's SFT computes the loss on the whole conversation (its `assistant_only_loss` needs a "
                   "template with generation markers); Axolotl and LLaMA-Factory train on the assistant turns only.")
    return out


register_format(ExportFormat(NAME, "TRL", VERSION, context, render, readme="trl/README.md.j2",
                             template_key="chat_template_path", notes=notes))
