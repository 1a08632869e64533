"""Time of one training step from a roofline over its operations, at the step's own shapes.

Every operation of a micro-batch (forward, backward, the recompute under gradient checkpointing, the reference
forward of DPO/KTO) is listed with its FLOPs, the bytes it moves through device memory and the kernels it launches
(``step_ops``). Its time is the longest of three floors (Williams et al. 2009, "Roofline"):

    max(FLOPs / (peak x matmul efficiency), bytes / (bandwidth x bandwidth efficiency), kernels x launch time)

so a large matmul is compute-bound, a norm or a cast is bandwidth-bound, and a step of a few hundred tokens is
bound by the host launching thousands of small kernels one by one (PyTorch eager). The optimizer step and gradient
clipping (bandwidth over every trainable tensor), gradient accumulation and, on several GPUs, the collectives of
DDP, ZeRO-2/3 and FSDP over the card's interconnect are added per optimizer step.

The efficiency constants (``estimators/data/speed.yaml``) are few and fitted on a named part of the published
measurements (``benchmarks/published_comparison.py --fit``); the other published rows are held out and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import yaml

from estimators.anatomy import Anatomy, select_lora_params, select_lora_targets
from estimators.catalog import GPU
from estimators.memory import model_states, nf4_bytes
from estimators.setup import TrainingSetup

DATA = Path(__file__).with_name("data") / "speed.yaml"


@dataclass(frozen=True)
class SpeedConstants:
    matmul_efficiency: float  # share of the datasheet dense bf16 peak a large GEMM sustains
    attention_efficiency: float  # share of the peak FlashAttention-2 / SDPA sustain, forward and backward
    bandwidth_efficiency: float  # share of the datasheet memory bandwidth a streaming kernel sustains
    launch_s: float  # host time to dispatch one kernel in PyTorch eager mode (autograd + launch)
    interconnect_efficiency: float  # NCCL bus bandwidth over the link's datasheet figure
    fitted_on: tuple[str, ...]
    source: str


@lru_cache(maxsize=1)
def constants() -> SpeedConstants:
    d = yaml.safe_load(DATA.read_text())
    c = d["constants"]
    return SpeedConstants(float(c["matmul_efficiency"]), float(c["attention_efficiency"]),
                          float(c["bandwidth_efficiency"]), float(c["launch_s"]),
                          float(c["interconnect_efficiency"]), tuple(d["fitted_on"]), str(d["source"]))


@dataclass(frozen=True)
class Op:
    """One kind of operation of a step, summed over its occurrences."""

    name: str
    phase: str  # forward | backward | recompute | reference | optimizer
    flops: float  # tensor-core FLOPs
    nbytes: float  # device-memory traffic
    kernels: float  # kernel launches
    attention: bool = False  # FlashAttention / SDPA kernel (its own efficiency)

    def floors(self, gpu: GPU, c: SpeedConstants) -> dict[str, float]:
        """Seconds bound by compute, by memory bandwidth and by kernel launches."""
        eff = c.attention_efficiency if self.attention else c.matmul_efficiency
        return {"compute": self.flops / (gpu.bf16_dense_tflops * 1e12 * eff),
                "memory": self.nbytes / (gpu.memory_bandwidth_tb_s * 1e12 * c.bandwidth_efficiency),
                "launch": self.kernels * c.launch_s}

    def seconds(self, gpu: GPU, c: SpeedConstants) -> float:
        return max(self.floors(gpu, c).values())


#: Bytes per element and kernels of the elementwise work around the matmuls, forward / backward, counted from the
#: transformers 5 eager implementations (LlamaRMSNorm: to(fp32), pow, mean, rsqrt, mul, to(bf16), mul by weight;
#: apply_rotary_pos_emb: rotate_half's slices, neg and cat, two muls and an add, for q and k; the SwiGLU act_fn and
#: product; the residual adds) and from the fused kernels that replace them (Liger's RMSNorm, RoPE and SwiGLU,
#: torch.compile's fusions: one read and one write per tensor). (bytes per element, kernels) per occurrence.
EAGER = {
    "norm": ((44, 7), (72, 12)),
    "rope": ((22, 6), (22, 6)),
    "swiglu": ((10, 2), (18, 3)),
    "residual": ((6, 1), (6, 1)),
    "attn_copy": ((4, 1), (4, 1)),
}
FUSED = {
    "norm": ((4, 1), (8, 2)),
    "rope": ((4, 1), (4, 1)),
    "swiglu": ((6, 1), (10, 1)),
    "residual": ((6, 1), (6, 1)),
    "attn_copy": ((4, 1), (4, 1)),
}
#: transformers' cross-entropy over T x V logits: upcast (2 + 4), log_softmax's max, sum and write (4 + 4 + 8), the
#: gather; backward: nll's zero-filled gradient, log_softmax_backward, the cast back (4 + 16 + 6)
STANDARD_LOSS = ((26, 5), (26, 5))
#: FlashAttention-2 backward does five matmuls to forward's two (Dao 2023, arXiv 2307.08691, section 3.1.2)
FLASH_BACKWARD_FLOPS_RATIO = 2.5


def _elementwise(ops: list[Op], name: str, phase: str, elements: float, table: dict, backward: bool) -> None:
    (fb, fk), (bb, bk) = table[name]
    b, k = (bb, bk) if backward else (fb, fk)
    ops.append(Op(name, phase, 0.0, b * elements, k))


def _layer_ops(a: Anatomy, s: TrainingSetup, phase: str, backward: bool, count: float) -> list[Op]:
    """One decoder layer's operations, ``count`` times (the layers, or the layers recomputed)."""
    T = s.sequences_per_micro_batch * s.seq_len
    dt = s.compute_bytes
    full = s.technique == "full"
    fused = s.compile or s.loss_kernel == "liger"
    table = FUSED if fused else EAGER
    ops: list[Op] = []
    h, q, kv = a.hidden_size, a.q_dim, a.kv_dim
    norms = a.norms_per_layer
    _elementwise(ops, "norm", phase, norms * T * h * count, table, backward)
    _elementwise(ops, "rope", phase, (q + kv) * T * count, table, backward)
    _elementwise(ops, "residual", phase, 2 * T * h * count, table, backward)
    _elementwise(ops, "attn_copy", phase, q * T * count, table, backward)
    # the MLP's activation: top-k experts' rows for a MoE model
    rows = T * (a.experts_per_token if a.is_moe else 1)
    inter = a.intermediate_size
    for g in a.params:
        if g.routed and "down" in g.name:
            inter = g.in_features
    _elementwise(ops, "swiglu", phase, rows * inter * count, EAGER if a.is_moe else table, backward)

    # attention itself
    from estimators.throughput import keys_per_query

    attn = s.resolved_attn(a.model_type)
    full_layers = a.num_layers - a.sliding_layers
    keys = (full_layers * keys_per_query(s.seq_len, None, attn != "eager")
            + a.sliding_layers * keys_per_query(s.seq_len, a.sliding_window, attn != "eager")) / a.num_layers
    fl = 2 * 2 * T * keys * q * count
    io = T * (2 * q + 2 * kv) * dt * count
    if attn == "eager":
        # scores and probabilities materialised: write bf16 scores, softmax in fp32 (read, write), cast, read
        scores = s.sequences_per_micro_batch * a.num_attention_heads * s.seq_len * keys * count
        ops.append(Op("attention (eager)", phase, fl * (2 if backward else 1), io + scores * (24 if backward else 16),
                      (8 if backward else 5) * count))
    else:
        ops.append(Op("attention (flash/SDPA)", phase, fl * (FLASH_BACKWARD_FLOPS_RATIO if backward else 1),
                      io * (2 if backward else 1), (3 if backward else 1) * count, attention=True))

    # the matmuls
    lora = {g.name for g in select_lora_targets(a, s.lora_targets)} if s.adapted else set()
    for g in a.linears:
        n = g.count / a.num_layers * count
        w = g.weight_params
        mm = 2 * T * w
        wbytes = w * dt
        if s.technique == "qlora":
            # bitsandbytes MatMul4Bit: dequantize_4bit (read NF4 + constants, write bf16) then a bf16 matmul, in
            # forward and again for the input gradient (bitsandbytes/autograd/_functions.py)
            d, cst = nf4_bytes(w, s.double_quant)
            ops.append(Op("NF4 dequantize", phase, 0.0, (d + cst + w * dt) * n, n))
        act = T * (g.in_features + g.out_features) * dt
        passes = (1 + (1 if full else 0)) if backward else 1  # input gradient, and weight gradient when trained
        ops.append(Op("linear", phase, mm * passes * n, (wbytes + act) * passes * n, passes * n))
        if g.name in lora:
            _lora_ops(ops, s, phase, backward, T, g.in_features, g.out_features, n)
    for g in a.params:  # MoE: router and fused experts (grouped_mm over the top-k rows)
        n = g.count / a.num_layers * count
        r = T * (a.experts_per_token if g.routed else 1)
        mm = 2 * r * g.in_features * g.out_features
        trained = full or bool(dict(select_lora_params(a, s.lora_targets)).get(g) if s.adapted else 0)
        passes = (1 + (1 if trained else 0)) if backward else 1
        ops.append(Op("experts (grouped_mm)" if g.routed else "router", phase, mm * passes * n,
                      (g.weight_params * dt + r * (g.in_features + g.out_features) * dt) * passes * n,
                      passes * n * (4 if g.routed else 1)))
    return ops


def _lora_ops(ops: list[Op], s: TrainingSetup, phase: str, backward: bool, T: int, i: int, o: int, n: float) -> None:
    """peft's LoRA branch of one adapted linear: dropout, A, B, scaling and the add to the base output (forward);
    their gradients (backward). DoRA adds its weight norm, recomputed every forward (peft lora/dora.py)."""
    r, ab = s.lora_r, 2  # under autocast the adapter matmuls run in bf16
    drop = s.lora_dropout > 0
    if not backward:
        fl = 2 * T * r * (i + o)
        nb = T * i * ab * (2.5 if drop else 1) + T * r * ab * 2 + T * o * ab * 4
        k = 5 + (1 if drop else 0)
    else:
        fl = 4 * T * r * (i + o)
        nb = T * i * ab * (3.5 if drop else 2) + T * r * ab * 4 + T * o * ab * 6
        k = 8 + (1 if drop else 0)
    ops.append(Op("LoRA branch", phase, fl * n, nb * n, k * n))
    if s.technique == "dora" and not backward:
        # lora_B(lora_A(eye)) and weight + scale * lora_weight in fp32, its row norms: about four fp32 passes
        ops.append(Op("DoRA weight norm", phase, 2 * i * o * r * n, 4 * i * o * 4 * n, 8 * n))
        ops.append(Op("DoRA scaling", phase, 0.0, 3 * T * o * ab * 2 * n, 4 * n))


def _head_ops(a: Anatomy, s: TrainingSetup, phase: str, backward: bool) -> list[Op]:
    """lm_head and loss."""
    T = s.sequences_per_micro_batch * s.seq_len
    dt, V, h = s.compute_bytes, a.vocab_size, a.hidden_size
    trained = s.technique == "full"
    mm = 2 * T * h * V
    io = T * h * dt + V * h * dt
    if s.loss_kernel == "liger":
        # everything in forward, chunk by chunk: logits, the CE kernel in place, grad_input (and grad_weight)
        if backward:
            return [Op("loss gradient scale (Liger)", phase, 0.0, 2 * T * h * dt, 1)]
        from estimators.activations import liger_chunk_rows

        chunks = -(-T // liger_chunk_rows(T, V, h))
        passes = 3 if trained else 2
        return [Op("fused linear cross-entropy (Liger)", phase, mm * passes, io * passes + T * V * dt * 3,
                   chunks * (passes + 2))]
    if s.loss_kernel == "cce":
        # forward: one blockwise pass (logsumexp); backward recomputes the logits and forms dE (and dC)
        passes = (3 if trained else 2) if backward else 1
        return [Op("Cut Cross-Entropy", phase, mm * passes, io * passes, 2 * passes)]
    passes = (2 if trained else 1) if backward else 1
    ops = [Op("lm_head", phase, mm * passes, (io + T * V * dt) * passes, passes)]
    if s.loss_kernel == "chunked":
        ops.append(Op("chunked cross-entropy (compiled)", phase, 0.0, T * V * (4 if backward else 2), 8 * 3))
    else:
        (fb, fk), (bb, bk) = STANDARD_LOSS
        ops.append(Op("cross-entropy", phase, 0.0, T * V * (bb if backward else fb), bk if backward else fk))
    if a.final_logit_softcapping:
        ops.append(Op("logit softcap", phase, 0.0, T * V * dt * 6, 3))
    return ops


def step_ops(a: Anatomy, s: TrainingSetup) -> list[Op]:
    """Every operation of one micro-batch on one GPU (forward, backward, recompute, reference forward)."""
    L = a.num_layers
    ops = _layer_ops(a, s, "forward", False, L) + _head_ops(a, s, "forward", False)
    ops += _layer_ops(a, s, "backward", True, L) + _head_ops(a, s, "backward", True)
    if s.gradient_checkpointing:
        ops += _layer_ops(a, s, "recompute", False, L)
    if s.needs_reference_model:
        ops += _layer_ops(a, s, "reference", False, L) + _head_ops(a, s, "reference", False)
    T = s.sequences_per_micro_batch * s.seq_len
    ops.append(Op("embedding", "forward", 0.0, 2 * T * a.hidden_size * s.compute_bytes, 2))
    norm = FUSED["norm"] if (s.compile or s.loss_kernel == "liger") else EAGER["norm"]
    ops.append(Op("final norm", "forward", 0.0, norm[0][0] * T * a.hidden_size, norm[0][1]))
    ops.append(Op("final norm", "backward", 0.0, norm[1][0] * T * a.hidden_size, norm[1][1]))
    return ops


def optimizer_ops(a: Anatomy, s: TrainingSetup) -> list[Op]:
    """Per optimizer step on one GPU: gradient clipping (a norm over every gradient, then a scale: transformers'
    max_grad_norm 1.0) and the fused AdamW update (read weights, gradients and both states; write weights and
    states), each trainable tensor once, over the GPU's own shard when sharded."""
    st = model_states(a, s)
    P = st.trainable_params
    N = s.gpu_count if s.sharding != "none" else 1
    if s.sharding in ("zero2", "zero3") or (s.sharding == "fsdp" and s.technique == "full") or s.amp:
        pb = gb = sb = 4  # fp32 masters, gradients and states
    elif s.adapted:
        pb = gb = sb = s.adapter_bytes
    else:
        pb = gb = sb = s.compute_bytes
    if s.optimizer != "adamw":
        sb = 1
    if s.offload != "none":
        return []  # the host runs the optimizer (throughput.offload_time)
    per = P / N
    return [Op("gradient clipping", "optimizer", 0.0, per * gb * 3, 4),
            Op("AdamW step", "optimizer", 0.0, per * (2 * pb + gb + 4 * sb), 4)]


@dataclass(frozen=True)
class StepTime:
    """Seconds of one optimizer step of ``setup.grad_accum`` micro-batches on each GPU."""

    compute_s: float  # forward + backward (+ recompute, reference) of the micro-batches
    optimizer_s: float
    communication_s: float  # what the collectives add beyond what overlaps with compute
    by_phase_s: dict[str, float]
    by_op_s: dict[str, float]
    bound: dict[str, float]  # seconds of the step bound by compute, memory bandwidth and kernel launches

    @property
    def step_s(self) -> float:
        return self.compute_s + self.optimizer_s + self.communication_s


def collective_bytes(a: Anatomy, s: TrainingSetup) -> tuple[float, float]:
    """(bytes each GPU sends per micro-batch, per optimizer step) in its collectives: ring all-reduce moves 2(N-1)/N
    of the buffer per GPU, all-gather and reduce-scatter (N-1)/N (NCCL's bus-bandwidth convention, nccl-tests
    PERFORMANCE.md)."""
    N = s.gpu_count
    if N < 2:
        return 0.0, 0.0
    st = model_states(a, replace(s, gpu_count=1, sharding="none", offload="none", grad_accum=1))
    P = st.trainable_params
    ring = (N - 1) / N
    dt = s.compute_bytes
    if s.sharding == "none":  # DDP: all-reduce of the gradients once per optimizer step (no_sync while accumulating)
        gb = s.adapter_bytes if s.adapted else dt
        return 0.0, 2 * ring * P * gb
    if s.sharding == "zero2":  # reduce-scatter of gradients each micro-batch, all-gather of updated params per step
        return ring * P * dt, ring * P * dt
    # ZeRO-3 / FSDP: every weight all-gathered in forward and again in backward, gradients reduce-scattered
    weights = a.params_total * (0.5 if s.technique == "qlora" else dt)
    passes = 2 + (1 if s.needs_reference_model else 0)
    grads = P * (4 if s.sharding == "zero3" else dt)
    return ring * (passes * weights + grads), 0.0


def step_time(a: Anatomy, s: TrainingSetup, gpu: GPU, c: SpeedConstants | None = None) -> StepTime:
    c = c or constants()
    micro = step_ops(a, s)
    by_phase: dict[str, float] = {}
    by_op: dict[str, float] = {}
    bound = {"compute": 0.0, "memory": 0.0, "launch": 0.0}
    for op in micro:
        parts = op.floors(gpu, c)
        t = max(parts.values()) * s.grad_accum
        by_phase[op.phase] = by_phase.get(op.phase, 0.0) + t
        by_op[op.name] = by_op.get(op.name, 0.0) + t
        bound[max(parts, key=parts.get)] += t
    opt = 0.0
    for op in optimizer_ops(a, s):
        t = op.seconds(gpu, c)
        opt += t
        by_op[op.name] = by_op.get(op.name, 0.0) + t
        bound["memory"] += t
    compute = sum(by_phase.values())
    per_micro, per_step = collective_bytes(a, s)
    comm = 0.0
    if per_micro or per_step:
        link = gpu.interconnect_gb_s * 1e9 * c.interconnect_efficiency
        # prefetching overlaps the per-micro-batch collectives with compute; DDP's bucketed all-reduce overlaps
        # with the last micro-batch's backward
        micro_s = compute / s.grad_accum
        backward_s = by_phase.get("backward", 0.0) / s.grad_accum
        comm = s.grad_accum * max(0.0, per_micro / link - micro_s) + max(0.0, per_step / link - backward_s)
    return StepTime(compute, opt, comm, by_phase, by_op, bound)


def interconnect_note(gpu: GPU) -> str:
    return f"{gpu.name} interconnect {gpu.interconnect} at {gpu.interconnect_gb_s:g} GB/s per GPU and direction"

