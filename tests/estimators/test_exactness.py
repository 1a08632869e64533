"""The memory estimator against real tensors, on CPU, with tiny random models of each family.

* Model states (weights incl. 4-bit data and quantization constants, trainable weights, gradients,
  optimizer states) must equal the bytes of the real tensors after a real optimizer step, with peft
  LoRA/DoRA and bitsandbytes NF4 (both run on CPU).
* Activations must be within 5% of the bytes autograd saves for backward (saved_tensors_hooks, unique
  storages alive at the end of forward, parameters excluded), at two sequence lengths and two batch
  sizes, with and without gradient checkpointing. (They are exact today; 5% is the contract.)
"""

from __future__ import annotations

import itertools

import pytest

from estimators.activations import trace_activations
from estimators.anatomy import anatomy_of_model, build_meta_model, select_lora_params
from estimators.errors import EstimateError
from estimators.families import families, tiny_config
from estimators.memory import model_states
from estimators.setup import TrainingSetup
from profiler.build import build_model, build_optimizer
from profiler.tensors import record_saved_tensors, state_bytes

#: every family whose trace families.yaml calls verified is held against the real tensors here
FAMILIES = tuple(name for name, f in families().items() if f.verified and f.chat_of is None)
SHAPES = ((1, 32), (1, 96), (2, 32), (2, 96))  # (micro-batch, seq_len): two of each
TOLERANCE = 0.05


def _anatomy(cfg):
    return anatomy_of_model(build_meta_model(cfg))


def _vocab(cfg: dict) -> int:
    return (cfg["text_config"] if "text_config" in cfg else cfg)["vocab_size"]


def _rel(est: int, meas: int) -> float:
    return abs(est - meas) / max(meas, 1)


# ---- model states -------------------------------------------------------------------------------
def _states_after_a_step(torch, cfg, setup):
    """Real tensor bytes of model, gradients and optimizer after one forward/backward/step."""
    model = build_model(cfg, setup)
    optimizer = build_optimizer(model, setup)
    ids = torch.randint(0, _vocab(cfg), (1, setup.seq_len))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return state_bytes(model, optimizer)


def _peft_adapts_parameters(fam: str) -> bool:
    """peft's "all-linear" adapts this family's fused experts as parameters (ParamWrapper: no DoRA)."""
    return bool(select_lora_params(_anatomy(tiny_config(fam)), "all-linear"))


STATE_CASES = [
    (fam, tech, prec, opt)
    for fam, tech, prec, opt in itertools.product(
        FAMILIES, ("full", "lora", "dora", "qlora"), ("bf16", "fp32"), ("adamw", "adamw-8bit")
    )
    if not (tech == "qlora" and prec == "fp32") and not (tech == "dora" and _peft_adapts_parameters(fam))
]


@pytest.mark.parametrize("fam,tech,prec,opt", STATE_CASES, ids=["-".join(c) for c in STATE_CASES])
def test_model_states_equal_real_tensors_after_a_step(torch_cpu, fam, tech, prec, opt):
    # wide enough that some tensors pass bitsandbytes' 4096-element threshold for 8-bit states
    cfg = _wider(fam)
    setup = TrainingSetup(technique=tech, precision=prec, optimizer=opt, seq_len=16, micro_batch=1, lora_r=8,
                          gradient_checkpointing=False)
    est = model_states(_anatomy(cfg), setup)
    real = _states_after_a_step(torch_cpu, cfg, setup)
    assert est.weights_bytes + est.trainable_weights_bytes == real.frozen_weights_bytes + real.trainable_weights_bytes
    assert est.trainable_weights_bytes == (0 if tech == "full" else real.trainable_weights_bytes)
    assert est.gradients_bytes == real.gradients_bytes
    assert est.optimizer_bytes == real.optimizer_bytes
    assert est.quant_constants_bytes == real.quant_constants_bytes


def _wider(fam: str) -> dict:
    """The tiny config, wide enough that some tensors pass bitsandbytes' 4096-element threshold."""
    cfg = tiny_config(fam)
    text = cfg["text_config"] if "text_config" in cfg else cfg
    text.update({"hidden_size": 128, "intermediate_size": 352, "vocab_size": 640})
    if fam == "gemma2":
        text["head_dim"] = 32
    if "moe_intermediate_size" in text:
        text["moe_intermediate_size"] = 96
    return cfg


@pytest.mark.parametrize("fam", [f for f in FAMILIES if _peft_adapts_parameters(f)])
def test_dora_on_experts_peft_adapts_as_parameters_is_refused_like_peft_refuses_it(torch_cpu, fam):
    setup = TrainingSetup(technique="dora", seq_len=8, micro_batch=1, lora_r=4, lora_dropout=0.0)
    with pytest.raises(ValueError, match="use_dora"):
        build_model(tiny_config(fam), setup)
    with pytest.raises(EstimateError, match="DoRA: peft adapts this"):
        model_states(_anatomy(tiny_config(fam)), setup)


MOE_FAMILIES = [f for f in FAMILIES if _anatomy(tiny_config(f)).is_moe]


@pytest.mark.parametrize("fam", MOE_FAMILIES)
def test_qlora_leaves_fused_experts_and_routers_in_the_compute_dtype(torch_cpu, fam):
    """bitsandbytes (through transformers' quantizer) packs nn.Linear weights only: measured, not assumed."""
    setup = TrainingSetup(technique="qlora", seq_len=8, micro_batch=1, lora_r=4, lora_dropout=0.0,
                          gradient_checkpointing=False)
    model = build_model(_wider(fam), setup)
    kept = {n.rsplit(".", 1)[-1]: p.dtype for n, p in model.named_parameters()
            if p.dim() == 3 or n.endswith(("gate.weight", "router.weight"))}
    assert kept and all(dt == torch_cpu.bfloat16 for dt in kept.values()), kept
    packed = [n for n, p in model.named_parameters() if p.dtype == torch_cpu.uint8]
    assert packed and all("self_attn" in n for n in packed)
    anatomy = _anatomy(_wider(fam))
    assert model_states(anatomy, setup).weights_bytes == state_bytes(model).frozen_weights_bytes


@pytest.mark.parametrize("fam", MOE_FAMILIES)
def test_moe_activations_do_not_depend_on_how_the_router_spreads_tokens(torch_cpu, fam):
    """Random weights route unevenly; forcing every token onto the same experts (a router with one large row)
    saves the same bytes: grouped_mm runs T*k (token, expert) pairs however they are spread, and the estimate
    assumes exactly that."""
    cfg = tiny_config(fam)
    setup = TrainingSetup(technique="lora", seq_len=32, micro_batch=1, lora_r=4, lora_dropout=0.0,
                          gradient_checkpointing=False)
    model = build_model(cfg, setup)
    even, _ = _measure(torch_cpu, model, cfg["vocab_size"], 1, 32)
    with torch_cpu.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("gate.base_layer.weight", "gate.weight", "router.weight")) and p.dim() == 2:
                p.zero_()
                p[0] += 10.0  # expert 0 wins every token
    skewed, _ = _measure(torch_cpu, model, cfg["vocab_size"], 1, 32)
    assert skewed == even
    assert _rel(trace_activations(_anatomy(cfg), setup, device="cpu").model_bytes, even) <= TOLERANCE


def test_dora_with_bf16_adapters_keeps_fp32_magnitudes(torch_cpu):
    cfg = {**tiny_config("llama"), "hidden_size": 128, "intermediate_size": 352}
    setup = TrainingSetup(technique="dora", adapter_dtype="bf16", seq_len=8, micro_batch=1, lora_r=4,
                          gradient_checkpointing=False)
    est = model_states(_anatomy(cfg), setup)
    real = _states_after_a_step(torch_cpu, cfg, setup)
    assert (est.trainable_weights_bytes, est.gradients_bytes, est.optimizer_bytes) == (
        real.trainable_weights_bytes, real.gradients_bytes, real.optimizer_bytes)


@pytest.mark.parametrize("double_quant", [True, False])
def test_nf4_quantization_constants_with_and_without_double_quant(torch_cpu, double_quant):
    cfg = {**tiny_config("llama"), "hidden_size": 128, "intermediate_size": 352}
    setup = TrainingSetup(technique="qlora", seq_len=8, micro_batch=1, lora_r=4, double_quant=double_quant,
                          gradient_checkpointing=False)
    est = model_states(_anatomy(cfg), setup)
    real = state_bytes(build_model(cfg, setup))
    assert est.quant_constants_bytes == real.quant_constants_bytes
    assert est.weights_bytes == real.frozen_weights_bytes


# ---- activations --------------------------------------------------------------------------------
def _measure(torch, model, vocab, batch, seq):
    ids = torch.randint(0, vocab, (batch, seq))
    with record_saved_tensors(model) as rec:
        out = model(input_ids=ids, labels=ids)
        measured = rec.bytes_by_where()
    out.loss.backward()
    model.zero_grad(set_to_none=True)
    return measured.get("model", 0), measured.get("loss", 0)


def _check_activations(torch, fam, setup_kwargs, shapes=SHAPES):
    cfg = tiny_config(fam)
    anatomy = _anatomy(cfg)
    base = TrainingSetup(seq_len=shapes[0][1], micro_batch=shapes[0][0], **setup_kwargs)
    model = build_model(cfg, base)
    failures = []
    for batch, seq in shapes:
        setup = TrainingSetup(seq_len=seq, micro_batch=batch, **setup_kwargs)
        trace = trace_activations(anatomy, setup, device="cpu")
        real_model, real_loss = _measure(torch, model, _vocab(cfg), batch, seq)
        est_model, est_loss = trace.model_bytes, trace.by_group.get("loss", 0)
        for what, est, real in (("activations", est_model, real_model), ("loss", est_loss, real_loss)):
            if _rel(est, real) > TOLERANCE:
                failures.append(f"b={batch} s={seq} {what}: estimated {est} vs saved {real} ({_rel(est, real):.1%})")
        assert trace.total_bytes == est_model + est_loss
    assert not failures, "; ".join(failures)


ACT_CASES = list(itertools.product(FAMILIES, ("full", "lora", "qlora"), (False, True)))


@pytest.mark.parametrize("fam,tech,gc", ACT_CASES, ids=[f"{f}-{t}-{'gc' if g else 'nogc'}" for f, t, g in ACT_CASES])
def test_activations_match_saved_tensors_bf16(torch_cpu, fam, tech, gc):
    _check_activations(torch_cpu, fam, dict(technique=tech, precision="bf16", gradient_checkpointing=gc,
                                            lora_r=4, lora_dropout=0.0))


@pytest.mark.parametrize("fam", FAMILIES)
def test_activations_match_saved_tensors_fp32_full(torch_cpu, fam):
    _check_activations(torch_cpu, fam, dict(technique="full", precision="fp32", gradient_checkpointing=False))


@pytest.mark.parametrize(
    "fam,tech,prec,dropout,targets",
    [
        ("llama", "dora", "bf16", 0.0, ("all-linear",)),
        ("gemma2", "dora", "fp32", 0.1, ("all-linear",)),
        ("llama", "lora", "bf16", 0.1, ("q_proj", "v_proj")),
        ("qwen2", "qlora", "bf16", 0.05, ("gate_proj", "down_proj")),
        ("phi3", "lora", "fp32", 0.0, ("all-linear",)),
        ("phi3", "full", "bf16", 0.0, ("all-linear",)),
    ],
)
def test_activations_adapter_variants(torch_cpu, fam, tech, prec, dropout, targets):
    _check_activations(
        torch_cpu, fam,
        dict(technique=tech, precision=prec, gradient_checkpointing=False, lora_r=4, lora_dropout=dropout,
             lora_targets=targets),
        shapes=((1, 32), (2, 96)),
    )


def test_eager_and_sdpa_differ_by_the_attention_matrix(catalog):
    """Eager attention stores b*h*s*s probabilities (fp32 softmax + its bf16 copy); flash/SDPA does not."""
    a = catalog.model("llama-3.1-8b").anatomy
    kw = dict(technique="full", seq_len=1024, micro_batch=1, gradient_checkpointing=False)
    sdpa = trace_activations(a, TrainingSetup(attn_impl="sdpa", **kw))
    eager = trace_activations(a, TrainingSetup(attn_impl="eager", **kw))
    square = a.num_attention_heads * 1024 * 1024
    # per layer eager adds the fp32 softmax (4 bytes) and its bf16 copy (2) per score and k/v repeated to
    # every head (GQA); it drops the logsumexp. (Its o_proj input copy replaces SDPA's saved output.)
    extra_per_layer = square * 6 - a.num_attention_heads * 1024 * 4 + 2 * 1024 * (a.q_dim - a.kv_dim) * 2
    assert eager.total_bytes - sdpa.total_bytes == extra_per_layer * a.num_layers
