"""Build the real model and optimizer a ``TrainingSetup`` describes, with random weights.

Memory and speed do not depend on weight values, so models are built from their architecture config
and nothing is downloaded. The recipe (dtypes, adapters, quantization, checkpointing) is the one the
estimators assume (``estimators.setup.TrainingSetup``); the profiler and the estimator tests both build
models here so that measurement and estimate describe the same run. Tiny test architectures per family are
data (``estimators.families.tiny_config``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from advisor.contract.vocab import ATTENTION, PRECISIONS
from estimators.anatomy import (
    anatomy_of_model,
    build_config,
    is_vision,
    lora_dropout_for,
    peft_lora_kwargs,
)
from estimators.setup import TrainingSetup


def _torch_dtype(precision: str):
    import torch

    return getattr(torch, PRECISIONS[precision].torch_name)


def _attn_name(setup: TrainingSetup, model_type: str) -> str:
    return ATTENTION[setup.resolved_attn(model_type)].transformers_name


def build_model(config: Mapping[str, Any] | Any, setup: TrainingSetup, device: str = "cpu", seed: int = 0) -> Any:
    """The trainable model for ``setup``: base model (bf16/fp32, or NF4 for QLoRA) plus peft adapters."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch.manual_seed(seed)
    cfg = build_config(config)
    dtype = _torch_dtype(setup.precision)
    attn = _attn_name(setup, cfg.model_type)
    if setup.technique == "qlora":
        # bitsandbytes refuses from_config(quantization_config=...): save random weights, reload quantized
        base = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)
        with tempfile.TemporaryDirectory() as tmp:
            base.save_pretrained(tmp)
            del base
            model = AutoModelForCausalLM.from_pretrained(
                tmp,
                dtype=dtype,
                attn_implementation=attn,
                device_map={"": device},
                quantization_config=BitsAndBytesConfig(
                    load_in_4bit=True,
                    bnb_4bit_quant_type="nf4",
                    bnb_4bit_compute_dtype=dtype,
                    bnb_4bit_use_double_quant=setup.double_quant,
                    bnb_4bit_quant_storage=torch.uint8,
                ),
            )
    else:
        # built directly on the device: an 8B model initialised on the CPU and then copied costs minutes
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)

    vision = [p for n, p in model.named_parameters() if is_vision(n)]
    for p in vision:  # a multimodal wrapper's image tower and projector stay frozen: text fine-tuning
        p.requires_grad_(False)
    if setup.adapted:
        from peft import LoraConfig, get_peft_model

        targets: Any = list(setup.lora_targets)
        if targets == ["all-linear"]:
            targets = "all-linear"
        if setup.lora_dropout and any(p.dim() == 3 for p in model.parameters()):  # fused experts
            anatomy = anatomy_of_model(model)
            setup = replace(setup, lora_dropout=lora_dropout_for(anatomy, setup.lora_targets, setup.lora_dropout))
        model = get_peft_model(model, LoraConfig(**peft_lora_kwargs(setup, targets, bool(vision))))
        adapter_dtype = {2: torch.bfloat16, 4: torch.float32}[setup.adapter_bytes]
        magnitude_dtype = {2: torch.bfloat16, 4: torch.float32}[setup.magnitude_bytes]
        for name, p in model.named_parameters():
            if p.requires_grad:
                want = magnitude_dtype if "lora_magnitude_vector" in name else adapter_dtype
                if p.dtype != want:
                    p.data = p.data.to(want)
    if setup.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if setup.adapted:
            model.enable_input_require_grads()
    model.config.use_cache = False
    model.train()
    return model


def build_optimizer(model: Any, setup: TrainingSetup, lr: float = 1e-4) -> Any:
    """The optimizer the recipe uses: torch fused AdamW (transformers' default) or bitsandbytes 8-bit AdamW."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if setup.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, fused=True)
    import bitsandbytes as bnb

    cls = bnb.optim.PagedAdamW8bit if setup.optimizer == "paged-adamw-8bit" else bnb.optim.AdamW8bit
    return cls(params, lr=lr)
