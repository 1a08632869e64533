"""The memory estimator's structure and its agreement with published formulas (no torch needed)."""

from __future__ import annotations

import pytest

from estimators.errors import EstimateError
from estimators.memory import (
    ALLOCATOR_FRAGMENTATION,
    estimate_memory,
    fit,
    model_states,
    nf4_bytes,
)
from estimators.setup import TrainingSetup

GB = 1e9


@pytest.fixture(scope="module")
def llama8b(catalog):
    return catalog.model("llama-3.1-8b").anatomy


def test_the_peak_is_the_fp32_loss_gradient_when_the_vocabulary_dominates(llama8b):
    """LoRA at 4 x 2048 tokens on a 128k vocabulary: backward starts with two fp32 T x V tensors (the gradient of
    the log-probabilities and of the logits) next to the saved log-probabilities; the reserve is 5% of what comes
    and goes, and the stated CUDA context is the part."""
    m = estimate_memory(llama8b, TrainingSetup(technique="lora", seq_len=2048, micro_batch=4))
    tokens, vocab = 4 * 2048, llama8b.vocab_size
    assert m.peak_phase == "backward start (loss gradient)"
    assert m.parts["logits_and_loss"] == m.activations.by_group["loss"] + 2 * tokens * vocab * 4
    assert m.parts["gradients"] == 0 and m.parts["backward_workspace"] == 0  # no accumulation; layers come later
    transient = m.parts["activations"] + m.parts["logits_and_loss"]
    assert m.parts["allocator_reserve"] == int(ALLOCATOR_FRAGMENTATION * transient)
    assert f"CUDA context {m.parts['cuda_context'] >> 20} MiB" in " ".join(m.assumptions)


def test_full_pure_bf16_model_states_are_8_bytes_per_parameter(llama8b):
    """LLaMA-Factory's table: full fine-tuning in pure bf16 needs 8 bytes per parameter (2+2+4)."""
    s = model_states(llama8b, TrainingSetup(technique="full"))
    n = llama8b.params_total
    tensors = sum(c for _, c in llama8b.param_tensor_numels)
    assert s.weights_bytes == 2 * n and s.gradients_bytes == 2 * n
    assert s.optimizer_bytes == 4 * n + 4 * tensors  # + one fp32 step counter per tensor


def test_nf4_costs_4_127_bits_with_double_quant_and_4_5_without():
    """QLoRA paper (arXiv 2305.14314): constants 0.5 bits/param, or 0.127 with double quantization."""
    n = 4096 * 14336
    data, dq = nf4_bytes(n, True)
    _, single = nf4_bytes(n, False)
    assert (data + dq) * 8 / n == pytest.approx(4.127, abs=0.001)
    assert (data + single) * 8 / n == pytest.approx(4.5, abs=0.001)


def test_qlora_fits_a_70b_model_in_48_gb(catalog):
    """QLoRA paper: 65B fine-tuning needs under 48 GB."""
    a = catalog.model("llama-3.1-70b").anatomy
    m = estimate_memory(a, TrainingSetup(technique="qlora", seq_len=512, micro_batch=1))
    assert m.total_bytes < 48 * GB


def test_zero_model_states_follow_deepspeeds_estimators(llama8b):
    n, largest = llama8b.params_total, llama8b.largest_module_params
    for gpus in (2, 8):
        z2 = model_states(llama8b, TrainingSetup(technique="full", gpu_count=gpus, sharding="zero2"))
        total2 = z2.weights_bytes + z2.trainable_weights_bytes + z2.gradients_bytes + z2.optimizer_bytes
        assert total2 == pytest.approx(4 * n + 16 * n / gpus, rel=1e-9)
        z3 = model_states(llama8b, TrainingSetup(technique="full", gpu_count=gpus, sharding="zero3"))
        total3 = z3.weights_bytes + z3.trainable_weights_bytes + z3.gradients_bytes + z3.optimizer_bytes
        assert total3 == pytest.approx(4 * largest + 18 * n / gpus, rel=1e-9)
    off2 = model_states(llama8b, TrainingSetup(technique="full", gpu_count=2, sharding="zero2", offload="optimizer"))
    assert off2.weights_bytes + off2.gradients_bytes + off2.optimizer_bytes + off2.trainable_weights_bytes == 2 * n
    assert off2.host_bytes == 16 * n
    off3 = model_states(llama8b, TrainingSetup(technique="full", gpu_count=2, sharding="zero3", offload="params"))
    assert off3.weights_bytes == 4 * largest and off3.optimizer_bytes == 0


def test_sharding_divides_the_per_gpu_states(llama8b):
    one = estimate_memory(llama8b, TrainingSetup(technique="full"))
    eight = estimate_memory(llama8b, TrainingSetup(technique="full", gpu_count=8, sharding="fsdp"))
    # accelerate's FSDP2 upcasts the trainable bf16 weights to fp32 masters: fp32 AdamW states, sharded by 8
    assert eight.parts["optimizer_states"] == pytest.approx(2 * one.parts["optimizer_states"] / 8, rel=1e-6)
    ms = model_states(llama8b, TrainingSetup(technique="full", gpu_count=8, sharding="fsdp"))
    n = llama8b.params_total
    assert ms.trainable_weights_bytes == 4 * n // 8 and ms.gradients_bytes == 4 * n // 8
    assert eight.total_bytes < one.total_bytes / 3
    # adapters: only the (already fp32) adapters are trainable, the frozen bf16 base is sharded as it is
    lora = model_states(llama8b, TrainingSetup(technique="lora", gpu_count=8, sharding="fsdp"))
    assert lora.weights_bytes < 2 * n // 8 + 3 * 2 * llama8b.largest_layer_params


def test_ddp_replicates_and_adds_gradient_buckets(llama8b):
    one = model_states(llama8b, TrainingSetup(technique="full"))
    ddp = model_states(llama8b, TrainingSetup(technique="full", gpu_count=4))
    assert ddp.gradients_bytes == 2 * one.gradients_bytes and ddp.weights_bytes == one.weights_bytes


def test_memory_grows_with_sequence_and_batch_and_shrinks_with_the_usual_levers(llama8b):
    def total(**kw):
        base = dict(technique="lora", seq_len=1024, micro_batch=2)
        return estimate_memory(llama8b, TrainingSetup(**{**base, **kw})).total_bytes

    assert total(seq_len=512) < total() < total(seq_len=4096)
    assert total(micro_batch=1) < total() < total(micro_batch=8)
    assert total(gradient_checkpointing=True) < total(gradient_checkpointing=False)
    assert total(technique="qlora") < total() < total(technique="full")
    assert total(technique="full", optimizer="adamw-8bit") < total(technique="full")


def test_gradient_accumulation_keeps_gradients_through_forward(llama8b):
    kw = dict(technique="full", seq_len=4096, micro_batch=4, gradient_checkpointing=False)
    single = estimate_memory(llama8b, TrainingSetup(**kw))
    accum = estimate_memory(llama8b, TrainingSetup(grad_accum=4, **kw))
    assert accum.phases["forward end (loss)"] - single.phases["forward end (loss)"] == single.states.gradients_bytes


def test_dpo_doubles_the_sequences_and_full_dpo_adds_a_reference_copy(llama8b):
    sft = estimate_memory(llama8b, TrainingSetup(technique="full", gradient_checkpointing=False))
    dpo = estimate_memory(llama8b, TrainingSetup(technique="full", objective="dpo", gradient_checkpointing=False))
    assert dpo.parts["weights"] == sft.parts["weights"] + 2 * llama8b.params_total
    lora_sft = estimate_memory(llama8b, TrainingSetup(technique="lora"))
    lora_dpo = estimate_memory(llama8b, TrainingSetup(technique="lora", objective="dpo"))
    assert lora_dpo.parts["weights"] == lora_sft.parts["weights"]
    assert lora_dpo.activations.model_bytes == 2 * lora_sft.activations.model_bytes


def test_fit_headroom_is_usable_minus_needed(catalog, llama8b):
    m = estimate_memory(llama8b, TrainingSetup(technique="full"))
    for g in catalog.gpus:
        f = fit(m, g)
        assert f.headroom_bytes == g.usable_memory_bytes - m.total_bytes
        assert f.fits == (f.headroom_bytes >= 0)
    assert not fit(m, catalog.gpu("RTX-4090")).fits
    assert fit(m, catalog.gpu("H200")).fits


def test_setup_errors_name_every_bad_field_at_once():
    with pytest.raises(EstimateError) as e:
        TrainingSetup(technique="lorax", seq_len=0, micro_batch=-1)
    msg = str(e.value)
    assert "technique must be one of full, lora, qlora, dora; got 'lorax'" in msg
    assert "seq_len must be a whole number >= 1" in msg and "micro_batch" in msg


@pytest.mark.parametrize("kw,match", [
    (dict(technique="qlora", precision="fp32"), "qlora computes in bf16"),
    (dict(offload="optimizer"), "offload needs sharding"),
    (dict(sharding="zero3"), "needs gpu_count >= 2"),
    (dict(sharding="zero2", gpu_count=2, offload="params"), "zero2 can offload the optimizer only"),
])
def test_inconsistent_setups_are_refused(kw, match):
    with pytest.raises(EstimateError, match=match):
        TrainingSetup(**kw)

