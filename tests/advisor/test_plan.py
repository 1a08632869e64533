"""Scenarios: each branch of the practitioners' tree, planned end to end with the real estimators."""

from __future__ import annotations

import json

import pytest

from advisor.contract.answers import load_answers, validate_answers
from advisor.planner import build_plan, example_path
from tests.helpers import assert_imports_none_of, profile_of_plan


def plan_for(catalog, **raw):
    return build_plan(validate_answers({"project": "scenario", **raw}, "scenario", catalog), catalog)


def rec(plan):
    r = plan.recommendation
    return r.approach, r.method, r.then, r.technique


def fired(plan):
    return {r.id for r in plan.rules if r.fired}


def test_ticket_triage_distils_into_a_small_model_and_pays_back(catalog):
    plan = build_plan(load_answers(example_path("ticket-triage"), catalog), catalog)
    r = plan.recommendation
    assert rec(plan) == ("fine_tune", "distillation", [], "lora")
    assert r.base_model == "qwen3-1.7b" and r.gpus == ["A100-80GB"] and r.gpu_count == 1
    assert plan.serving.strategy == "merged"
    assert plan.prerequisites == ["eval_set", "baseline"]
    # a cheaper Anthropic tier also beats today's bill: named beside the fine-tune, for the eval set to decide
    assert [w.id for w in plan.why] == ["DISTILL_FOR_COST", "CHEAPER_MODEL_SAME_VENDOR", "LORA_DEFAULT",
                                        "MERGED_SERVING"]
    assert r.also == ["cheaper_model"]
    t = plan.estimates.training
    assert t.memory_bytes <= t.usable_memory_bytes
    assert t.stages[0].examples == 10_000 and t.stages[0].tokens_per_example == 525
    inf = plan.estimates.inference
    assert inf.today_usd_per_month == 2500
    assert 0 < inf.after_usd_per_month < 2500
    assert inf.monthly_saving_usd == pytest.approx(2500 - inf.after_usd_per_month, rel=1e-5)
    assert 0 < inf.break_even_months < 1
    assert len(inf.cumulative_usd_12_months.today) == 13
    steps = [s.step for s in plan.next_steps]
    assert steps == ["eval_set", "baseline", "data", "measure", "train", "evaluate", "deploy", "monitor"]
    assert "advise profile --model Qwen/Qwen3-1.7B-Base --methods lora --seq-len 768 --batch-size 16" in \
        plan.next_steps[3].what
    assert plan.summary.startswith("Fine-tune qwen3-1.7b with distillation")


def test_the_same_answers_give_a_byte_identical_plan(catalog):
    a = load_answers(example_path("ticket-triage"), catalog)
    assert build_plan(a, catalog).to_json() == build_plan(a, catalog).to_json()


def test_knowledge_gaps_get_retrieval_not_fine_tuning(catalog):
    plan = plan_for(catalog, symptoms=["knowledge_gap", "stale_knowledge"], tried={"prompting": "partly"},
                    data={"eval_examples": 50})
    assert rec(plan) == ("rag", None, [], None)
    assert plan.serving.strategy == "none" and plan.estimates.training is None
    assert plan.summary == "Don't fine-tune yet: add retrieval (RAG)."


def test_prompting_that_works_is_kept(catalog):
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "fixed"}, data={"eval_examples": 50})
    assert rec(plan) == ("prompting", None, [], None) and plan.prerequisites == []


def test_format_problems_try_few_shot_then_sft(catalog):
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly"})
    assert rec(plan) == ("structured_output", None, [], None) and plan.recommendation.also == ["few_shot"]
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "structured_output": "partly"})
    assert rec(plan) == ("few_shot", None, [], None)
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                    data={"labeled_examples": 3000, "eval_examples": 100}, hardware={"gpus": ["A100-80GB"]})
    assert rec(plan) == ("fine_tune", "sft", [], "lora")
    assert plan.recommendation.base_model == "qwen3-8b-instruct"  # task kind "other": the instruct checkpoint (training.yaml checkpoints)
    stage = plan.estimates.training.stages[0]
    assert stage.learning_rate == 2e-4 and stage.epochs == 3 and stage.seq_len == 512


def test_actions_get_tools_and_tool_errors_with_tools_get_sft_on_traces(catalog):
    assert rec(plan_for(catalog, symptoms=["actions"]))[0] == "tools"
    plan = plan_for(catalog, symptoms=["tool_errors"], tried={"prompting": "partly", "tools": "partly"},
                    data={"labeled_examples": 2000})
    assert rec(plan)[:2] == ("fine_tune", "sft") and "SFT_ON_TOOL_TRACES" in fired(plan)


def test_reasoning_failures_get_a_reasoning_model(catalog):
    assert rec(plan_for(catalog, symptoms=["reasoning"], tried={"prompting": "failed"}))[0] == "reasoning_model"


def test_preferences_dpo_after_sft_orpo_from_pairs_kto_from_thumbs(catalog):
    base = {"symptoms": ["format", "preference"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}}
    assert rec(plan_for(catalog, **base, data={"labeled_examples": 3000, "preference_pairs": 2000}))[1:3] == \
        ("sft", ["dpo"])
    assert rec(plan_for(catalog, **base, data={"preference_pairs": 2000}))[1:3] == ("orpo", [])
    assert rec(plan_for(catalog, symptoms=["preference"], data={"binary_feedback": 5000}))[1] == "kto"
    plan = plan_for(catalog, symptoms=["preference"], data={"preference_pairs": 1000})
    assert rec(plan)[1:3] == ("dpo", [])
    dpo = plan.estimates.training.stages[0]
    assert dpo.learning_rate == 5e-6 and dpo.beta == 0.1 and dpo.training_tokens == 1000 * 512 * 2
    plan = plan_for(catalog, symptoms=["preference"])
    assert rec(plan)[0] == "prompting" and "preference_data" in plan.prerequisites


def test_domain_language_with_a_large_corpus_gets_cpt_then_sft(catalog):
    plan = plan_for(catalog, symptoms=["domain_language"], data={"domain_corpus_tokens": 500_000_000,
                                                                 "labeled_examples": 5000},
                    hardware={"gpus": ["H100-80GB"], "gpu_count": 8})
    assert rec(plan) == ("fine_tune", "continued_pretraining", ["sft"], "full")
    cpt, sft = plan.estimates.training.stages
    assert cpt.training_tokens == 500_000_000 and cpt.seq_len == 2048 and cpt.epochs == 1
    assert sft.method == "sft" and "FORGETTING_RISK" in fired(plan)
    assert plan.recommendation.gpu_count == 8


def test_closed_weights_use_the_vendors_hosted_fine_tuning():
    from estimators.catalog import Catalog
    from tests.helpers import ACME_CATALOG

    catalog = Catalog.load([ACME_CATALOG])
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, data={"labeled_examples": 2000},
                    model={"open_weights_ok": False, "current_api": "acme-chat"},
                    workload={"requests_per_month": 100_000, "input_tokens_per_request": 800,
                              "output_tokens_per_request": 200})
    assert rec(plan) == ("hosted_fine_tune", "sft", [], None)
    h = plan.estimates.hosted_fine_tuning
    assert h.offer == "acme-chat-ft" and plan.serving.strategy == "hosted"
    assert h.training_usd == pytest.approx(2000 * 1000 * 3 / 1e6 * 4.00)  # examples x tokens x epochs x $/1M
    assert plan.estimates.fit_matrix == []
    assert "does not pay back" in plan.summary  # the fine-tuned model costs more per token than the base
    assert plan.recommendation.delivery == "hosted"
    assert [o.name for o in plan.options if o.chosen] == ["acme-chat-ft (acme-chat)"]


def test_closed_weights_with_no_open_hosted_offer_say_so(catalog):
    """The built-in OpenAI offers are closed to new users: no offer is planned, another vendor's least of all."""
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, data={"labeled_examples": 2000},
                    model={"open_weights_ok": False, "current_api": "gpt-4.1-mini"},
                    workload={"requests_per_month": 100_000, "input_tokens_per_request": 800,
                              "output_tokens_per_request": 200})
    assert plan.recommendation.approach == "prompting" and plan.estimates.hosted_fine_tuning is None
    assert "HOSTED_NO_OPEN_OFFER" in fired(plan) and "HOSTED_WHEN_CLOSED" not in fired(plan)
    assert plan.summary.startswith("Don't fine-tune yet: keep today's API and work on the prompt")
    assert not any(o.chosen and not o.feasible for o in plan.options)
    assert plan.estimates.fit_matrix == [] and plan.estimates.training is None


@pytest.mark.parametrize("symptoms,data", [
    (["preference"], {"binary_feedback": 80_000}),  # KTO: no vendor offers it
    (["domain_language"], {"domain_corpus_tokens": 500_000_000, "labeled_examples": 2000}),  # CPT: none either
])
def test_closed_weights_never_plan_a_method_no_vendor_offers(catalog, symptoms, data):
    """Class 12: a closed-weights plan never says 'use the vendor's hosted KTO' or CPT: no offer trains them."""
    plan = plan_for(catalog, symptoms=symptoms, data=data, model={"open_weights_ok": False,
                                                                  "current_api": "gpt-4.1-mini"})
    assert plan.recommendation.approach != "hosted_fine_tune" and plan.recommendation.method is None
    assert "HOSTED_NO_OPEN_OFFER" in fired(plan) and "hosted" not in plan.summary.split(":")[0]


def test_technique_follows_the_estimates(catalog):
    ft = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, "data": {"labeled_examples": 2000}}
    assert rec(plan_for(catalog, **ft, model={"base": "llama-3.1-8b"}, hardware={"gpus": ["A100-80GB"]}))[3] == "lora"
    plan = plan_for(catalog, **ft, model={"base": "llama-3.1-70b"}, hardware={"gpus": ["A100-80GB"]})
    assert rec(plan)[3] == "qlora"
    matrix = {(r.technique, r.gpu): r for r in plan.estimates.fit_matrix}
    assert not matrix[("lora", "A100-80GB")].fits and matrix[("qlora", "A100-80GB")].fits
    assert matrix[("lora", "A100-80GB")].usd is None
    plan = plan_for(catalog, **ft, model={"base": "llama-3.1-70b"}, hardware={"gpus": ["RTX-4090"]})
    assert rec(plan)[3] is None and "smaller_base_or_more_gpus" in plan.prerequisites
    plan = plan_for(catalog, **ft, model={"base": "llama-3.1-70b"}, hardware={"gpus": ["H100-80GB"], "gpu_count": 4})
    t = plan.estimates.training
    assert t.gpu_count == 4 and t.memory_bytes <= t.usable_memory_bytes


def test_dora_is_never_planned_where_peft_adapts_experts_as_parameters(catalog):
    """A large change that does not fit full FT gets DoRA on a dense base, LoRA on an MoE whose fused experts
    peft adapts as parameters (ParamWrapper has no DoRA): the plan neither crashes nor lists DoRA's fit."""
    large = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
             "data": {"labeled_examples": 200_000}}
    dense = plan_for(catalog, **large, model={"base": "qwen3-14b"}, hardware={"gpus": ["H100-80GB"]})
    assert rec(dense)[3] == "dora" and "DORA_WHEN_FULL_OUT_OF_REACH" in fired(dense)
    moe = plan_for(catalog, **large, model={"base": "qwen3-30b-a3b"}, hardware={"gpus": ["B200"]})
    assert rec(moe)[3] == "lora" and "DORA_WHEN_FULL_OUT_OF_REACH" not in fired(moe)
    assert "dora" not in {r.technique for r in moe.estimates.fit_matrix}
    assert moe.estimates.training.lora.dropout == 0.0  # ParamWrapper runs no dropout


def test_a_card_without_bf16_is_never_the_training_gpu(catalog):
    """A T4 (Turing, compute capability 7.5) has no bf16 tensor cores, and the plan and its configs train in bf16
    (transformers refuses bf16=True there): it is never chosen to train on, and the plan says why."""
    from dataclasses import replace

    small = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
             "data": {"labeled_examples": 2000}, "model": {"base": "qwen2.5-0.5b"}}
    both = plan_for(catalog, **small, hardware={"gpus": ["T4", "L4"]})
    assert rec(both)[3] == "lora" and both.recommendation.gpus == ["L4"]
    alone = plan_for(catalog, **small, hardware={"gpus": ["T4"]})
    assert rec(alone)[3] is None and not any(r.fits for r in alone.estimates.fit_matrix)
    assert any(a.startswith("T4: no bf16 tensor cores") for a in alone.estimates.assumptions)
    t4 = catalog.gpu("T4")
    assert not t4.trains_bf16 and replace(t4, compute_capability="8.0").trains_bf16  # Ampere is the edge


def test_many_adapters_mean_lora_with_multi_lora_serving(catalog):
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, data={"labeled_examples": 200_000},
                    model={"base": "qwen2.5-0.5b"}, hardware={"gpus": ["H100-80GB"]}, deployment={"adapters": 6})
    assert rec(plan)[3] == "lora" and plan.serving.strategy == "multi_lora"
    assert plan.estimates.training.lora.r == 16  # six tenants' adapters on 33,333 examples each
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                    data={"labeled_examples": 1_200_000, "examples_per_adapter": 200_000},
                    model={"base": "qwen2.5-0.5b"}, hardware={"gpus": ["H100-80GB"]}, deployment={"adapters": 6})
    assert plan.estimates.training.lora.r == 64  # each adapter's 200k examples: the larger rank
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, data={"labeled_examples": 200_000},
                    model={"base": "qwen2.5-0.5b"}, hardware={"gpus": ["H100-80GB"]})
    assert rec(plan)[3] == "full" and plan.estimates.training.lora is None


def test_knowledge_and_behaviour_compose(catalog):
    plan = plan_for(catalog, symptoms=["knowledge_gap", "style"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                    data={"labeled_examples": 2000})
    assert rec(plan)[:2] == ("fine_tune", "sft") and plan.recommendation.also == ["rag"]
    assert "FINE_TUNING_IS_NOT_FOR_FACTS" in fired(plan)


def test_without_counts_costs_are_per_thousand_examples_and_say_so(catalog):
    plan = plan_for(catalog, symptoms=["style"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"})
    assert plan.estimates.training.stages[0].examples_assumed is True
    assert any("costs are for 1,000 examples" in a for a in plan.estimates.assumptions)
    assert "TOO_FEW_EXAMPLES" in fired(plan) and "more_data" in plan.prerequisites


def test_planning_with_catalog_models_does_not_import_torch():
    assert_imports_none_of("from advisor.contract.answers import load_answers\n"
                           "from advisor.planner import build_plan, example_path\n"
                           "from estimators.catalog import Catalog\n"
                           "c = Catalog.load()\n"
                           "build_plan(load_answers(example_path('ticket-triage'), c), c)")


def _chat_lines(n, words, offset=0):
    return "".join(
        json.dumps({"messages": [{"role": "user", "content": f"ticket {i + offset}: " + "word " * words},
                                 {"role": "assistant", "content": f"category {i % 7}"}]}) + "\n"
        for i in range(n))


def test_data_files_replace_declared_counts_and_set_lengths(catalog, tmp_path):
    (tmp_path / "train.jsonl").write_text(_chat_lines(640, 300))
    (tmp_path / "eval.jsonl").write_text(_chat_lines(30, 300, offset=10_000))
    raw = {"project": "files", "symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
           "data": {"labeled_examples": 50_000, "eval_examples": 0, "train_file": "train.jsonl",
                    "eval_file": "eval.jsonl"},
           "model": {"base": "llama-3.2-1b"}, "hardware": {"gpus": ["L4"]}}
    plan = build_plan(validate_answers(raw, "a", catalog), catalog, base_dir=tmp_path)
    files = plan.data.files
    assert files["train_file"].valid_examples == 640 and files["train_file"].eval.valid_examples == 30
    assert any("data.labeled_examples: 640 counted in train.jsonl (declared: 50,000)" in n for n in plan.data.notes)
    assert "EVAL_SET_FIRST" not in fired(plan)  # the eval file counts
    assert "THIN_SFT_DATA" not in fired(plan) and "OVERFITTING_SMALL_DATA" in fired(plan)
    stage = plan.estimates.training.stages[0]
    assert stage.examples == 640
    p95 = files["train_file"].p95_tokens
    assert stage.seq_len == -(-p95 // 256) * 256 and stage.seq_len >= p95
    assert stage.training_tokens == files["train_file"].total_tokens
    assert plan.answers.data.labeled_examples == 50_000  # what the user said is kept as said


def test_a_missing_data_file_is_a_clean_error_naming_the_field(catalog, tmp_path):
    from advisor.contract.answers import AnswersError

    raw = {"project": "files", "symptoms": ["format"], "data": {"train_file": "nope.jsonl"}}
    with pytest.raises(AnswersError, match=r"data.train_file: .*nope.jsonl"):
        build_plan(validate_answers(raw, "a", catalog), catalog, base_dir=tmp_path)


def test_a_profile_replaces_estimates_where_it_measured_the_same_run(catalog):
    answers = load_answers(example_path("ticket-triage"), catalog)
    plan = build_plan(answers, catalog)
    t = plan.estimates.training
    assert t.micro_batch == 16 and t.measured == []
    # measured: micro-batch 16 ran out of memory, 8 fitted at 30 GiB and 20k tokens/s
    prof = profile_of_plan(plan, [(16, False, None, None), (8, True, 30 << 30, 20_000.0)])
    measured = build_plan(answers, catalog, profile=prof)
    mt = measured.estimates.training
    assert mt.micro_batch == 8 and mt.memory_bytes == 30 << 30 and mt.tokens_per_s == 20_000
    assert mt.measured == ["memory", "tokens_per_s"]
    tokens = mt.stages[0].training_tokens * mt.stages[0].epochs
    assert mt.hours == pytest.approx(tokens / 20_000 / 3600, rel=1e-5)
    assert measured.profile.used == ["lora on A100-80GB"]
    assert any("measured by `advise profile`" in a for a in measured.estimates.assumptions)
    other = {(r.technique, r.gpu): r for r in measured.estimates.fit_matrix}
    assert other[("full", "A100-80GB")].measured == []  # not profiled: still estimated


def test_several_gpus_shard_then_offload_and_the_exporters_get_the_layout(catalog):
    plan = plan_for(catalog, symptoms=["domain_language"], data={"domain_corpus_tokens": 2_000_000_000,
                                                                 "labeled_examples": 5000},
                    model={"base": "llama-3.1-70b"}, hardware={"gpus": ["H100-80GB"], "gpu_count": 4})
    t = plan.estimates.training
    assert rec(plan)[3] == "full" and (t.sharding, t.offload) == ("zero3", "optimizer")
    assert t.memory_bytes <= t.usable_memory_bytes
    assert any("offloads the optimizer states to CPU RAM" in a for a in plan.estimates.assumptions)
    assert (t.lr_scheduler, t.warmup_ratio, t.logging_steps) == ("cosine", 0.1, 10)


def test_fsdp2_shards_when_the_sharded_states_fit_and_zero3_takes_over_when_they_must_be_offloaded(catalog):
    from advisor.planner import MULTI_GPU_LAYOUTS

    # a 70B LoRA on 4 H100s: no full replica fits one card (140 GB of bf16 weights), a quarter of it does
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed",
                                                         "structured_output": "partly"},
                    data={"labeled_examples": 2000}, model={"base": "llama-3.1-70b"},
                    hardware={"gpus": ["H100-80GB"], "gpu_count": 4})
    t = plan.estimates.training
    assert t.gpu_count == 4 and (t.sharding, t.offload) == ("fsdp", "none")
    assert any(a.startswith("A full replica does not fit on one H100-80GB: FSDP2 shards") for a in
               plan.estimates.assumptions)
    # the order the planner tries: replicas, FSDP2, then ZeRO-3 alone and with offload
    assert MULTI_GPU_LAYOUTS[:3] == (("none", "none"), ("fsdp", "none"), ("zero3", "none"))
    assert all(s == "zero3" for s, o in MULTI_GPU_LAYOUTS if o != "none")


def test_serving_is_sized_from_the_whole_catalog_unless_serving_gpus_restricts_it(catalog):
    from advisor.contract.answers import load_answers
    from advisor.planner import example_path

    answers = load_answers(example_path("ticket-triage"), catalog).to_dict()
    answers["hardware"]["gpus"] = ["A100-80GB"]  # the training choice
    plan = build_plan(validate_answers(answers, "t", catalog), catalog)
    serving = plan.estimates.inference.self_hosted
    cheapest = min((g for g in catalog.gpus if g.cheapest_price), key=lambda g: g.cheapest_price.usd_per_hour)
    assert plan.estimates.training.gpu == "A100-80GB"
    assert serving.gpu != "A100-80GB" and serving.usd_per_month <= 730 * 1.2 * cheapest.cheapest_price.usd_per_hour * 2
    answers["hardware"]["serving_gpus"] = ["H100-80GB"]
    answers["workload"]["peak_to_average"] = 4.0
    answers["deployment"]["replicas_min"] = 2
    pinned = build_plan(validate_answers(answers, "t", catalog), catalog).estimates.inference.self_hosted
    assert pinned.gpu == "H100-80GB" and pinned.replicas == 2
    assert any("peak of 4x the average rate and at least 2 replicas" in a for a in pinned.assumptions)


def test_a_full_fine_tune_cites_no_lora_rule_and_serves_the_checkpoint(catalog):
    """A full fine-tuning plan gives the reasons for full fine-tuning only: no "LoRA by default", no adapter to
    merge, no LoRA settings to follow (issue: the plan cited both)."""
    plan = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                    data={"labeled_examples": 200_000}, model={"base": "qwen2.5-0.5b"}, hardware={"gpus": ["H100-80GB"]})
    assert rec(plan)[3] == "full"
    why = [r.id for r in plan.why]
    assert "FULL_FOR_LARGE_CHANGE" in why and "LORA_DEFAULT" not in why and "MERGED_SERVING" not in why
    assert plan.serving.strategy == "full_model" and "merge" not in plan.serving.notes.replace("no adapter to merge", "")
    assert not any("LoRA" in s.what for s in plan.next_steps)
    assert plan.estimates.training.lora is None
    # LoRA plans keep their reasons
    lora = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}, data={"labeled_examples": 2000},
                    model={"base": "llama-3.1-8b"}, hardware={"gpus": ["A100-80GB"]})
    assert {"LORA_DEFAULT", "MERGED_SERVING"} <= {r.id for r in lora.why} and lora.serving.strategy == "merged"


@pytest.mark.parametrize("tried,says", [
    ("not_tried", "add retrieval (RAG)"),
    ("failed", "diagnose retrieval"),
    ("partly", "diagnose retrieval"),
    ("fixed", "keep the retrieval in place"),
])
def test_what_was_tried_with_retrieval_decides_the_advice(catalog, tried, says):
    """A failed RAG is diagnosed (recall@k, chunking, hybrid search, re-ranking), a RAG that fixed it is kept;
    only an untried one is 'add retrieval' (the plan used to say 'add retrieval' whatever was tried)."""
    plan = plan_for(catalog, symptoms=["knowledge_gap"], tried={"rag": tried, "prompting": "partly"})
    assert plan.recommendation.approach == "rag"
    assert says in plan.summary
    if tried != "not_tried":
        assert "add retrieval (RAG)" not in plan.summary


def test_latency_is_not_cost_and_an_unknown_volume_is_not_a_low_one(catalog):
    """Slow answers with no workload: latency levers and a request for the workload, not 'at low volume, cut the
    bill' (the plan used to say exactly that)."""
    plan = plan_for(catalog, symptoms=["latency"], tried={"prompting": "fixed"})
    assert "cut latency without training" in plan.summary and "bill" not in plan.summary
    assert "workload" in plan.prerequisites and "COST_AT_LOW_VOLUME" not in fired(plan)
    # a cost problem with no figures: the same request, and no low-volume advice
    cost = plan_for(catalog, symptoms=["cost"])
    assert "workload" in cost.prerequisites and "COST_AT_LOW_VOLUME" not in fired(cost)
    # with a small known bill the low-volume rule speaks
    small = plan_for(catalog, symptoms=["cost"], workload={"current_monthly_cost_usd": 80})
    assert "COST_AT_LOW_VOLUME" in fired(small) and "workload" not in small.prerequisites


def test_the_consensus_order_prompts_then_few_shot_then_training(catalog):
    """Untried instructions come first, even when few-shot failed; instructions before few-shot; tools before a
    reasoning model for lookups and arithmetic; no distillation of answers the current model gets wrong."""
    few_shot_failed = plan_for(catalog, symptoms=["format"], tried={"prompting": "not_tried", "few_shot": "failed",
                                                                    "structured_output": "partly"},
                               data={"labeled_examples": 3000})
    assert few_shot_failed.recommendation.approach == "prompting" and not few_shot_failed.recommendation.fine_tune
    nothing_tried = plan_for(catalog, symptoms=["style"])
    assert (nothing_tried.recommendation.approach, nothing_tried.recommendation.also) == ("prompting", ["few_shot"])
    # the output's shape: a schema the decoder follows comes first, then instructions, then examples
    shape = plan_for(catalog, symptoms=["format"])
    assert (shape.recommendation.approach, shape.recommendation.also) == ("structured_output", ["prompting", "few_shot"])
    # structured outputs tried and prompts too: the shape is held, the content is still wrong -> SFT
    sft = plan_for(catalog, symptoms=["format"], tried={"prompting": "partly", "few_shot": "failed",
                                                        "structured_output": "partly"}, data={"labeled_examples": 3000})
    assert sft.recommendation.method == "sft"
    lookups = plan_for(catalog, symptoms=["reasoning", "actions"], tried={"prompting": "partly"})
    assert lookups.recommendation.approach == "tools" and "reasoning_model" in lookups.recommendation.also
    wrong_answers = plan_for(catalog, symptoms=["reasoning", "cost"], tried={"prompting": "partly"},
                             workload={"requests_per_month": 2_000_000, "current_monthly_cost_usd": 9000})
    assert "DISTILL_FOR_COST" not in fired(wrong_answers)
    assert wrong_answers.recommendation.approach == "reasoning_model"


def test_runs_keep_a_memory_margin_and_a_row_over_it_is_tight(catalog):
    """No recommended row above the rules' max_memory_fraction (90%) of usable memory; at 100% the RTX 4090 LoRA
    row took micro-batch 8 at 98% of the card. A lower margin turns LoRA 'tight' and picks QLoRA."""
    from advisor.engine import load_rules

    limit = load_rules().threshold_values["max_memory_fraction"]
    assert limit == 0.9
    ft = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
          "data": {"labeled_examples": 3000}, "model": {"base": "llama-3.1-8b"}}
    plan = plan_for(catalog, **ft, hardware={"gpus": ["L4", "RTX-4090"]})
    for r in plan.estimates.fit_matrix:
        if r.fits:
            assert r.memory_bytes <= r.usable_memory_bytes * limit, (r.technique, r.gpu)
    loose = plan_for(catalog, **ft, hardware={"gpus": ["L4", "RTX-4090"], "max_memory_fraction": 1.0})
    row = {(r.technique, r.gpu): r for r in loose.estimates.fit_matrix}[("lora", "RTX-4090")]
    assert row.memory_bytes > row.usable_memory_bytes * limit  # what the margin now refuses
    strict = plan_for(catalog, **ft, hardware={"gpus": ["L4", "RTX-4090"], "max_memory_fraction": 0.7})
    rows = {(r.technique, r.gpu): r for r in strict.estimates.fit_matrix}
    assert not rows[("lora", "L4")].fits and rows[("lora", "L4")].tight
    assert strict.recommendation.technique == "qlora"
    assert any("within 70% of the GPU's usable memory" in a for a in strict.estimates.assumptions)


def test_the_overfitting_warning_counts_the_data_the_method_trains_on(catalog):
    """DPO on 6,000 pairs with no labeled examples is not 'a small dataset'; KTO on 800 feedback labels is."""
    dpo = plan_for(catalog, symptoms=["preference"], tried={"prompting": "partly"}, data={"preference_pairs": 6000})
    assert dpo.recommendation.method == "dpo" and "OVERFITTING_SMALL_DATA" not in fired(dpo)
    kto = plan_for(catalog, symptoms=["preference"], tried={"prompting": "partly"}, data={"binary_feedback": 800})
    assert kto.recommendation.method == "kto" and "OVERFITTING_SMALL_DATA" in fired(kto)


def test_preference_tuning_starts_from_demonstrations_or_an_instruct_checkpoint(catalog):
    """Class 5: DPO/KTO never run alone on a pretrained base. Demonstrations beside the preference data -> SFT
    first; none -> the base's instruct sibling (same anatomy), said in the plan and used by the configs."""
    from reports.export import render_all

    both = plan_for(catalog, symptoms=["preference"], data={"preference_pairs": 6000, "labeled_examples": 5000})
    assert rec(both)[1:3] == ("sft", ["dpo"]) and "SFT_BEFORE_PREFERENCE" in fired(both)
    thumbs = plan_for(catalog, symptoms=["preference"], data={"binary_feedback": 80_000, "labeled_examples": 300})
    assert rec(thumbs)[1:3] == ("sft", ["kto"])
    alone = plan_for(catalog, symptoms=["preference"], data={"preference_pairs": 6000},
                     model={"base": "llama-3.1-8b"}, hardware={"gpus": ["A100-80GB"]})
    assert rec(alone)[1:3] == ("dpo", []) and "PREFERENCE_FROM_INSTRUCT" in fired(alone)
    base = alone.estimates.base_model
    assert (alone.recommendation.base_model, base.hub_id, base.checkpoint) == \
        ("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "instruct")
    assert base.chosen_by.startswith("the instruct checkpoint of model.base llama-3.1-8b")
    named = catalog.model("llama-3.1-8b")
    assert base.params_total == named.anatomy.params_total  # the same architecture, so the same estimates
    trl = render_all(alone, ["trl"])["trl/dpo.yaml"]
    assert "model_name_or_path: meta-llama/Llama-3.1-8B-Instruct" in trl and "chat_template_path" not in trl
    # a model with no catalog sibling (an instruct model already) is kept as named
    phi = plan_for(catalog, symptoms=["preference"], data={"preference_pairs": 6000}, model={"base": "phi-3.5-mini"})
    assert phi.recommendation.base_model == "phi-3.5-mini"


def test_the_default_checkpoint_follows_the_task(catalog):
    """Chat-like tasks train the default model's instruct checkpoint; labels and fields the base; continued
    pre-training always the base (the corpus is raw text)."""
    sft = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
           "data": {"labeled_examples": 3000}}
    assert plan_for(catalog, **sft, task={"kind": "chat"}).recommendation.base_model == "qwen3-8b-instruct"
    assert plan_for(catalog, **sft, task={"kind": "classification"}).recommendation.base_model == "qwen3-8b"
    cpt = plan_for(catalog, symptoms=["domain_language"], task={"kind": "chat"},
                   data={"domain_corpus_tokens": 500_000_000, "labeled_examples": 2000})
    assert rec(cpt)[1:3] == ("continued_pretraining", ["sft"]) and cpt.recommendation.base_model == "qwen3-8b"
    named = plan_for(catalog, **sft, task={"kind": "chat"}, model={"base": "qwen2.5-7b"})
    assert named.recommendation.base_model == "qwen2.5-7b"  # a model the answers name is trained as named


def test_many_tenants_get_an_adapter_each_on_their_own_data(catalog):
    """Class 7: 300 tenants and 150k examples is 300 runs on 500 examples each (rank for 500, cost x 300, served
    with max_loras), not one pooled run; 50 examples per tenant is one shared adapter, and the plan says which."""
    from reports.export import render_all

    base = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
            "model": {"base": "llama-3.1-8b"}, "hardware": {"gpus": ["A100-80GB"]},
            "workload": {"requests_per_month": 3_000_000, "input_tokens_per_request": 800,
                         "output_tokens_per_request": 200}}
    tenants = plan_for(catalog, **base, data={"labeled_examples": 150_000}, deployment={"adapters": 300})
    pooled = plan_for(catalog, **base, data={"labeled_examples": 500})
    t, one = tenants.estimates.training, pooled.estimates.training
    assert (t.adapters, t.adapter_layout, t.stages[0].examples) == (300, "per_tenant", 500)
    assert t.lora.r == one.lora.r == 16  # the rank for one tenant's 500 examples, not for 150k (64)
    assert t.hours == pytest.approx(300 * one.hours, rel=1e-3) and t.usd == pytest.approx(300 * one.usd, rel=1e-3)
    assert "one adapter per tenant (300 adapters)" in tenants.summary and "for all 300" in tenants.summary
    assert tenants.serving.strategy == "multi_lora" and "PER_TENANT_ADAPTERS" in fired(tenants)
    serving = tenants.estimates.inference.self_hosted
    assert any("--max-lora-rank 16" in a for a in serving.assumptions)
    assert "one adapter per tenant (300 runs" in render_all(tenants, ["trl"])["README.md"]
    thin = plan_for(catalog, **base, data={"labeled_examples": 15_000}, deployment={"adapters": 300})
    s = thin.estimates.training
    assert (s.adapters, s.adapter_layout, s.stages[0].examples) == (1, "shared", 15_000)
    assert "one adapter shared by the tenants" in thin.summary and "SHARED_ADAPTER_FOR_THIN_TENANTS" in fired(thin)
    given = plan_for(catalog, **base, data={"labeled_examples": 150_000, "examples_per_adapter": 2000},
                     deployment={"adapters": 300})
    assert given.estimates.training.stages[0].examples == 2000


def test_a_request_count_alone_never_triggers_distillation(catalog):
    """Class 11: 5M requests a month with no bill and no API to price them is not a reason to train; the plan
    asks for the workload. The same count on a priced API with a $2,500 bill distils."""
    alone = plan_for(catalog, symptoms=["cost"], workload={"requests_per_month": 5_000_000})
    assert alone.recommendation.approach != "fine_tune" and "workload" in alone.prerequisites
    assert {"DISTILL_FOR_COST", "COST_AT_LOW_VOLUME"}.isdisjoint(fired(alone)) and "WORKLOAD_UNKNOWN" in fired(alone)
    priced = plan_for(catalog, symptoms=["cost"], model={"current_api": "claude-haiku-4.5"},
                      workload={"requests_per_month": 5_000_000, "input_tokens_per_request": 400,
                                "output_tokens_per_request": 125})
    assert rec(priced)[:2] == ("fine_tune", "distillation")


def test_languages_choose_a_base_whose_publisher_lists_them(catalog):
    """task.languages: the default base moves to the size class's multilingual model when the default's card does
    not list a language; a named base is kept and warned about; an unlisted language everywhere is warned."""
    sft = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
           "data": {"labeled_examples": 3000}}
    ja = plan_for(catalog, **sft, task={"kind": "chat", "languages": ["en", "ja"]})
    assert ja.recommendation.base_model == "qwen2.5-7b-instruct"
    assert ja.estimates.base_model.chosen_by.startswith("training.yaml multilingual_base_models.default")
    assert "BASE_LACKS_LANGUAGES" not in fired(ja)
    # Qwen3's cards name no single language ("119 languages and dialects"): a stated language moves off it too
    de = plan_for(catalog, **sft, task={"kind": "chat", "languages": ["de"]})
    assert de.recommendation.base_model == "qwen2.5-7b-instruct"
    kept = plan_for(catalog, **sft, task={"kind": "chat", "languages": ["de"]}, model={"base": "llama-3.1-8b"})
    assert kept.recommendation.base_model == "llama-3.1-8b" and "BASE_LACKS_LANGUAGES" not in fired(kept)  # Meta lists German
    named = plan_for(catalog, **sft, task={"kind": "chat", "languages": ["ja"]}, model={"base": "llama-3.1-8b"})
    assert named.recommendation.base_model == "llama-3.1-8b" and "BASE_LACKS_LANGUAGES" in fired(named)
    small = plan_for(catalog, symptoms=["cost"], task={"kind": "chat", "languages": ["ja"]},
                     model={"current_api": "claude-haiku-4.5"},
                     workload={"requests_per_month": 5_000_000, "input_tokens_per_request": 400,
                               "output_tokens_per_request": 125})
    assert small.recommendation.base_model == "qwen2.5-3b-instruct"  # distillation's small class: qwen3-4b -> qwen2.5


def test_a_plan_priced_on_assumed_examples_says_first_that_there_are_none(catalog):
    """Class 10: SFT with no examples leads with 'collect them first', and names the assumed count."""
    plan = plan_for(catalog, symptoms=["style"], tried={"prompting": "partly", "few_shot": "failed",
                                                        "structured_output": "partly"})
    assert plan.estimates.training.stages[0].examples_assumed
    assert plan.summary.startswith("No training examples yet: collect them first (the training figures assume 1,000).")
