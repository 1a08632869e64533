"""``advise estimate``: memory per GPU (part by part), speed, fit on every GPU and the cost of one setup.

``advisor.estimate.run_estimate`` gathers the data; this module prints it (``--json``: the same data).
"""

from __future__ import annotations

from typing import Any

import click

from advisor.cli.common import (
    AdviseUsageError,
    FiniteFloat,
    domain_errors,
    dump_json,
    echo,
    load_catalog,
)
from advisor.contract.units import duration, gib, hourly, money, months_text
from advisor.contract.vocab import (
    ATTENTION,
    LOSS_KERNELS,
    MASTER_WEIGHTS,
    OBJECTIVES,
    OFFLOAD,
    OPTIMIZERS,
    PRECISIONS,
    SHARDING,
    TECHNIQUES,
)
from estimators.setup import TrainingSetup


@click.command()
@click.option("--model", required=True, help="Catalog name, Hub id, or a local config.json / model directory.")
@click.option("--method", "technique", default="lora", show_default=True,
              type=click.Choice(tuple(TECHNIQUES), case_sensitive=False),
              help="Fine-tuning technique.")
@click.option("--objective", default="sft", show_default=True,
              type=click.Choice(tuple(OBJECTIVES), case_sensitive=False),
              help="Training objective (DPO/ORPO double the sequences; DPO/KTO add a reference forward).")
@click.option("--gpu", "gpu_name", default="H100-80GB", show_default=True, help="GPU to report time and fit for.")
@click.option("--seq-len", default=2048, show_default=True, type=click.IntRange(1, 10_000_000), help="Tokens per sequence.")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 65_536), help="Micro-batch per GPU.")
@click.option("--grad-accum", default=1, show_default=True, type=click.IntRange(min=1),
              help="Gradient accumulation steps.")
@click.option("--gpus", "gpu_count", default=1, show_default=True, type=click.IntRange(1, 4096), help="Number of GPUs.")
@click.option("--sharding", default="none", show_default=True,
              type=click.Choice(tuple(SHARDING), case_sensitive=False))
@click.option("--offload", default="none", show_default=True,
              type=click.Choice(tuple(OFFLOAD), case_sensitive=False),
              help="CPU offload with zero2/zero3/fsdp.")
@click.option("--precision", default="bf16", show_default=True, type=click.Choice(tuple(PRECISIONS)))
@click.option("--optimizer", default="adamw", show_default=True,
              type=click.Choice(tuple(OPTIMIZERS), case_sensitive=False))
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=True, show_default=True)
@click.option("--attn", "attn_impl", default="auto", show_default=True,
              type=click.Choice(tuple(ATTENTION), case_sensitive=False))
@click.option("--lora-r", default=TrainingSetup.lora_r, show_default=True, type=click.IntRange(1, 4096))
@click.option("--lora-alpha", default=TrainingSetup.lora_alpha, show_default=True, type=click.IntRange(min=1))
@click.option("--lora-dropout", default=TrainingSetup.lora_dropout, show_default=True,
              type=FiniteFloat(0, 1, max_open=True))
@click.option("--lora-targets", default=",".join(TrainingSetup.lora_targets), show_default=True,
              help="Comma-separated module names (e.g. q_proj,v_proj) or all-linear.")
@click.option("--no-double-quant", is_flag=True, help="QLoRA without double quantization.")
@click.option("--loss-kernel", default="standard", show_default=True,
              type=click.Choice(tuple(LOSS_KERNELS), case_sensitive=False),
              help="How logits become the loss: transformers' fp32 cross-entropy, a compiled chunked loss, Liger's "
                   "fused kernels, or Cut Cross-Entropy.")
@click.option("--activation-offload", is_flag=True,
              help="Keep the decoder layers' saved activations in host memory (torchtune/Axolotl offloading).")
@click.option("--master-weights", default="auto", show_default=True,
              type=click.Choice(tuple(MASTER_WEIGHTS), case_sensitive=False),
              help="fp32: fp32 master weights with bf16 autocast (full fine-tuning).")
@click.option("--compile", "torch_compile", is_flag=True, help="torch.compile (fuses elementwise ops: speed only).")
@click.option("--tokens", type=FiniteFloat(min=0, min_open=True),
              help="Training tokens in the dataset (default: report per 1M tokens).")
@click.option("--epochs", default=1.0, show_default=True, type=FiniteFloat(min=0, min_open=True))
@click.option("--requests-per-month", type=FiniteFloat(min=0),
              help="Inference workload: requests per month (with --input-tokens/--output-tokens).")
@click.option("--input-tokens", default=500, show_default=True, type=FiniteFloat(min=0),
              help="Input tokens per request.")
@click.option("--output-tokens", default=200, show_default=True, type=FiniteFloat(min=0),
              help="Output tokens per request.")
@click.option("--api", "api_name", help="Hosted API used today (e.g. claude-haiku-4.5) to compare the monthly bill.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (same data as the table).")
@click.pass_context
@domain_errors
def estimate(ctx: click.Context, model: str, technique: str, objective: str, gpu_name: str, seq_len: int,
             batch_size: int, grad_accum: int, gpu_count: int, sharding: str, offload: str, precision: str,
             optimizer: str, gradient_checkpointing: bool, attn_impl: str, lora_r: int, lora_alpha: int,
             lora_dropout: float, lora_targets: str, no_double_quant: bool, loss_kernel: str,
             activation_offload: bool, master_weights: str, torch_compile: bool, tokens: float | None, epochs: float,
             requests_per_month: float | None, input_tokens: float, output_tokens: float, api_name: str | None,
             as_json: bool) -> None:
    """Memory per GPU (part by part), speed, fit on every GPU, and training cost of one setup."""
    from advisor.estimate import run_estimate

    cat = load_catalog(ctx)
    gpu = cat.gpu(gpu_name)
    spec = cat.resolve_model(model)
    setup = TrainingSetup(
        technique=technique, objective=objective, precision=precision, optimizer=optimizer, seq_len=seq_len,
        micro_batch=batch_size, grad_accum=grad_accum, gradient_checkpointing=gradient_checkpointing,
        attn_impl=attn_impl, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        lora_targets=tuple(t.strip() for t in lora_targets.split(",") if t.strip()),
        double_quant=not no_double_quant, gpu_count=gpu_count, sharding=sharding, offload=offload,
        loss_kernel=loss_kernel, activation_offload=activation_offload, master_weights=master_weights,
        compile=torch_compile,
    )
    workload = None
    if requests_per_month is not None:
        from estimators.cost import Workload

        workload = Workload(requests_per_month, input_tokens, output_tokens)
    elif api_name:
        raise AdviseUsageError("--api compares monthly bills: give --requests-per-month too")
    data = run_estimate(cat, spec, setup, gpu, tokens=tokens, epochs=epochs, workload=workload, api=api_name)
    if as_json:
        return dump_json(data)
    _print_estimate(data)


def _print_estimate(d: dict[str, Any]) -> None:
    s, m, mem = d["setup"], d["model"], d["memory"]
    tech = TECHNIQUES[s["technique"]].label
    echo(f"{m['name']}" + (f" ({m['hub_id']})" if m["hub_id"] and m["hub_id"] != m["name"] else "")
         + f": {d['params_total']:,} parameters, {d['params_active']:,} active per token"
         + (f" ({d['experts']['experts_per_token']} of {d['experts']['num_experts']} experts)" if d.get("experts")
            else " (dense)")
         + (f"; {m['params_by_part']['vision']:,} in the vision tower, frozen" if m["params_by_part"].get("vision")
            else ""))
    if d.get("sliding_window"):
        echo(f"sliding-window attention ({d['sliding_window']['window']:,} tokens) on "
             f"{d['sliding_window']['layers']} of {m['num_layers']} layers")
    lora = (f", r={s['lora_r']} alpha={s['lora_alpha']} on {','.join(s['lora_targets'])}"
            if s["technique"] != "full" else "")
    par = f", {s['gpu_count']} GPUs" + (f" {s['sharding']}" if s["sharding"] != "none" else " DDP") \
        if s["gpu_count"] > 1 else ""
    echo(f"{tech} {s['objective'].upper()}, {s['precision']}, {s['optimizer']}, {s['seq_len']} tokens x "
         f"micro-batch {s['micro_batch']}" + (f" x accum {s['grad_accum']}" if s["grad_accum"] > 1 else "")
         + (", gradient checkpointing" if s["gradient_checkpointing"] else "") + lora + par
         + (f", {LOSS_KERNELS.label(s['loss_kernel'])}" if s.get("loss_kernel", "standard") != "standard" else "")
         + (", activation offloading" if s.get("activation_offload") else "")
         + (", fp32 master weights (AMP)" if s.get("master_weights") == "fp32" else "")
         + (", torch.compile" if s.get("compile") else ""))
    echo(f"trainable: {d['trainable_params']:,} parameters ({d['trainable_share']:.2%})")
    for g in d.get("lora_adapted_parameters", []):
        echo(f"  peft adapts {g['name']} as a parameter (ParamWrapper): rank {g['rank']} per expert x "
             f"{g['experts']}, merged into the weight each forward; no LoRA dropout")
    echo("")
    echo(f"Memory per GPU at the peak ({mem['peak_phase']})")
    for key, label in mem["part_labels"].items():
        echo(f"  {label:28} {gib(mem['parts_bytes'][key]):>12}")
    echo(f"  {'total':28} {gib(mem['total_bytes']):>12}")
    if mem["host_offload_bytes"]:
        echo(f"  {'host RAM for offload':28} {gib(mem['host_offload_bytes']):>12}")
    g = d["gpu"]
    verdict = "fits" if d["fits"] else "does NOT fit"
    echo(f"  -> {verdict} on {g['name']} ({gib(g['usable_memory_bytes'])} usable, "
         f"headroom {gib(g['headroom_bytes'])})")
    echo("")
    t = d["throughput"]
    tr = d["training"]
    echo(f"Speed on {t['gpu_count']} x {t['gpu']}: {t['tokens_per_s']:,.0f} tokens/s "
         f"-> {duration(t['seconds_per_million_tokens'])} per 1M tokens ("
         + (f"MFU {t['mfu']:.0%}, measured" if t["mfu_measured"] else
            f"MFU {t['mfu']:.0%} on model FLOPs, {t['hfu']:.0%} on hardware FLOPs, roofline estimate") + ")")
    label = f"{tr['tokens']:,.0f} tokens x {tr['epochs']:g} epoch(s)" if tr["tokens"] != 1e6 else "1M tokens"
    echo(f"Cost of {label} ({duration(tr['hours'] * 3600)}):")
    for c in tr["costs"]:
        echo(f"  {c['provider']:8} {money(c['usd']):>11}  at {hourly(c['usd_per_gpu_hour'])}  {c['offer']}")
    if not tr["costs"]:
        echo("  (no price listed for this GPU)")
    if d["hosted_finetuning"]:
        n = len(d["hosted_finetuning"])
        echo(f"Hosted fine-tuning of the same tokens ({n} offer{'s' if n > 1 else ''} for this model size):")
        for h in d["hosted_finetuning"]:
            echo(f"  {h['offer']:28} {money(h['usd']):>11}" + (f"  ({h['status']})" if h["status"] else ""))
    inf = d["inference"]
    if inf:
        echo("")
        echo(f"Inference, {inf['requests_per_month']:,.0f} requests/month x ({inf['input_tokens_per_request']:g} in + "
             f"{inf['output_tokens_per_request']:g} out) tokens:")
        if inf["api_usd_per_month"] is not None:
            echo(f"  {inf['api']:28} {money(inf['api_usd_per_month']):>11} / month")
        sh = inf["self_hosted"]
        if sh:
            echo(f"  {'self-hosted on ' + sh['gpu']:28} {money(sh['usd_per_month']):>11} / month "
                 f"({sh['replicas']} x {sh['tensor_parallel']} GPU, {sh['gpu_hours_per_month']:,.0f} GPU-hours at "
                 f"{hourly(sh['usd_per_gpu_hour'])}, {sh['provider']})")
        else:
            echo(f"  the model does not fit 8 x {d['gpu']['name']} for serving")
        if inf["api_usd_per_month"] is not None and sh:
            be = inf["break_even_months"]
            if be is None:
                echo("  break-even: never (self-hosting costs more than the API)")
            else:
                echo(f"  break-even: {months_text(be)} (training cost / monthly saving)")
    echo("")
    echo(f"Fit across GPUs (needs {gib(d['memory_total_bytes'])} per GPU):")
    w = max([10] + [len(r["gpu"]) for r in d["fit_by_gpu"]])  # the widest GPU name sets the column
    echo(f"  {'gpu':{w}} {'usable':>10} {'headroom':>11} {'tokens/s':>9} {'per 1M tok':>10}")
    for r in d["fit_by_gpu"]:
        mark = "fits" if r["fits"] else "no  "
        usd = money(r["usd_per_million_tokens"]) if r["usd_per_million_tokens"] is not None else "-"
        echo(f"  {r['gpu']:{w}} {gib(r['usable_memory_bytes']):>10} {gib(r['headroom_bytes']):>11} "
             f"{r['tokens_per_s']:>9,.0f} {usd:>10}  {mark}")
    echo("")
    echo("Assumptions:")
    for a in d["assumptions"]:
        echo(f"  - {a}")
