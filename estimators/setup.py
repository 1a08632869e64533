"""A training setup: technique, precision, optimizer, shape, parallelism, and the recipe they imply.

One frozen object describes a training run for every estimator (memory, time, cost) and for the
profiler, which builds the real model the same way. The *recipe* (which dtype each tensor class uses)
follows what the trainers do as of their 2026 releases; where trainers differ, the choice made here is
stated in ``TrainingSetup.recipe_notes`` and shows up in every breakdown's assumptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from advisor.contract.vocab import (
    ATTENTION,
    LOSS_KERNELS,
    MASTER_WEIGHTS,
    OBJECTIVES,
    OFFLOAD,
    OPTIMIZERS,
    PRECISIONS,
    SHARDING,
    TECHNIQUES,
)
from estimators.errors import EstimateError

#: adapters may keep their own dtype; "auto" follows the recipe (``TrainingSetup.adapter_bytes``)
ADAPTER_DTYPES = ("auto", *PRECISIONS)


def _choice(field_name: str, value: str, allowed: Sequence[str]) -> str:
    v = str(value).lower()
    if v not in allowed:
        raise EstimateError(f"{field_name} must be one of {', '.join(allowed)}; got '{value}'")
    return v


@dataclass(frozen=True)
class TrainingSetup:
    """Everything about a training step that changes its memory, time or cost."""

    technique: str = "lora"
    objective: str = "sft"
    precision: str = "bf16"
    optimizer: str = "adamw"
    seq_len: int = 2048
    micro_batch: int = 1
    grad_accum: int = 1
    gradient_checkpointing: bool = True
    attn_impl: str = "auto"
    # LoRA defaults, read by the planner and the CLI too: r=16 / alpha=32 is the common default of Axolotl's and
    # LLaMA-Factory's examples; adapters on every linear layer are needed to match full fine-tuning (Dettmers et
    # al. 2023, QLoRA); dropout 0.05 as in the QLoRA paper's 7-13B runs
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("all-linear",)
    double_quant: bool = True
    adapter_dtype: str = "auto"
    gpu_count: int = 1
    sharding: str = "none"
    offload: str = "none"
    #: how logits become the loss: transformers' fp32 cross-entropy, a compiled chunked loss (torchtune), Liger's
    #: fused linear cross-entropy with its RMSNorm/SwiGLU/RoPE kernels, or Apple's Cut Cross-Entropy
    loss_kernel: str = "standard"
    #: saved activations of the decoder layers copied to host memory during forward (torchtune's OffloadActivations,
    #: Axolotl's ``activation_offloading``), brought back for backward
    activation_offload: bool = False
    #: "fp32": fp32 master weights, gradients and optimizer states with bf16 autocast compute (AMP); "auto": pure
    #: bf16 on one GPU, DeepSpeed's and FSDP's own fp32 masters when sharded
    master_weights: str = "auto"
    #: torch.compile fuses the elementwise ops around the matmuls (speed only: the memory estimate is eager's)
    compile: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        errors = []

        def check(fn):
            try:
                fn()
            except EstimateError as e:
                errors.append(str(e))

        for name, allowed in (
            ("technique", tuple(TECHNIQUES)),
            ("objective", tuple(OBJECTIVES)),
            ("precision", tuple(PRECISIONS)),
            ("optimizer", tuple(OPTIMIZERS)),
            ("attn_impl", tuple(ATTENTION)),
            ("sharding", tuple(SHARDING)),
            ("offload", tuple(OFFLOAD)),
            ("adapter_dtype", ADAPTER_DTYPES),
            ("loss_kernel", tuple(LOSS_KERNELS)),
            ("master_weights", tuple(MASTER_WEIGHTS)),
        ):
            check(lambda n=name, a=allowed: object.__setattr__(self, n, _choice(n, getattr(self, n), a)))
        for name in ("seq_len", "micro_batch", "grad_accum", "gpu_count", "lora_r", "lora_alpha"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                errors.append(f"{name} must be a whole number >= 1; got {v!r}")
        if not 0.0 <= float(self.lora_dropout) < 1.0:
            errors.append(f"lora_dropout must be in [0, 1); got {self.lora_dropout!r}")
        if isinstance(self.lora_targets, str):
            object.__setattr__(self, "lora_targets", (self.lora_targets,))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if not self.lora_targets:
            errors.append("lora_targets must name at least one module (or 'all-linear')")
        if not errors:
            if self.technique == "qlora" and self.precision != "bf16":
                errors.append("qlora computes in bf16; use precision bf16")
            if self.sharding == "none" and self.offload != "none":
                errors.append("offload needs sharding zero2, zero3 or fsdp")
            if self.offload == "params" and self.sharding == "zero2":
                errors.append("zero2 can offload the optimizer only; use zero3 or fsdp to offload params")
            if self.master_weights == "fp32" and self.technique != "full":
                errors.append("master_weights fp32 applies to full fine-tuning (LoRA adapters are fp32 already; "
                              "see adapter_dtype)")
            if self.master_weights == "fp32" and self.precision != "bf16":
                errors.append("master_weights fp32 needs precision bf16 (the compute dtype of autocast)")
            if self.loss_kernel != "standard" and self.objective in ("dpo", "kto"):
                errors.append(f"loss_kernel {self.loss_kernel}: DPO and KTO compute per-token log-probabilities "
                              "from full logits; use loss_kernel standard")
            if not isinstance(self.activation_offload, bool):
                errors.append(f"activation_offload must be true or false; got {self.activation_offload!r}")
            if self.sharding != "none" and self.gpu_count < 2 and self.offload == "none":
                errors.append(f"sharding {self.sharding} needs gpu_count >= 2 (or an offload)")
        if errors:
            raise EstimateError("; ".join(errors))

    # ---- the recipe -------------------------------------------------------------------------
    @property
    def adapted(self) -> bool:
        """LoRA-family technique (frozen base, trainable adapters)."""
        return TECHNIQUES[self.technique].adapter

    @property
    def amp(self) -> bool:
        """fp32 master weights with bf16 autocast on one GPU or DDP (sharded runs have their own masters)."""
        return self.master_weights == "fp32" and self.sharding == "none"

    @property
    def compute_bytes(self) -> int:
        """Bytes per element of weights and activations in the forward pass."""
        return PRECISIONS[self.precision].bytes

    @property
    def adapter_bytes(self) -> int:
        """Bytes per element of LoRA A/B (and their grads and AdamW states).

        peft upcasts adapters to fp32 by default (``autocast_adapter_dtype=True``); TRL 1.16's SFTTrainer
        casts QLoRA adapters back to bf16, as the QLoRA paper does.
        """
        if self.adapter_dtype != "auto":
            return PRECISIONS[self.adapter_dtype].bytes
        if self.precision == "fp32":
            return 4
        return 2 if self.technique == "qlora" else 4

    @property
    def magnitude_bytes(self) -> int:
        """DoRA's magnitude vector stays fp32 (peft's upcast; TRL excludes it from the QLoRA bf16 cast)."""
        return 4 if self.precision == "bf16" else PRECISIONS[self.precision].bytes

    @property
    def sequences_per_micro_batch(self) -> int:
        """Sequences a forward pass sees: preference objectives run chosen and rejected together."""
        return self.micro_batch * (2 if OBJECTIVES[self.objective].paired else 1)

    @property
    def needs_reference_model(self) -> bool:
        """DPO and KTO compare against a frozen reference policy (ORPO does not)."""
        return OBJECTIVES[self.objective].reference_model

    def resolved_attn(self, model_type: str) -> str:
        from estimators.families import family

        sdpa = family(model_type).sdpa  # False: transformers cannot run it through SDPA (softcapping)
        if self.attn_impl == "auto":
            return "sdpa" if sdpa else "eager"
        if self.attn_impl == "sdpa" and not sdpa:
            raise EstimateError(
                f"attn_impl sdpa: transformers cannot run {model_type} attention through SDPA "
                "(logit softcapping or attention sinks); use eager or flash"
            )
        return self.attn_impl

    @property
    def recipe_notes(self) -> tuple[str, ...]:
        notes = []
        if self.technique == "full":
            notes.append(
                f"full fine-tuning in pure {self.precision}: weights, gradients and "
                + ("AdamW states in the same dtype (torch AdamW keeps states in the parameter dtype)"
                   if self.optimizer == "adamw" else "8-bit AdamW states (bitsandbytes)")
            )
        else:
            notes.append(
                f"base weights frozen in {'NF4' if self.technique == 'qlora' else self.precision}; "
                f"adapters, their gradients and optimizer states in "
                f"{'bf16' if self.adapter_bytes == 2 else 'fp32'}"
                + (" (TRL 1.16 casts QLoRA adapters to bf16)" if self.technique == "qlora" and self.adapter_dtype == "auto" else "")
                + (" (peft's default upcast)" if self.technique in ("lora", "dora") and self.adapter_dtype == "auto" else "")
            )
        if self.technique == "qlora":
            notes.append(
                "NF4 with block size 64 and "
                + ("double quantization (8-bit absmax, fp32 second level per 256 blocks)" if self.double_quant
                   else "fp32 absmax per block (no double quantization)")
                + "; embeddings, lm_head, norms and biases stay bf16"
            )
        return tuple(notes)
