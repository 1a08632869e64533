"""``advise models``, ``advise gpus`` and ``advise apis``: the catalogs as tables (``--json``: the same rows)."""

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
            "params_active": a.params_active, "experts": a.num_experts, "experts_per_token": a.experts_per_token,
            "layers": a.num_layers, "hidden_size": a.hidden_size, "vocab_size": a.vocab_size,
            "tied_embeddings": a.tied_embeddings, "published_params": m.published_params,
        })
    if as_json:
        return dump_json(rows)
    wn = max([5, *(len(r["name"]) for r in rows)])
    wh = max([6, *(len(r["hub_id"] or "") for r in rows)])
    echo(f"{'model':{wn}} {'hub id':{wh}} {'params':>15} {'active':>15} {'experts':>7} {'layers':>6} {'hidden':>6} "
         f"{'vocab':>7}  tied")
    for r in rows:
        experts = f"{r['experts_per_token']}/{r['experts']}" if r["experts"] else "-"
        echo(f"{r['name']:{wn}} {r['hub_id'] or '':{wh}} {r['params_total']:>15,} {r['params_active']:>15,} "
             f"{experts:>7} {r['layers']:>6} {r['hidden_size']:>6} {r['vocab_size']:>7}  "
             f"{'yes' if r['tied_embeddings'] else 'no'}")


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


def _token_price(usd: float | None) -> str:
    """A per-million-token price: $0.25, $0.075 ('-' where the catalog has none)."""
    return "-" if usd is None else f"${usd:g}"


def _availability(open_to_new_users: bool, retires: str | None) -> str:
    """'open', 'closed to new users', 'retires YYYY-MM-DD' (both, comma-joined, where both hold)."""
    parts = ([] if open_to_new_users else ["closed to new users"]) + ([f"retires {retires}"] if retires else [])
    return ", ".join(parts) or "open"


def _record(row: object) -> dict:
    """Every field of a catalog record, tuples as lists, plus its availability text."""
    from dataclasses import fields

    d = {f.name: (list(v) if isinstance(v := getattr(row, f.name), tuple) else v) for f in fields(row)}
    if hasattr(row, "open_to_new_users"):
        d["availability"] = _availability(row.open_to_new_users, row.retires)
    return d


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> None:
    """Columns as wide as their widest cell; the indices in ``right`` aligned right, the last column unpadded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        cells = [c if i == len(r) - 1 else (f"{c:>{widths[i]}}" if i in right else f"{c:{widths[i]}}")
                 for i, c in enumerate(r)]
        echo("  ".join(cells))


def _sources_line(cat: object, sections: str, command: str) -> str:
    files = ", ".join(["estimators/data/prices.yaml", *getattr(cat, "files", ())])
    return (f"Prices from vendor pricing pages as of each row's date ({files}; each row's source is in --json). "
            f"Add or override rows with `advise --catalog my.yaml {command}`: a YAML file with {sections} "
            "of the same shape.")


@click.command()
@click.option("--hosted", is_flag=True,
              help="List the hosted fine-tuning offers and open-model per-token inference instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@domain_errors
def apis(ctx: click.Context, hosted: bool, as_json: bool) -> None:
    """List the hosted-API prices per 1M tokens (--hosted: hosted fine-tuning and open-model inference)."""
    cat = load_catalog(ctx)
    if hosted:
        return _hosted(cat, as_json)
    rows = sorted(cat.apis, key=lambda a: (a.provider, a.usd_per_million_input_tokens, a.name))
    if as_json:
        return dump_json([_record(a) for a in rows])
    _table(["api", "provider", "tier", "in $/1M", "out $/1M", "cache read", "batch", "status", "price date"],
           [[a.name, a.provider, a.tier or "-", _token_price(a.usd_per_million_input_tokens),
             _token_price(a.usd_per_million_output_tokens), _token_price(a.usd_per_million_cache_read_tokens),
             "-" if a.batch_discount is None else f"{a.batch_discount * 100:g}%",
             _availability(a.open_to_new_users, a.retires), a.date or "undated"] for a in rows],
           right={3, 4, 5, 6})
    echo()
    echo(_sources_line(cat, "an `apis:` section", "apis"))


def _size_band(f: object) -> str:
    if f.base_model:
        return f.base_model
    if f.min_params_b is None and f.max_params_b is None:
        return "-"
    if f.max_params_b is None:
        return f"{f.min_params_b:g}B+"
    return f"{f.min_params_b or 0:g}-{f.max_params_b:g}B"


def _hosted(cat: object, as_json: bool) -> None:
    tuning = sorted(cat.finetuning, key=lambda f: (f.provider, f.usd_per_million_training_tokens, f.name))
    serving = sorted(cat.open_inference, key=lambda o: (o.provider, o.params_b, o.name))
    if as_json:
        return dump_json({"hosted_finetuning": [_record(f) for f in tuning],
                          "open_model_inference": [_record(o) for o in serving]})
    echo("Hosted fine-tuning")
    _table(["offer", "provider", "base model / size", "technique", "methods", "train $/1M", "inference in/out",
            "status", "price date"],
           [[f.name, f.provider, _size_band(f), f.technique or "-", ",".join(f.methods) or "-",
             _token_price(f.usd_per_million_training_tokens),
             "-" if f.inference_usd_per_million_input_tokens is None and f.inference_usd_per_million_output_tokens
             is None else f"{_token_price(f.inference_usd_per_million_input_tokens)}/"
                          f"{_token_price(f.inference_usd_per_million_output_tokens)}",
             _availability(f.open_to_new_users, f.retires), f.date or "undated"] for f in tuning],
           right={5, 6})
    echo()
    echo("Open-model per-token inference")
    if not serving:
        echo("(no rows in the catalog)")
    else:
        _table(["name", "provider", "model", "params_b", "in $/1M", "out $/1M", "LoRA serverless", "price date"],
               [[o.name, o.provider, o.model, f"{o.params_b:g}", _token_price(o.usd_per_million_input_tokens),
                 _token_price(o.usd_per_million_output_tokens), "yes" if o.lora_serverless else "no",
                 o.date or "undated"] for o in serving],
               right={3, 4, 5})
    echo()
    echo(_sources_line(cat, "`hosted_finetuning:` and `open_model_inference:` sections", "apis --hosted"))
