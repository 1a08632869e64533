"""``advise models`` and ``advise gpus``: the catalogs as tables (``--json``: the same rows)."""

from __future__ import annotations

import click

from advisor.cli.common import domain_errors, dump_json, echo, load_catalog
from advisor.contract.units import gib, hourly


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@domain_errors
def models(ctx: click.Context, as_json: bool) -> None:
    """List the catalog models (architecture from each model's config.json)."""
    cat = load_catalog(ctx)
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
        return dump_json(rows)
    echo(f"{'model':18} {'hub id':34} {'params':>15} {'layers':>6} {'hidden':>6} {'vocab':>7}  tied")
    for r in rows:
        echo(f"{r['name']:18} {r['hub_id'] or '':34} {r['params_total']:>15,} {r['layers']:>6} "
                   f"{r['hidden_size']:>6} {r['vocab_size']:>7}  {'yes' if r['tied_embeddings'] else 'no'}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@domain_errors
def gpus(ctx: click.Context, as_json: bool) -> None:
    """List the catalog GPUs with memory, dense bf16 TFLOP/s, bandwidth and the cheapest hourly price."""
    cat = load_catalog(ctx)
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
        return dump_json(rows)
    echo(f"{'gpu':10} {'memory':>10} {'bf16 TFLOP/s':>13} {'TB/s':>6} {'cheapest':>26}  description")
    for r in rows:
        price = f"{hourly(r['cheapest_usd_per_hour'])} {r['cheapest_provider']}" if r["cheapest_usd_per_hour"] else "-"
        echo(f"{r['name']:10} {gib(r['memory_bytes']):>10} {r['bf16_dense_tflops']:>13g} "
                   f"{r['memory_bandwidth_tb_s']:>6g} {price:>26}  {r['description']}")
