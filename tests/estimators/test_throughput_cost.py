"""Training FLOPs, speed, and money."""

from __future__ import annotations

import dataclasses
import math

import pytest

from estimators.cost import (
    HOURS_PER_MONTH,
    SERVING_WEIGHT_BYTES,
    Workload,
    api_monthly_cost,
    break_even_months,
    hosted_finetuning_cost,
    open_model_offers,
    serving_estimate,
    serving_precision,
    training_costs,
)
from estimators.errors import EstimateError
from estimators.memory import model_states
from estimators.setup import TrainingSetup
from estimators.throughput import (
    estimate_throughput,
    flops_per_token,
    keys_per_query,
)


@pytest.fixture(scope="module")
def llama8b(catalog):
    return catalog.model("llama-3.1-8b").anatomy


def test_full_fine_tuning_is_6n_plus_attention(llama8b):
    f = flops_per_token(llama8b, TrainingSetup(technique="full", seq_len=2048, gradient_checkpointing=False))
    n = llama8b.linear_weight_params + llama8b.vocab_size * llama8b.hidden_size
    # query i sees i + 1 keys: (s + 1) / 2 on average, the masked half skipped (SDPA)
    attn_fwd = 2 * 2 * (2048 + 1) / 2 * llama8b.q_dim * llama8b.num_layers
    assert f.matmul_params == n
    assert f.total == pytest.approx(6 * n + 3 * attn_fwd)


def test_sliding_window_layers_attend_to_at_most_the_window(catalog):
    a = catalog.model("gemma-3-12b").anatomy  # 1024-token window on 40 of 48 layers
    assert (a.sliding_window, a.sliding_layers, a.num_layers) == (1024, 40, 48)
    s = 8192
    f = flops_per_token(a, TrainingSetup(technique="full", seq_len=s, gradient_checkpointing=False))
    w = 1024
    keys = 8 * (s + 1) / 2 + 40 * (w * (w + 1) / 2 + (s - w) * w) / s
    assert f.forward == pytest.approx(2 * f.matmul_params + 2 * 2 * a.q_dim * keys)
    assert keys_per_query(s, w, True) < w < keys_per_query(s, None, True) < keys_per_query(s, w, False) == s


def test_a_moe_token_costs_its_active_experts_not_all_of_them(catalog):
    a = catalog.model("mixtral-8x7b").anatomy  # 8 experts, top 2
    f = flops_per_token(a, TrainingSetup(technique="full", seq_len=16, gradient_checkpointing=False))
    experts = sum(g.weight_params * g.count for g in a.params if g.routed)
    assert f.matmul_params == a.linear_weight_params + experts * 2 // 8 + sum(
        g.weight_params * g.count for g in a.params if not g.routed) + a.vocab_size * a.hidden_size
    assert a.params_active == 12_879_925_248 and a.params_total == 46_702_792_704  # Mistral: 12.9B of 46.7B


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


def test_an_op_takes_the_longest_of_its_three_floors(catalog):
    from estimators.speed import Op, constants

    c, h100 = constants(), catalog.gpu("H100-80GB")
    peak, bw = h100.bf16_dense_tflops * 1e12, h100.memory_bandwidth_tb_s * 1e12
    matmul = Op("mm", "forward", flops=1e12, nbytes=1e6, kernels=1)
    assert matmul.seconds(h100, c) == pytest.approx(1e12 / (peak * c.matmul_efficiency))
    norm = Op("norm", "forward", flops=0.0, nbytes=1e9, kernels=7)
    assert norm.seconds(h100, c) == pytest.approx(1e9 / (bw * c.bandwidth_efficiency))
    tiny = Op("cast", "forward", flops=0.0, nbytes=1e3, kernels=10)
    assert tiny.seconds(h100, c) == pytest.approx(10 * c.launch_s)


def test_small_steps_are_launch_bound_and_large_ones_compute_bound(catalog):
    from estimators.speed import step_time

    a, g = catalog.model("llama-3.2-3b").anatomy, catalog.gpu("A100-80GB")
    small = step_time(a, TrainingSetup(technique="lora", seq_len=128, gradient_checkpointing=False), g).bound
    large = step_time(a, TrainingSetup(technique="lora", seq_len=4096, micro_batch=4), g).bound
    assert small["launch"] > small["compute"] + small["memory"]
    assert large["compute"] > large["launch"] + large["memory"]
    # so tokens/s grow with the step until compute dominates
    tps = [estimate_throughput(a, TrainingSetup(technique="lora", seq_len=n), g).tokens_per_s for n in (256, 1024, 4096)]
    assert tps[0] < tps[1] < tps[2]


def test_gpus_differ_by_bandwidth_as_well_as_peak(catalog, llama8b):
    h100, h200, a100 = catalog.gpu("H100-80GB"), catalog.gpu("H200"), catalog.gpu("A100-80GB")
    assert h100.bf16_dense_tflops == h200.bf16_dense_tflops and h200.memory_bandwidth_tb_s > h100.memory_bandwidth_tb_s
    # a QLoRA step of a few hundred tokens dequantizes every weight: bandwidth matters
    s = TrainingSetup(technique="qlora", seq_len=512, micro_batch=1)
    t100, t200 = (estimate_throughput(llama8b, s, g).tokens_per_s for g in (h100, h200))
    assert t200 > t100
    # a large step is compute-bound: the A100 is slower by less than the peak ratio but more than the bandwidth ratio
    big = TrainingSetup(technique="full", seq_len=4096, micro_batch=2, gpu_count=8, sharding="fsdp")
    ratio = estimate_throughput(llama8b, big, h100).tokens_per_s / estimate_throughput(llama8b, big, a100).tokens_per_s
    assert h100.memory_bandwidth_tb_s / a100.memory_bandwidth_tb_s < ratio <= h100.bf16_dense_tflops / a100.bf16_dense_tflops


def test_qlora_costs_less_next_to_lora_as_the_step_grows(llama8b, catalog):
    g = catalog.gpu("A100-40GB")

    def ratio(**kw):
        q = estimate_throughput(llama8b, TrainingSetup(technique="qlora", **kw), g).tokens_per_s
        lo = estimate_throughput(llama8b, TrainingSetup(technique="lora", **kw), g).tokens_per_s
        return q / lo

    assert ratio(seq_len=256) < ratio(seq_len=4096, micro_batch=4) < 1.0


def test_mfu_is_on_model_flops_and_hfu_adds_the_recompute(catalog, llama8b):
    h100 = catalog.gpu("H100-80GB")
    on = estimate_throughput(llama8b, TrainingSetup(technique="full", gpu_count=8, sharding="fsdp"), h100)
    f = on.flops_per_token
    assert on.mfu == pytest.approx(on.tokens_per_s * (f.forward + f.backward) / (8 * h100.bf16_dense_tflops * 1e12))
    assert on.hfu == pytest.approx(on.mfu * f.total / (f.forward + f.backward)) and on.hfu > on.mfu
    off = estimate_throughput(llama8b, TrainingSetup(technique="lora", gradient_checkpointing=False), h100)
    assert off.hfu == pytest.approx(off.mfu)
    measured = estimate_throughput(llama8b, TrainingSetup(technique="lora"), h100, mfu=0.5)
    assert measured.mfu_measured and measured.tokens_per_s == pytest.approx(
        h100.bf16_dense_tflops * 1e12 * 0.5 / measured.flops_per_token.total)


def test_full_fine_tuning_pays_the_optimizer_step_over_every_weight(catalog, llama8b):
    from estimators.speed import optimizer_ops

    ops = {o.name: o for o in optimizer_ops(llama8b, TrainingSetup(technique="full"))}
    P = llama8b.params_total
    # fused AdamW in bf16: read weight, grad, m, v and write weight, m, v (2 bytes each)
    assert ops["AdamW step"].nbytes == pytest.approx(P * (2 * 2 + 2 + 4 * 2))
    lora = {o.name: o for o in optimizer_ops(llama8b, TrainingSetup(technique="lora"))}
    assert lora["AdamW step"].nbytes == pytest.approx(model_states(llama8b, TrainingSetup(technique="lora")).trainable_params * 7 * 4)


def test_collectives_run_over_the_cards_interconnect(catalog, llama8b):
    from estimators.speed import collective_bytes, step_time

    s = TrainingSetup(technique="full", gpu_count=8, sharding="fsdp")
    per_micro, per_step = collective_bytes(llama8b, s)
    # two all-gathers of the bf16 weights and a reduce-scatter of the gradients, (N-1)/N of each per GPU
    assert per_micro == pytest.approx(7 / 8 * (2 * llama8b.params_total * 2 + llama8b.params_total * 2))
    nvlink, pcie = catalog.gpu("H100-80GB"), catalog.gpu("H100-PCIe")
    assert nvlink.interconnect_gb_s > pcie.interconnect_gb_s
    assert step_time(llama8b, s, pcie).communication_s > step_time(llama8b, s, nvlink).communication_s
    one = estimate_throughput(llama8b, TrainingSetup(technique="lora", gpu_count=1), nvlink).tokens_per_s
    ddp = estimate_throughput(llama8b, TrainingSetup(technique="lora", gpu_count=8), nvlink).tokens_per_s
    assert ddp <= 8 * one


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


def test_serving_capacity_is_bought_for_the_peak_and_the_replica_floor(catalog):
    a = catalog.model("llama-3.1-8b").anatomy
    w = Workload(requests_per_month=3e7, input_tokens_per_request=500, output_tokens_per_request=100)
    base = serving_estimate(a, catalog.gpu("L40S"), w, peak_to_average=1.0)
    busy_hours = w.requests_per_month * base.gpu_seconds_per_request / base.tensor_parallel / 3600
    for p2a in (1.0, 2.0, 5.0):  # replicas = ceil(busy hours x peak/average / 730 h), by hand
        s = serving_estimate(a, catalog.gpu("L40S"), w, peak_to_average=p2a)
        assert s.replicas == max(1, math.ceil(busy_hours * p2a / HOURS_PER_MONTH))
    assert serving_estimate(a, catalog.gpu("L40S"), w, peak_to_average=5.0).replicas > base.replicas
    floor = serving_estimate(a, catalog.gpu("L40S"), w, peak_to_average=1.0, replicas_min=base.replicas + 3)
    assert floor.replicas == base.replicas + 3
    assert floor.usd_per_month == pytest.approx(floor.replicas * HOURS_PER_MONTH * floor.usd_per_gpu_hour)


def test_a_latency_target_caps_the_batch_and_an_impossible_one_is_refused(catalog):
    a = catalog.model("llama-3.1-8b").anatomy
    w = Workload(requests_per_month=1e6, input_tokens_per_request=2000, output_tokens_per_request=400)
    free = serving_estimate(a, catalog.gpu("L40S"), w)
    one = serving_estimate(a, catalog.gpu("L40S"), w, latency_p95_s=1e6)
    assert one.max_batch == free.max_batch  # a loose target changes nothing
    # batch 1: prefill + 400 decode steps, each reading the bf16 weights at 70% of the card's bandwidth
    gpu = catalog.gpu("L40S")
    step1 = (a.params_total * 2 + (2000 + 200) * 2 * a.num_layers * a.kv_dim * 2) / (gpu.memory_bandwidth_tb_s * 1e12
                                                                                      * 0.70)
    n_mm = a.linear_weight_params + a.vocab_size * a.hidden_size
    latency1 = 2 * n_mm * 2000 / (gpu.bf16_dense_tflops * 1e12 * 0.50) + 400 * step1
    tight = serving_estimate(a, gpu, w, latency_p95_s=latency1 * 1.05)
    assert 1 <= tight.max_batch < free.max_batch
    assert serving_estimate(a, gpu, w, latency_p95_s=latency1 * 0.95) is None


def test_quantized_serving_needs_fewer_cards_and_picks_fp8_only_where_the_card_has_it(catalog):
    a = catalog.model("llama-3.1-70b").anatomy
    w = Workload(requests_per_month=1e5, input_tokens_per_request=500, output_tokens_per_request=100)
    h100, a100 = catalog.gpu("H100-80GB"), catalog.gpu("A100-80GB")
    assert serving_precision(h100, True) == "fp8" and serving_precision(a100, True) == "int4"
    assert serving_precision(h100, False) == "bf16"
    bf16 = serving_estimate(a, h100, w)
    fp8 = serving_estimate(a, h100, w, precision="fp8")
    int4 = serving_estimate(a, a100, w, precision="int4")
    assert bf16.tensor_parallel == 2 and fp8.tensor_parallel == 1 and int4.tensor_parallel == 1
    assert SERVING_WEIGHT_BYTES == {"bf16": 2.0, "fp8": 1.0, "int4": 0.5}
