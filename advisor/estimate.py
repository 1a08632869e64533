"""``advise estimate``: memory, speed, fit and cost of one training setup, as plain data.

``run_estimate`` gathers everything (the CLI prints it; ``--json`` serialises the same dict), so tests
assert on data, not on text. Floats are rounded to stable precision so that the same inputs give
byte-identical JSON.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from advisor import __version__
from advisor.contract.units import round_sig, round_sig_or_none
from estimators.anatomy import lora_dropout_for, select_lora_params
from estimators.catalog import GPU, Catalog, ModelSpec
from estimators.cost import (
    Workload,
    api_monthly_cost,
    break_even_months,
    hosted_finetuning_cost,
    open_model_offers,
    serving_estimate,
    training_costs,
)
from estimators.memory import PART_LABELS, estimate_memory, fit
from estimators.setup import TrainingSetup
from estimators.throughput import estimate_throughput, model_flops_per_token


def setup_dict(setup: TrainingSetup) -> dict[str, Any]:
    d = asdict(setup)
    d.pop("notes", None)
    d["lora_targets"] = list(setup.lora_targets)
    return d


def run_estimate(
    catalog: Catalog,
    model: ModelSpec,
    setup: TrainingSetup,
    gpu: GPU,
    tokens: float | None = None,
    epochs: float = 1.0,
    workload: Workload | None = None,
    api: str | None = None,
) -> dict[str, Any]:
    """Everything ``advise estimate`` reports, JSON-ready.

    With a ``workload`` (and optionally the hosted ``api`` used today) it adds the monthly inference
    cost of serving the fine-tuned model on ``gpu`` and the months until training pays for itself.
    """
    a = model.anatomy
    if setup.adapted:  # peft's ParamWrapper (fused experts) runs no dropout
        setup = replace(setup, lora_dropout=lora_dropout_for(a, setup.lora_targets, setup.lora_dropout))
    mem = estimate_memory(a, setup)
    main_fit = fit(mem, gpu)
    tp = estimate_throughput(a, setup, gpu)
    cost_tokens = tokens if tokens is not None else 1e6
    costs = training_costs(tp, gpu, cost_tokens, epochs)

    by_gpu = []
    for g in catalog.gpus:
        f = fit(mem, g)
        t = estimate_throughput(a, setup, g)
        cheapest = training_costs(t, g, 1e6)[:1]
        by_gpu.append({
            "gpu": g.name,
            "usable_memory_bytes": g.usable_memory_bytes,
            "memory_total_bytes": mem.total_bytes,
            "fits": f.fits,
            "headroom_bytes": f.headroom_bytes,
            "tokens_per_s": round_sig(t.tokens_per_s),
            "usd_per_million_tokens": round_sig(cheapest[0].usd) if cheapest else None,
            "cheapest_provider": cheapest[0].provider if cheapest else None,
        })

    method = {"sft": "sft", "cpt": "sft", "dpo": "dpo"}.get(setup.objective)
    hosted = [
        hosted_finetuning_cost(o, cost_tokens, epochs)
        for o in (open_model_offers(catalog, a.params_total, setup.technique, method) if method else ())
    ]

    inference = None
    if workload is not None:
        serve = serving_estimate(a, gpu, workload)
        api_price = catalog.api(api) if api else None
        api_usd = api_monthly_cost(api_price, workload) if api_price else None
        run_usd = costs[0].usd if costs else None
        inference = {
            "requests_per_month": workload.requests_per_month,
            "input_tokens_per_request": workload.input_tokens_per_request,
            "output_tokens_per_request": workload.output_tokens_per_request,
            "api": api_price.name if api_price else None,
            "api_usd_per_month": round_sig(api_usd) if api_usd is not None else None,
            "self_hosted": None if serve is None else {
                "gpu": serve.gpu, "tensor_parallel": serve.tensor_parallel, "replicas": serve.replicas,
                "max_batch": serve.max_batch, "gpu_hours_per_month": round_sig(serve.gpu_hours_per_month),
                "provider": serve.provider, "usd_per_gpu_hour": serve.usd_per_gpu_hour,
                "usd_per_month": round_sig(serve.usd_per_month), "assumptions": list(serve.assumptions),
            },
            "break_even_months": round_sig_or_none(None if api_usd is None or serve is None or run_usd is None
                                            else break_even_months(run_usd, api_usd, serve.usd_per_month)),
        }

    trainable = mem.states.trainable_params
    return {
        "advise_version": __version__,
        "model": {
            "name": model.name,
            "hub_id": model.hub_id,
            "family": model.family,
            "source": model.source,
            "published_params": model.published_params,
            "params_by_part": dict(a.params_by_part),
            "tied_embeddings": a.tied_embeddings,
            "num_layers": a.num_layers,
        },
        "params_total": a.params_total,
        # a MoE token runs through experts_per_token of num_experts; equal to params_total for a dense model
        "params_active": a.params_active,
        "experts": {"num_experts": a.num_experts, "experts_per_token": a.experts_per_token} if a.is_moe else None,
        "sliding_window": {"window": a.sliding_window, "layers": a.sliding_layers} if a.sliding_layers else None,
        "lora_adapted_parameters": [{"name": g.name, "rank": setup.lora_r * f, "experts": g.experts}
                                    for g, f in select_lora_params(a, setup.lora_targets)] if setup.adapted else [],
        "trainable_params": trainable,
        "trainable_share": round_sig(trainable / a.params_total),
        "setup": setup_dict(setup),
        "memory": {
            "parts_bytes": dict(mem.parts),
            "part_labels": dict(PART_LABELS),
            "total_bytes": mem.total_bytes,
            "allocated_peak_bytes": mem.allocated_peak_bytes,
            "reserved_peak_bytes": mem.reserved_peak_bytes,
            "peak_phase": mem.peak_phase,
            "phases_bytes": dict(mem.phases),
            "full_gradients_bytes": mem.states.gradients_bytes,
            "saved_for_backward_bytes": mem.activations.total_bytes,
            "activations_by_group_bytes": dict(mem.activations.by_group),
            "host_offload_bytes": mem.states.host_bytes,
        },
        "memory_total_bytes": mem.total_bytes,
        "gpu": {
            "name": gpu.name,
            "count": setup.gpu_count,
            "usable_memory_bytes": main_fit.usable_bytes,
            "usable_memory_measured": gpu.usable_memory_measured,
            "headroom_bytes": main_fit.headroom_bytes,
        },
        "fits": main_fit.fits,
        "throughput": {
            "gpu": gpu.name,
            "gpu_count": setup.gpu_count,
            "tokens_per_s": round_sig(tp.tokens_per_s),
            "seconds_per_million_tokens": round_sig(tp.seconds_per_million_tokens),
            "flops_per_token": round_sig(tp.flops_per_token.total),
            "model_flops_per_token": round_sig(model_flops_per_token(tp.flops_per_token)),
            "mfu": round_sig(tp.mfu),
            "hfu": round_sig(tp.hfu) if tp.hfu is not None else None,
            "mfu_measured": tp.mfu_measured,
        },
        "training": {
            "tokens": cost_tokens,
            "epochs": epochs,
            "hours": round_sig(tp.hours_for(cost_tokens, epochs)),
            "costs": [
                {"provider": c.provider, "offer": c.offer, "usd_per_gpu_hour": c.usd_per_gpu_hour,
                 "gpu_count": c.gpu_count, "usd": round_sig(c.usd), "price_date": c.price_date}
                for c in costs
            ],
        },
        "hosted_finetuning": [
            {"offer": h.offer, "provider": h.provider, "billed_tokens": h.billed_tokens, "usd": round_sig(h.usd),
             "price_date": h.date, "status": h.status}
            for h in sorted(hosted, key=lambda h: (h.usd, h.offer))
        ],
        "inference": inference,
        "fit_by_gpu": by_gpu,
        "assumptions": list(dict.fromkeys(list(mem.assumptions) + list(tp.assumptions))),
    }
