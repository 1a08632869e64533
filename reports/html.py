"""The HTML report: one self-contained page a manager can open and an engineer can act on.

``render_report(plan, profile=None, configs=None, cdn=False, catalog=None) -> str`` renders the typed plan
(``advisor.contract.plan``: a ``Plan`` or the JSON of one, validated first), optionally a profile
(``profiler.schema.Profile``, compared with the estimators on the plan's catalog) and the generated training
configs (relative path -> text). CSS, the page's script and plotly.js are inlined
by default, so the file opens offline and by e-mail and asks no other host for anything; ``cdn=True``
loads plotly.js from its CDN (pinned by version and an SRI hash) for a small file.

Same inputs, same bytes: no timestamps, fixed chart ids, JSON with sorted keys. Every string from the
plan is escaped: Jinja2 autoescapes the page, chart data sits in a JSON ``<script>`` block with ``<``,
``>`` and ``&`` written as ``\\u003c``-style escapes, and chart labels are escaped for plotly's pseudo-HTML.
Of ``advisor`` it imports only the contract.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.contract.errors import AdviseError
from advisor.contract.plan import Plan, as_plan
from reports import report_charts as charts
from reports import report_view as view

if TYPE_CHECKING:
    from estimators.catalog import Catalog
    from profiler.schema import Profile

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "report"


class ReportError(AdviseError, ValueError):
    """The plan (or profile) cannot be rendered; the CLI shows it as one ``Error:`` line."""


@functools.lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def script_json(data: Any) -> str:
    """JSON safe inside ``<script>``: sorted keys, and no ``<``, ``>`` or ``&`` that could end the block."""
    from plotly.utils import PlotlyJSONEncoder

    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=PlotlyJSONEncoder)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower() or "<!--" in js:  # pragma: no cover - would break inlining
        raise ReportError("the installed plotly.js cannot be inlined in a <script> block")
    return js


@functools.lru_cache(maxsize=1)
def plotly_cdn() -> dict[str, str]:
    """The CDN address of the same plotly.js version, with its SRI hash (so the page runs exactly that file)."""
    from plotly.offline import get_plotlyjs_version

    digest = base64.b64encode(hashlib.sha384(plotly_js().encode("utf-8")).digest()).decode("ascii")
    return {"src": f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js", "integrity": f"sha384-{digest}"}


def context(plan: Plan | Mapping[str, Any], profile: Profile | None = None,
            configs: Mapping[str, str] | None = None, catalog: Catalog | None = None) -> dict[str, Any]:
    """Everything the template shows, as prepared values (the template only loops and branches)."""
    plan = as_plan(plan)
    specs: dict[str, Any] = {}
    chart_list = []

    def chart(cid: str, title: str, caption: str, built: dict[str, Any] | str) -> dict[str, Any]:
        item = {"id": cid, "title": title, "caption": caption, "missing": built if isinstance(built, str) else "",
                "height": built["layout"].get("height", charts.CHART_HEIGHT) if isinstance(built, dict) else 0}
        if isinstance(built, dict):
            specs[cid] = built
        chart_list.append(item)
        return item

    gpu = charts.memory_gpu(plan)
    chart("chart-memory", "Memory per GPU, part by part",
          f"Peak memory of one training step for each technique on {gpu}, at the largest micro-batch that fits, "
          f"against the memory the GPU can use (dashed line). ★ marks the recommendation." if gpu else "",
          charts.memory_chart(plan))
    chart("chart-fit", "Which technique fits which GPU",
          "Share of each GPU's usable memory a training step needs, with the micro-batch, time and cost; "
          "red cells do not fit. The framed cell is the recommendation.", charts.fit_chart(plan))
    chart("chart-gpu-cost", "Training time and cost per GPU",
          "Every technique that fits, on every GPU considered, at the cheapest listed hourly price.",
          charts.gpu_cost_chart(plan))
    chart("chart-cumulative", "Cost over the next 12 months",
          "Cumulative cost of today's setup against the fine-tuned model (training included); where the lines "
          "cross, training has paid for itself.", charts.cumulative_chart(plan))
    options = view.options(plan)
    options["chart"] = chart(
        "chart-options", "Monthly cost of each option",
        "Every priced option's monthly cost against today's bill (dashed line); ★ marks the recommendation, "
        "hatched bars are not possible for this team.", charts.options_chart(plan))

    measured = None
    if profile is not None:
        from reports import report_profile

        measured = report_profile.comparison(plan, profile, catalog)
        measured["chart"] = chart(
            "chart-profile", "Measured against estimated",
            "Peak memory and speed measured on your device, against advise's estimate for the same setup.",
            report_profile.profile_chart(measured))

    ft = view.is_fine_tune(plan)
    reasons = view.reasons(plan)
    return {
        "project": plan.project,
        "task": plan.answers.task.description,
        "summary": plan.summary,
        "verdict": view.verdict(plan),
        "fine_tune": ft,
        "kpis": view.kpis(plan),
        "no_fine_tune_next": view.instead(plan),
        "reasons_top": reasons[: view.TOP_REASONS],
        "reasons_more": len(reasons) - view.TOP_REASONS if len(reasons) > view.TOP_REASONS else 0,
        "prerequisites": view.prerequisites(plan),
        "risks_short": [w.name for w in plan.warnings],
        "flow": view.decision_flow(plan),
        "stages": view.decision_stages(plan),
        "charts": [c for c in chart_list if c["id"] not in ("chart-profile", "chart-options")],
        "options": options,
        "training": view.training(plan),
        "hosted": view.hosted(plan),
        "self_hosted_planned": bool(plan.estimates.fit_matrix),
        "data": view.data_readiness(plan),
        "eval_plan": view.eval_plan(plan),
        "next_steps": view.next_steps(plan),
        "risks": view.risks(plan),
        "serving": view.serving(plan),
        "configs": view.configs(configs),
        "measured": measured,
        "assumptions": view.assumptions(plan),
        "price_dates": view.price_dates(plan),
        "catalog_dates": view.catalog_dates(plan),
        "version": plan.advise_version,
        "charts_json": specs,
    }


def render_report(plan: Plan | Mapping[str, Any], profile: Profile | None = None,
                  configs: Mapping[str, str] | None = None, cdn: bool = False, catalog: Catalog | None = None) -> str:
    """The report as one HTML document (str); byte-identical for the same arguments. ``catalog`` (default: the
    built-in one) estimates the profile's entries; give the catalog the plan was made with."""
    from markupsafe import Markup

    ctx = context(plan, profile, configs, catalog)
    ctx["charts_json"] = Markup(script_json(ctx["charts_json"]))
    if ctx["charts_json"] == "{}":
        ctx["plotly"] = None
    elif cdn:
        ctx["plotly"] = {"cdn": plotly_cdn(), "inline": None}
    else:
        ctx["plotly"] = {"cdn": None, "inline": Markup(plotly_js())}
    return _env().get_template("report.html.j2").render(**ctx)
