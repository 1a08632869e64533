"""The report's charts as plotly figure specs (``{"data", "layout", "config"}``), built from the typed plan.

Each builder returns a spec, or a sentence saying why there is no chart (a missing piece is never an empty
chart). Figures are built with ``plotly.graph_objects`` so a misspelt attribute fails here, then exported
as plain JSON. Every string that comes from the plan is escaped for plotly's pseudo-HTML labels (plotly
renders ``<b>``, ``<a href>`` and entities in text), so a GPU named ``<img src=x>`` shows as text.
"""

from __future__ import annotations

import html
from typing import Any

from advisor.contract.plan import FitRow, Plan
from advisor.contract.units import GIB, count, gib, money, months_text
from advisor.contract.units import duration_hours as duration
from advisor.contract.vocab import EFFORTS, TECHNIQUES
from estimators.memory import PART_LABELS
from reports.report_view import label, option_verdict, today_bill

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
PART_COLORS = {
    "weights": "#4c72b0", "trainable_weights": "#8172b3", "gradients": "#c44e52", "optimizer_states": "#dd8452",
    "activations": "#55a868", "logits_and_loss": "#da8bc3", "backward_workspace": "#8c8c8c",
    "cuda_context": "#ccb974", "allocator_reserve": "#64b5cd",
}
TECHNIQUE_COLORS = {"full": "#4c72b0", "lora": "#55a868", "qlora": "#dd8452", "dora": "#8172b3"}
EXTRA_COLORS = ("#937860", "#8c8c8c", "#64b5cd", "#ccb974")
TODAY_COLOR, AFTER_COLOR, LIMIT_COLOR, MUTED = "#7b8794", "#2557a7", "#b3261e", "#5f6b7a"
CHART_HEIGHT = 380
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"]}


def esc(s: Any) -> str:
    """A plan string made safe for plotly's pseudo-HTML text (ticks, hover, annotations)."""
    return html.escape(str(s), quote=False)


def layout(**kw: Any) -> dict[str, Any]:
    """The house layout of every chart, with ``kw`` merged in (dicts one level deep)."""
    base = {
        "template": {"data": {}, "layout": {}},
        "height": CHART_HEIGHT, "autosize": True,
        "font": {"family": FONT, "size": 12, "color": "#1f2933"},
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "margin": {"l": 64, "r": 16, "t": 24, "b": 64},
        "legend": {"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top", "font": {"size": 11}},
        "hoverlabel": {"font": {"family": FONT, "size": 12}},
        "xaxis": {"gridcolor": "#e4e7eb", "linecolor": "#9aa5b1", "zeroline": False, "automargin": True},
        "yaxis": {"gridcolor": "#e4e7eb", "linecolor": "#9aa5b1", "zeroline": False, "automargin": True},
    }
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return base


def _spec(fig: Any) -> dict[str, Any]:
    d = fig.to_plotly_json()
    return {"data": d["data"], "layout": d["layout"], "config": CONFIG}


#: the training-time chart's axis units: (name, hours per unit, the largest value in hours it is used up to);
#: the same steps as ``advisor.contract.units.duration`` (90 s, 90 min, 72 h)
TIME_UNITS = (("seconds", 1 / 3600, 90 / 3600), ("minutes", 1 / 60, 1.5), ("hours", 1.0, 72.0), ("days", 24.0, None))


def time_unit(max_hours: float) -> tuple[str, float]:
    """The unit a time axis reads best in, from the largest value it shows: (name, hours per unit)."""
    for name, per, below in TIME_UNITS:
        if below is None or max_hours < below:
            return name, per
    raise AssertionError("TIME_UNITS has no open-ended unit")  # pragma: no cover


def _rows(plan: Plan) -> list[FitRow]:
    return list(plan.estimates.fit_matrix)


def _short(technique: str) -> str:
    return TECHNIQUES[technique].compact if technique in TECHNIQUES else technique


def _order(techniques: list[str]) -> list[str]:
    order = tuple(TECHNIQUES)
    return sorted(dict.fromkeys(techniques), key=lambda t: (order.index(t) if t in order else 99, t))


def memory_gpu(plan: Plan) -> str | None:
    """The GPU the memory chart is drawn for: the recommended one, else the largest in the fit matrix."""
    rows = _rows(plan)
    if not rows:
        return None
    rec = plan.recommendation.gpus
    if rec and rec[0] in [r.gpu for r in rows]:
        return rec[0]
    return max(rows, key=lambda r: (r.usable_memory_bytes, r.gpu)).gpu


def memory_chart(plan: Plan) -> dict[str, Any] | str:
    import plotly.graph_objects as go

    rows = _rows(plan)
    gpu = memory_gpu(plan)
    if gpu is None:
        return "No self-hosted training run is planned, so there is no memory estimate to draw."
    rows = [r for r in rows if r.gpu == gpu and r.memory_parts_bytes]
    if not rows:
        return "The plan has no memory breakdown per part for this GPU."
    techs = _order([r.technique for r in rows])
    by_t = {r.technique: r for r in rows}
    chosen = plan.recommendation.technique
    xs = [f"{esc(_short(t))}{' ★' if t == chosen else ''}" for t in techs]
    parts = list(PART_LABELS) + sorted({k for r in rows for k in r.memory_parts_bytes} - set(PART_LABELS))
    fig = go.Figure()
    extra = iter(EXTRA_COLORS * 4)
    for p in parts:
        ys = [by_t[t].memory_parts_bytes.get(p, 0) for t in techs]
        if not any(ys):
            continue
        name = esc(PART_LABELS.get(p, p.replace("_", " ")))
        fig.add_trace(go.Bar(
            x=xs, y=[round(v / GIB, 3) for v in ys], name=name,
            marker={"color": PART_COLORS.get(p) or next(extra)},
            hovertemplate=f"{name}: %{{y:.2f}} GiB<extra></extra>"))
    usable = by_t[techs[0]].usable_memory_bytes
    top = max(max(r.memory_bytes for r in rows), usable) / GIB
    notes = []
    for x, t in zip(xs, techs):
        r = by_t[t]
        fit = "fits" if r.fits else "<span style='color:#b3261e'>no fit</span>"
        notes.append({"x": x, "y": round(r.memory_bytes / GIB, 3), "yanchor": "bottom",
                      "showarrow": False,
                      "text": f"<b>{gib(r.memory_bytes)}</b><br>mb {r.micro_batch} · {fit}",
                      "font": {"size": 11}})
    notes.append({"xref": "paper", "x": 1, "xanchor": "right", "y": round(usable / GIB, 3), "yanchor": "bottom",
                  "showarrow": False, "text": f"{esc(gpu)} usable: {gib(usable)}", "bgcolor": "rgba(255,255,255,0.85)",
                  "font": {"size": 11, "color": LIMIT_COLOR}})
    fig.update_layout(layout(
        barmode="stack", yaxis={"title": {"text": "GiB per GPU"},
                                "range": [0, round(top * 1.22, 2)]},
        shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": round(usable / GIB, 3),
                 "y1": round(usable / GIB, 3), "line": {"color": LIMIT_COLOR, "width": 2, "dash": "dash"}}],
        annotations=notes, legend={"traceorder": "normal"}, margin={"b": 96}))
    return _spec(fig)


def fit_chart(plan: Plan) -> dict[str, Any] | str:
    import plotly.graph_objects as go

    rows = _rows(plan)
    if not rows:
        return "No self-hosted training run is planned, so there is no fit matrix."
    techs = _order([r.technique for r in rows])
    gpus = list(dict.fromkeys(r.gpu for r in rows))
    cell = {(r.technique, r.gpu): r for r in rows}
    z, text, hover = [], [], []
    for t in techs:
        zr, tr, hr = [], [], []
        for g in gpus:
            r = cell.get((t, g))
            if r is None:
                zr.append(None)
                tr.append("")
                hr.append("")
                continue
            use = r.memory_bytes / max(1, r.usable_memory_bytes)
            zr.append(round(min(use, 1.5), 4))
            ram = f"<br>CPU RAM {gib(r.host_ram_bytes_per_machine)}" if r.host_ram_bytes_per_machine else ""
            if r.fits:
                tr.append(f"{use:.0%} · mb {r.micro_batch}<br>{money(r.usd)}{ram}")
            else:
                tr.append(f"<b>no fit</b><br>{use:.0%}")
            hr.append(f"{esc(label(TECHNIQUES, t))} on {r.gpu_count} × {esc(g)}<br>"
                      f"{gib(r.memory_bytes)} of {gib(r.usable_memory_bytes)} usable<br>"
                      + (f"+ {gib(r.host_ram_bytes_per_machine)} of CPU RAM per machine (offload)<br>"
                         if r.host_ram_bytes_per_machine else "")
                      + f"micro-batch {r.micro_batch}, {count(round(r.tokens_per_s))} tokens/s<br>"
                      f"{duration(r.hours)}, {money(r.usd)}"
                      + (f" ({esc(r.provider)})" if r.provider else ""))
        z.append(zr), text.append(tr), hover.append(hr)
    ys = [esc(_short(t)) for t in techs]
    xs = [esc(g) for g in gpus]
    fig = go.Figure(go.Heatmap(
        z=z, x=xs, y=ys, text=text, customdata=hover, texttemplate="%{text}", textfont={"size": 11},
        hovertemplate="%{customdata}<extra></extra>", zmin=0, zmax=1.5, showscale=False, xgap=3, ygap=3,
        colorscale=[[0, "#cfe8d6"], [0.5, "#9fd3ae"], [0.6, "#f6d48f"], [0.6666, "#f3b05a"],
                    [0.6667, "#f4a8a0"], [1, "#e0645c"]]))
    rec = plan.recommendation
    shapes = []
    if rec.technique in techs and (rec.gpus or [None])[0] in gpus:
        i, j = techs.index(rec.technique), gpus.index(rec.gpus[0])
        shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": j - 0.5, "x1": j + 0.5, "y0": i - 0.5,
                       "y1": i + 0.5, "line": {"color": "#1f2933", "width": 3}})
    fig.update_layout(layout(
        height=max(260, 90 + 70 * len(techs)), shapes=shapes,
        xaxis={"side": "top", "gridcolor": "rgba(0,0,0,0)", "linecolor": "rgba(0,0,0,0)"},
        yaxis={"autorange": "reversed", "gridcolor": "rgba(0,0,0,0)", "linecolor": "rgba(0,0,0,0)"},
        margin={"t": 40, "b": 16, "l": 56}))
    return _spec(fig)


def gpu_cost_chart(plan: Plan) -> dict[str, Any] | str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = [r for r in _rows(plan) if r.fits]
    if not rows:
        return ("No self-hosted training run fits the GPUs given, so there is no time or cost to compare."
                if _rows(plan) else "No self-hosted training run is planned, so there is no time or cost per GPU.")
    chosen = plan.recommendation.technique
    techs = _order([r.technique for r in rows])
    gpus = list(dict.fromkeys(r.gpu for r in _rows(plan)))
    priced = any(r.usd is not None for r in rows)
    unit, per = time_unit(max(r.hours for r in rows))
    text = {"textposition": "outside", "cliponaxis": False, "textangle": 0, "constraintext": "none",
            "textfont": {"size": 11}}
    fig = make_subplots(rows=2 if priced else 1, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=(f"Training time ({unit})", "Training cost (USD)") if priced
                        else (f"Training time ({unit})",))
    for t in techs:
        by_g = {r.gpu: r for r in rows if r.technique == t}
        xs = [esc(g) for g in gpus if g in by_g]
        rs = [by_g[g] for g in gpus if g in by_g]
        name = esc(label(TECHNIQUES, t)) + (" ★ recommended" if t == chosen else "")
        common = {"name": name, "legendgroup": t, "opacity": 1.0 if t == chosen or chosen is None else 0.45,
                  "marker": {"color": TECHNIQUE_COLORS.get(t, MUTED)}}
        hover = [f"{name} on {esc(r.gpu)}: {duration(r.hours)}, {money(r.usd)}"
                 + (f" ({esc(r.provider)})" if r.provider else "")
                 + f"<br>micro-batch {r.micro_batch}, {count(round(r.tokens_per_s))} tokens/s"
                 for r in rs]
        fig.add_trace(go.Bar(x=xs, y=[round(r.hours / per, 4) for r in rs], customdata=hover,
                             text=[duration(r.hours) for r in rs] if t == chosen else None,
                             hovertemplate="%{customdata}<extra></extra>", **common, **text),
                      row=1, col=1)
        if priced:
            fig.add_trace(go.Bar(x=xs, y=[None if r.usd is None else round(r.usd, 4) for r in rs],
                                 customdata=hover, showlegend=False,
                                 text=[money(r.usd) for r in rs] if t == chosen else None,
                                 hovertemplate="%{customdata}<extra></extra>", **common, **text),
                          row=2, col=1)
    fig.update_layout(layout(barmode="group", height=520 if priced else CHART_HEIGHT, margin={"t": 40, "b": 40},
                              legend={"y": -0.08}))
    fig.update_xaxes(categoryorder="array", categoryarray=[esc(g) for g in gpus])
    fig.update_yaxes(gridcolor="#e4e7eb", zeroline=False, rangemode="tozero")
    fig.update_xaxes(linecolor="#9aa5b1")
    fig.update_annotations(font={"size": 12})
    return _spec(fig)


def cumulative_chart(plan: Plan) -> dict[str, Any] | str:
    import plotly.graph_objects as go

    inf = plan.estimates.inference
    cum = inf.cumulative_usd_12_months if inf else None
    today, after = (cum.today, cum.after) if cum else (None, None)
    if not plan.recommendation.fine_tune:
        return "No fine-tune is recommended, so today's bill does not change because of training."
    if not today or not after:
        return ("The monthly bills cannot be compared: the plan lacks the workload (requests per month and tokens "
                "per request), today's bill or the training cost.")
    months = list(range(len(today)))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=months, y=today, name="today's setup", mode="lines+markers",
                             line={"color": TODAY_COLOR, "width": 3}, marker={"size": 5},
                             hovertemplate="month %{x}: %{y:$,.0f} with today's setup<extra></extra>"))
    fig.add_trace(go.Scatter(x=months, y=after, name="fine-tuned (training included)", mode="lines+markers",
                             line={"color": AFTER_COLOR, "width": 3}, marker={"size": 5},
                             hovertemplate="month %{x}: %{y:$,.0f} fine-tuned, training included<extra></extra>"))
    be = inf.break_even_months if inf else None
    notes, shapes = [], []
    last = months[-1]
    net = today[-1] - after[-1]
    if be is not None and be <= last:
        y = round(today[0] + (today[-1] - today[0]) / last * be, 2) if last else today[0]
        fig.add_trace(go.Scatter(x=[round(be, 4)], y=[y], name="break-even", mode="markers",
                                 marker={"size": 13, "color": "#1f2933", "symbol": "diamond"},
                                 hovertemplate=f"break-even: {months_text(be)}<extra></extra>"))
        shapes.append({"type": "line", "x0": round(be, 4), "x1": round(be, 4), "yref": "paper", "y0": 0, "y1": 1,
                       "line": {"color": "#1f2933", "width": 1, "dash": "dot"}})
        notes.append({"x": round(be, 4), "y": 1, "yref": "paper", "xanchor": "left", "yanchor": "top",
                      "showarrow": False, "text": f"<b>break-even: {months_text(be)}</b>"})
    elif be is not None:
        notes.append({"xref": "paper", "x": 0, "y": 1, "yref": "paper", "xanchor": "left", "yanchor": "top",
                      "showarrow": False, "text": f"<b>break-even after {months_text(be)}</b> (beyond 12 months)"})
    else:
        notes.append({"xref": "paper", "x": 0, "y": 1, "yref": "paper", "xanchor": "left", "yanchor": "top",
                      "showarrow": False, "align": "left",
                      "text": "<b>no break-even</b>: costs more per month"})
    notes.append({"xref": "paper", "x": 1, "yref": "paper", "y": 0.03, "xanchor": "right", "yanchor": "bottom",
                  "showarrow": False, "bgcolor": "rgba(255,255,255,0.85)",
                  "text": f"12 months: saves <b>{money(net)}</b>" if net >= 0
                  else f"12 months: <b>{money(-net)}</b> more than today"})
    fig.update_layout(layout(
        xaxis={"title": {"text": "months from now"}, "dtick": 1, "range": [-0.3, last + 0.3]},
        yaxis={"title": {"text": "cumulative USD"}, "tickprefix": "$", "tickformat": ",.0f", "rangemode": "tozero"},
        annotations=notes, shapes=shapes, hovermode="closest"))
    return _spec(fig)


#: the options chart's groups in legend order: verdict key -> (legend name, colour); the recommended option is
#: drawn in the fine-tuned line's colour, what cannot be done in light grey with hatching
OPTION_GROUPS = {
    "recommended": ("★ recommended", AFTER_COLOR), "beats": ("beats today", "#55a868"),
    "today": ("today's setup", TODAY_COLOR), "loses": ("does not beat today", "#dd8452"),
    "impossible": ("not possible", "#c3cad3"),
}


def _unique(names: list[str]) -> list[str]:
    """The names as distinct axis categories: a repeated name gets ' (2)', ' (3)', ..."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


def options_chart(plan: Plan) -> dict[str, Any] | str:
    """Monthly cost of every priced option (plan order, top to bottom) against today's bill (a dashed line)."""
    import plotly.graph_objects as go

    if not plan.options:
        return "The plan prices no option against today's bill."
    opts = [o for o in plan.options if o.monthly_usd is not None]
    if not opts:
        return ("No option has a monthly cost to draw: the plan lacks the workload (requests per month and tokens "
                "per request) or the prices to cost it.")
    today = today_bill(plan)
    ys = _unique([esc(o.name) + (" ★" if o.chosen else "") for o in opts])
    fig = go.Figure()
    for key, (name, color) in OPTION_GROUPS.items():
        idx = [i for i, o in enumerate(opts) if option_verdict(o)["key"] == key]
        if not idx:
            continue
        muted = key == "impossible"
        hover = [f"<b>{ys[i]}</b><br>{money(opts[i].monthly_usd)}/month"
                 + (f" + {money(opts[i].one_off_usd)} one-off" if opts[i].one_off_usd else "")
                 + f"<br>{esc(option_verdict(opts[i])['text'])}<br>effort: {esc(label(EFFORTS, opts[i].effort))}"
                 for i in idx]
        fig.add_trace(go.Bar(
            orientation="h", y=[ys[i] for i in idx], x=[round(opts[i].monthly_usd, 2) for i in idx], name=name,
            marker={"color": color, "line": {"color": "#1f2933" if key == "recommended" else color,
                                             "width": 2 if key == "recommended" else 0},
                    **({"pattern": {"shape": "/", "fgcolor": "#9aa5b1", "size": 6}} if muted else {})},
            opacity=0.55 if muted else 1.0, customdata=hover, hovertemplate="%{customdata}<extra></extra>",
            text=[f"{money(opts[i].monthly_usd)}/mo" for i in idx], textposition="outside", cliponaxis=False,
            textfont={"size": 11, "color": MUTED if muted else "#1f2933"}))
    top = max([o.monthly_usd for o in opts] + ([today] if today is not None else []))
    shapes, notes = [], []
    if today is not None:
        shapes.append({"type": "line", "x0": round(today, 2), "x1": round(today, 2), "yref": "paper", "y0": 0,
                       "y1": 1, "line": {"color": "#1f2933", "width": 2, "dash": "dash"}})
        notes.append({"x": round(today, 2), "y": 1, "yref": "paper", "yanchor": "bottom", "showarrow": False,
                      "xanchor": "right" if today > top * 0.6 else "left", "bgcolor": "rgba(255,255,255,0.85)",
                      "text": f"<b>today</b>: {money(today)}/mo", "font": {"size": 11}})
    height = max(240, 150 + 34 * len(opts))
    fig.update_layout(layout(
        barmode="overlay", bargap=0.35, height=height, shapes=shapes, annotations=notes,
        xaxis={"title": {"text": "USD per month"}, "tickprefix": "$", "tickformat": ",.0f" if top >= 10 else ",.2f",
               "range": [0, round(top * 1.18, 2) or 1]},
        yaxis={"categoryorder": "array", "categoryarray": ys, "autorange": "reversed",
               "gridcolor": "rgba(0,0,0,0)"},
        margin={"t": 36, "b": 96}, legend={"traceorder": "normal", "y": round(-60 / (height - 36 - 96), 4)}))
    return _spec(fig)
