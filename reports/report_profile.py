"""Measured against estimated: the one part of the report that reads a profile (``profiler.schema.Profile``).

Every full-depth entry of the profile that ran (``ok``, or ``oom``: it did not fit) is a row: what the device held
at the peak, against what the estimators say for the entry's own setup (``TrainingSetup`` fields recorded in the
entry) on the model and GPU of the plan's catalog; tokens/s likewise on the profile's catalog GPU. Rows the plan
itself took its figures from (the planner matched them with ``profiler.schema.measured_entry``) are marked. A model
the catalog does not know is shown as measured only.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from advisor.contract.errors import AdviseError
from advisor.contract.plan import Plan
from advisor.contract.units import GIB, count, gib
from advisor.contract.vocab import TECHNIQUES
from reports.report_charts import CONFIG, esc, layout
from reports.report_view import label

if TYPE_CHECKING:
    from estimators.catalog import Catalog
    from profiler.schema import Entry, Profile

#: measured peak fields, best first: what the device held (CUDA context included) is what the estimate models
MEASURED_MEMORY = ("device_peak_bytes", "peak_reserved_bytes", "peak_allocated_bytes")


def _model_and_gpu(profile: Profile, catalog: Catalog) -> tuple[Any, Any]:
    spec = None
    for name in (profile.model.name, profile.model.hub_id):
        if not name:
            continue
        try:
            spec = catalog.model(name)
            break
        except AdviseError:
            continue
    gpu = None
    if profile.device.catalog_gpu:
        try:
            gpu = catalog.gpu(profile.device.catalog_gpu)
        except AdviseError:
            gpu = None
    return spec, gpu


def _estimate(e: Entry, spec: Any, gpu: Any) -> tuple[int | None, float | None]:
    """Estimated peak bytes and tokens/s of the entry's own setup (None where it cannot be estimated)."""
    if spec is None:
        return None, None
    from estimators.memory import estimate_memory
    from estimators.setup import TrainingSetup
    from estimators.throughput import estimate_throughput

    fields = {f.name for f in dataclasses.fields(TrainingSetup)} - {"notes"}
    try:
        st = TrainingSetup(**{k: tuple(v) if isinstance(v, list) else v for k, v in e.setup.items() if k in fields})
        mem = estimate_memory(spec.anatomy, st).total_bytes
        tps = estimate_throughput(spec.anatomy, st, gpu).tokens_per_s if gpu is not None else None
    except (AdviseError, TypeError, ValueError):
        return None, None
    return mem, tps


def _used_by_plan(plan: Plan, profile: Profile, e: Entry) -> bool:
    """Whether the plan took this entry's figures: its fit-matrix cell of this technique on the profile's GPU is
    marked measured, at this shape."""
    gpu = profile.device.catalog_gpu
    return any(r.measured and (r.technique, r.gpu, r.seq_len, r.micro_batch) == (e.technique, gpu, e.seq_len,
                                                                                  e.micro_batch)
               for r in plan.estimates.fit_matrix)


def comparison(plan: Plan, profile: Profile, catalog: Catalog | None = None) -> dict[str, Any]:
    if catalog is None:
        from estimators.catalog import Catalog

        catalog = Catalog.load()
    spec, gpu = _model_and_gpu(profile, catalog)
    layers = profile.model.num_layers
    head = f"{profile.model.name} on {profile.device.name}"
    rows = []
    for e in profile.entries:
        if e.status not in ("ok", "oom") or e.layers != layers:
            continue
        field = next((f for f in MEASURED_MEMORY if getattr(e, f) is not None), None)
        measured = getattr(e, field) if field else None
        est_mem, est_tps = _estimate(e, spec, gpu)
        rows.append({
            "label": f"{label(TECHNIQUES, e.technique)} {e.seq_len}×{e.micro_batch}",
            "source": e.source, "status": e.status,
            "measured_bytes": measured, "measured": "OOM" if e.status == "oom" else gib(measured),
            "field": field or "-", "estimated_bytes": est_mem, "estimated": gib(est_mem) if est_mem else "-",
            "memory_error": f"{measured / est_mem - 1:+.1%}" if measured and est_mem else "-",
            "measured_tps": e.tokens_per_s, "estimated_tps": est_tps,
            "tps": f"{count(round(e.tokens_per_s))} / {count(round(est_tps)) if est_tps else '-'}"
                   if e.tokens_per_s else "-",
            "in_plan": "used" if _used_by_plan(plan, profile, e) else "",
        })
    return {"title": head, "rows": rows, "cpu": profile.device.kind == "cpu", "notes": list(profile.notes),
            "estimated_with": "" if spec is not None else
            f"{profile.model.name} is not in the catalog: its entries are shown as measured only"}


def profile_chart(cmp: dict[str, Any]) -> dict[str, Any] | str:
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
    fig.update_layout(layout(barmode="group", margin={"t": 40}))
    fig.update_yaxes(gridcolor="#e4e7eb", zeroline=False, rangemode="tozero")
    fig.update_annotations(font={"size": 12})
    d = fig.to_plotly_json()
    return {"data": d["data"], "layout": d["layout"], "config": CONFIG}
