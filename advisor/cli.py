"""The ``advise`` command line: a thin click layer over the library.

Library code raises typed errors (``advisor.contract.errors.AdviseError``); ``advisor.clitools`` turns them into
one-line ``Error: ...`` messages with exit code 2. Commands that live in their own module
(``advisor/cmd_*.py``) are registered at the end of this file; those modules import only click and
``advisor.clitools`` at load time. Heavy imports (torch, transformers, plotly, jinja2) happen only inside
the commands that need them, so ``advise --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from advisor import __version__
from advisor.clitools import AdviseUsageError, domain_errors
from advisor.clitools import dump_json as _dump
from advisor.clitools import duration as _duration
from advisor.clitools import gib as _gib
from advisor.clitools import load_catalog as _catalog
from advisor.contract.vocab import ATTENTION, OBJECTIVES, OFFLOAD, OPTIMIZERS, PRECISIONS, SHARDING, TECHNIQUES
from advisor.cmd_data import data
from advisor.cmd_export import export
from advisor.cmd_plan import plan
from advisor.cmd_profile import profile
from advisor.cmd_report import report


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="advise")
@click.option("--catalog", "catalog_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra YAML with models, gpus, apis or hosted_finetuning entries (adds or overrides).")
@click.pass_context
def main(ctx: click.Context, catalog_files: tuple[str, ...]) -> None:
    """Should you fine-tune an LLM, how, on what, and for how much? advise tells you, with reasons."""
    ctx.ensure_object(dict)
    ctx.obj["catalog_files"] = catalog_files


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@domain_errors
def models(ctx: click.Context, as_json: bool) -> None:
    """List the catalog models (architecture from each model's config.json)."""
    cat = _catalog(ctx)
    rows = []
    for name in cat.model_names:
        m = cat.model(name)
        a = m.anatomy
        rows.append({
            "name": m.name, "hub_id": m.hub_id, "family": m.family, "params_total": a.params_total,
            "layers": a.num_layers, "hidden_size": a.hidden_size, "vocab_size": a.vocab_size,
            "tied_embeddings": a.tied_embeddings, "published_params": m.published_params,
        })
    if as_json:
        return _dump(rows)
    click.echo(f"{'model':18} {'hub id':34} {'params':>15} {'layers':>6} {'hidden':>6} {'vocab':>7}  tied")
    for r in rows:
        click.echo(f"{r['name']:18} {r['hub_id'] or '':34} {r['params_total']:>15,} {r['layers']:>6} "
                   f"{r['hidden_size']:>6} {r['vocab_size']:>7}  {'yes' if r['tied_embeddings'] else 'no'}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@domain_errors
def gpus(ctx: click.Context, as_json: bool) -> None:
    """List the catalog GPUs with memory, dense bf16 TFLOP/s, bandwidth and the cheapest hourly price."""
    cat = _catalog(ctx)
    rows = []
    for g in cat.gpus:
        p = g.cheapest_price
        rows.append({
            "name": g.name, "description": g.description, "memory_bytes": g.memory_bytes,
            "usable_memory_bytes": g.usable_memory_bytes, "bf16_dense_tflops": g.bf16_dense_tflops,
            "memory_bandwidth_tb_s": g.memory_bandwidth_tb_s,
            "cheapest_usd_per_hour": p.usd_per_hour if p else None, "cheapest_provider": p.provider if p else None,
            "price_date": p.date if p else None, "aliases": list(g.aliases),
        })
    if as_json:
        return _dump(rows)
    click.echo(f"{'gpu':10} {'memory':>10} {'bf16 TFLOP/s':>13} {'TB/s':>6} {'cheapest':>18}  description")
    for r in rows:
        price = f"${r['cheapest_usd_per_hour']:.2f}/h {r['cheapest_provider']}" if r["cheapest_usd_per_hour"] else "-"
        click.echo(f"{r['name']:10} {_gib(r['memory_bytes']):>10} {r['bf16_dense_tflops']:>13g} "
                   f"{r['memory_bandwidth_tb_s']:>6g} {price:>18}  {r['description']}")


@main.command()
@click.option("--model", required=True, help="Catalog name, Hub id, or a local config.json / model directory.")
@click.option("--method", "technique", default="lora", show_default=True,
              type=click.Choice(tuple(TECHNIQUES), case_sensitive=False),
              help="Fine-tuning technique.")
@click.option("--objective", default="sft", show_default=True,
              type=click.Choice(tuple(OBJECTIVES), case_sensitive=False),
              help="Training objective (DPO/ORPO double the sequences; DPO/KTO add a reference forward).")
@click.option("--gpu", "gpu_name", default="H100-80GB", show_default=True, help="GPU to report time and fit for.")
@click.option("--seq-len", default=2048, show_default=True, type=click.IntRange(min=1), help="Tokens per sequence.")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(min=1), help="Micro-batch per GPU.")
@click.option("--grad-accum", default=1, show_default=True, type=click.IntRange(min=1),
              help="Gradient accumulation steps.")
@click.option("--gpus", "gpu_count", default=1, show_default=True, type=click.IntRange(min=1), help="Number of GPUs.")
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
@click.option("--lora-r", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--lora-alpha", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--lora-dropout", default=0.05, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--lora-targets", default="all-linear", show_default=True,
              help="Comma-separated module names (e.g. q_proj,v_proj) or all-linear.")
@click.option("--no-double-quant", is_flag=True, help="QLoRA without double quantization.")
@click.option("--tokens", type=click.FloatRange(min=0, min_open=True),
              help="Training tokens in the dataset (default: report per 1M tokens).")
@click.option("--epochs", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--requests-per-month", type=click.FloatRange(min=0),
              help="Inference workload: requests per month (with --input-tokens/--output-tokens).")
@click.option("--input-tokens", default=500, show_default=True, type=click.FloatRange(min=0),
              help="Input tokens per request.")
@click.option("--output-tokens", default=200, show_default=True, type=click.FloatRange(min=0),
              help="Output tokens per request.")
@click.option("--api", "api_name", help="Hosted API used today (e.g. claude-haiku-4.5) to compare the monthly bill.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (same data as the table).")
@click.pass_context
@domain_errors
def estimate(ctx: click.Context, model: str, technique: str, objective: str, gpu_name: str, seq_len: int,
             batch_size: int, grad_accum: int, gpu_count: int, sharding: str, offload: str, precision: str,
             optimizer: str, gradient_checkpointing: bool, attn_impl: str, lora_r: int, lora_alpha: int,
             lora_dropout: float, lora_targets: str, no_double_quant: bool, tokens: float | None, epochs: float,
             requests_per_month: float | None, input_tokens: float, output_tokens: float, api_name: str | None,
             as_json: bool) -> None:
    """Memory per GPU (part by part), speed, fit on every GPU, and training cost of one setup."""
    from advisor.estimate import run_estimate
    from estimators.setup import TrainingSetup

    cat = _catalog(ctx)
    gpu = cat.gpu(gpu_name)
    spec = cat.resolve_model(model)
    setup = TrainingSetup(
        technique=technique, objective=objective, precision=precision, optimizer=optimizer, seq_len=seq_len,
        micro_batch=batch_size, grad_accum=grad_accum, gradient_checkpointing=gradient_checkpointing,
        attn_impl=attn_impl, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        lora_targets=tuple(t.strip() for t in lora_targets.split(",") if t.strip()),
        double_quant=not no_double_quant, gpu_count=gpu_count, sharding=sharding, offload=offload,
    )
    workload = None
    if requests_per_month is not None:
        from estimators.cost import Workload

        workload = Workload(requests_per_month, input_tokens, output_tokens)
    elif api_name:
        raise AdviseUsageError("--api compares monthly bills: give --requests-per-month too")
    data = run_estimate(cat, spec, setup, gpu, tokens=tokens, epochs=epochs, workload=workload, api=api_name)
    if as_json:
        return _dump(data)
    _print_estimate(data)


def _print_estimate(d: dict[str, Any]) -> None:
    s, m, mem = d["setup"], d["model"], d["memory"]
    echo = click.echo
    tech = TECHNIQUES[s["technique"]].label
    echo(f"{m['name']}" + (f" ({m['hub_id']})" if m["hub_id"] and m["hub_id"] != m["name"] else "")
         + f": {d['params_total']:,} parameters")
    lora = (f", r={s['lora_r']} alpha={s['lora_alpha']} on {','.join(s['lora_targets'])}"
            if s["technique"] != "full" else "")
    par = f", {s['gpu_count']} GPUs" + (f" {s['sharding']}" if s["sharding"] != "none" else " DDP") \
        if s["gpu_count"] > 1 else ""
    echo(f"{tech} {s['objective'].upper()}, {s['precision']}, {s['optimizer']}, {s['seq_len']} tokens x "
         f"micro-batch {s['micro_batch']}" + (f" x accum {s['grad_accum']}" if s["grad_accum"] > 1 else "")
         + (", gradient checkpointing" if s["gradient_checkpointing"] else "") + lora + par)
    echo(f"trainable: {d['trainable_params']:,} parameters ({d['trainable_share']:.2%})")
    echo("")
    echo(f"Memory per GPU at the peak ({mem['peak_phase']})")
    for key, label in mem["part_labels"].items():
        echo(f"  {label:28} {_gib(mem['parts_bytes'][key]):>12}")
    echo(f"  {'total':28} {_gib(mem['total_bytes']):>12}")
    if mem["host_offload_bytes"]:
        echo(f"  {'host RAM for offload':28} {_gib(mem['host_offload_bytes']):>12}")
    g = d["gpu"]
    verdict = "fits" if d["fits"] else "does NOT fit"
    echo(f"  -> {verdict} on {g['name']} ({_gib(g['usable_memory_bytes'])} usable, "
         f"headroom {_gib(g['headroom_bytes'])})")
    echo("")
    t = d["throughput"]
    tr = d["training"]
    echo(f"Speed on {t['gpu_count']} x {t['gpu']}: {t['tokens_per_s']:,.0f} tokens/s "
         f"-> {_duration(t['seconds_per_million_tokens'])} per 1M tokens (MFU {t['mfu']:.0%}, "
         f"{'measured' if t['mfu_measured'] else 'assumed'})")
    label = f"{tr['tokens']:,.0f} tokens x {tr['epochs']:g} epoch(s)" if tr["tokens"] != 1e6 else "1M tokens"
    echo(f"Cost of {label} ({_duration(tr['hours'] * 3600)}):")
    for c in tr["costs"]:
        echo(f"  {c['provider']:8} ${c['usd']:>10,.2f}  at ${c['usd_per_gpu_hour']:.2f}/GPU-h  {c['offer']}")
    if not tr["costs"]:
        echo("  (no price listed for this GPU)")
    if d["hosted_finetuning"]:
        n = len(d["hosted_finetuning"])
        echo(f"Hosted fine-tuning of the same tokens ({n} offer{'s' if n > 1 else ''} for this model size):")
        for h in d["hosted_finetuning"]:
            echo(f"  {h['offer']:28} ${h['usd']:>10,.2f}" + (f"  ({h['status']})" if h["status"] else ""))
    inf = d["inference"]
    if inf:
        echo("")
        echo(f"Inference, {inf['requests_per_month']:,.0f} requests/month x ({inf['input_tokens_per_request']:g} in + "
             f"{inf['output_tokens_per_request']:g} out) tokens:")
        if inf["api_usd_per_month"] is not None:
            echo(f"  {inf['api']:28} ${inf['api_usd_per_month']:>10,.2f} / month")
        sh = inf["self_hosted"]
        if sh:
            echo(f"  {'self-hosted on ' + sh['gpu']:28} ${sh['usd_per_month']:>10,.2f} / month "
                 f"({sh['replicas']} x {sh['tensor_parallel']} GPU, {sh['gpu_hours_per_month']:,.0f} GPU-h at "
                 f"${sh['usd_per_gpu_hour']:.2f}, {sh['provider']})")
        else:
            echo(f"  the model does not fit 8 x {d['gpu']['name']} for serving")
        if inf["api_usd_per_month"] is not None and sh:
            be = inf["break_even_months"]
            if be is None:
                echo("  break-even: never (self-hosting costs more than the API)")
            else:
                when = f"{be:.1f} months" if be >= 1 else f"{be * 30.4:.1f} days"
                echo(f"  break-even: {when} (training cost / monthly saving)")
    echo("")
    echo(f"Fit across GPUs (needs {_gib(d['memory_total_bytes'])} per GPU):")
    echo(f"  {'gpu':10} {'usable':>10} {'headroom':>11} {'tokens/s':>9} {'$/1M tok':>9}")
    for r in d["fit_by_gpu"]:
        mark = "fits" if r["fits"] else "no  "
        usd = f"{r['usd_per_million_tokens']:.2f}" if r["usd_per_million_tokens"] is not None else "-"
        echo(f"  {r['gpu']:10} {_gib(r['usable_memory_bytes']):>10} {_gib(r['headroom_bytes']):>11} "
             f"{r['tokens_per_s']:>9,.0f} {usd:>9}  {mark}")
    echo("")
    echo("Assumptions:")
    for a in d["assumptions"]:
        echo(f"  - {a}")


# ---- commands defined in their own modules: one registration point ---------------------------------
for _command in (plan, data, profile, report, export):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
