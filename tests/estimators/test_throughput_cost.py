"""Training FLOPs, speed, and money."""

from __future__ import annotations

import dataclasses

import pytest

from estimators.cost import (
    HOURS_PER_MONTH,
    Workload,
    api_monthly_cost,
    break_even_months,
    hosted_finetuning_cost,
    open_model_offers,
    serving_estimate,
    training_costs,
)
from estimators.errors import EstimateError
from estimators.setup import TrainingSetup
from estimators.throughput import DEFAULT_MFU, estimate_throughput, flops_per_token


@pytest.fixture(scope="module")
def llama8b(catalog):
    return catalog.model("llama-3.1-8b").anatomy


def test_full_fine_tuning_is_6n_plus_attention(llama8b):
    f = flops_per_token(llama8b, TrainingSetup(technique="full", seq_len=2048, gradient_checkpointing=False))
    n = llama8b.linear_weight_params + llama8b.vocab_size * llama8b.hidden_size
    attn_fwd = 2 * 2 * 2048 * llama8b.q_dim * llama8b.num_layers * 0.5  # causal half skipped (SDPA)
    assert f.matmul_params == n
    assert f.total == pytest.approx(6 * n + 3 * attn_fwd)


def test_lora_costs_about_two_thirds_of_full(llama8b):
    """'LoRA Without Regret': frozen weights skip their weight gradient, about 2/3 of full fine-tuning."""
    kw = dict(seq_len=512, gradient_checkpointing=False)
    full = flops_per_token(llama8b, TrainingSetup(technique="full", **kw)).total
    lora = flops_per_token(llama8b, TrainingSetup(technique="lora", **kw)).total
    assert 0.64 < lora / full < 0.70


def test_checkpointing_adds_one_forward_of_the_layers(llama8b):
    on = flops_per_token(llama8b, TrainingSetup(technique="full", gradient_checkpointing=True))
    off = flops_per_token(llama8b, TrainingSetup(technique="full", gradient_checkpointing=False))
    assert on.total - off.total == on.recompute
    assert on.recompute == pytest.approx(2 * llama8b.linear_weight_params + off.forward - 2 * off.matmul_params)


def test_tokens_per_s_scale_with_peak_gpus_and_mfu(catalog, llama8b):
    h100, a100 = catalog.gpu("H100-80GB"), catalog.gpu("A100-80GB")
    s1 = TrainingSetup(technique="lora")
    t1 = estimate_throughput(llama8b, s1, h100)
    assert t1.mfu == DEFAULT_MFU["lora"] and not t1.mfu_measured
    assert t1.tokens_per_s == pytest.approx(h100.bf16_dense_tflops * 1e12 * t1.mfu / t1.flops_per_token.total)
    t8 = estimate_throughput(llama8b, TrainingSetup(technique="lora", gpu_count=8), h100)
    assert t8.tokens_per_s == pytest.approx(8 * t1.tokens_per_s)
    ta = estimate_throughput(llama8b, s1, a100)
    assert ta.tokens_per_s / t1.tokens_per_s == pytest.approx(a100.bf16_dense_tflops / h100.bf16_dense_tflops)
    measured = estimate_throughput(llama8b, s1, h100, mfu=0.5)
    assert measured.mfu_measured and measured.tokens_per_s > t1.tokens_per_s


def test_training_cost_is_hours_times_gpus_times_price(catalog, llama8b):
    h100 = catalog.gpu("H100-80GB")
    t = estimate_throughput(llama8b, TrainingSetup(technique="full", gpu_count=4, sharding="fsdp"), h100)
    costs = training_costs(t, h100, tokens=50e6, epochs=3)
    assert len(costs) == len(h100.prices)
    assert [c.usd for c in costs] == sorted(c.usd for c in costs)
    for c in costs:
        assert c.usd == pytest.approx(50e6 * 3 / t.tokens_per_s / 3600 * 4 * c.usd_per_gpu_hour)


def test_api_bill_and_break_even(catalog):
    haiku = catalog.api("claude-haiku-4.5")
    w = Workload(requests_per_month=5e6, input_tokens_per_request=300, output_tokens_per_request=20)
    # 1.5e9 input tokens at $1/M + 1e8 output tokens at $5/M
    assert api_monthly_cost(haiku, w) == pytest.approx(1500 + 500)
    assert break_even_months(1000, 2000, 1500) == pytest.approx(2.0)
    assert break_even_months(1000, 1500, 2000) is None


def test_workload_refuses_negative_values():
    with pytest.raises(EstimateError, match="requests_per_month must be >= 0"):
        Workload(-1, 10, 10)


def test_hosted_finetuning_bills_tokens_times_epochs(catalog):
    offer = next(o for o in catalog.finetuning if o.name == "openai-gpt-4.1-mini")
    c = hosted_finetuning_cost(offer, tokens=2e6, epochs=3)
    assert c.billed_tokens == 6e6 and c.usd == pytest.approx(6 * offer.usd_per_million_training_tokens)


def test_open_model_offers_pick_the_size_band(catalog):
    small = open_model_offers(catalog, 8_030_261_248, "lora", "sft")
    assert small and all(o.max_params_b >= 8.03 >= o.min_params_b for o in small)
    big = open_model_offers(catalog, 70_553_706_496, "full", "dpo")
    assert big and all(o.technique == "full" and "dpo" in o.methods for o in big)


def test_serving_needs_more_gpus_for_bigger_models_and_costs_at_least_one_always_on(catalog):
    w = Workload(requests_per_month=1e5, input_tokens_per_request=500, output_tokens_per_request=100)
    small = serving_estimate(catalog.model("llama-3.1-8b").anatomy, catalog.gpu("L40S"), w)
    big = serving_estimate(catalog.model("llama-3.1-70b").anatomy, catalog.gpu("H100-80GB"), w)
    assert small.tensor_parallel == 1 and big.tensor_parallel >= 2
    assert small.gpu_hours_per_month >= HOURS_PER_MONTH
    assert small.usd_per_month == pytest.approx(small.gpu_hours_per_month * small.usd_per_gpu_hour)
    heavy = serving_estimate(catalog.model("llama-3.1-8b").anatomy, catalog.gpu("L40S"),
                             Workload(requests_per_month=1e9, input_tokens_per_request=500, output_tokens_per_request=100))
    assert heavy.replicas > small.replicas
    assert serving_estimate(catalog.model("llama-3.1-70b").anatomy, catalog.gpu("L4"), w).tensor_parallel == 8
    tiny_card = dataclasses.replace(catalog.gpu("L4"), usable_memory_bytes=8 << 30)
    assert serving_estimate(catalog.model("llama-3.1-70b").anatomy, tiny_card, w) is None
