"""The report's options section: every path priced against today's bill, as a lead sentence, a chart and a table."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import pytest

from advisor.contract.answers import load_answers, validate_answers
from advisor.contract.plan import Plan
from advisor.contract.units import money
from advisor.planner import build_plan
from reports.html import context, render_report
from reports.report_charts import OPTION_GROUPS, options_chart
from reports.report_view import option_verdict
from tests.reports.test_report import Page

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "advisor" / "examples"
AS_OF = dt.date(2026, 12, 1)  # retirement dates are compared with it: the verdicts do not move with the calendar
HOSTILE = "<script>alert(1)</script>"


def _example(name: str, catalog: Any) -> Plan:
    return build_plan(load_answers(EXAMPLES / f"{name}.yaml", catalog), catalog, as_of=AS_OF)


def _answers(current_api: str, requests: int) -> dict[str, Any]:
    return {"project": "Small bill", "task": {"kind": "classification", "description": "Route tickets"},
            "symptoms": ["cost"], "tried": {"prompting": "fixed", "few_shot": "fixed"},
            "data": {"labeled_examples": 2000, "eval_examples": 100},
            "model": {"current_api": current_api, "open_weights_ok": True}, "hardware": {"gpus": ["A100-80GB"]},
            "workload": {"requests_per_month": requests, "input_tokens_per_request": 500,
                         "output_tokens_per_request": 25}}


@pytest.fixture(scope="module")
def triage(catalog) -> Plan:
    return _example("ticket-triage", catalog)


@pytest.fixture(scope="module")
def cheap(catalog) -> Plan:
    """Today's model is already the vendor's cheapest and the volume small: nothing pays for itself."""
    return build_plan(validate_answers(_answers("claude-haiku-5.5", 10_000), "t", catalog), catalog, as_of=AS_OF)


def _section(page: str) -> str:
    """The options section's HTML (to its table's end, or to the section's end without one)."""
    start = page.index('id="options"')
    end = page.find("</table>", start)
    return page[start:end if end > 0 else page.index("</section>", start)]


def _text(page: str) -> str:
    return html.unescape(_section(page))


def test_the_section_sits_with_the_money_charts_and_lists_every_option(triage):
    page = render_report(triage)
    assert triage.options
    p = Page(page)
    assert p.ids.index("chart-cumulative") < p.ids.index("options") < p.ids.index("data")
    assert '<a href="#options">Options</a>' in page
    section = _section(page)
    rows = section.count('<tr class="option ')
    assert rows == len(triage.options)
    for o in triage.options:
        assert o.name in section, o.name
        assert (money(o.monthly_usd) if o.monthly_usd is not None else "not priced") in section
    chosen = next(o for o in triage.options if o.chosen)
    assert section.count("badge-option-recommended") == 1
    assert section.index("badge-option-recommended") > section.index(f"<strong>{chosen.name}</strong>")
    for o in triage.options:  # each verdict as the plan decides it
        assert option_verdict(o)["text"] in html.unescape(section)


def test_the_lead_names_the_recommendation_and_counts_what_beats_today(triage):
    lead = str(context(triage)["options"]["lead"])
    chosen = next(o for o in triage.options if o.chosen)
    today = next(o for o in triage.options if o.approach == "current").monthly_usd
    priced = [o for o in triage.options if o.approach != "current" and o.monthly_usd is not None]
    beats = [o for o in priced if o.beats_today]
    assert f"<strong>{chosen.name}</strong>" in lead
    assert f"{money(chosen.monthly_usd)}/month against {money(today)} today" in lead
    assert f"({money(today - chosen.monthly_usd)} less)" in lead
    assert f"{len(beats)} of the {len(priced)} priced options beat today's bill" in lead


def test_the_chart_has_one_bar_per_priced_option_and_highlights_the_chosen_one(triage):
    spec = context(triage)["charts_json"]["chart-options"]
    priced = [o for o in triage.options if o.monthly_usd is not None]
    bars = [(y, x) for t in spec["data"] for y, x in zip(t["y"], t["x"])]
    assert len(bars) == len(priced)
    assert all(t["type"] == "bar" and t["orientation"] == "h" for t in spec["data"])
    # plan order, top to bottom, each bar at the option's monthly cost
    assert spec["layout"]["yaxis"]["categoryarray"] == [o.name + (" ★" if o.chosen else "") for o in priced]
    assert spec["layout"]["yaxis"]["autorange"] == "reversed"
    by_label = dict(bars)
    for o in priced:
        assert by_label[o.name + (" ★" if o.chosen else "")] == pytest.approx(o.monthly_usd, abs=0.01)
    groups = {t["name"]: t for t in spec["data"]}
    chosen = next(o for o in priced if o.chosen)
    top = groups[OPTION_GROUPS["recommended"][0]]
    assert top["y"] == [f"{chosen.name} ★"] and top["marker"]["color"] == OPTION_GROUPS["recommended"][1]
    assert top["marker"]["line"]["width"] > 0
    for o in priced:  # infeasible options are drawn, muted and hatched
        if not o.feasible:
            muted = groups[OPTION_GROUPS["impossible"][0]]
            assert o.name in muted["y"] and muted["opacity"] < 1 and muted["marker"]["pattern"]["shape"]
    today = next(o for o in triage.options if o.approach == "current").monthly_usd
    line = spec["layout"]["shapes"][0]
    assert line["x0"] == line["x1"] == pytest.approx(today, abs=0.01)
    assert "today" in spec["layout"]["annotations"][0]["text"]
    assert spec["layout"]["xaxis"]["tickprefix"] == "$"
    assert "uid" not in json.dumps(spec)
    assert options_chart(triage) == options_chart(triage)  # deterministic


def test_a_plan_with_no_priced_option_has_no_chart_and_says_why(catalog):
    plan = _example("policy-qa", catalog)
    assert plan.options and all(o.monthly_usd is None for o in plan.options)
    built = options_chart(plan)
    assert isinstance(built, str) and "monthly cost" in built
    page = render_report(plan)
    p = Page(page)
    assert "chart-options" not in p.ids and "chart-options" not in p.charts_json()
    section = _text(page)
    assert built in section
    for o in plan.options:
        assert o.name in section
    assert "Today's bill is not known" in section


def test_a_plan_where_nothing_beats_today_says_so(cheap):
    assert cheap.options and not any(o.beats_today for o in cheap.options)
    assert any(o.monthly_usd is not None and o.approach != "current" for o in cheap.options)
    lead = str(context(cheap)["options"]["lead"])
    assert "No option beats today's bill" in lead
    section = _text(render_report(cheap))
    assert "No option beats today's bill" in section
    assert "badge-option-beats" not in section and ">beats today<" not in section


def test_no_options_at_all_is_a_sentence(triage):
    plan = triage.model_copy(update={"options": []})
    assert isinstance(options_chart(plan), str)
    page = render_report(plan)
    assert "The plan prices no option against today's bill." in _text(page)
    assert "chart-options" not in Page(page).charts_json()


def test_plan_text_in_the_options_is_escaped(triage):
    o = triage.options[0].model_copy(update={"name": HOSTILE, "why_not": HOSTILE, "assumptions": [HOSTILE],
                                             "effort_means": HOSTILE, "source": HOSTILE, "chosen": True})
    others = [x.model_copy(update={"chosen": False}) for x in triage.options[1:]]
    page = render_report(triage.model_copy(update={"options": [o, *others]}))
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _section(page)
    spec = Page(page).charts_json()["chart-options"]
    assert "&lt;script&gt;" in json.dumps(spec["layout"]["yaxis"]["categoryarray"])
