"""Training FLOPs per token, tokens/s on a GPU, and the time a dataset takes.

FLOPs are counted from the anatomy, per matmul: a forward pass costs 2 FLOPs per weight per token
(Kaplan et al. 2020; PaLM, Chowdhery et al. 2022, appendix B), the backward pass twice that, so full
fine-tuning costs 6N per token. The weights counted are every matmul weight a token goes through: the
decoder-layer linears and the lm_head (tied or not); the embedding lookup is not a matmul.

* LoRA-family techniques skip the frozen weights' gradient: backward computes only the input
  gradient (2N), so a step costs 4N plus 6 FLOPs per adapter weight ("LoRA Without Regret",
  Thinking Machines 2025: about 2/3 of full fine-tuning).
* Attention adds 2 matmuls of 2*s*d_q FLOPs per token per layer in forward (PaLM appendix B counts
  12*L*H*Q*T for forward + backward). Flash/SDPA kernels skip the masked half of a causal mask, eager
  attention computes it all.
* Gradient checkpointing recomputes each decoder layer's forward once more in backward.
* DPO/KTO run the reference policy forward once per token (no backward).

Tokens/s = tokens of an optimizer step / its time, which ``estimators.speed`` builds from a roofline over every
op at the step's shapes (compute, memory bandwidth, kernel launches, the optimizer step, collectives). MFU is
reported on model FLOPs (no recompute), HFU on hardware FLOPs; a measured MFU from a profile replaces the roofline.

CPU offload (ZeRO-2/3 optimizer or parameter offload, FSDP CPU offload) adds, per optimizer step, the time to
copy gradients to the host and weights back over PCIe and the optimizer step on the host CPU (``offload_time``);
it is added to the GPU compute time of the step, not overlapped (an upper bound: DeepSpeed overlaps part of the
copies with backward).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from estimators.anatomy import Anatomy, lora_trainable_params, select_lora_params
from estimators.catalog import GPU
from estimators.memory import model_states
from estimators.setup import TrainingSetup

#: Host <-> GPU copies under CPU offload, bytes/s per GPU and direction. PCIe Gen4 x16 carries 16 GT/s x 16 lanes
#: (128b/130b) = 31.5 GB/s per direction (PCI-SIG PCIe 4.0 spec); pinned-memory cudaMemcpy reaches about 25 GB/s
#: of it (NVIDIA's bandwidthTest on A100 hosts). One link per GPU, all GPUs copying at once; Gen5 hosts (H100,
#: H200) are faster, so this errs slow.
OFFLOAD_PCIE_BYTES_PER_S = 25e9
#: DeepSpeedCPUAdam (the optimizer ZeRO-Offload runs on the host) updates about 4e9 parameters/s on one machine:
#: ZeRO-Offload (Ren et al., USENIX ATC 2021, arXiv 2101.06840), Adam latency table: about 2.6 s per step for
#: 10B parameters (about 0.25 s per billion) on a DGX-2's two Xeon sockets. The machine's GPUs share its CPU.
CPU_ADAM_PARAMS_PER_S = 4e9
#: torch's own AdamW on the CPU (FSDP's CPU offload runs it): DeepSpeed's ZeRO-Offload tutorial states
#: DeepSpeedCPUAdam is "5X-7X faster than the standard PyTorch implementation"; 6x is assumed.
TORCH_CPU_ADAM_SLOWER = 6.0


@dataclass(frozen=True)
class OffloadTime:
    """What CPU offload adds to one optimizer step (all GPUs of one machine step together)."""

    compute_s: float  # GPU forward + backward of the step's micro-batches, without offload
    pcie_bytes_per_gpu: float  # host <-> GPU bytes one GPU copies per optimizer step
    pcie_s: float
    cpu_optimizer_s: float  # the optimizer step on the host CPU
    tokens_per_step: float  # all GPUs together

    @property
    def step_s(self) -> float:
        return self.compute_s + self.pcie_s + self.cpu_optimizer_s

    @property
    def slowdown(self) -> float:
        """Step time with offload over step time without (>= 1)."""
        return self.step_s / self.compute_s


@dataclass(frozen=True)
class FlopsPerToken:
    """Training FLOPs per token, by component."""

    forward: float
    backward: float
    recompute: float
    reference: float
    matmul_params: int  # weights a token multiplies through (layers + lm_head)
    adapter_params: int

    @property
    def total(self) -> float:
        return self.forward + self.backward + self.recompute + self.reference


@dataclass(frozen=True)
class Throughput:
    """Estimated training speed of a setup on a GPU type."""

    gpu: str
    gpu_count: int
    flops_per_token: FlopsPerToken
    mfu: float
    mfu_measured: bool
    tokens_per_s: float  # all GPUs together, CPU offload's copies and host optimizer step included
    seconds_per_million_tokens: float
    assumptions: tuple[str, ...]
    compute_tokens_per_s: float | None = None  # the GPUs' compute alone (differs from tokens_per_s under offload)
    offload: OffloadTime | None = None
    #: utilisation on hardware FLOPs (recompute included); ``mfu`` is on model FLOPs (no recompute)
    hfu: float | None = None

    def hours_for(self, tokens: float, epochs: float = 1.0) -> float:
        return tokens * epochs / self.tokens_per_s / 3600


def keys_per_query(seq_len: int, window: int | None, skips_masked: bool) -> float:
    """Average keys one query attends to in a causal sequence of ``seq_len``: query i sees min(i + 1, window)
    keys. Kernels that skip masked blocks (flash, SDPA's causal kernels) do that much work; eager attention
    computes the whole seq x seq square."""
    if not skips_masked:
        return float(seq_len)
    w = seq_len if window is None else min(window, seq_len)
    # sum_{i<s} min(i+1, w) = w(w+1)/2 + (s - w) w
    return (w * (w + 1) / 2 + (seq_len - w) * w) / seq_len


def attention_flops_forward(anatomy: Anatomy, setup: TrainingSetup) -> float:
    """QK^T and AV per token in forward: 2 matmuls x 2 FLOPs x keys x d_q per layer (PaLM appendix B), over the
    keys a query really reaches: a causal half, and no more than the window on sliding-window layers (Gemma 3:
    5 of 6 layers; gpt-oss: every other)."""
    skips = setup.resolved_attn(anatomy.model_type) in ("sdpa", "flash")
    full_layers = anatomy.num_layers - anatomy.sliding_layers
    keys = (full_layers * keys_per_query(setup.seq_len, None, skips)
            + anatomy.sliding_layers * keys_per_query(setup.seq_len, anatomy.sliding_window, skips))
    return 2 * 2 * anatomy.q_dim * keys


def flops_per_token(anatomy: Anatomy, setup: TrainingSetup) -> FlopsPerToken:
    # a MoE token multiplies through its top-k experts and the router, not every expert
    layer_mm = anatomy.matmul_params_per_token
    head_mm = anatomy.vocab_size * anatomy.hidden_size
    n_mm = layer_mm + head_mm
    attn_fwd = attention_flops_forward(anatomy, setup)
    adapters = 0
    if setup.technique == "full":
        fwd = 2 * n_mm + attn_fwd
        bwd = 4 * n_mm + 2 * attn_fwd
    else:
        adapters = lora_adapter_flops_params(anatomy, setup)
        # a merged expert weight (W + s * B @ A) requires grad: the expert matmuls compute its weight gradient too
        k = anatomy.experts_per_token
        merged = sum((k * g.in_features * g.out_features if g.routed else g.weight_params) * g.count
                     for g, _ in select_lora_params(anatomy, setup.lora_targets))
        fwd = 2 * n_mm + attn_fwd + 2 * adapters
        bwd = 2 * n_mm + 2 * merged + 2 * attn_fwd + 4 * adapters  # input gradients only for frozen weights
    recompute = (2 * layer_mm + attn_fwd + (2 * adapters if setup.adapted else 0)) if setup.gradient_checkpointing else 0
    reference = (2 * n_mm + attn_fwd) if setup.needs_reference_model else 0
    return FlopsPerToken(fwd, bwd, recompute, reference, n_mm, round(adapters))


def lora_adapter_flops_params(anatomy: Anatomy, setup: TrainingSetup) -> float:
    """Adapter weights a token multiplies through. peft folds an expert adapter into the whole expert stack
    (W + s * B @ A, every expert, once per micro-batch: ParamWrapper), so those cost 2*r*experts*in*out FLOPs per
    micro-batch rather than per token; spread over the micro-batch's tokens."""
    total = float(lora_trainable_params(anatomy, setup.lora_r, setup.lora_targets, setup.technique == "dora"))
    tokens = setup.sequences_per_micro_batch * setup.seq_len
    for g, factor in select_lora_params(anatomy, setup.lora_targets):
        rank = setup.lora_r * factor * g.experts
        total -= rank * (g.in_features + g.out_features) * g.count  # not a per-token matmul
        # the merge: (experts x in x rank) @ (rank x out) per expert, 2 FLOPs per multiply-add, as weights/token
        total += g.count * g.weight_params * setup.lora_r * factor / tokens
    return total


def offload_time(anatomy: Anatomy, setup: TrainingSetup, compute_tokens_per_s: float) -> OffloadTime | None:
    """Per optimizer step (``setup.grad_accum`` micro-batches on each GPU): the GPU compute time and what CPU
    offload adds to it; None without offload.

    * Optimizer offload (ZeRO-Offload, Ren et al. 2021, section 4): each micro-batch's gradient partition
      (P/N trainable parameters in the compute dtype) goes to the host, where it accumulates; after the step the
      updated weights of the partition come back in the compute dtype.
    * Parameter offload (ZeRO-Infinity, Rajbhandari et al. 2021, arXiv 2104.07857; FSDP CPU offload): the
      weights live on the host and every forward and backward pass (and the reference forward of DPO/KTO) copies
      each GPU's 1/N of them to the GPU before the all-gather; gradients go down as above, nothing comes back.
    * The host runs Adam over all P trainable parameters of the machine (``CPU_ADAM_PARAMS_PER_S``; torch's CPU
      AdamW under FSDP is ``TORCH_CPU_ADAM_SLOWER`` times slower).
    """
    if setup.offload == "none":
        return None
    # the unsharded model's states: P trainable parameters and every weight byte a forward pass reads
    whole = model_states(anatomy, replace(setup, gpu_count=1, sharding="none", offload="none", grad_accum=1))
    P, N, dt = whole.trainable_params, setup.gpu_count, setup.compute_bytes
    weights_on_host = setup.offload == "params" or setup.sharding == "fsdp"
    grads_down = setup.grad_accum * dt * P / N
    if weights_on_host:
        passes = 2 + (1 if setup.needs_reference_model else 0)
        weights_up = setup.grad_accum * passes * (whole.weights_bytes + whole.trainable_weights_bytes) / N
    else:
        weights_up = dt * P / N
    rate = CPU_ADAM_PARAMS_PER_S / (TORCH_CPU_ADAM_SLOWER if setup.sharding == "fsdp" else 1.0)
    tokens = float(setup.sequences_per_micro_batch * setup.seq_len * setup.grad_accum * N)
    pcie = grads_down + weights_up
    return OffloadTime(compute_s=tokens / compute_tokens_per_s, pcie_bytes_per_gpu=pcie,
                       pcie_s=pcie / OFFLOAD_PCIE_BYTES_PER_S, cpu_optimizer_s=P / rate, tokens_per_step=tokens)


def offload_assumptions(setup: TrainingSetup, off: OffloadTime) -> list[str]:
    """The offload model's constants, then what it adds to one optimizer step of ``setup``."""
    adam = ("torch AdamW on the CPU (FSDP), assumed 6x slower than DeepSpeedCPUAdam (DeepSpeed docs: 5-7x)"
            if setup.sharding == "fsdp" else "DeepSpeedCPUAdam")
    constants = (f"CPU offload: host <-> GPU copies at {OFFLOAD_PCIE_BYTES_PER_S / 1e9:g} GB/s per GPU (PCIe Gen4 "
                 f"x16 effective) and the optimizer step on the host, {adam} at {CPU_ADAM_PARAMS_PER_S / 1e9:g}e9 "
                 f"parameters/s per machine (ZeRO-Offload, Ren et al. 2021: about 0.25 s per billion parameters on "
                 f"a two-socket Xeon host; fewer or slower cores take longer), not overlapped with GPU compute (an "
                 f"upper bound); tokens/s, time and cost include them")
    step = (f"CPU offload, optimizer step of {setup.grad_accum} micro-batch(es) x {setup.sequences_per_micro_batch} "
            f"sequence(s) x {setup.seq_len} tokens per GPU: {off.compute_s:,.1f} s of GPU compute + "
            f"{off.pcie_s:,.1f} s of copies ({off.pcie_bytes_per_gpu / 1e9:,.1f} GB per GPU) + "
            f"{off.cpu_optimizer_s:,.1f} s of host optimizer step: {off.slowdown:.2f}x the time without offload")
    return [constants, step]


def model_flops_per_token(f: FlopsPerToken) -> float:
    """FLOPs the technique needs per token, without gradient checkpointing's recompute: the numerator of model FLOPs
    utilisation (MFU; PaLM, Chowdhery et al. 2022, appendix B). Hardware FLOPs (HFU) add the recompute."""
    return f.forward + f.backward + f.reference


def estimate_throughput(anatomy: Anatomy, setup: TrainingSetup, gpu: GPU, mfu: float | None = None) -> Throughput:
    """Tokens/s of ``setup`` on ``setup.gpu_count`` x ``gpu``. The step time comes from the roofline of
    ``estimators.speed`` at the step's shapes; ``mfu`` (a measured utilisation) replaces it with peak x MFU / FLOPs.
    With CPU offload the host copies and optimizer step are added per optimizer step of ``setup.grad_accum``
    micro-batches (``offload_time``)."""
    from estimators.speed import constants, step_time

    f = flops_per_token(anatomy, setup)
    measured = mfu is not None
    tokens_step_gpu = float(setup.sequences_per_micro_batch * setup.seq_len * setup.grad_accum)
    flops_note = ("training FLOPs/token = 6N (full) or 4N + 6N_adapter (LoRA family), N = matmul weights incl. lm_head"
                  + (f" ({anatomy.experts_per_token} of {anatomy.num_experts} experts per token)" if anatomy.is_moe else "")
                  + ", + attention" + (f" (window {anatomy.sliding_window} on {anatomy.sliding_layers} of "
                                       f"{anatomy.num_layers} layers)" if anatomy.sliding_layers else "")
                  + (", + one forward recompute (checkpointing)" if setup.gradient_checkpointing else "")
                  + (", + reference forward" if setup.needs_reference_model else ""))
    assumptions = [f"{gpu.name} peak {gpu.bf16_dense_tflops:g} dense bf16 TFLOP/s and "
                   f"{gpu.memory_bandwidth_tb_s:g} TB/s (datasheet) per GPU", flops_note]
    if measured:
        compute_tps = gpu.bf16_dense_tflops * 1e12 * setup.gpu_count * mfu / f.total
        assumptions.append(f"measured MFU {mfu:.0%} (hardware FLOPs)")
    else:
        c = constants()
        st = step_time(anatomy, setup, gpu, c)
        compute_tps = tokens_step_gpu * setup.gpu_count / st.step_s
        shares = {k: v / sum(st.bound.values()) for k, v in st.bound.items()}
        assumptions.append(
            f"step time from a roofline over every op at {setup.sequences_per_micro_batch} x {setup.seq_len} tokens: "
            f"max(FLOPs at {c.matmul_efficiency:.0%} of peak (attention {c.attention_efficiency:.0%}), bytes at "
            f"{c.bandwidth_efficiency:.0%} of bandwidth, kernels x {c.launch_s * 1e6:.0f} us launch); "
            f"{shares['compute']:.0%} of the step compute-bound, {shares['memory']:.0%} bandwidth-bound, "
            f"{shares['launch']:.0%} launch-bound; optimizer step {st.optimizer_s * 1e3:,.1f} ms"
            + (f", collectives over {gpu.interconnect} ({gpu.interconnect_gb_s:g} GB/s per direction) add "
               f"{st.communication_s * 1e3:,.1f} ms" if setup.gpu_count > 1 else "")
            + " (efficiencies fitted on published runs: estimators/data/speed.yaml; a profile of the card replaces "
              "them)")
    off = offload_time(anatomy, setup, compute_tps)
    tps = compute_tps if off is None else off.tokens_per_step / off.step_s
    model_mfu = tps * model_flops_per_token(f) / (gpu.bf16_dense_tflops * 1e12 * setup.gpu_count)
    hfu = tps * f.total / (gpu.bf16_dense_tflops * 1e12 * setup.gpu_count)
    if off is not None:
        assumptions += offload_assumptions(setup, off)
    return Throughput(gpu.name, setup.gpu_count, f, mfu if measured else model_mfu, measured, tps, 1e6 / tps,
                      tuple(assumptions), compute_tokens_per_s=compute_tps, offload=off, hfu=hfu)
