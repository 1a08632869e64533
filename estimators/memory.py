"""Device memory of a training step, part by part, and whether it fits each GPU.

Model states (weights, trainable/master weights, gradients, optimizer states) are exact: they equal the
bytes of the real tensors after an optimizer step (checked on CPU with peft LoRA/DoRA and bitsandbytes
4-bit). Activations come from the op-level trace in ``estimators.activations`` (checked against the bytes
autograd really saves). The peak is the largest of the moments of a steady-state step:

* end of forward: states + saved activations + the logits and loss tensors alive while the loss is computed;
* start of backward: the fp32 gradient of the log-probabilities and of the logits next to everything saved;
* backward through the decoder: activations, the lm_head gradient and the layer's gradient workspace
  (with checkpointing, plus the layer's recomputed activations);
* end of backward / optimizer step: all gradients.

Gradients persist through forward when gradient accumulation is on (micro-batches 2..k add into them).
CUDA context and the allocator's reserve are modelled constants (stated in the assumptions) until a
profile of the card replaces them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from estimators.activations import ActivationTrace, trace_activations
from estimators.anatomy import (
    Anatomy,
    lora_param_tensor_numels,
    lora_trainable_params,
    select_lora_targets,
)
from estimators.catalog import GPU
from estimators.families import family
from estimators.setup import TrainingSetup

MIB = 1 << 20

#: CUDA context, kernels and library handles outside PyTorch's allocator. Published range 0.3-2 GiB
#: (transformers docs "model memory anatomy" measured 1,343 MB before lazy module loading, the
#: default since CUDA 11.7 / torch 2.x); a measured profile of the card replaces this.
CUDA_CONTEXT_BYTES = 512 * MIB
#: caching-allocator reserve over the allocated peak, as a share of the tensors that come and go
#: each step (activations, logits, workspace); model states are allocated once and do not fragment.
ALLOCATOR_FRAGMENTATION = 0.05
#: bitsandbytes blockwise 8-bit optimizers: tensors below this many elements keep fp32 states
BNB_MIN_8BIT_SIZE = 4096
BNB_8BIT_BLOCK = 256
#: bitsandbytes NF4 (Dettmers et al. 2023, arXiv 2305.14314): 64-element blocks; double quantization
#: stores 8-bit absmax with an fp32 second level per 256 blocks
NF4_BLOCK = 64
NF4_DQ_BLOCK = 256

PART_LABELS = {
    "weights": "weights",
    "trainable_weights": "trainable / master weights",
    "gradients": "gradients",
    "optimizer_states": "optimizer states",
    "activations": "activations",
    "logits_and_loss": "logits and loss",
    "backward_workspace": "backward workspace",
    "cuda_context": "CUDA context",
    "allocator_reserve": "allocator reserve",
}


@dataclass(frozen=True)
class ModelStates:
    """Bytes per GPU of what lives across steps; ``host_bytes`` is the CPU RAM offload uses on the machine: the
    partitions of all ``gpu_count`` GPUs together, one machine assumed (DeepSpeed's estimators count it per node:
    ``cpu_mem = 16 * total_params / num_nodes`` for optimizer offload, before their 1.5 buffer factor)."""

    weights_bytes: int
    trainable_weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    quant_constants_bytes: int  # included in weights_bytes
    gathered_layer_bytes: int  # ZeRO-3/FSDP: unsharded layers in flight (included in weights_bytes)
    host_bytes: int
    trainable_params: int
    notes: tuple[str, ...]


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU memory at the peak of a steady-state training step."""

    parts: dict[str, int]  # bytes at the peak moment, in PART_LABELS order; they sum to total_bytes
    total_bytes: int
    peak_phase: str
    phases: dict[str, int]  # allocated bytes at each modelled moment
    states: ModelStates
    activations: ActivationTrace
    gpu_count: int
    assumptions: tuple[str, ...]

    @property
    def allocated_peak_bytes(self) -> int:
        """What ``torch.cuda.max_memory_allocated`` would report."""
        return self.total_bytes - self.parts["cuda_context"] - self.parts["allocator_reserve"]

    @property
    def reserved_peak_bytes(self) -> int:
        """What ``torch.cuda.max_memory_reserved`` would report."""
        return self.total_bytes - self.parts["cuda_context"]


@dataclass(frozen=True)
class Fit:
    gpu: str
    fits: bool
    usable_bytes: int
    needed_bytes: int
    headroom_bytes: int  # negative when it does not fit


# ---- model states -------------------------------------------------------------------------------
def _adamw_state_bytes(numels: Iterable[tuple[int, int]], param_bytes: int) -> int:
    """torch AdamW: exp_avg and exp_avg_sq in the parameter dtype, plus a 4-byte fp32 step per tensor."""
    return sum(count * (2 * n * param_bytes + 4) for n, count in numels)


def _adamw8bit_state_bytes(numels: Iterable[tuple[int, int]]) -> int:
    """bitsandbytes AdamW8bit (blockwise): two uint8 states plus fp32 absmax per 256 elements; tensors
    under 4096 elements keep two fp32 states; the two 256-entry fp32 quantization maps are shared."""
    total, any8 = 0, False
    for n, count in numels:
        if n >= BNB_MIN_8BIT_SIZE:
            any8 = True
            total += count * (2 * n + 2 * 4 * math.ceil(n / BNB_8BIT_BLOCK))
        else:
            total += count * 8 * n
    return total + (2 * 256 * 4 if any8 else 0)


def _optimizer_bytes(setup: TrainingSetup, numels: tuple[tuple[int, int], ...], param_bytes: int) -> int:
    if setup.optimizer == "adamw":
        return _adamw_state_bytes(numels, param_bytes)
    return _adamw8bit_state_bytes(numels)


def nf4_bytes(numel: int, double_quant: bool) -> tuple[int, int]:
    """(packed data, quantization constants) bytes of one bitsandbytes NF4 weight of ``numel`` elements."""
    blocks = math.ceil(numel / NF4_BLOCK)
    data = math.ceil(numel / 2)
    code = 16 * 4  # the NF4 code book, fp32
    if double_quant:
        # 8-bit absmax per block; second level: fp32 absmax per 256 blocks, a 256-entry fp32 code, an offset
        consts = blocks + math.ceil(blocks / NF4_DQ_BLOCK) * 4 + 256 * 4 + 4 + code
    else:
        consts = blocks * 4 + code
    return data, consts


def model_states(anatomy: Anatomy, setup: TrainingSetup) -> ModelStates:
    """Bytes per GPU of weights, trainable/master weights, gradients and optimizer states."""
    dt = setup.compute_bytes
    notes: list[str] = []
    quant = 0
    if setup.technique == "qlora":
        data = consts = 0
        # bitsandbytes replaces every nn.Linear but the lm_head: the decoder's and a vision tower's
        packed = [(g.weight_params, g.count) for g in anatomy.linears] + list(anatomy.vision_linear_numels)
        for numel, count in packed:
            d, c = nf4_bytes(numel, setup.double_quant)
            data += d * count
            consts += c * count
        base = data + consts + (anatomy.params_total - sum(n * c for n, c in packed)) * dt
        quant = consts
        fused = sum(g.weight_params * g.count for g in anatomy.params)
        if fused:
            notes.append(f"QLoRA: bitsandbytes packs nn.Linear weights only; the fused experts and routers "
                         f"({fused / 1e9:,.2f}B parameters, {fused * dt / 2**30:,.1f} GiB) stay in the compute dtype "
                         f"(measured on CPU: transformers 5 + bitsandbytes)")
    else:
        # AMP keeps the model itself in fp32 (the master weights) and casts to bf16 per op under autocast
        base = anatomy.params_total * (4 if setup.amp else dt)

    if setup.technique == "full":
        # a multimodal wrapper's vision tower stays frozen (text fine-tuning)
        trainable = anatomy.params_total - anatomy.frozen_vision_params
        groups = [(_subtract(anatomy.param_tensor_numels, dict(anatomy.vision_tensor_numels)), 4 if setup.amp else dt)]
        if setup.amp:
            notes.append("AMP: fp32 master weights, fp32 gradients and fp32 AdamW states (16 bytes/param, transformers "
                         "docs' mixed-precision anatomy), bf16 compute under torch.autocast")
    else:
        dora = setup.technique == "dora"
        trainable = lora_trainable_params(anatomy, setup.lora_r, setup.lora_targets, dora)
        numels = lora_param_tensor_numels(anatomy, setup.lora_r, setup.lora_targets, dora)
        groups = [(numels, setup.adapter_bytes)]
        if dora and setup.magnitude_bytes != setup.adapter_bytes:
            # DoRA's magnitude vectors keep their own dtype (fp32)
            mag: dict[int, int] = {}
            for g in select_lora_targets(anatomy, setup.lora_targets):
                mag[g.out_features] = mag.get(g.out_features, 0) + g.count
            groups = [(_subtract(numels, mag), setup.adapter_bytes), (tuple(sorted(mag.items())), setup.magnitude_bytes)]
    return _states(anatomy, setup, base, quant, trainable, groups, notes)


def _subtract(hist: tuple[tuple[int, int], ...], minus: dict[int, int]) -> tuple[tuple[int, int], ...]:
    d = dict(hist)
    for n, c in minus.items():
        d[n] -= c
    return tuple(sorted((n, c) for n, c in d.items() if c))


def _states(anatomy: Anatomy, setup: TrainingSetup, base: int, quant: int, trainable: int,
            groups: list[tuple[tuple[tuple[int, int], ...], int]], notes: list[str]) -> ModelStates:
    weights_note = family(anatomy.model_type).weights_note
    if weights_note:
        notes.append(weights_note)
    N = setup.gpu_count
    dt = setup.compute_bytes
    full = setup.technique == "full"
    t_weights = sum(sum(n * c for n, c in numels) * b for numels, b in groups)
    grads = t_weights  # gradients in the parameter dtype
    opt = sum(_optimizer_bytes(setup, numels, b) for numels, b in groups)
    frozen = 0 if full else base
    compute_weights = base if full else 0  # full FT trains the weights themselves
    gathered = host = 0

    if setup.sharding == "none":
        if N > 1:
            # DDP (gradient_as_bucket_view=False, the torch and accelerate default) copies gradients
            # into communication buckets of the same total size
            grads *= 2
            notes.append(f"{N} GPUs with DDP: each holds a full replica; gradient buckets double the gradients")
        weights = frozen + compute_weights
        return ModelStates(weights, 0 if full else t_weights, grads, opt, quant, 0, 0, trainable, tuple(notes))

    if setup.sharding in ("zero2", "zero3"):
        # DeepSpeed with bf16 keeps fp32 master weights, fp32 gradient partitions and fp32 Adam states:
        # deepspeed/runtime/zero/stage_1_and_2.py estimate_zero2_model_states_mem_needs,
        # stage3.py estimate_zero3_model_states_mem_needs (their buffer factor 1.5 applies to CPU only)
        P = trainable
        largest = anatomy.largest_module_params
        if setup.sharding == "zero2":
            # GPU: bf16 params + bf16 grads (4 bytes/param) + 16 bytes/param / N; optimizer offload: 2 bytes/param
            if setup.offload == "none":
                # bf16 params and gradient buckets replicated; fp32 gradient partition, master, Adam m, v / N
                weights, grads, master, opt = frozen + 2 * P, 2 * P + 4 * P // N, 4 * P // N, 8 * P // N
            else:
                weights, grads, master, opt = frozen + 2 * P, 0, 0, 0
                host = 16 * P
            notes.append("ZeRO-2 model states per DeepSpeed's estimator: 4*P + 16*P/N (optimizer offload: 2*P on GPU)")
        else:
            gathered = 4 * largest  # DeepSpeed: largest_layer_memory = 4 * largest_layer_params
            frozen_gpu = frozen // N if setup.offload != "params" else 0
            if setup.offload == "none":
                # bf16 param partition 2 + fp32 gradient partition 4 + fp32 master 4 + Adam m, v 8 = 18 / N
                weights, grads, master, opt = frozen_gpu + 2 * P // N + gathered, 4 * P // N, 4 * P // N, 8 * P // N
            elif setup.offload == "optimizer":
                weights, grads, master, opt = frozen_gpu + 2 * P // N + gathered, 0, 0, 0
                host = 16 * P
            else:
                weights, grads, master, opt = gathered, 0, 0, 0
                host = 18 * P + frozen
            notes.append("ZeRO-3 model states per DeepSpeed's estimator: 4*largest_layer + 18*P/N "
                         "(params+optimizer offload: 4*largest_layer on GPU)")
        notes.append("DeepSpeed bf16 keeps fp32 master weights and fp32 Adam states whatever the optimizer choice")
        return ModelStates(int(weights), int(master), int(grads), int(opt), quant, gathered, int(host), trainable,
                           tuple(notes))

    # FSDP2 FULL_SHARD in the recipe's dtypes: parameters, gradients and optimizer states sharded by N;
    # the current and the prefetched decoder layer are unsharded during forward/backward
    # (PyTorch FSDP2 docs: reshard_after_forward=True, forward/backward prefetch of one unit)
    unit = anatomy.largest_layer_params
    unit_bytes = math.ceil(unit / 2) if setup.technique == "qlora" else unit * dt  # NF4 packs two per byte
    gathered = 2 * unit_bytes + (unit * dt if full else 0)  # + the unit's unsharded gradient
    if full and dt < 4:
        # accelerate's FSDP2 with bf16/fp16 mixed precision upcasts every trainable parameter to fp32 before
        # fully_shard ("FSDP upcast of low precision parameters to fp32", accelerate/utils/fsdp_utils.py
        # fsdp2_prepare_model); MixedPrecisionPolicy casts the gathered layers to bf16 for compute. The sharded
        # fp32 parameters are the master weights; their gradients and AdamW states are fp32 too.
        compute_weights = 0
        t_weights = grads = anatomy.params_total * 4
        opt = _optimizer_bytes(setup, anatomy.param_tensor_numels, 4)
        full = False  # the sharded weights are now counted as the (fp32) trainable master weights
        notes.append("FSDP2 mixed precision: fp32 master weights, gradients and optimizer states (accelerate's "
                     "upcast), bf16 compute copies only for the gathered layers")
    if setup.offload == "none":
        weights = (frozen + compute_weights) // N + gathered
        tw, g, o = (0 if full else t_weights) // N, grads // N, opt // N
    else:  # CPUOffloadPolicy: parameters, gradients and optimizer on the host
        weights, tw, g, o = gathered, 0, 0, 0
        host = frozen + compute_weights + t_weights + grads + opt
    notes.append("FSDP2 full shard: states / N plus two unsharded layers in flight")
    return ModelStates(int(weights), int(tw), int(g), int(o), quant, gathered, int(host), trainable, tuple(notes))


# ---- the step's peak ----------------------------------------------------------------------------
def estimate_memory(anatomy: Anatomy, setup: TrainingSetup, trace: ActivationTrace | None = None) -> MemoryBreakdown:
    """Per-GPU device memory at the peak of a steady-state training step."""
    states = model_states(anatomy, setup)
    trace = trace or trace_activations(anatomy, setup)
    T = setup.sequences_per_micro_batch * setup.seq_len
    i, dt = anatomy.intermediate_size, setup.compute_bytes
    full = setup.technique == "full"

    weights = states.weights_bytes
    if setup.needs_reference_model and full:
        weights += anatomy.params_total * dt  # a frozen copy of the policy (peft uses adapters-off instead)
    # torch.autocast caches the bf16 cast of every fp32 leaf weight it multiplies until the autocast region (the
    # forward pass) exits (aten/src/ATen/autocast_mode.cpp cached_cast); the linears also save their cast weight for
    # backward, so without checkpointing every copy lives until its layer's backward, with it only the lm_head's
    # (and, in backward, the recomputed layer's)
    cast_all = cast_head = cast_layer = 0
    if setup.amp:
        head_mm = anatomy.vocab_size * anatomy.hidden_size
        cast_all = 2 * (sum(g.weight_params * g.count for g in anatomy.linears)
                        + sum(g.weight_params * g.count for g in anatomy.params) + head_mm)
        cast_head = 2 * head_mm
        cast_layer = 2 * anatomy.largest_layer_params
    gc = setup.gradient_checkpointing
    persistent = weights + states.trainable_weights_bytes + states.optimizer_bytes
    grads_all = states.gradients_bytes
    accumulating = setup.grad_accum > 1
    grads_fwd = grads_all if accumulating else 0

    A = trace.model_bytes  # decoder activations, embeddings, final norm, lm_head input
    A_back = A
    if setup.activation_offload:
        # torchtune's OffloadActivations (torchtune/training/_activation_offloading.py; Axolotl's
        # activation_offloading): every saved tensor of the decoder layers goes to pinned host memory as forward
        # makes it and comes back for its layer's backward, one layer ahead on a side stream; on the GPU stay the
        # tensors outside the layers and, at any moment, the layer in use and the one being copied
        layers = trace.by_group.get("layers", 0)
        per_layer = layers / max(anatomy.num_layers, 1)
        A = A - layers + int(min(2, anatomy.num_layers) * per_layer)
        A_back = A
    L_saved = trace.by_group.get("loss", 0)
    # forward, while the loss is computed, and backward through the loss: what the loss path holds beyond what it
    # saves (transformers: bf16 logits and their fp32 upcast, then the fp32 gradients of log-probabilities and
    # logits; chunked and fused kernels far less: activations._loss, _fused_linear_loss)
    logits_fwd = L_saved + trace.loss_forward_transient_bytes
    logits_bwd = L_saved + trace.loss_backward_transient_bytes
    # gradient of the lm_head (tied or not) arrives first in backward
    head_params = anatomy.params_by_part.get("lm_head", 0) or anatomy.params_by_part.get("embedding", 0)
    grads_head = head_params * dt if full else 0
    # inside a decoder layer's backward: gradients of its largest intermediates (the MLP's gate, up
    # and their product, b*s*intermediate each) and, with checkpointing, the layer recomputed
    workspace = 3 * T * i * dt + (trace.layer_bytes_no_checkpoint if setup.gradient_checkpointing else 0)
    workspace = max(workspace, trace.forward_transient_bytes)

    # what comes and goes at each modelled moment; the phase totals are derived from it
    moments = {
        "forward end (loss)": dict(weights=cast_all, gradients=grads_fwd, activations=A, logits_and_loss=logits_fwd,
                                   backward_workspace=0),
        "backward start (loss gradient)": dict(weights=cast_head if gc else cast_all, gradients=grads_fwd,
                                               activations=A, logits_and_loss=logits_bwd, backward_workspace=0),
        "backward through the decoder": dict(weights=cast_layer if gc else cast_all,
                                             gradients=max(grads_fwd, grads_head), activations=A_back,
                                             logits_and_loss=0, backward_workspace=workspace),
        "backward end / optimizer step": dict(weights=0, gradients=grads_all, activations=0, logits_and_loss=0,
                                              backward_workspace=workspace),
    }
    phases = {k: persistent + sum(v.values()) for k, v in moments.items()}
    peak_phase = max(phases, key=lambda k: (phases[k], -list(phases).index(k)))
    at = moments[peak_phase]
    transient = at["activations"] + at["logits_and_loss"] + at["backward_workspace"]
    parts = {
        "weights": weights + at["weights"],
        "trainable_weights": states.trainable_weights_bytes,
        "gradients": at["gradients"],
        "optimizer_states": states.optimizer_bytes,
        "activations": at["activations"],
        "logits_and_loss": at["logits_and_loss"],
        "backward_workspace": at["backward_workspace"],
        "cuda_context": CUDA_CONTEXT_BYTES,
        "allocator_reserve": int(ALLOCATOR_FRAGMENTATION * transient),
    }
    assumptions = list(setup.recipe_notes) + list(states.notes) + [
        f"activations traced op by op for the transformers {anatomy.model_type} implementation"
        + ("" if trace.family_supported else " (family not verified: traced as a llama-style decoder)")
        + f", {setup.resolved_attn(anatomy.model_type)} attention, no padding mask (packed or equal-length batches)",
        f"micro-batch {setup.micro_batch} x {setup.seq_len} tokens"
        + (" x 2 (chosen + rejected)" if setup.sequences_per_micro_batch > setup.micro_batch else "")
        + (f", gradient accumulation {setup.grad_accum} (gradients stay allocated through forward)" if accumulating else "")
        + (", gradient checkpointing on every decoder layer" if setup.gradient_checkpointing else ", no gradient checkpointing"),
        f"CUDA context {CUDA_CONTEXT_BYTES / MIB:.0f} MiB (published range 0.3-2 GiB; a profile replaces it)",
        f"allocator reserve {ALLOCATOR_FRAGMENTATION:.0%} of the bytes that come and go each step (a profile replaces it)",
    ]
    if setup.needs_reference_model:
        assumptions.append("reference policy: " + ("a frozen copy of the weights" if full
                                                   else "the base model with adapters disabled (no extra weights)"))
    if setup.loss_kernel != "standard":
        assumptions.append({
            "chunked": "chunked cross-entropy (torchtune CEWithChunkedOutputLoss under torch.compile, 8 chunks): bf16 "
                       "logits kept, one chunk upcast to fp32 at a time",
            "liger": "Liger kernels (apply_liger_kernel_to_*: RMSNorm, SwiGLU, RoPE, fused linear cross-entropy): "
                     "no T x vocabulary tensor beyond one chunk of about T x hidden elements; the loss gradient is "
                     "computed in forward",
            "cce": "Cut Cross-Entropy (apple/ml-cross-entropy): logits never materialised, an fp32 logsumexp per "
                   "token kept, gradients recomputed blockwise in backward",
        }[setup.loss_kernel])
    if setup.activation_offload:
        offloaded = trace.by_group.get("layers", 0)
        assumptions.append(f"activation offloading: the decoder layers' saved tensors ({offloaded / 2**30:,.2f} GiB "
                           "per micro-batch) in pinned host memory, two layers' worth on the GPU at a time")
    if setup.optimizer == "paged-adamw-8bit":
        assumptions.append("paged optimizer states counted on the GPU; under pressure they page out to host memory")
    return MemoryBreakdown(
        parts=parts,
        total_bytes=sum(parts.values()),
        peak_phase=peak_phase,
        phases=phases,
        states=states,
        activations=trace,
        gpu_count=setup.gpu_count,
        assumptions=tuple(assumptions),
    )


def fit(breakdown: MemoryBreakdown, gpu: GPU) -> Fit:
    """Does the per-GPU peak fit the memory CUDA lets a process use on ``gpu``?"""
    usable = gpu.usable_memory_bytes
    return Fit(gpu.name, breakdown.total_bytes <= usable, usable, breakdown.total_bytes, usable - breakdown.total_bytes)
