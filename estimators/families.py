"""Model families as data (``estimators/data/families.yaml``): one entry per transformers ``model_type``.

``family(model_type)`` returns the entry, or for a family the file does not know a llama-style default marked
``known=False`` (traced as a llama-style decoder, no chat template, no tiny config). Code branches on the
fields (``fam.sdpa``, ``fam.sandwich_norms``, ``fam.chat_templates["axolotl"]``), never on a family's name.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from estimators.errors import CatalogError

FAMILIES_FILE = Path(__file__).parent / "data" / "families.yaml"
#: what an unknown family's chat template is, per trainer: Axolotl can fall back on the tokenizer's own
UNKNOWN_CHAT_TEMPLATES: dict[str, str | None] = {"axolotl": "tokenizer_default", "llamafactory": None, "trl": None}


class Family(BaseModel):
    """What advise knows of one architecture family (the fields are explained in families.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    known: bool = True
    verified: bool = False
    sdpa: bool = True
    norm: Literal["llama", "gemma", "fp32_weight"] = "llama"
    sandwich_norms: bool = False
    #: RMSNorm over each head of q and k before the rotary embedding (Qwen3, Gemma 3)
    qk_norm: bool = False
    #: a learned per-head logit joins each softmax (gpt-oss "sinks"): eager attention
    attention_sinks: bool = False
    #: sliding-window layers have a rotary embedding of their own (Gemma 3: rope_local_base_freq)
    local_rope: bool = False
    #: the rotary cos/sin cover half the head (the two halves rotated against each other: gpt-oss)
    half_rotary: bool = False
    scaled_embedding: bool = False
    attention_copy: bool = False
    system_role: bool = True
    chat_templates: dict[str, str | None] = Field(default_factory=lambda: dict(UNKNOWN_CHAT_TEMPLATES))
    #: the turn-closing token of the chat template when it is not eos_token (families.yaml)
    end_of_turn: str | None = None
    kto_formats: dict[str, str] = Field(default_factory=dict)
    tiny_config: dict[str, Any] | None = None
    #: size fields the publisher's own config.json leaves to transformers' class defaults (accepted as missing)
    config_defaults: tuple[str, ...] = ()
    #: what the estimate's weights are against what the publisher ships, where they differ
    weights_note: str | None = None
    #: a chat variant of this family (same architecture, own templates): families.yaml ``chat_of``
    chat_of: str | None = None
    #: Liger-Kernel ships an ``apply_liger_kernel_to_*`` for this model_type (families.yaml ``liger``)
    liger: bool = False
    source: str = ""

    def chat_template(self, trainer: str) -> str | None:
        """The chat template a trainer should use for this family (None: the trainer has none to name)."""
        return self.chat_templates.get(trainer, UNKNOWN_CHAT_TEMPLATES.get(trainer))


@functools.lru_cache(maxsize=1)
def families() -> Mapping[str, Family]:
    """Every family in the data file, validated; a malformed file is one ``CatalogError`` naming the field."""
    try:
        raw = yaml.safe_load(FAMILIES_FILE.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(f"{FAMILIES_FILE}: cannot read the families ({e})") from None
    out: dict[str, Family] = {}
    problems = []
    for name, entry in (raw.get("families") or {}).items():
        try:
            fam = Family.model_validate({"name": name, **(entry or {})})
        except ValidationError as e:
            problems += [f"{name}.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
            continue
        if fam.tiny_config is not None and fam.tiny_config.get("model_type") != name:
            problems.append(f"{name}.tiny_config.model_type: must be '{name}'")
        out[name] = fam
    for name, fam in out.items():
        if fam.chat_of is not None and (fam.chat_of not in out or out[fam.chat_of].chat_of is not None):
            problems.append(f"{name}.chat_of: {fam.chat_of!r} is not an architecture family of this file")
    if problems:
        raise CatalogError(f"{FAMILIES_FILE}: " + "; ".join(problems))
    return out


def architectures() -> list[str]:
    """The transformers ``model_type``s advise estimates (the families that are not chat variants)."""
    return sorted(n for n, f in families().items() if f.chat_of is None)


def chat_family(family_name: str | None, model_type: str | None) -> Family:
    """The family whose chat templates a model trains with: its catalog ``family`` where that is a chat variant of
    its architecture (Phi-4 on phi3), else the architecture's own."""
    fam = families().get(family_name or "")
    if fam is not None and fam.chat_of is not None and fam.chat_of == model_type:
        return fam
    return family(model_type or family_name or "")


def family(model_type: str) -> Family:
    """The family of ``model_type``; an unknown one is a llama-style default (``known`` and ``verified`` False)."""
    found = families().get(model_type)
    return found if found is not None else Family(name=model_type, title=model_type, known=False)


def tiny_config(model_type: str) -> dict[str, Any]:
    """The family's tiny test architecture (a fresh copy); ``KeyError`` for a family without one."""
    cfg = family(model_type).tiny_config
    if cfg is None:
        raise KeyError(f"no tiny config for model type '{model_type}' in {FAMILIES_FILE.name}")
    return dict(cfg)
