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

Tokens/s = peak dense bf16 FLOP/s x GPUs x model FLOPs utilisation (MFU) / FLOPs per token. The MFU per
technique is an assumption until a profile of the card measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

from estimators.anatomy import Anatomy, lora_trainable_params
from estimators.catalog import GPU
from estimators.setup import TrainingSetup

#: Model FLOPs utilisation assumed for Hugging Face trainers without torch.compile, by technique.
#: Published points: torchtitan Llama-3.1-8B on 8xH100, FSDP bf16: 33-39% MFU; torchtune on one RTX 4090
#: (compiled, packed): 8B full 1,650 tok/s (~48%), LoRA 3,083 tok/s, QLoRA 2,413 tok/s (~47%).
#: QLoRA dequantizes every 4-bit weight on each use; DoRA recomputes the weight norm every step.
DEFAULT_MFU = {"full": 0.40, "lora": 0.38, "dora": 0.28, "qlora": 0.30}
MFU_SOURCE = (
    "assumed MFU by technique (full 40%, LoRA 38%, DoRA 28%, QLoRA 30%) from torchtitan/torchtune "
    "published runs; a profile of the card replaces it"
)


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
    tokens_per_s: float  # all GPUs together
    seconds_per_million_tokens: float
    assumptions: tuple[str, ...]

    def hours_for(self, tokens: float, epochs: float = 1.0) -> float:
        return tokens * epochs / self.tokens_per_s / 3600


def flops_per_token(anatomy: Anatomy, setup: TrainingSetup) -> FlopsPerToken:
    layer_mm = anatomy.linear_weight_params
    head_mm = anatomy.vocab_size * anatomy.hidden_size
    n_mm = layer_mm + head_mm
    causal = 0.5 if setup.resolved_attn(anatomy.model_type) in ("sdpa", "flash") else 1.0
    # QK^T and AV: 2 matmuls x 2 FLOPs x s x d_q per token per layer (PaLM appendix B), causal half skipped
    attn_fwd = 2 * 2 * setup.seq_len * anatomy.q_dim * anatomy.num_layers * causal
    adapters = 0
    if setup.technique == "full":
        fwd = 2 * n_mm + attn_fwd
        bwd = 4 * n_mm + 2 * attn_fwd
    else:
        adapters = lora_trainable_params(anatomy, setup.lora_r, setup.lora_targets, setup.technique == "dora")
        fwd = 2 * n_mm + attn_fwd + 2 * adapters
        bwd = 2 * n_mm + 2 * attn_fwd + 4 * adapters  # input gradients only for frozen weights
    recompute = (2 * layer_mm + attn_fwd + (2 * adapters if setup.adapted else 0)) if setup.gradient_checkpointing else 0
    reference = (2 * n_mm + attn_fwd) if setup.needs_reference_model else 0
    return FlopsPerToken(fwd, bwd, recompute, reference, n_mm, adapters)


def estimate_throughput(anatomy: Anatomy, setup: TrainingSetup, gpu: GPU, mfu: float | None = None) -> Throughput:
    """Tokens/s of ``setup`` on ``setup.gpu_count`` x ``gpu``; ``mfu`` overrides the assumed utilisation."""
    f = flops_per_token(anatomy, setup)
    measured = mfu is not None
    mfu = DEFAULT_MFU[setup.technique] if mfu is None else mfu
    # data parallel: every GPU runs its own micro-batches; sharding costs communication the MFU absorbs
    tps = gpu.bf16_dense_tflops * 1e12 * setup.gpu_count * mfu / f.total
    assumptions = [
        f"{gpu.name} peak {gpu.bf16_dense_tflops:g} dense bf16 TFLOP/s (datasheet) per GPU",
        "training FLOPs/token = 6N (full) or 4N + 6N_adapter (LoRA family), N = matmul weights incl. lm_head, "
        "+ attention" + (", + one forward recompute (checkpointing)" if setup.gradient_checkpointing else "")
        + (", + reference forward" if setup.needs_reference_model else ""),
        (f"measured MFU {mfu:.0%}" if measured else MFU_SOURCE),
    ]
    return Throughput(gpu.name, setup.gpu_count, f, mfu, measured, tps, 1e6 / tps, tuple(assumptions))
