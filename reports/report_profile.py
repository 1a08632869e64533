"""Measured against estimated: the one part of the report that reads a profile (``advise profile``'s file).

Kept apart on purpose: the rest of the report renders the plan alone. A profile is the JSON document of
``profiler.schema.Profile`` (``device``, ``model``, ``entries``); a smaller dict with ``entries`` of
``{technique, seq_len, micro_batch, peak_memory_bytes, tokens_per_s}`` is accepted too. Only full-depth
entries that ran (``status`` ok or oom) are compared. The estimate for each entry is, in order: the entry's
own ``estimated_memory_bytes`` / ``estimated_tokens_per_s``; the plan's fit-matrix row with the same
technique, micro-batch and GPU at the plan's sequence length; the estimators run on the entry's setup for a
catalog model (pure functions, no torch). An entry with none of these is shown as measured only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reports.report_charts import CONFIG, _layout, esc
from advisor.contract.units import GIB, count, gib
from advisor.contract.vocab import TECHNIQUES
from reports.report_view import label

#: measured peak fields, best first: what the device held (CUDA context included) is what the estimate models
MEASURED_MEMORY = ("device_peak_bytes", "peak_memory_bytes", "peak_reserved_bytes", "peak_allocated_bytes")


def _estimate_from_estimators(profile: Mapping[str, Any], entry: Mapping[str, Any]) -> tuple[Any, Any]:
    from estimators.catalog import Catalog
    from advisor.contract.errors import AdviseError
    from estimators.memory import estimate_memory
    from estimators.setup import TrainingSetup

    model = profile.get("model") or {}
    setup = entry.get("setup")
    if not isinstance(setup, Mapping) or not (model.get("name") or model.get("hub_id")):
        return None, None
    try:
        cat = Catalog.load()
        spec = None
        for name in (model.get("name"), model.get("hub_id")):
            if name:
                try:
                    spec = cat.model(str(name))
                    break
                except AdviseError:
                    continue
        if spec is None:
            return None, None
        fields = {f.name for f in dataclasses.fields(TrainingSetup)} - {"notes"}
        st = TrainingSetup(**{k: tuple(v) if isinstance(v, list) else v for k, v in setup.items() if k in fields})
        mem = estimate_memory(spec.anatomy, st).total_bytes
        tps = None
        gpu_name = (profile.get("device") or {}).get("catalog_gpu")
        if gpu_name:
            from estimators.throughput import estimate_throughput

            tps = estimate_throughput(spec.anatomy, st, cat.gpu(str(gpu_name))).tokens_per_s
        return mem, tps
    except (AdviseError, TypeError, ValueError):
        return None, None


def _plan_row(plan: Mapping[str, Any], profile: Mapping[str, Any], e: Mapping[str, Any]) -> Mapping[str, Any] | None:
    est = plan.get("estimates") or {}
    stages = (est.get("training") or {}).get("stages") or []
    if not stages or stages[0].get("seq_len") != e.get("seq_len"):
        return None
    setup = e.get("setup") if isinstance(e.get("setup"), Mapping) else {}
    if setup.get("objective", stages[0].get("objective")) != stages[0].get("objective"):
        return None
    gpu = (profile.get("device") or {}).get("catalog_gpu")
    for r in est.get("fit_matrix") or []:
        if (r.get("technique"), r.get("micro_batch")) == (e.get("technique"), e.get("micro_batch")) and \
                (gpu is None or r.get("gpu") == gpu) and r.get("gpu_count", 1) == 1:
            return r
    return None


def comparison(plan: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    device = profile.get("device") or {}
    model = profile.get("model") or {}
    layers = model.get("num_layers")
    head = f"{model.get('name') or 'a model'} on {device.get('name') or 'an unnamed device'}"
    rows = []
    for e in profile.get("entries") or []:
        if not isinstance(e, Mapping) or e.get("status", "ok") not in ("ok", "oom"):
            continue
        if layers is not None and e.get("layers", layers) != layers:
            continue
        field = next((f for f in MEASURED_MEMORY if e.get(f) is not None), None)
        measured = e.get(field) if field else None
        est_mem, est_tps, est_from = e.get("estimated_memory_bytes"), e.get("estimated_tokens_per_s"), "profile"
        if est_mem is None:
            r = _plan_row(plan, profile, e)
            if r is not None:
                est_mem, est_tps, est_from = r.get("memory_bytes"), r.get("tokens_per_s"), "plan"
            else:
                est_mem, est_tps = _estimate_from_estimators(profile, e)
                est_from = "estimators" if est_mem is not None else ""
        ratio = f"{measured / est_mem - 1:+.1%}" if measured and est_mem else "-"
        rows.append({
            "label": f"{label(TECHNIQUES, e.get('technique'))} {e.get('seq_len')}×{e.get('micro_batch')}",
            "source": str(e.get("source") or "measured"), "status": str(e.get("status", "ok")),
            "measured_bytes": measured, "measured": "OOM" if e.get("status") == "oom" else gib(measured),
            "field": field or "-", "estimated_bytes": est_mem, "estimated": gib(est_mem) if est_mem else "-",
            "memory_error": ratio, "measured_tps": e.get("tokens_per_s"), "estimated_tps": est_tps,
            "tps": f"{count(round(e['tokens_per_s']))} / {count(round(est_tps)) if est_tps else '-'}"
                   if e.get("tokens_per_s") else "-",
            "estimate_from": est_from or "none",
        })
    cpu = device.get("kind") == "cpu"
    return {"title": head, "rows": rows, "cpu": cpu,
            "notes": [str(n) for n in profile.get("notes") or []]}


def profile_chart(cmp: Mapping[str, Any]) -> dict[str, Any] | str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if cmp["cpu"]:
        return ("This profile was measured on a CPU: its memory is the process's resident set and its speed is not "
                "a GPU's, so it is listed below but not drawn against the GPU estimates.")
    rows = [r for r in cmp["rows"] if r["measured_bytes"] and r["estimated_bytes"] and r["status"] == "ok"]
    if not rows:
        return "No entry of the profile has both a measurement and an estimate to compare."
    xs = [esc(r["label"]) for r in rows]
    speed = any(r["measured_tps"] and r["estimated_tps"] for r in rows)
    fig = make_subplots(rows=1, cols=2 if speed else 1, horizontal_spacing=0.12,
                        subplot_titles=("Peak memory per GPU (GiB)", "Tokens per second")
                        if speed else ("Peak memory per GPU (GiB)",))
    for name, key, color in (("estimated", "estimated", "#9aa5b1"), ("measured", "measured", "#4c72b0")):
        fig.add_trace(go.Bar(x=xs, y=[round(r[f"{key}_bytes"] / GIB, 3) for r in rows], name=name,
                             legendgroup=name, marker={"color": color},
                             hovertemplate=f"{name}: %{{y:.2f}} GiB<extra></extra>"), row=1, col=1)
        if speed:
            fig.add_trace(go.Bar(x=xs, y=[round(r[f"{key}_tps"] or 0, 1) for r in rows], name=name,
                                 legendgroup=name, showlegend=False, marker={"color": color},
                                 hovertemplate=f"{name}: %{{y:,.0f}} tokens/s<extra></extra>"), row=1, col=2)
    fig.update_layout(_layout(barmode="group", margin={"t": 40}))
    fig.update_yaxes(gridcolor="#e4e7eb", zeroline=False, rangemode="tozero")
    fig.update_annotations(font={"size": 12})
    d = fig.to_plotly_json()
    return {"data": d["data"], "layout": d["layout"], "config": CONFIG}
