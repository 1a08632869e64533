"""The plan's options: every path priced against today's bill, from the price data, with the plan's own chosen."""

from __future__ import annotations

import datetime

import pytest

from advisor.contract.answers import load_answers, validate_answers
from advisor.planner import build_plan, example_path
from estimators.cost import (
    MINUTES_PER_MONTH,
    Workload,
    api_monthly_cost,
    cached_api_cost,
)

AS_OF = datetime.date(2026, 12, 1)


def plan_of(catalog, answers):
    return build_plan(validate_answers({"project": "p", **answers}, "t", catalog), catalog, as_of=AS_OF)


def by_kind(plan, kind):
    return [o for o in plan.options if o.approach == kind]


def test_every_option_has_the_contract_fields_and_one_is_chosen(catalog):
    plan = plan_of(catalog, {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                             "data": {"labeled_examples": 3000}, "model": {"current_api": "claude-haiku-4.5"},
                             "workload": {"requests_per_month": 200_000, "input_tokens_per_request": 800,
                                          "output_tokens_per_request": 200}})
    kinds = {o.approach for o in plan.options}
    assert {"current", "prompt_caching", "batch_api", "open_model_hosted", "self_hosted"} <= kinds
    assert sum(o.chosen for o in plan.options) == 1
    chosen = next(o for o in plan.options if o.chosen)
    assert chosen.approach == "self_hosted" and plan.recommendation.approach == "fine_tune"
    for o in plan.options:
        assert o.feasible == (o.why_not is None)
        assert o.effort_means
        if o.beats_today:
            assert o.feasible and o.monthly_saving_usd > 0


def test_a_tiny_bill_is_beaten_by_no_option(catalog):
    """A $6/month format problem: nothing pays back within the payback horizon, and the plan says so."""
    api = catalog.api("gpt-4.1-nano")
    w = Workload(60_000, 600, 100)
    today = api_monthly_cost(api, w)
    assert 3 < today < 10
    plan = plan_of(catalog, {"symptoms": ["format"], "tried": {"few_shot": "failed", "prompting": "partly"},
                             "data": {"labeled_examples": 2000}, "model": {"current_api": "gpt-4.1-nano"},
                             "workload": {"requests_per_month": 60_000, "input_tokens_per_request": 600,
                                          "output_tokens_per_request": 100}})
    current = by_kind(plan, "current")[0]
    assert current.monthly_usd == pytest.approx(today, rel=1e-3)
    assert not any(o.beats_today for o in plan.options)
    self_hosted = by_kind(plan, "self_hosted")[0]
    assert self_hosted.monthly_usd > today


def test_a_large_static_prompt_prices_prompt_caching_and_it_is_chosen_over_distillation(catalog):
    """12,000 static tokens of 13,000: caching cuts the Haiku bill below the distillation threshold."""
    api = catalog.api("claude-haiku-4.5")
    assert api.caches, "the price data records Haiku 4.5's cache prices"
    answers = {"symptoms": ["cost"], "tried": {"prompting": "fixed"}, "data": {"labeled_examples": 5000},
               "model": {"current_api": "claude-haiku-4.5"},
               "workload": {"requests_per_month": 200_000, "input_tokens_per_request": 13_000,
                            "output_tokens_per_request": 150, "static_prompt_tokens": 12_000}}
    plan = plan_of(catalog, answers)
    w = Workload(200_000, 13_000, 150)
    caching = by_kind(plan, "prompt_caching")[0]
    # by hand from the price row: writes once per cache lifetime, reads the rest
    ttl = api.cache_ttl_minutes or 5
    writes = min(200_000, MINUTES_PER_MONTH / ttl)
    want = (12_000 * (writes * api.usd_per_million_cache_write_tokens
                      + (200_000 - writes) * api.usd_per_million_cache_read_tokens)
            + 200_000 * 1000 * api.usd_per_million_input_tokens
            + 200_000 * 150 * api.usd_per_million_output_tokens) / 1e6
    assert caching.monthly_usd == pytest.approx(want, rel=1e-3)
    assert caching.monthly_usd == pytest.approx(cached_api_cost(api, w, 12_000).usd_per_month, rel=1e-3)
    assert caching.feasible and caching.beats_today and caching.one_off_usd == 0
    today = api_monthly_cost(api, w)
    assert today >= 1000 > caching.monthly_usd  # the bill was over the distillation threshold; caching is under it
    assert plan.recommendation.approach == "prompt_caching"
    assert caching.chosen
    assert "prompt caching" in plan.summary
    rules = {r.id: r.fired for r in plan.rules}
    assert rules["DISTILL_FOR_COST"] is False and rules["PROMPT_CACHING_FOR_COST"] is True
    assert rules["COST_AT_LOW_VOLUME"] is False  # a named lever, not "cut the bill without training"


def test_the_batch_api_needs_work_that_can_wait(catalog):
    answers = {"symptoms": ["cost"], "model": {"current_api": "claude-haiku-4.5"},
               "workload": {"requests_per_month": 50_000, "input_tokens_per_request": 1000,
                            "output_tokens_per_request": 200}}
    api = catalog.api("claude-haiku-4.5")
    later = plan_of(catalog, {**answers, "workload": {**answers["workload"], "batch_ok": True}})
    now = plan_of(catalog, answers)
    b_later, b_now = by_kind(later, "batch_api")[0], by_kind(now, "batch_api")[0]
    want = api_monthly_cost(api, Workload(50_000, 1000, 200)) * (1 - api.batch_discount)
    assert b_later.monthly_usd == pytest.approx(want, rel=1e-3) == b_now.monthly_usd
    assert b_later.feasible and not b_now.feasible and "batch_ok" in b_now.why_not


def test_cheaper_tiers_are_the_same_vendors_and_retiring_ones_are_not_planned_on(catalog):
    plan = plan_of(catalog, {"symptoms": ["cost"], "model": {"current_api": "gpt-4.1"},
                             "workload": {"requests_per_month": 10_000, "input_tokens_per_request": 1000,
                                          "output_tokens_per_request": 200}})
    tiers = by_kind(plan, "cheaper_tier")
    assert tiers and all(o.provider == "openai" for o in tiers)
    for o in tiers:
        row = catalog.api(o.model)
        soon = row.retires is not None and (datetime.date.fromisoformat(row.retires) - AS_OF).days < 6 * 30.4375
        assert o.feasible == (row.open_to_new_users and not soon), o.name
        assert "eval set" in o.assumptions[0]
    assert {r.id: r.fired for r in plan.rules}["CURRENT_API_RETIRING"] is True


def test_closed_weights_never_moves_to_another_vendor_or_a_closed_offer(catalog):
    plan = plan_of(catalog, {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                             "data": {"labeled_examples": 2000},
                             "model": {"current_api": "gpt-4.1-mini", "open_weights_ok": False},
                             "workload": {"requests_per_month": 10_000, "input_tokens_per_request": 800,
                                          "output_tokens_per_request": 200}})
    vendor = by_kind(plan, "vendor_fine_tune")
    assert vendor and all(o.provider == "openai" for o in vendor)
    for o in vendor:
        offer = next(f for f in catalog.finetuning if f.name == o.name.split(" ")[0])
        if not offer.open_to_new_users:
            assert not o.feasible and "closed to new users" in o.why_not
    assert not any(o.chosen and not o.feasible for o in plan.options)
    for kind in ("open_model_hosted", "self_hosted"):
        assert all(not o.feasible and "open_weights_ok" in o.why_not for o in by_kind(plan, kind))


def test_an_unknown_api_is_priced_from_the_answers(catalog):
    answers = {"symptoms": ["cost"], "model": {"current_api": "acme-llm-9",
                                               "current_api_price": {"input_usd_per_million": 2.0,
                                                                     "output_usd_per_million": 6.0}},
               "workload": {"requests_per_month": 100_000, "input_tokens_per_request": 1000,
                            "output_tokens_per_request": 100}}
    plan = plan_of(catalog, answers)
    # 100,000 x (1,000 x $2 + 100 x $6) / 1e6 = $260
    assert by_kind(plan, "current")[0].monthly_usd == pytest.approx(260.0)
    assert plan.estimates.inference is None or plan.estimates.inference.today_usd_per_month == pytest.approx(260.0)
    # without a price or a bill the name must be one the price data knows
    from advisor.contract.answers import AnswersError

    with pytest.raises(AnswersError, match="current_api_price"):
        validate_answers({"project": "p", "symptoms": ["cost"], "model": {"current_api": "acme-llm-9"}}, "t",
                         catalog)
    assert validate_answers({"project": "p", "symptoms": ["cost"], "model": {"current_api": "acme-llm-9"},
                             "workload": {"current_monthly_cost_usd": 300}}, "t", catalog)


def test_a_stated_bill_far_from_list_price_is_questioned_with_both_figures(catalog):
    answers = {"symptoms": ["format"], "model": {"current_api": "claude-haiku-4.5"},
               "workload": {"requests_per_month": 100_000, "input_tokens_per_request": 1000,
                            "output_tokens_per_request": 200, "current_monthly_cost_usd": 900}}
    plan = plan_of(catalog, answers)
    assert "BILL_FAR_FROM_LIST_PRICE" in {w.id for w in plan.warnings}
    # list: 100,000 x (1,000 x $1 + 200 x $5) / 1e6 = $200; stated $900 = 4.5x
    note = next(a for a in plan.estimates.assumptions if a.startswith("the stated bill"))
    assert "$900" in note and "$200" in note and "4.5x" in note and "compares against the stated bill" in note


def test_owned_gpus_pay_electricity_not_rent(catalog):
    base = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, "data": {"labeled_examples": 3000},
            "hardware": {"gpus": ["L40S"]}}
    rented = plan_of(catalog, base).estimates.training
    owned = plan_of(catalog, {**base, "hardware": {"gpus": ["L40S"], "owned": True, "power_watts_per_gpu": 350,
                                                   "usd_per_kwh": 0.20}}).estimates.training
    assert owned.provider == "owned" and owned.usd_per_gpu_hour == pytest.approx(0.07)  # 0.35 kW x $0.20
    assert owned.usd == pytest.approx(owned.hours * owned.gpu_count * 0.07, rel=1e-3)
    assert owned.usd < rented.usd
    free = plan_of(catalog, {**base, "hardware": {"gpus": ["L40S"], "owned": True}}).estimates.training
    assert free.usd == 0


def test_an_open_model_at_a_provider_is_chosen_when_it_serves_loras_per_token_for_less(tmp_path):
    """With a provider that serves a customer's LoRA per token (a catalog row of the user's), a small-volume
    fine-tune goes there instead of an always-on GPU: the recommendation says who runs it and the monthly
    comparison is the provider's."""
    from estimators.catalog import Catalog

    mine = tmp_path / "serverless.yaml"
    mine.write_text("open_model_inference:\n  - name: together-llama-3.1-8b-instruct\n    lora_serverless: true\n",
                    encoding="utf-8")
    catalog = Catalog.load([mine])
    answers = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, "data": {"labeled_examples": 3000},
               "model": {"current_api": "claude-haiku-4.5", "base": "llama-3.1-8b"},
               "workload": {"requests_per_month": 50_000, "input_tokens_per_request": 800,
                            "output_tokens_per_request": 200}}
    plan = plan_of(catalog, answers)
    row = next(r for r in catalog.open_inference if r.name == "together-llama-3.1-8b-instruct")
    provider = next(o for o in by_kind(plan, "open_model_hosted") if o.provider == "together")
    # 50,000 x (800 x in + 200 x out) / 1e6 at the row's prices
    assert provider.monthly_usd == pytest.approx(
        50_000 * (800 * row.usd_per_million_input_tokens + 200 * row.usd_per_million_output_tokens) / 1e6, rel=1e-3)
    own = by_kind(plan, "self_hosted")[0]
    assert provider.one_off_usd + 12 * provider.monthly_usd < own.one_off_usd + 12 * own.monthly_usd
    assert provider.chosen and not own.chosen
    assert (plan.recommendation.delivery, plan.recommendation.provider) == ("hosted", "together")
    assert plan.estimates.inference.after_usd_per_month == provider.monthly_usd
    assert "at together" in plan.summary and "On your own GPUs" in plan.summary
    # without the serverless row the same answers stay on your GPUs
    builtin = plan_of(Catalog.load(), answers)
    assert builtin.recommendation.delivery == "self_hosted" and by_kind(builtin, "self_hosted")[0].chosen


def test_when_cost_is_the_reason_and_the_fine_tune_does_not_beat_today_the_plan_says_so_first(catalog):
    # a bill just over the distillation threshold for traffic that needs several GPUs: nothing beats it
    plan = plan_of(catalog, {"symptoms": ["cost"], "hardware": {"gpus": ["L4"]},
                             "workload": {"requests_per_month": 30_000_000, "input_tokens_per_request": 2000,
                                          "output_tokens_per_request": 300, "current_monthly_cost_usd": 1500}})
    assert plan.recommendation.fine_tune and not any(o.beats_today for o in plan.options)
    assert plan.summary.startswith("No option priced here beats today's bill of $1,500/month.")
    # a cheaper API option beats the fine-tune: it leads
    plan = plan_of(catalog, {"symptoms": ["cost", "format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                             "data": {"labeled_examples": 2000}, "model": {"current_api": "claude-haiku-4.5"},
                             "workload": {"requests_per_month": 3000, "input_tokens_per_request": 1500,
                                          "output_tokens_per_request": 200}})
    best = min((o for o in plan.options if o.beats_today), key=lambda o: o.monthly_usd)
    assert plan.summary.startswith(f"For the bill, {best.name} beats fine-tuning")
    # a fine-tune that pays back leads with itself
    tt = build_plan(load_answers(example_path("ticket-triage"), catalog), catalog, as_of=AS_OF)
    assert tt.summary.startswith("Fine-tune ")


def test_the_bills_levers_are_approaches_and_the_chosen_option_is_the_approachs(catalog):
    """prompt_caching, batch_api and cheaper_model are the plan's approach when they beat today and nothing
    trains; the option marked chosen is that approach's cheapest, and a model switch needs the eval set first."""
    work = {"requests_per_month": 50_000, "input_tokens_per_request": 1000, "output_tokens_per_request": 200}
    batch = plan_of(catalog, {"symptoms": ["cost"], "model": {"current_api": "claude-haiku-4.5"},
                              "workload": {**work, "batch_ok": True}})
    chosen = [o for o in batch.options if o.chosen]
    assert len(chosen) == 1 and chosen[0].approach == "batch_api"
    assert batch.recommendation.approach == "batch_api"
    tier = plan_of(catalog, {"symptoms": ["cost"], "model": {"current_api": "gpt-4.1"}, "workload": work})
    chosen = [o for o in tier.options if o.chosen]
    assert tier.recommendation.approach == "cheaper_model" and chosen[0].approach == "cheaper_tier"
    assert chosen[0].monthly_usd == min(o.monthly_usd for o in tier.options
                                        if o.approach == "cheaper_tier" and o.beats_today)
    assert "eval_set" in tier.prerequisites


def test_a_team_that_will_not_operate_gpus_gets_a_managed_path_or_no_fine_tune(tmp_path):
    """deployment.operate_gpus: false. A provider that serves the tuned LoRA per token is chosen even when GPUs
    would be cheaper (5M requests); the vendor's open hosted fine-tuning next; neither: today's API, said. The
    self-hosted path is still priced, never chosen."""
    from estimators.catalog import Catalog
    from tests.helpers import ACME_CATALOG

    mine = tmp_path / "serverless.yaml"
    mine.write_text("open_model_inference:\n  - name: together-llama-3.1-8b-instruct\n    lora_serverless: true\n",
                    encoding="utf-8")
    answers = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
               "data": {"labeled_examples": 3000}, "model": {"current_api": "claude-haiku-4.5", "base": "llama-3.1-8b"},
               "deployment": {"operate_gpus": False},
               "workload": {"requests_per_month": 5_000_000, "input_tokens_per_request": 800,
                            "output_tokens_per_request": 200}}
    managed = plan_of(Catalog.load([mine]), answers)
    own = by_kind(managed, "self_hosted")[0]
    assert not own.feasible and "operate_gpus" in own.why_not and own.monthly_usd is not None
    assert (managed.recommendation.delivery, managed.recommendation.provider) == ("hosted", "together")
    vendor = plan_of(Catalog.load([ACME_CATALOG]), {**answers, "model": {"current_api": "acme-chat"}})
    assert vendor.recommendation.approach == "hosted_fine_tune" and "MANAGED_FINE_TUNE_WITHOUT_GPUS" in \
        {r.id for r in vendor.rules if r.fired}
    none = plan_of(Catalog.load(), answers)
    assert none.recommendation.approach == "prompting" and none.recommendation.method is None
    assert "the team will not operate GPUs" in none.summary
    assert not any(o.chosen and not o.feasible for o in none.options)


@pytest.mark.parametrize("retires,planned", [("2027-08-01", False), ("2029-01-01", True)])
def test_a_hosted_offer_retiring_before_it_pays_back_is_not_planned_on(tmp_path, retires, planned):
    """Class 12: an offer open today but shut down 8 months out, whose training costs ~17 months of savings, is
    not a plan (the same offer retiring in 2029 is)."""
    from estimators.catalog import Catalog

    mine = tmp_path / "vendor.yaml"
    mine.write_text(f"""apis:
  - name: big-chat
    provider: bigco
    usd_per_million_input_tokens: 10
    usd_per_million_output_tokens: 40
    source: a test vendor
    date: 2026-11-01
hosted_finetuning:
  - name: big-chat-ft
    provider: bigco
    base_model: big-chat
    methods: [sft]
    usd_per_million_training_tokens: 400
    billed_tokens: training tokens x epochs
    inference: {{usd_per_million_input_tokens: 1, usd_per_million_output_tokens: 4}}
    source: a test vendor
    date: 2026-11-01
    retires: {retires}
""", encoding="utf-8")
    plan = plan_of(Catalog.load([mine]), {
        "symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
        "data": {"labeled_examples": 2000}, "model": {"current_api": "big-chat", "open_weights_ok": False},
        "workload": {"requests_per_month": 10_000, "input_tokens_per_request": 800, "output_tokens_per_request": 200}})
    offer = by_kind(plan, "vendor_fine_tune")[0]
    assert offer.feasible is planned and (plan.recommendation.approach == "hosted_fine_tune") is planned
    if not planned:
        assert "before it pays back (break-even in 16.7 months)" in offer.why_not
        assert "HOSTED_NO_OPEN_OFFER" in {r.id for r in plan.rules if r.fired}
