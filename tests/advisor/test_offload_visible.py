"""CPU offload made visible: the host RAM per machine is a figure of the plan, shown in the terminal, the report and
the configs README; the offload's PCIe copies and host optimizer step are in tokens/s, time and cost. Also the
friction items: money below a cent, and the training-time chart's unit."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import yaml
from click.testing import CliRunner

from advisor.contract.answers import validate_answers
from advisor.contract.plan import as_plan
from advisor.contract.units import gib, host_ram_text, money
from advisor.planner import build_plan, example_path, grad_accum_for
from estimators.memory import estimate_memory
from estimators.setup import TrainingSetup
from estimators.throughput import (
    CPU_ADAM_PARAMS_PER_S,
    OFFLOAD_PCIE_BYTES_PER_S,
    estimate_throughput,
    offload_time,
)

#: a 70B model, full fine-tuning, on 4 x H100: only ZeRO-3 with the optimizer states in CPU RAM fits
OFFLOAD_ANSWERS = {
    "project": "offload", "symptoms": ["domain_language"],
    "data": {"domain_corpus_tokens": 2_000_000_000, "labeled_examples": 5000},
    "model": {"base": "llama-3.1-70b"}, "hardware": {"gpus": ["H100-80GB"], "gpu_count": 4},
}


@pytest.fixture(scope="module")
def offload_plan(catalog):
    return build_plan(validate_answers(OFFLOAD_ANSWERS, "offload", catalog), catalog)


def _setup(t, stage, technique=None):
    """The planner's training setup of ``stage`` of the plan's run (``TrainingPlan`` ``t``)."""
    return TrainingSetup(technique=technique or t.technique, objective=stage.objective, seq_len=stage.seq_len,
                         micro_batch=t.micro_batch, optimizer=t.optimizer, gpu_count=t.gpu_count,
                         sharding=t.sharding, offload=t.offload, lora_r=(t.lora.r if t.lora else 16),
                         lora_alpha=(t.lora.alpha if t.lora else 32))


def test_the_offloaded_run_carries_its_host_ram_per_machine(offload_plan, catalog):
    t = offload_plan.estimates.training
    assert (t.technique, t.sharding, t.offload, t.gpu_count) == ("full", "zero3", "optimizer", 4)
    a = catalog.model("llama-3.1-70b").anatomy
    # DeepSpeed's estimate_zero3_model_states_mem_needs, optimizer offload, one node: cpu_mem = 16 * P (fp32
    # master weights, gradients and Adam m, v) for the whole machine, i.e. each GPU's 16 * P / N summed over N
    assert t.host_ram_bytes_per_machine == 16 * a.params_total
    assert t.host_ram_bytes_per_machine == estimate_memory(a, _setup(t, t.stages[0])).states.host_bytes
    rows = {r.technique: r for r in offload_plan.estimates.fit_matrix}
    assert rows["full"].host_ram_bytes_per_machine == t.host_ram_bytes_per_machine
    assert all(r.host_ram_bytes_per_machine == 0 for r in rows.values() if r.offload == "none")
    assert offload_plan.to_dict()["estimates"]["training"]["host_ram_bytes_per_machine"] == 16 * a.params_total
    ram = host_ram_text(t.host_ram_bytes_per_machine, t.sharding, t.offload, t.gpu_count)
    assert ram == (f"needs {gib(16 * a.params_total)} of CPU RAM per machine for DeepSpeed ZeRO-3 optimizer "
                   f"offload (4 GPUs on one machine)")
    assert ram in offload_plan.summary
    assert any(ram in x and "50% for buffers" in x for x in offload_plan.estimates.assumptions)


def test_runs_without_offload_need_no_host_ram(catalog):
    from advisor.contract.answers import load_answers

    plan = build_plan(load_answers(example_path("ticket-triage"), catalog), catalog)
    assert plan.estimates.training.host_ram_bytes_per_machine == 0
    assert "CPU RAM" not in plan.summary
    assert all(r.host_ram_bytes_per_machine == 0 for r in plan.estimates.fit_matrix)


def test_the_terminal_summary_and_its_fit_table_show_the_host_ram(offload_plan, tmp_path):
    from advisor.cli import main

    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(OFFLOAD_ANSWERS), encoding="utf-8")
    r = CliRunner().invoke(main, ["plan", "--answers", str(path)])
    assert r.exit_code == 0, r.output
    t = offload_plan.estimates.training
    ram = host_ram_text(t.host_ram_bytes_per_machine, t.sharding, t.offload, t.gpu_count)
    training = r.output.split("Training on ", 1)[1].split("\n\n", 1)[0]
    assert f"CPU RAM:  {ram}" in training
    full_row = next(line for line in r.output.splitlines() if line.startswith("  full ") and "micro-batch" in line)
    assert full_row.endswith(f"CPU RAM {gib(t.host_ram_bytes_per_machine)}")
    lora_row = next(line for line in r.output.splitlines() if line.startswith("  lora ") and "micro-batch" in line)
    assert "CPU RAM" not in lora_row


def test_the_report_first_screen_and_the_configs_readme_show_the_host_ram(offload_plan):
    from reports.export import render_all
    from reports.html import render_report

    t = offload_plan.estimates.training
    ram = host_ram_text(t.host_ram_bytes_per_machine, t.sharding, t.offload, t.gpu_count)
    page = render_report(offload_plan)
    first = page.split('<header class="summary" id="summary">', 1)[1].split("</header>", 1)[0]
    assert ram in first
    assert re.search(r'<div class="kpi-label">CPU RAM per machine</div>\s*<div class="kpi-value">'
                     + re.escape(gib(t.host_ram_bytes_per_machine)) + "</div>", first)
    readme = render_all(offload_plan)["README.md"]
    assert ram in readme and "offloads the optimizer states to CPU RAM" in readme


def test_offload_slows_the_run_in_its_hours_and_cost(offload_plan, catalog):
    t = offload_plan.estimates.training
    a, gpu = catalog.model("llama-3.1-70b").anatomy, catalog.gpu(t.gpu)
    offloaded = compute_only = 0.0
    for s in t.stages:
        setup = replace(_setup(t, s), grad_accum=grad_accum_for(s, t.micro_batch, t.gpu_count))
        th = estimate_throughput(a, setup, gpu)
        off = offload_time(a, setup, th.compute_tokens_per_s)
        assert off is not None and off.slowdown > 1 and th.tokens_per_s < th.compute_tokens_per_s
        assert th.tokens_per_s == pytest.approx(off.tokens_per_step / off.step_s)
        assert s.hours == pytest.approx(s.training_tokens * s.epochs / th.tokens_per_s / 3600, rel=1e-5)
        offloaded += s.training_tokens * s.epochs / th.tokens_per_s / 3600
        compute_only += s.training_tokens * s.epochs / th.compute_tokens_per_s / 3600
    assert t.hours == pytest.approx(offloaded, rel=1e-5)
    assert t.hours > compute_only
    assert t.usd == pytest.approx(t.hours * t.gpu_count * t.usd_per_gpu_hour, rel=1e-5)
    # the fit matrix and the chosen run agree
    row = next(r for r in offload_plan.estimates.fit_matrix if (r.technique, r.gpu) == (t.technique, t.gpu))
    assert (row.tokens_per_s, row.hours, row.usd) == (t.tokens_per_s, t.hours, t.usd)
    # the offload model and its constants are stated
    text = " ".join(offload_plan.estimates.assumptions)
    assert f"{OFFLOAD_PCIE_BYTES_PER_S / 1e9:g} GB/s" in text and f"{CPU_ADAM_PARAMS_PER_S / 1e9:g}e9" in text
    assert text.count("x the time without offload") == len(t.stages)


def test_runs_without_offload_keep_the_compute_speed(offload_plan, catalog):
    a, gpu = catalog.model("llama-3.1-70b").anatomy, catalog.gpu("H100-80GB")
    setup = TrainingSetup(technique="lora", gpu_count=4, sharding="zero3", grad_accum=4)
    th = estimate_throughput(a, setup, gpu)
    assert th.offload is None and th.tokens_per_s == th.compute_tokens_per_s


def test_offload_time_counts_the_bytes_over_pcie_and_the_host_adam_step(catalog):
    a = catalog.model("llama-3.1-8b").anatomy
    N, accum = 2, 4
    opt = TrainingSetup(technique="full", gpu_count=N, sharding="zero3", offload="optimizer", grad_accum=accum)
    off = offload_time(a, opt, compute_tokens_per_s=10_000)
    P = a.params_total
    # bf16 gradient partition to the host every micro-batch, updated bf16 weights back once per step
    assert off.pcie_bytes_per_gpu == pytest.approx((accum + 1) * 2 * P / N)
    assert off.pcie_s == pytest.approx(off.pcie_bytes_per_gpu / OFFLOAD_PCIE_BYTES_PER_S)
    assert off.cpu_optimizer_s == pytest.approx(P / CPU_ADAM_PARAMS_PER_S)
    assert off.tokens_per_step == opt.micro_batch * opt.seq_len * accum * N
    assert off.compute_s == pytest.approx(off.tokens_per_step / 10_000)
    # parameters on the host: every forward and backward copies each GPU's share of the weights up
    params = offload_time(a, replace(opt, offload="params"), compute_tokens_per_s=10_000)
    assert params.pcie_bytes_per_gpu == pytest.approx(accum * (2 * P / N + 2 * 2 * P / N))
    # more accumulation amortises the host step over more tokens
    more = offload_time(a, replace(opt, grad_accum=32), compute_tokens_per_s=10_000)
    assert more.slowdown < off.slowdown
    assert offload_time(a, replace(opt, offload="none"), 10_000) is None


@pytest.mark.parametrize(("usd", "text"), [
    (0, "$0"), (0.0, "$0"), (0.004, "under $0.01"), (0.0099, "under $0.01"), (0.01, "$0.01"), (12.345, "$12.35"),
    (1234.5, "$1,234"), (-0.004, "-(under $0.01)"), (-5, "-$5.00"), (None, "unknown"),
])
def test_money_below_a_cent_reads_under_a_cent(usd, text):
    assert money(usd) == text


def test_a_hosted_run_under_a_cent_reads_under_a_cent_in_the_summary():
    from estimators.catalog import Catalog
    from tests.helpers import ACME_CATALOG

    catalog = Catalog.load([ACME_CATALOG])
    tiny = {"project": "tiny", "task": {"kind": "chat", "description": "one example"}, "symptoms": ["style"],
            "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, "data": {"labeled_examples": 1},
            "model": {"open_weights_ok": False, "current_api": "acme-chat"},
            "workload": {"requests_per_month": 10, "input_tokens_per_request": 100, "output_tokens_per_request": 10}}
    plan = build_plan(validate_answers(tiny, "tiny", catalog), catalog)
    h = plan.estimates.hosted_fine_tuning
    assert 0 < h.training_usd < 0.01
    assert ": under $0.01 of training" in plan.summary and "about under" not in plan.summary
    assert "$0.00" not in plan.summary


def _chart_for_hours(plan, hours: float) -> dict:
    from reports.report_charts import gpu_cost_chart

    d = plan.to_dict()
    for r in d["estimates"]["fit_matrix"]:
        r["hours"] = hours
    return gpu_cost_chart(as_plan(d))


@pytest.mark.parametrize(("hours", "unit", "shown"), [(10 / 3600, "seconds", 10.0), (30.0, "hours", 30.0),
                                                       (0.5, "minutes", 30.0), (100.0, "days", 100 / 24)])
def test_the_training_time_axis_takes_its_unit_from_the_largest_value(catalog, hours, unit, shown):
    from advisor.contract.answers import load_answers
    from reports.report_charts import time_unit

    assert time_unit(hours)[0] == unit
    plan = build_plan(load_answers(example_path("ticket-triage"), catalog), catalog)
    spec = _chart_for_hours(plan, hours)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert f"Training time ({unit})" in titles
    bars = [tr for tr in spec["data"] if tr.get("yaxis") in (None, "y")]
    assert bars and all(y == pytest.approx(shown, rel=1e-3) for tr in bars for y in tr["y"])
