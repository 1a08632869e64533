"""Chunked and fused losses, activation offloading and fp32 master weights, each against its kernel's own rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from estimators.activations import (
    CHUNKED_LOSS_CHUNKS,
    liger_chunk_rows,
    trace_activations,
)
from estimators.errors import EstimateError
from estimators.memory import estimate_memory, model_states
from estimators.setup import TrainingSetup


@pytest.fixture(scope="module")
def llama8b(catalog):
    return catalog.model("llama-3.1-8b").anatomy


def test_liger_chunk_size_follows_its_source():
    # liger_kernel/ops/fused_linear_cross_entropy.py: "BT = 4096*4, V = 32000, H = 4096 ==> inc_factor = 8,
    # chunk_size = 2048"
    assert liger_chunk_rows(4096 * 4, 32000, 4096) == 2048
    # Llama-3's 128k vocabulary at hidden 4096: inc_factor 32, 8192 tokens -> 256-row chunks
    assert liger_chunk_rows(8192, 128256, 4096) == 256
    assert liger_chunk_rows(100, 32000, 4096) == 16  # ceil(100 / 8) = 13 -> next power of two
    assert liger_chunk_rows(3, 1000, 4096) == 3  # one chunk covers BT when the budget allows


def test_each_loss_keeps_what_its_kernel_keeps(llama8b):
    a = llama8b
    T, V, h = 2 * 4096, a.vocab_size, a.hidden_size
    base = dict(technique="lora", seq_len=4096, micro_batch=2)

    def loss(kernel):
        tr = trace_activations(a, TrainingSetup(**base, loss_kernel=kernel))
        return tr.by_group["loss"], tr.loss_forward_transient_bytes, tr.loss_backward_transient_bytes

    saved, fwd, bwd = loss("standard")
    assert saved == T * V * 4 + (T * 8) + 4  # fp32 log-probabilities, labels, total weight
    assert (fwd, bwd) == (T * V * 2 + T * V * 4, 2 * T * V * 4)
    # Liger: grad_input (T x H, bf16) computed in forward, labels; one chunk of logits and the fp32 per-token loss
    saved, fwd, bwd = loss("liger")
    assert saved == T * h * 2 + T * 8
    assert (fwd, bwd) == (liger_chunk_rows(T, V, h) * V * 2 + T * 4, 0)
    # Cut Cross-Entropy: the hidden states and an fp32 logsumexp; backward writes the hidden-state gradient
    saved, fwd, bwd = loss("cce")
    assert saved == T * h * 2 + T * 4 + T * 8 and (fwd, bwd) == (T * 4, T * h * 2)
    # torchtune's compiled chunked loss: bf16 logits and a logsumexp kept, one fp32 chunk at a time
    saved, fwd, bwd = loss("chunked")
    chunk = T // CHUNKED_LOSS_CHUNKS
    assert saved == T * V * 2 + T * 4 + T * 8 and (fwd, bwd) == (chunk * V * 4, chunk * V * 6)


def test_fused_losses_train_the_lm_head_in_forward_for_full_fine_tuning(llama8b):
    a = llama8b
    T, V, h = 2048, a.vocab_size, a.hidden_size
    liger = trace_activations(a, TrainingSetup(technique="full", seq_len=T, loss_kernel="liger"))
    assert liger.by_group["loss"] == T * h * 2 + V * h * 2 + T * 8  # grad_weight V x H in the weight dtype
    cce = trace_activations(a, TrainingSetup(technique="full", seq_len=T, loss_kernel="cce"))
    assert cce.loss_backward_transient_bytes == T * h * 2 + V * h * 2


def test_the_loss_kernel_moves_the_peak_by_what_it_saves(llama8b):
    s = dict(technique="lora", seq_len=8192, micro_batch=2)
    std, liger = (estimate_memory(llama8b, TrainingSetup(**s, loss_kernel=k)) for k in ("standard", "liger"))
    assert std.peak_phase == "backward start (loss gradient)"
    assert std.parts["logits_and_loss"] >= 12 * 2 * 8192 * llama8b.vocab_size
    # with the loss fused, the peak moves into the decoder's backward and the T x V tensors are gone
    assert liger.parts["logits_and_loss"] == 0
    assert liger.total_bytes < std.total_bytes - 8 * 2 * 8192 * llama8b.vocab_size


def test_liger_norms_and_swiglu_save_less_than_transformers(llama8b):
    s = dict(technique="lora", seq_len=1024, gradient_checkpointing=False)
    hf = trace_activations(llama8b, TrainingSetup(**s)).layer_bytes_no_checkpoint
    lg = trace_activations(llama8b, TrainingSetup(**s, loss_kernel="liger")).layer_bytes_no_checkpoint
    T, h, i = 1024, llama8b.hidden_size, llama8b.intermediate_size
    # per norm: the fp32 input (4 bytes/element) becomes the bf16 input, already saved by the layer before it;
    # per MLP: three T x intermediate tensors (gate, act, up) become two (gate, up)
    assert hf - lg >= 2 * T * h * 2 + T * i * 2


def test_activation_offload_keeps_two_layers_on_the_gpu(llama8b):
    s = TrainingSetup(technique="lora", seq_len=4096, gradient_checkpointing=False)
    on = estimate_memory(llama8b, replace(s, activation_offload=True))
    off = estimate_memory(llama8b, s)
    layers = off.activations.by_group["layers"]
    expected = off.activations.model_bytes - layers + 2 * layers / llama8b.num_layers
    assert on.phases["forward end (loss)"] == pytest.approx(off.phases["forward end (loss)"]
                                                            - off.activations.model_bytes + expected, abs=1)


def test_fp32_master_weights_hold_16_bytes_per_parameter(llama8b):
    amp = model_states(llama8b, TrainingSetup(technique="full", master_weights="fp32"))
    per = (amp.weights_bytes + amp.gradients_bytes + amp.optimizer_bytes) / llama8b.params_total
    assert per == pytest.approx(16, abs=0.001)  # fp32 weights 4 + fp32 gradients 4 + fp32 m and v 8
    m = estimate_memory(llama8b, TrainingSetup(technique="full", master_weights="fp32", seq_len=1024))
    # at the end of forward autocast still caches a bf16 copy of every matmul weight (layers and lm_head)
    copies = 2 * (llama8b.linear_weight_params + llama8b.vocab_size * llama8b.hidden_size)
    tr = m.activations
    persistent = amp.weights_bytes + amp.trainable_weights_bytes + amp.optimizer_bytes
    loss = tr.by_group["loss"] + tr.loss_forward_transient_bytes
    assert m.phases["forward end (loss)"] == persistent + copies + tr.model_bytes + loss
    # and the residual stream stays fp32: checkpointed layer inputs take 4 bytes per element
    kept = next(i for i in m.activations.items if i.what == "layer input (kept by checkpointing)")
    assert kept.nbytes == llama8b.num_layers * 1024 * llama8b.hidden_size * 4


def test_options_that_do_not_apply_are_refused(catalog):
    with pytest.raises(EstimateError, match="Liger-Kernel has no kernels for model_type gpt_oss"):
        trace_activations(catalog.model("gpt-oss-20b").anatomy, TrainingSetup(loss_kernel="liger"))
    with pytest.raises(EstimateError, match="DPO and KTO"):
        TrainingSetup(objective="dpo", loss_kernel="cce")
    with pytest.raises(EstimateError, match="master_weights fp32 applies to full fine-tuning"):
        TrainingSetup(technique="lora", master_weights="fp32")
    with pytest.raises(EstimateError, match="loss_kernel must be one of"):
        TrainingSetup(loss_kernel="fused")
