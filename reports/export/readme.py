"""The export's README: the steps from install to serving, assembled from what each exported trainer declares.

The skeleton (``templates/export/README.md.j2``) names no trainer; each trainer's own README template
(``ExportFormat.readme``) renders its run section and, where it needs one, a note on the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reports.export.context import DATA_SHAPES, header, serving_note


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def notes(ctx: Mapping[str, Any], exported: Sequence[Mapping[str, Any]]) -> list[str]:
    """The README's caveats: the family's, then each exported trainer's, then the plan's."""
    out = []
    fam = ctx["family"]
    if not fam.system_role and any(s["chat"] for s in ctx["stages"]):
        out.append(f"{fam.title}'s chat template has no system role: fold system messages into the first user "
                   f"message, or the template raises an error.")
    for f in exported:
        out += f["notes"]
    off = ctx.get("offload") or {}
    if off.get("optimizer"):
        what = "parameters and optimizer states" if off.get("params") else "optimizer states"
        out.append(f"The run offloads the {what} to CPU RAM: the machine holding the {ctx['gpu_count']} GPUs needs "
                   f"the CPU RAM the summary at the top states (plus room for the data loader and the OS). Steps "
                   f"wait on PCIe copies and the optimizer step on the CPU; the plan's time and cost include that.")
    if ctx["model"].get("gated"):
        out.append(f"`{ctx['model']['hub_id']}` is gated on the Hugging Face Hub: accept its licence on the model page "
                   f"with the account whose token this machine uses (`hf auth login`, or `HF_TOKEN` in the "
                   f"environment), or the first download stops with 401/403.")
    if ctx.get("adapter_layout") == "per_tenant":
        out.append(f"The plan trains one adapter per tenant ({ctx['adapters']:,} runs; its time and cost cover them "
                   f"all): run each stage's config once per tenant, with that tenant's examples in the data file and "
                   f"its own output_dir (`outputs/<trainer>/<stage>-<tenant>`), then serve the adapters together "
                   f"(section 5).")
    elif ctx.get("adapter_layout") == "shared":
        out.append("The plan trains one adapter shared by all tenants on their pooled examples (too few per tenant "
                   "for adapters of their own): put every tenant's examples in the one data file. Train a tenant "
                   "its own adapter, from this one, once it has enough examples, and re-plan.")
    eot = fam.end_of_turn
    if eot and ctx["model"].get("checkpoint") != "instruct" and any(f["serve"]["mode"] == "adapter" for f in exported):
        # vLLM stops on the tokenizer's eos and the generation config's eos ids of the model it serves (vLLM PR
        # 4182): served as an adapter, that is the base checkpoint's end-of-text, not the turn end trained
        out.append(f"Served as an adapter on `{ctx['model']['hub_id']}`, vLLM stops on that base's end-of-text, not "
                   f"on {eot}, the turn end the adapter was trained to end on: send \"stop\": [\"{eot}\"] with each "
                   f"request (or give `vllm serve` a `--generation-config` folder whose generation_config.json lists "
                   f"{eot}'s id among its eos ids).")
    if any(s["examples_assumed"] for s in ctx["stages"]):
        out.append("The plan had no example count for a stage and assumed one: re-plan with the real counts "
                   "(batch and epochs depend on them).")
    if ctx.get("eval_file"):
        out.append(f"Keep `{ctx['eval_file']}` out of the training files; score the tuned model on it against "
                   f"today's model before shipping.")
    return out


def readme(ctx: dict[str, Any], exported: Sequence[dict[str, Any]], skipped: Sequence[Mapping[str, Any]]) -> str:
    r = ctx["_renderer"]
    values: dict[str, Any] = {"ctx": ctx, "formats": exported, "skipped": skipped,
                              "header": header("the commands in this README, in order", ctx, prefix="")}
    if ctx["kind"] == "train":
        for f in exported:
            f["readme_run"] = r.markdown_file(f["readme"], part="run", ctx=ctx, f=f)
            f["readme_data"] = r.markdown_file(f["readme"], part="data", ctx=ctx, f=f, shapes=DATA_SHAPES)
        serve_modes = sorted({f["serve"]["mode"] for f in exported})
        accelerated = [f["title"] for f in exported if f["uses_accelerate"]]
        values.update(
            files_accelerate=bool(ctx["launch"]["accelerate_config"] and accelerated),
            multi_gpu_text=_multi_gpu_text(ctx, exported),
            template_keys=_and([f"`{f['template_key']}` ({f['title']})" for f in exported]) if exported else "",
            serving_note=" ".join(dict.fromkeys(serving_note(ctx, m) for m in serve_modes)),
            serve_mode_adapter="adapter" in serve_modes,
        )
        ctx["notes"] = notes(ctx, exported)
    return str(r.markdown_file("export/README.md.j2", **values))


def _multi_gpu_text(ctx: Mapping[str, Any], exported: Sequence[Mapping[str, Any]]) -> str:
    accelerated = [f["title"] for f in exported if f["uses_accelerate"]]
    parts = []
    if accelerated:
        parts.append(f"{_and(accelerated)} {'goes' if len(accelerated) == 1 else 'go'} through `accelerate launch` "
                     f"with `{ctx['launch']['accelerate_config']}`")
    parts += [f["launcher"] for f in exported if not f["uses_accelerate"]]
    return "; ".join(parts) + "." if parts else ""
