"""The HTML report's structure, escaping, determinism and self-containment, on the plans `advise plan` makes."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from advisor.contract.plan import PlanError
from advisor.contract.units import duration, money
from reports.html import context, plotly_cdn, plotly_js, render_report
from tests.helpers import ACME_CATALOG, h100_profile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "advisor" / "examples"
HOSTILE = "<script>alert(1)</script>"
CHART_IDS = ["chart-memory", "chart-fit", "chart-gpu-cost", "chart-cumulative", "chart-options"]
SECTION_ORDER = ["summary", "decision", "estimates", "data", "next", "risks", "serving", "configs", "assumptions"]


def _plan(tmp: Path, name: str, answers: dict[str, Any] | None = None, catalog: Path | None = None) -> dict[str, Any]:
    from advisor.cli import main

    extra = ["--catalog", str(catalog)] if catalog else []
    if answers is None:
        r = CliRunner().invoke(main, [*extra, "plan", "--example", name, "--json"])
    else:
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(answers), encoding="utf-8")
        r = CliRunner().invoke(main, [*extra, "plan", "--answers", str(path), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


_BUILT: dict[str, dict[str, Any]] = {}


def build_plans(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """The three examples plus the shapes that leave pieces out: hosted fine-tuning, no workload, nothing fits.

    Built once per test session and shared by the report's test modules."""
    if not _BUILT:
        _BUILT.update(_build(tmp_path_factory.mktemp("answers")))
    return _BUILT


@pytest.fixture(scope="session")
def plans(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return build_plans(tmp_path_factory)


def _build(tmp: Path) -> dict[str, dict[str, Any]]:
    brand = yaml.safe_load((EXAMPLES / "brand-voice.yaml").read_text(encoding="utf-8"))
    hosted = {**brand, "model": {"current_api": "acme-chat", "open_weights_ok": False}}
    no_workload = {"project": "Small SFT", "task": {"kind": "chat", "description": "Answer in our format"},
                   "symptoms": ["style"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                   "data": {"labeled_examples": 50}, "model": {"open_weights_ok": True}, "hardware": {"gpus": ["L4"]}}
    nothing_fits = {**no_workload, "project": "Too big", "data": {"labeled_examples": 2000, "eval_examples": 50},
                    "model": {"open_weights_ok": True, "base": "llama-3.1-70b"}}
    # the profile fixture (tests/helpers.py h100_profile) measured Llama-3.1-8B: the brand-voice plan on that base
    llama_voice = {**brand, "model": {**brand.get("model", {}), "base": "llama-3.1-8b-instruct"}}
    return {
        "ticket-triage": _plan(tmp, "ticket-triage"), "brand-voice": _plan(tmp, "brand-voice"),
        "llama-voice": _plan(tmp, "llama-voice", llama_voice),
        "policy-qa": _plan(tmp, "policy-qa"), "hosted": _plan(tmp, "hosted", hosted, ACME_CATALOG),
        "no-workload": _plan(tmp, "no-workload", no_workload), "nothing-fits": _plan(tmp, "nothing-fits", nothing_fits),
    }


@pytest.fixture(scope="session")
def pages(plans) -> dict[str, str]:
    return {name: render_report(plan) for name, plan in plans.items()}


class Page(HTMLParser):
    """Elements with ids (in document order), attributes, script and style contents, and visible text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in: tuple[str, dict[str, str]] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.append(a["id"])
        if tag in ("script", "style"):
            self._in = (tag, a)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and self._in[0] == "script":
            self.scripts.append((self._in[1], data))
        elif self._in:
            self.styles.append(data)
        else:
            self.text.append(data)

    def charts_json(self) -> dict[str, Any]:
        return json.loads(next(d for a, d in self.scripts if a.get("id") == "advise-charts"))

    def by_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.tags if cls in a.get("class", "").split()]


# ---- structure --------------------------------------------------------------------------------------------
def test_summary_comes_first_then_every_section_in_order(plans, pages):
    p = Page(pages["ticket-triage"])
    positions = [p.ids.index(s) for s in SECTION_ORDER]
    assert positions == sorted(positions)
    html = pages["ticket-triage"]
    summary_block = html[html.index('id="summary"'):html.index('id="decision"')]
    plan = plans["ticket-triage"]
    assert plan["summary"].replace("'", "&#39;") in summary_block
    inf = plan["estimates"]["inference"]
    t = plan["estimates"]["training"]
    # the figures the plan holds, as the summary must show them (12 months: today's bill against training + after)
    net = 12 * inf["today_usd_per_month"] - (t["usd"] + 12 * inf["after_usd_per_month"])
    for text in (f"{duration(t['hours'] * 3600)} · {money(t['usd'])}", f"{money(inf['after_usd_per_month'])}/mo", "against $2,500/mo today", "under a day",
                 f"saves {money(net)}",
                 "Distil into a small model for cost or latency at volume", "Build an eval set"):
        assert text in summary_block, text
    assert summary_block.count('class="kpi') >= 4


def test_every_chart_has_a_container_and_a_spec(plans, pages):
    for name in ("ticket-triage", "brand-voice"):
        p = Page(pages[name])
        containers = [a["id"] for a in p.by_class("chart")]
        assert containers == CHART_IDS
        specs = p.charts_json()
        assert sorted(specs) == sorted(CHART_IDS)
        for cid, spec in specs.items():
            assert spec["data"], cid
            assert spec["config"]["displaylogo"] is False
            assert "uid" not in json.dumps(spec)  # no random trace ids


def test_memory_chart_stacks_the_parts_against_the_gpu_line(plans):
    plan = plans["brand-voice"]
    spec = context(plan)["charts_json"]["chart-memory"]
    from advisor.contract.plan import Plan
    from reports.report_charts import memory_gpu

    gpu = memory_gpu(Plan.model_validate(plan))  # the recommended GPU
    rows = [r for r in plan["estimates"]["fit_matrix"] if r["gpu"] == gpu]
    names = [t["name"] for t in spec["data"]]
    assert "weights" in names and "optimizer states" in names and "logits and loss" in names
    for i, r in enumerate(rows):  # the stacked parts add up to each technique's total
        total = sum(t["y"][i] for t in spec["data"])
        assert total == pytest.approx(r["memory_bytes"] / 2**30, abs=0.01)
    usable = rows[0]["usable_memory_bytes"] / 2**30
    assert spec["layout"]["shapes"][0]["y0"] == pytest.approx(usable, abs=0.001)
    # each bar says whether it fits
    assert json.dumps(spec["layout"]["annotations"]).count("no fit") == sum(not r["fits"] for r in rows)


def test_fit_matrix_and_cumulative_cost(plans):
    plan = plans["brand-voice"]
    specs = context(plan)["charts_json"]
    heat = specs["chart-fit"]["data"][0]
    assert heat["x"] == ["L40S", "A100-80GB", "H100-80GB"]
    assert heat["y"] == ["Full", "LoRA", "QLoRA", "DoRA"]
    assert len(heat["z"]) == 4 and all(len(row) == 3 for row in heat["z"])
    assert heat["z"][0][0] > 1  # full fine-tuning needs more than the L40S can hold
    cum = specs["chart-cumulative"]
    inf = plan["estimates"]["inference"]["cumulative_usd_12_months"]
    assert cum["data"][0]["y"] == inf["today"] and cum["data"][1]["y"] == inf["after"]
    assert "no break-even" in json.dumps(cum["layout"]["annotations"])
    tt = context(plans["ticket-triage"])["charts_json"]["chart-cumulative"]
    assert [t["name"] for t in tt["data"]][-1] == "break-even"


def test_decision_path_lists_every_rule_once_with_the_branch_taken_highlighted(plans, pages):
    plan = plans["ticket-triage"]
    p = Page(pages["ticket-triage"])
    rule_ids = [i for i in p.ids if i.startswith("rule-")]
    assert sorted(rule_ids) == sorted(f"rule-{r['id']}" for r in plan["rules"])
    fired = {a["id"] for a in p.by_class("rule-fired") if "id" in a}
    assert fired == {f"rule-{r['id']}" for r in plan["rules"] if r["fired"]}
    chosen = [a for a in p.by_class("chip-on")]
    assert len(chosen) >= 5  # fine-tune, distillation, self-hosted, LoRA, merged serving, ...
    html = pages["ticket-triage"]
    silent = sum(1 for r in plan["rules"] if r["stage"] == "approach" and not r["fired"])
    assert silent >= 16 and f"Alternatives considered ({silent})" in html  # each approach rule not fired, with why
    keep = next(r for r in plan["rules"] if r["id"] == "RAG_FOR_KNOWLEDGE")
    assert keep["reason"] in html
    distil = next(r for r in plan["why"] if r["id"] == "DISTILL_FOR_COST")
    assert distil["rationale"] in "".join(p.text)


def test_missing_pieces_are_sentences_never_empty_charts(plans, pages):
    p = Page(pages["policy-qa"])
    assert p.by_class("chart") == [] and p.charts_json() == {}
    assert len(p.by_class("missing")) >= 5
    assert "plotly.js v" not in pages["policy-qa"] and len(pages["policy-qa"]) < 100_000
    assert "Don&#39;t fine-tune yet" in pages["policy-qa"]

    hosted = Page(pages["hosted"])
    assert [a["id"] for a in hosted.by_class("chart")] == ["chart-cumulative", "chart-options"]
    assert "Hosted fine-tuning" in pages["hosted"] and "acme-chat-ft" in pages["hosted"]

    no_workload = Page(pages["no-workload"])
    assert "chart-cumulative" not in [a["id"] for a in no_workload.by_class("chart")]
    assert "give the workload" in pages["no-workload"] and "lacks the workload" in pages["no-workload"]

    nothing = Page(pages["nothing-fits"])
    assert [a["id"] for a in nothing.by_class("chart")] == ["chart-memory", "chart-fit"]
    assert "nothing fits the GPUs given" in pages["nothing-fits"]


def test_data_readiness_shows_the_data_check_when_files_are_given(tmp_path):
    fixtures = ROOT / "tests" / "advisor" / "data_fixtures"
    answers = {"project": "Data", "task": {"kind": "chat", "description": "d"}, "symptoms": ["format"],
               "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
               "data": {"labeled_examples": 500, "train_file": str(fixtures / "duplicates.jsonl"),
                        "eval_file": str(fixtures / "sft_eval.jsonl")},
               "model": {"open_weights_ok": True}, "hardware": {"gpus": ["L4"]}}
    plan = _plan(tmp_path, "data", answers)
    html = render_report(plan)
    data = html[html.index('id="data"'):html.index('id="next"')]
    assert "In the files" in data and "duplicates.jsonl" in data and "sft_eval.jsonl" in data
    assert "too few to fine-tune" in data  # the data check's verdicts, in its words
    assert "repeat an earlier one" in data


def test_configs_are_collapsible_with_copy_buttons_and_run_commands(plans):
    configs = {"trl/2-dpo.yaml": "# Run from the export folder: trl dpo --config trl/2-dpo.yaml\nbeta: 0.1\n",
               "axolotl/1-sft.yml": "# Run from the export folder: axolotl train axolotl/1-sft.yml\nbase_model: x\n",
               "README.md": "# Steps\nRead me.\n"}
    html = render_report(plans["brand-voice"], configs=configs)
    p = Page(html)
    blocks = p.by_class("config")
    assert len(blocks) == 3
    codes = [a["id"] for t, a in p.tags if t == "code" and a.get("id", "").startswith("config-")]
    assert codes == ["config-0", "config-1-cmd", "config-1", "config-2-cmd", "config-2"]  # sorted by path
    for btn in p.by_class("copy"):
        assert btn["data-copy"] in p.ids
    assert ">axolotl train axolotl/1-sft.yml</code>" in html and ">trl dpo --config trl/2-dpo.yaml</code>" in html
    assert "Copy command" in html and "Copy file" in html
    assert "No training configs are attached" in render_report(plans["brand-voice"])


def test_print_and_phone_styles(plans):
    html_text = render_report(plans["policy-qa"])
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html_text
    css = Page(html_text).styles[0]
    assert "@media print" in css and "break-inside: avoid" in css and "@media (max-width: 520px)" in css


# ---- escaping ---------------------------------------------------------------------------------------------
def _hostile(plan: dict[str, Any]) -> dict[str, Any]:
    plan = json.loads(json.dumps(plan))
    plan["project"] = HOSTILE
    plan["summary"] = f"Fine-tune {HOSTILE}"
    plan["answers"]["project"] = HOSTILE
    plan["answers"]["task"]["description"] = f"</script><img src=x onerror=alert(2)> {HOSTILE}"
    plan["recommendation"]["gpus"] = [HOSTILE]
    for row in plan["estimates"]["fit_matrix"]:
        row["gpu"] = f"{row['gpu']}{HOSTILE}"
    plan["estimates"]["training"]["gpu"] = HOSTILE
    plan["rules"][0]["name"] = HOSTILE
    plan["why"][0]["rationale"] = f"`{HOSTILE}` and {HOSTILE}"
    return plan


def test_every_plan_string_is_escaped(plans):
    plan = _hostile(plans["ticket-triage"])
    configs = {f"{HOSTILE}.yaml": f"# run: {HOSTILE}\n{HOSTILE}\n"}
    html = render_report(plan, configs=configs)
    assert HOSTILE not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    p = Page(html)
    assert p.ids.count("summary") == 1
    # exactly our own script blocks: config, plotly.js, the chart data and the page script
    assert html.count("<script") == 4 and html.count("</script>") == 4
    assert [a.get("type") for a, _ in p.scripts][-2] == "application/json"
    assert HOSTILE in "".join(p.text)  # shown as text
    specs = p.charts_json()  # the JSON block parses, and labels reach plotly escaped for its pseudo-HTML
    assert "A100-80GB&lt;script&gt;alert(1)&lt;/script&gt;" in specs["chart-fit"]["data"][0]["x"]
    block = next(d for a, d in p.scripts if a.get("id") == "advise-charts")
    assert "<" not in block and ">" not in block and "&" not in block


def test_cli_renders_a_hostile_project_name_as_text(plans, tmp_path):
    from advisor.cli import main

    plan = dict(plans["policy-qa"], project=HOSTILE)
    src = tmp_path / "plan.json"
    src.write_text(json.dumps(plan), encoding="utf-8")
    out = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["report", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; · advise report</title>" in text and HOSTILE not in text


# ---- determinism and self-containment -----------------------------------------------------------------------
def _reorder(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _reorder(x[k]) for k in reversed(list(x))}
    if isinstance(x, list):
        return [_reorder(v) for v in x]
    return x


def test_same_plan_same_bytes(plans, pages):
    plan = plans["brand-voice"]
    configs = {"b.yaml": "# run: b\n", "a.yaml": "# run: a\n"}
    first = render_report(plan, configs=configs)
    assert render_report(json.loads(json.dumps(plan)), configs=dict(reversed(configs.items()))) == first
    assert render_report(_reorder(plan), configs=configs) == first  # key order does not matter
    assert render_report(plan, configs=configs, cdn=True) == render_report(plan, configs=configs, cdn=True)
    outside_plotly = first.replace(plotly_js(), "")
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", outside_plotly)
    assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:", outside_plotly)  # no timestamps


def test_cdn_mode_is_small_and_pins_the_plotly_version(plans, pages):
    from plotly.offline import get_plotlyjs_version

    inline = pages["brand-voice"]
    cdn = render_report(plans["brand-voice"], cdn=True)
    assert len(cdn) < 150_000 and len(inline) > 4_000_000
    srcs = [a for t, a in Page(cdn).tags if t == "script" and "src" in a]
    assert srcs == [{"src": f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js",
                     "integrity": plotly_cdn()["integrity"], "crossorigin": "anonymous", "charset": "utf-8"}]
    assert plotly_js() in inline and plotly_js() not in cdn
    assert not [a for t, a in Page(inline).tags if t == "script" and "src" in a]


URL_ATTRS = ("src", "href", "action", "formaction", "srcset", "poster", "data", "xlink:href", "background", "ping")


def test_default_mode_asks_no_other_host(pages):
    """Nothing that loads: no URL in an attribute, no url()/@import in CSS, no http(s) in our scripts.

    URLs may appear only as inert text (sources cited in a rationale) and inside the inlined plotly.js bundle
    (its map-tile and topojson defaults, unused here: the browser test sees no request at all)."""
    for name, html in pages.items():
        p = Page(html)
        for tag, attrs in p.tags:
            for k in URL_ATTRS:
                v = attrs.get(k)
                if v is not None:
                    assert v.startswith("#") or not re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", v, re.IGNORECASE), (name, tag, k, v)
        for css in p.styles:
            assert "url(" not in css and "@import" not in css
        for attrs, body in p.scripts:
            if body == plotly_js():
                continue
            assert not re.search(r"https?://", body), (name, body[:200])
        assert not re.search(r"(?i)<(link|iframe|img|object|embed|base)\b", html.replace(plotly_js(), ""))


def test_reports_import_only_the_contract_of_advisor_and_no_torch(plans, tmp_path):
    from tests.helpers import HEAVY, assert_imports_none_of

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plans["ticket-triage"]), encoding="utf-8")
    mods = assert_imports_none_of("import json, sys; from reports.html import render_report; "
                                  "render_report(json.load(open(sys.argv[1])))", HEAVY, str(plan_file))
    assert {m for m in mods if m.startswith("advisor.")} <= {m for m in mods if m.startswith("advisor.contract")}


def test_not_a_plan_is_one_clear_error(plans):
    with pytest.raises(PlanError, match=r"^plan: advise_version: Field required \(and \d+ more\)"):
        render_report({"project": "x"})
    with pytest.raises(PlanError, match="must be a JSON object"):
        render_report([1, 2])  # type: ignore[arg-type]
    no_bounds = json.loads(json.dumps(plans["brand-voice"]))
    no_bounds["thresholds"] = {}
    with pytest.raises(PlanError, match=r"^plan: thresholds: lacks eval_min_examples, eval_max_examples"):
        render_report(no_bounds)
    foreign = json.loads(json.dumps(plans["brand-voice"]))
    foreign["estimates"]["fit_matrix"][0]["technique"] = "magic"
    with pytest.raises(PlanError, match=r"^plan: estimates.fit_matrix.0.technique: Input should be 'full'") as e:
        render_report(foreign)
    assert "\n" not in str(e.value)


# ---- measured against estimated -----------------------------------------------------------------------------
def test_profile_adds_measured_against_estimated(plans):
    plan = plans["llama-voice"]
    ctx = context(plan, profile=h100_profile())
    rows = ctx["measured"]["rows"]
    assert [r["label"] for r in rows] == ["Full fine-tuning 2048×1", "LoRA 1280×8", "LoRA 2048×1", "QLoRA 2048×1"]
    assert [r["in_plan"] for r in rows] == ["", "", "", ""]  # this plan was made without the profile
    h100_lora = next(r for r in plan["estimates"]["fit_matrix"] if (r["technique"], r["gpu"]) == ("lora", "H100-80GB"))
    assert rows[1]["estimated_bytes"] == h100_lora["memory_bytes"]  # the plan's own setup: the same estimate
    assert rows[0]["measured"] == "OOM"
    spec = ctx["charts_json"]["chart-profile"]
    assert [t["name"] for t in spec["data"]] == ["estimated", "estimated", "measured", "measured"]
    assert len(spec["data"][0]["x"]) == 3  # the OOM entry and the 4-layer entry are not drawn
    html = render_report(plan, profile=h100_profile())
    assert 'id="measured"' in html and 'id="chart-profile"' in html
    assert "Measured against estimated" in html

    cpu = context(plan, profile=h100_profile("cpu"))
    assert "chart-profile" not in cpu["charts_json"] and "measured on a CPU" in cpu["measured"]["chart"]["missing"]


def test_profile_estimates_use_the_plans_catalog(plans, tmp_path):
    """A catalog that changes the GPU changes the estimate of speed; a model it lacks is measured only."""
    from estimators.catalog import Catalog

    mine = tmp_path / "mine.yaml"
    mine.write_text("gpus:\n  - name: H100-80GB\n    bf16_dense_tflops: 1979\n")
    base = context(plans["brand-voice"], profile=h100_profile())["measured"]["rows"]
    faster = context(plans["brand-voice"], profile=h100_profile(), catalog=Catalog.load([mine]))["measured"]["rows"]
    # twice the peak: faster, but less than twice (the step's bandwidth- and launch-bound ops do not change)
    assert base[2]["estimated_tps"] < faster[2]["estimated_tps"] < 2 * base[2]["estimated_tps"]
    assert faster[2]["estimated_bytes"] == base[2]["estimated_bytes"]
    other = h100_profile().model_copy(update={"model": h100_profile().model.model_copy(update={"name": "mine",
                                                                                        "hub_id": None})})
    unknown = context(plans["brand-voice"], profile=other)["measured"]
    assert all(r["estimated"] == "-" for r in unknown["rows"]) and "not in the catalog" in unknown["estimated_with"]


def test_profile_rows_the_plan_used_are_marked(tmp_path):
    """Planned with the profile, the row the planner took its figures from says so."""
    from advisor.contract.answers import load_answers
    from advisor.planner import build_plan, example_path
    from estimators.catalog import Catalog
    from tests.helpers import profile_of_plan

    catalog = Catalog.load()
    answers = load_answers(example_path("ticket-triage"), catalog)
    prof = profile_of_plan(build_plan(answers, catalog), [(16, False, None, None), (8, True, 30 << 30, 20_000.0)])
    plan = build_plan(answers, catalog, profile=prof)
    rows = context(plan, profile=prof)["measured"]["rows"]
    assert [(r["label"], r["in_plan"]) for r in rows] == [("LoRA 768×16", ""), ("LoRA 768×8", "used")]
