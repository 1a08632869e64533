"""What a model is made of: parameters per part, per layer, per linear module.

The numbers come from the real libraries, not from hand formulas: ``compute_anatomy`` instantiates the
architecture on the meta device (transformers ``from_config`` under ``torch.device("meta")``) and counts the
parameters the model really has. Catalog models carry this anatomy precomputed in
``estimators/data/models_anatomy.json`` (written by ``python -m estimators.build_catalog``; a test
recomputes it), so that planning needs no torch import.

LoRA/DoRA trainable counts follow peft's own definition (``lora_A``: r x in, ``lora_B``: out x r, DoRA adds a
magnitude vector of ``out``); ``peft_trainable_params`` applies peft to the meta model so tests can check
``lora_trainable_params`` against the real thing.

Mixture-of-experts layers (Mixtral, Qwen3-MoE, gpt-oss in transformers 5) keep their experts as fused 3-D
parameters, (experts, out, in) or (experts, in, out), and a router that is not an ``nn.Linear``: they are
``ParamGroup``s. Every expert is held in memory (``params_total``); a token runs through ``experts_per_token`` of
them (``params_active``, what FLOPs count). What peft's ``target_modules="all-linear"`` adapts on them is read from
peft itself, applied to the meta model (``_peft_param_targets``): peft 0.21 maps the fused experts of the families
transformers converted from per-expert linears (Mixtral, Qwen3-MoE) to ``target_parameters`` (the fused gate/up
projection at rank 2r, the router at r) and leaves gpt-oss's experts alone.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from estimators.errors import EstimateError

#: Parts a parameter can belong to, in display order ("vision": a multimodal wrapper's image tower and projector,
#: held in memory and frozen when the text decoder is fine-tuned).
PARTS = ("embedding", "attention", "mlp", "norms", "lm_head", "vision", "other")
#: module-name fragments of a multimodal wrapper's non-text parts (transformers 5 Gemma3ForConditionalGeneration:
#: model.vision_tower, model.multi_modal_projector)
VISION_PREFIXES = ("vision_tower", "multi_modal_projector", "vision_model", "visual")


def is_vision(name: str) -> bool:
    """The parameter or module ``name`` belongs to a multimodal wrapper's image side."""
    return any(f"{v}." in name for v in VISION_PREFIXES)


@dataclass(frozen=True)
class LinearGroup:
    """One kind of linear module found in every decoder layer (e.g. ``self_attn.q_proj``)."""

    name: str
    in_features: int
    out_features: int
    bias: bool
    count: int  # number of decoder layers holding it

    @property
    def weight_params(self) -> int:
        return self.in_features * self.out_features

    @property
    def leaf(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class ParamGroup:
    """A weight of every MoE layer that is a bare parameter, not an ``nn.Linear``: the fused experts (a 3-D
    ``(experts, ., .)`` tensor) or the router (``experts`` = 1). ``in_features``/``out_features`` are one expert's."""

    name: str  # e.g. "mlp.experts.gate_up_proj", "mlp.gate.weight"
    experts: int  # leading dimension (1 for a 2-D weight)
    in_features: int
    out_features: int
    bias_params: int  # per layer, the bias beside it (gpt-oss: (experts, out))
    count: int  # decoder layers holding it
    routed: bool  # True: a token runs through experts_per_token of the experts, not all
    transposed: bool  # stored (experts, in, out) rather than (experts, out, in)
    #: the LoRA rank peft's target_modules="all-linear" gives it, in units of r (0: not adapted)
    all_linear_rank_factor: int = 0

    @property
    def weight_params(self) -> int:
        """Per layer, every expert."""
        return self.experts * self.in_features * self.out_features

    @property
    def leaf(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Anatomy:
    """Parameter anatomy of a causal LM plus the architecture fields the estimators need."""

    model_type: str
    params_total: int  # unique parameters (a tied lm_head counts once)
    params_by_part: Mapping[str, int]
    tied_embeddings: bool
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    largest_layer_params: int  # largest decoder layer (FSDP unit)
    largest_module_params: int  # largest single module's own params (DeepSpeed's "largest_layer")
    linears: tuple[LinearGroup, ...]  # linear modules inside decoder layers
    norms_per_layer: int
    #: histogram of parameter tensor sizes: ((numel, count), ...), unique tensors, sorted
    param_tensor_numels: tuple[tuple[int, int], ...]
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None
    sliding_window: int | None = None
    #: decoder layers whose attention is limited to the last ``sliding_window`` tokens (config ``layer_types``;
    #: every layer when a config sets sliding_window without layer types, as Mistral v0.1 does)
    sliding_layers: int = 0
    #: MoE: fused expert tensors and routers (empty for a dense model)
    params: tuple[ParamGroup, ...] = ()
    num_experts: int = 0
    experts_per_token: int = 0
    #: histogram ((numel, count), ...) of the "vision" part's tensors: frozen, so not in full fine-tuning's states
    vision_tensor_numels: tuple[tuple[int, int], ...] = ()
    #: histogram of the vision part's nn.Linear weights (bitsandbytes packs them to 4 bit under QLoRA too)
    vision_linear_numels: tuple[tuple[int, int], ...] = ()

    # ---- derived -------------------------------------------------------------------------------
    @property
    def linear_weight_params(self) -> int:
        """Parameters in decoder-layer linear weights (what QLoRA quantizes to 4 bit: bitsandbytes, through
        transformers, replaces ``nn.Linear`` modules only, so fused experts and routers stay in the compute dtype;
        measured on CPU, tests/estimators/test_exactness.py)."""
        return sum(g.weight_params * g.count for g in self.linears)

    @property
    def is_moe(self) -> bool:
        return any(g.routed for g in self.params)

    @property
    def params_inactive(self) -> int:
        """Parameters of the experts a token does not run through: (experts - top-k) of every routed group."""
        if not self.is_moe:
            return 0
        k = self.experts_per_token
        return sum((g.experts - k) * (g.in_features * g.out_features + g.bias_params // g.experts) * g.count
                   for g in self.params if g.routed)

    @property
    def params_active(self) -> int:
        """Parameters one token uses (embedding and lm_head included, the usual "active parameters" of MoE model
        cards: Mixtral-8x7B 12.9B of 46.7B); equal to ``params_total`` for a dense model."""
        return self.params_total - self.params_inactive

    @property
    def matmul_params_per_token(self) -> int:
        """Decoder-layer matmul weights a token multiplies through: every linear, the routers, top-k experts."""
        k = self.experts_per_token
        moe = sum((k * g.in_features * g.out_features if g.routed else g.weight_params) * g.count for g in self.params)
        return self.linear_weight_params + moe

    @property
    def frozen_vision_params(self) -> int:
        return int(self.params_by_part.get("vision", 0))

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["params_by_part"] = dict(self.params_by_part)
        d["linears"] = [dataclasses.asdict(g) for g in self.linears]
        d["params"] = [dataclasses.asdict(g) for g in self.params]
        d["param_tensor_numels"] = [list(x) for x in self.param_tensor_numels]
        d["vision_tensor_numels"] = [list(x) for x in self.vision_tensor_numels]
        d["vision_linear_numels"] = [list(x) for x in self.vision_linear_numels]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Anatomy:
        d = dict(d)
        d["params_by_part"] = {k: int(d["params_by_part"].get(k, 0)) for k in PARTS}
        d["linears"] = tuple(LinearGroup(**g) for g in d["linears"])
        d["params"] = tuple(ParamGroup(**g) for g in d.get("params", ()))
        d["param_tensor_numels"] = tuple((int(n), int(c)) for n, c in d["param_tensor_numels"])
        for key in ("vision_tensor_numels", "vision_linear_numels"):
            d[key] = tuple((int(n), int(c)) for n, c in d.get(key, ()))
        return cls(**d)


# ---- LoRA / DoRA --------------------------------------------------------------------------------
def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def select_lora_targets(anatomy: Anatomy, targets: Sequence[str] | str) -> tuple[LinearGroup, ...]:
    """The decoder-layer linear groups peft would adapt for ``target_modules=targets``.

    peft semantics: ``"all-linear"`` is every linear layer except the output layer; a list entry matches
    a module whose name equals it or ends with ``"." + entry``.
    """
    targets = _target_list(targets)
    if targets == ["all-linear"]:
        return anatomy.linears
    unknown = [t for t in targets if not any(_matches(g.name, t) for g in (*anatomy.linears, *anatomy.params))]
    if unknown:
        known = sorted({g.leaf for g in (*anatomy.linears, *anatomy.params)})
        raise EstimateError(
            f"lora target(s) {', '.join(unknown)} match no linear layer of this {anatomy.model_type} model; "
            f"use 'all-linear' or some of: {', '.join(known)}"
        )
    return tuple(g for g in anatomy.linears if any(_matches(g.name, t) for t in targets))


def select_lora_params(anatomy: Anatomy, targets: Sequence[str] | str) -> tuple[tuple[ParamGroup, int], ...]:
    """The MoE parameter groups peft adapts, each with its rank in units of r: for ``"all-linear"`` what peft
    itself chose on this architecture (``ParamGroup.all_linear_rank_factor``); a list entry naming a parameter
    (``"gate_up_proj"``, ``"mlp.experts.down_proj"``) adapts it at rank r, as peft's ``target_parameters`` does."""
    targets = _target_list(targets)
    if targets == ["all-linear"]:
        return tuple((g, g.all_linear_rank_factor) for g in anatomy.params if g.all_linear_rank_factor)
    return tuple((g, 1) for g in anatomy.params if any(_matches(g.name, t) for t in targets))


def lora_dropout_for(anatomy: Anatomy, targets: Sequence[str] | str, dropout: float) -> float:
    """The LoRA dropout peft can run: none where it adapts a parameter (fused experts, a router: peft's
    ParamWrapper raises "does not work with lora_dropout != 0"), else ``dropout``."""
    return 0.0 if select_lora_params(anatomy, targets) else dropout


def technique_unsupported(anatomy: Anatomy, technique: str, targets: Sequence[str] | str) -> str | None:
    """Why peft cannot train ``technique`` on this model, or None: DoRA has no ParamWrapper form (peft
    tuners/lora/layer.py ParamWrapper refuses use_dora), so a model whose experts peft adapts as parameters
    cannot take it."""
    if technique == "dora" and select_lora_params(anatomy, targets):
        return (f"DoRA: peft adapts this {anatomy.model_type} model's experts as parameters (ParamWrapper), which "
                "has no DoRA; use LoRA")
    return None


def _target_list(targets: Sequence[str] | str) -> list[str]:
    return [targets] if isinstance(targets, str) else list(targets)


def lora_trainable_params(
    anatomy: Anatomy, r: int, targets: Sequence[str] | str = "all-linear", dora: bool = False
) -> int:
    """Trainable parameters peft creates: per adapted linear r*(in+out), plus ``out`` for DoRA's magnitude; per
    adapted expert tensor (peft ``ParamWrapper``: lora_A is (r*experts, in), lora_B (out, r*experts))
    r*experts*(in+out)."""
    return sum(n * c for n, c in lora_param_tensor_numels(anatomy, r, targets, dora))


def lora_param_tensor_numels(
    anatomy: Anatomy, r: int, targets: Sequence[str] | str = "all-linear", dora: bool = False
) -> tuple[tuple[int, int], ...]:
    """Histogram ((numel, count), ...) of the adapter tensors peft creates (lora_A, lora_B, magnitude)."""
    if r < 1:
        raise EstimateError(f"lora r must be >= 1, got {r}")
    hist: dict[int, int] = {}
    for g in select_lora_targets(anatomy, targets):
        sizes = [r * g.in_features, g.out_features * r] + ([g.out_features] if dora else [])
        for n in sizes:
            hist[n] = hist.get(n, 0) + g.count
    adapted = select_lora_params(anatomy, targets)
    if dora and (why := technique_unsupported(anatomy, "dora", targets)):
        raise EstimateError(why)
    for g, factor in adapted:
        rank = r * factor * g.experts
        for n in (rank * g.in_features, g.out_features * rank):
            hist[n] = hist.get(n, 0) + g.count
    return tuple(sorted(hist.items()))


# ---- sanity limits on a config.json, before transformers builds anything -------------------------
#: (field, largest value accepted). Each bound is several times the largest released model's value (config.json
#: files on the Hub, 2026: 126 layers (Llama-3.1-405B), hidden 16384, intermediate 53248, vocabulary 262144
#: (Gemma 3), 128 heads, 512 experts (Qwen3-Next), 10M positions (Llama 4 Scout)); past them a config is a typo or
#: hostile, and building it on the meta device would take minutes and gigabytes.
ARCHITECTURE_LIMITS: dict[str, int] = {
    "num_hidden_layers": 1024,
    "hidden_size": 131_072,
    "intermediate_size": 1_048_576,
    "moe_intermediate_size": 1_048_576,
    "vocab_size": 4_194_304,
    "num_attention_heads": 1024,
    "num_key_value_heads": 1024,
    "head_dim": 4096,
    "num_local_experts": 4096,
    "num_experts": 4096,
    "num_experts_per_tok": 256,
    "max_position_embeddings": 1 << 26,
    "sliding_window": 1 << 26,
}
#: nested configs checked with the same limits (multimodal wrappers keep the decoder in text_config)
NESTED_CONFIGS = ("text_config",)
#: characters of a model_type quoted back, and of transformers' own error
SHOWN_CHARS = 80


def check_architecture(config: Mapping[str, Any], where: str = "config") -> None:
    """Refuse sizes that are not whole numbers in range (strings, floats, booleans, <= 0, absurd), naming the
    field; raises ``EstimateError``."""
    for field, limit in ARCHITECTURE_LIMITS.items():
        if field not in config or config[field] is None:
            continue
        value = config[field]
        if isinstance(value, bool) or not isinstance(value, int):
            shown = repr(value)[:SHOWN_CHARS]
            raise EstimateError(f"{where}: {field} is {shown}; it must be a whole number")
        if not 1 <= value <= limit:
            raise EstimateError(f"{where}: {field} is {value}; it must be between 1 and {limit:,}")
    for name in NESTED_CONFIGS:
        nested = config.get(name)
        if isinstance(nested, Mapping):
            check_architecture(nested, f"{where}: {name}")
        elif nested is not None:
            raise EstimateError(f"{where}: {name} must be a mapping of fields")


# ---- from the real libraries (torch imported lazily) -------------------------------------------
def build_config(config: Mapping[str, Any] | Any) -> Any:
    """A transformers ``PretrainedConfig`` from a config.json mapping (or pass one through)."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config, PretrainedConfig):
        return config
    check_architecture(config)
    fields = copy.deepcopy(dict(config))  # transformers edits nested dicts (rope_scaling) in place
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise EstimateError("config has no 'model_type'; is it a transformers config.json?")
    if not isinstance(model_type, str):
        raise EstimateError(f"config: model_type is {repr(model_type)[:SHOWN_CHARS]}; it must be a name such as "
                            "'llama'")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        close = difflib.get_close_matches(model_type, list(CONFIG_MAPPING.keys()), n=1)
        raise EstimateError(f"transformers {transformers_version()} does not know model_type "
                            f"{model_type[:SHOWN_CHARS]!r}" + (f"; did you mean {close[0]!r}?" if close else
                                                               " (a newer transformers may)"))
    try:
        cfg = AutoConfig.for_model(model_type, **fields)
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as e:
        raise EstimateError(f"transformers cannot read this {model_type} config: "
                            f"{str(e).splitlines()[0][:SHOWN_CHARS * 2] if str(e) else type(e).__name__}") from None
    from estimators.families import family

    # fields a family's own Hub config.json leaves to the class defaults (Gemma 3's text_config.vocab_size)
    missing = [f for f in missing_size_fields(cfg, fields) if f not in family(model_type).config_defaults]
    if missing:
        raise EstimateError(f"config ({model_type}) lacks {', '.join(missing)}: transformers would fill "
                            f"{'it' if len(missing) == 1 else 'them'} with its defaults and describe another model; "
                            f"copy the model's whole config.json")
    return cfg


#: the fields that set a decoder's size: a config.json without one of them would be built with transformers'
#: class defaults (a bare {"model_type": "llama"} is a 6.7B Llama-2), so they must be given
SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")


def missing_size_fields(cfg: Any, given: Mapping[str, Any]) -> list[str]:
    """The SIZE_FIELDS the config file did not give (under their own name or the class's ``attribute_map``
    alias), for the decoder itself or, in a multimodal wrapper, its ``text_config``."""
    text = getattr(cfg, "text_config", None)
    if text is not None and isinstance(given.get("text_config"), Mapping):
        return [f"text_config.{f}" for f in missing_size_fields(text, given["text_config"])]
    if text is not None:
        return ["text_config"]
    aliases = getattr(cfg, "attribute_map", {}) or {}
    out = []
    for field in SIZE_FIELDS:
        if not hasattr(cfg, field):
            continue  # an architecture without this notion (no separate MLP width, say)
        if field not in given and aliases.get(field) not in given:
            out.append(field)
    return out


def build_meta_model(config: Mapping[str, Any] | Any) -> Any:
    """Instantiate the causal LM on the meta device: real module tree, no memory for weights.

    Uses torch's own ``torch.device("meta")`` context rather than accelerate's ``init_empty_weights``:
    the latter re-wraps every registered parameter, which unties a tied lm_head (Llama-3.2, Qwen2.5
    small models, Gemma-2 would then count their embedding twice).
    """
    import torch
    from transformers import AutoModelForCausalLM

    cfg = build_config(config)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def _part_of(name: str) -> str:
    if is_vision(name):
        return "vision"
    if "embed_tokens" in name or name.endswith("wte.weight"):
        return "embedding"
    if name.startswith("lm_head"):
        return "lm_head"
    if ".layers." in name:
        module = name.rsplit(".", 1)[0]
        if "norm" in module.rsplit(".", 1)[-1]:
            return "norms"
        if ".self_attn." in name or ".attn." in name:
            return "attention"
        if ".mlp." in name:
            return "mlp"
        return "other"
    if "norm" in name:
        return "norms"
    return "other"


def anatomy_of_model(model: Any) -> Anatomy:
    """Count the parameters of an instantiated (meta or real) transformers causal LM."""
    import torch

    cfg = model.config
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    by_part = dict.fromkeys(PARTS, 0)
    hist: dict[int, int] = {}
    vision_hist: dict[int, int] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=True):
        if id(p) in seen:
            continue
        seen.add(id(p))
        part = _part_of(name)
        by_part[part] += p.numel()
        hist[p.numel()] = hist.get(p.numel(), 0) + 1
        if part == "vision":
            vision_hist[p.numel()] = vision_hist.get(p.numel(), 0) + 1
    total = sum(by_part.values())

    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    tied = out is not None and inp is not None and out.weight is inp.weight

    layers = _decoder_layers(model)
    groups: dict[str, list] = {}
    pgroups: dict[str, list] = {}
    norms_per_layer = 0
    largest_layer = 0
    for i, layer in enumerate(layers):
        largest_layer = max(largest_layer, sum(p.numel() for p in layer.parameters()))
        n_norms = 0
        linear_params = set()
        for mname, mod in layer.named_modules():
            if isinstance(mod, torch.nn.Linear):
                linear_params.update(id(p) for p in mod.parameters())
                g = groups.setdefault(mname, [mod.in_features, mod.out_features, mod.bias is not None, 0])
                if (g[0], g[1], g[2]) != (mod.in_features, mod.out_features, mod.bias is not None):
                    raise EstimateError(f"layer {i} {mname} differs from layer 0; heterogeneous layers are not supported")
                g[3] += 1
            elif "norm" in mname.rsplit(".", 1)[-1].lower() and not list(mod.children()):
                n_norms += 1
        norms_per_layer = max(norms_per_layer, n_norms)
        for key, spec in _param_groups(layer, linear_params).items():
            g = pgroups.setdefault(key, [spec, 0])
            if g[0] != spec:
                raise EstimateError(f"layer {i} {key} differs from layer 0; heterogeneous layers are not supported")
            g[1] += 1
    largest_module = max(
        (sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()), default=0
    )
    factors = _peft_param_targets(model) if pgroups else {}
    params = tuple(ParamGroup(name, experts, in_f, out_f, bias, count, routed, transposed, factors.get(name, 0))
                   for name, ((experts, in_f, out_f, bias, routed, transposed), count) in pgroups.items())
    num_experts = max((g.experts for g in params if g.routed), default=0)

    heads = text_cfg.num_attention_heads
    head_dim = getattr(text_cfg, "head_dim", None) or text_cfg.hidden_size // heads
    sliding_window = (getattr(text_cfg, "sliding_window", None)
                      if getattr(text_cfg, "use_sliding_window", True) is not False else None)
    layer_types = getattr(text_cfg, "layer_types", None)
    if sliding_window is None:
        sliding = 0
    elif layer_types:
        sliding = sum(1 for t in layer_types[:len(layers)] if t == "sliding_attention")
    else:
        sliding = len(layers)
    intermediate = getattr(text_cfg, "moe_intermediate_size", None) if num_experts else None
    return Anatomy(
        model_type=text_cfg.model_type,
        params_total=total,
        params_by_part=by_part,
        tied_embeddings=bool(tied),
        num_layers=len(layers),
        hidden_size=text_cfg.hidden_size,
        intermediate_size=intermediate or text_cfg.intermediate_size,
        num_attention_heads=heads,
        num_key_value_heads=getattr(text_cfg, "num_key_value_heads", None) or heads,
        head_dim=head_dim,
        vocab_size=text_cfg.vocab_size,
        largest_layer_params=largest_layer,
        largest_module_params=largest_module,
        linears=tuple(LinearGroup(n, a, b, bias, c) for n, (a, b, bias, c) in groups.items()),
        norms_per_layer=norms_per_layer,
        param_tensor_numels=tuple(sorted(hist.items())),
        attn_logit_softcapping=getattr(text_cfg, "attn_logit_softcapping", None),
        final_logit_softcapping=getattr(text_cfg, "final_logit_softcapping", None),
        sliding_window=sliding_window if sliding else None,
        sliding_layers=sliding,
        params=params,
        num_experts=num_experts,
        experts_per_token=(getattr(text_cfg, "num_experts_per_tok", 0) or 0) if num_experts else 0,
        vision_tensor_numels=tuple(sorted(vision_hist.items())),
        vision_linear_numels=_vision_linear_numels(model),
    )


def _vision_linear_numels(model: Any) -> tuple[tuple[int, int], ...]:
    import torch

    # nn.MultiheadAttention (SigLIP's pooling head) calls its out_proj's weight functionally; bitsandbytes
    # leaves it as it is (measured: tests/estimators/test_exactness.py, gemma3 QLoRA states)
    skip = {id(m.out_proj) for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)}
    hist: dict[int, int] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and id(mod) not in skip and is_vision(name + ".weight"):
            hist[mod.weight.numel()] = hist.get(mod.weight.numel(), 0) + 1
    return tuple(sorted(hist.items()))


def _param_groups(layer: Any, linear_params: set[int]) -> dict[str, tuple]:
    """A decoder layer's weights outside ``nn.Linear`` modules that are matrices: fused expert stacks (3-D) and
    routers (2-D), as ``name -> (experts, in, out, bias_params, routed, transposed)``. Norm weights, attention
    sinks and biases are vectors and stay plain parameters."""
    out: dict[str, tuple] = {}
    for mname, mod in layer.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in linear_params or p.dim() not in (2, 3) or pname.endswith("bias"):
                continue
            name = f"{mname}.{pname}" if mname else pname
            bias = getattr(mod, f"{pname}_bias", None)
            bias_params = bias.numel() if bias is not None else 0
            if p.dim() == 3:
                transposed = bool(getattr(mod, "is_transposed", False))
                experts, a, b = p.shape
                in_f, out_f = (a, b) if transposed else (b, a)
                out[name] = (experts, in_f, out_f, bias_params, True, transposed)
            else:
                bias = getattr(mod, "bias", None) if pname == "weight" else None
                out[name] = (1, p.shape[1], p.shape[0], bias.numel() if bias is not None else 0, False, False)
    return out


def _peft_param_targets(model: Any) -> dict[str, int]:
    """What peft's ``target_modules="all-linear"`` adapts among a MoE model's parameter groups, as
    ``layer-relative parameter name -> rank / r``: peft itself applied at r=1 to a meta-device copy."""
    import copy as _copy

    import torch
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora.layer import ParamWrapper

    with torch.device("meta"):
        probe = type(model)._from_config(_copy.deepcopy(model.config))
    with warnings.catch_warnings():  # peft warns of rank patterns it applied through its MoE conversion
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(probe, LoraConfig(r=1, lora_alpha=1, lora_dropout=0.0,
                                                      target_modules="all-linear"))
    out: dict[str, int] = {}
    for mname, mod in peft_model.named_modules():
        if not isinstance(mod, ParamWrapper):
            continue
        path = [part for part in mname.split(".") if part != "base_layer"]
        if "layers" not in path:
            continue
        rel = ".".join(path[path.index("layers") + 2:])
        out[f"{rel}.{mod.parameter_name}"] = int(mod.r["default"])
    return out


def _decoder_layers(model: Any) -> Any:
    base = getattr(model, "model", None) or getattr(model, "transformer", None)
    base = getattr(base, "language_model", None) or base  # a multimodal wrapper's text decoder
    for attr in ("layers", "h", "blocks"):
        layers = getattr(base, attr, None)
        if layers is not None:
            return layers
    raise EstimateError(f"cannot find the decoder layers of {type(model).__name__}")


def compute_anatomy(config: Mapping[str, Any] | Any) -> Anatomy:
    """Anatomy of a model given its config.json mapping (or ``PretrainedConfig``), via the meta device.

    A config transformers accepts but cannot build (heads that do not divide the hidden size, ...) is one
    ``EstimateError`` line, not the library's exception."""
    cfg = build_config(config)
    from estimators.families import architectures

    if cfg.model_type not in architectures():
        raise EstimateError(f"model_type {cfg.model_type!r} is not a family advise knows how to estimate; supported: "
                            f"{', '.join(architectures())} (estimators/data/families.yaml)")
    try:
        model = build_meta_model(cfg)
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError, RuntimeError, IndexError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EstimateError(f"transformers cannot build this {cfg.model_type} config: {text[:SHOWN_CHARS * 2]}") from None
    return anatomy_of_model(model)


def transformers_version() -> str:
    import transformers

    return transformers.__version__


#: peft exclude_modules for a multimodal wrapper: its "all-linear" would adapt the image tower too
VISION_EXCLUDE = r".*\b(" + "|".join(VISION_PREFIXES) + r")\b.*"


def text_target_regex(anatomy: Anatomy, targets: Sequence[str] | str) -> str | None:
    """peft's ``target_modules`` as one regular expression that reaches the same linears as ``targets`` on the text
    decoder only, for a multimodal wrapper (None for a text-only model): trainers whose config has no
    ``exclude_modules`` (TRL's and Axolotl's LoRA keys) would otherwise adapt the vision tower's linears too, which
    the estimate leaves frozen. peft matches a string target with ``re.fullmatch`` on each module name
    (peft tuners/tuners_utils.py check_target_module_exists)."""
    if not anatomy.frozen_vision_params:
        return None
    leaves = sorted({g.name.rsplit(".", 1)[-1] for g in select_lora_targets(anatomy, targets)})
    return r"^(?!.*\b(" + "|".join(VISION_PREFIXES) + r")\b).*\.(" + "|".join(leaves) + r")$"


def peft_lora_kwargs(setup: Any, targets: Any, vision: bool) -> dict[str, Any]:
    """The peft ``LoraConfig`` of a setup: the text decoder only (a wrapper's vision tower excluded)."""
    kw: dict[str, Any] = dict(r=setup.lora_r, lora_alpha=setup.lora_alpha, lora_dropout=setup.lora_dropout,
                              target_modules=targets, use_dora=setup.technique == "dora", task_type="CAUSAL_LM")
    if vision:
        kw["exclude_modules"] = VISION_EXCLUDE
    return kw


def peft_trainable_params(
    config: Mapping[str, Any] | Any, r: int, targets: Sequence[str] | str = "all-linear", dora: bool = False
) -> int:
    """Trainable parameters after applying peft LoRA (or DoRA) to the meta model: peft's own count."""
    from peft import LoraConfig, get_peft_model

    model = build_meta_model(config)
    target_modules: Any = targets if isinstance(targets, str) else list(targets)
    vision = any(is_vision(n) for n, _ in model.named_parameters())
    extra = {"exclude_modules": VISION_EXCLUDE} if vision else {}
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=target_modules, use_dora=dora,
                                                  lora_dropout=0.0, **extra))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    return int(trainable)
