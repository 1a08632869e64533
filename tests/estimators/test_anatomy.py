"""Anatomy comes from the real libraries and matches the publishers' parameter counts exactly."""

from __future__ import annotations

import pytest

from estimators.anatomy import (
    lora_trainable_params,
    peft_trainable_params,
    select_lora_targets,
)
from estimators.errors import EstimateError
from estimators.families import family

# the acceptance anchors, from each model's safetensors index / model card
ANCHORS = {
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.1-70b": 70_553_706_496,
    "qwen2.5-7b": 7_615_616_512,
    "mistral-7b-v0.3": 7_248_023_552,
}


@pytest.mark.parametrize("name,count", sorted(ANCHORS.items()))
def test_anchor_parameter_counts(catalog, name, count):
    assert catalog.model(name).anatomy.params_total == count


def test_every_catalog_model_matches_its_published_count(catalog):
    mismatched = {}
    for name in catalog.model_names:
        m = catalog.model(name)
        assert m.published_params is not None, f"{name} has no published_params"
        if m.anatomy.params_total != m.published_params:
            mismatched[name] = (m.anatomy.params_total, m.published_params)
    assert not mismatched


def test_parts_match_the_modules_and_tied_heads_count_once(catalog):
    """Parameters grouped by name agree with the modules counted separately: attention + MLP are the decoder
    linears (weights and biases), norms one hidden-size vector each plus the final norm, the embedding V x h."""
    for name in catalog.model_names:
        a = catalog.model(name).anatomy
        fam = family(a.model_type)
        linear = sum(g.weight_params * g.count + (g.out_features * g.count if g.bias else 0) for g in a.linears)
        # MoE: fused experts and routers with their biases; gpt-oss: one attention-sink logit per head
        fused = sum((g.weight_params + g.bias_params) * g.count for g in a.params)
        sinks = a.num_attention_heads * a.num_layers if fam.attention_sinks else 0
        assert a.params_by_part["attention"] + a.params_by_part["mlp"] == linear + fused + sinks, name
        # q_norm/k_norm (Qwen3, Gemma 3) normalise one head: head_dim wide
        qk = 2 if fam.qk_norm else 0
        assert a.params_by_part["norms"] == (a.hidden_size * ((a.norms_per_layer - qk) * a.num_layers + 1)
                                             + qk * a.head_dim * a.num_layers), name
        assert a.params_by_part["embedding"] == a.vocab_size * a.hidden_size and a.params_by_part["other"] == 0, name
        if a.tied_embeddings:
            assert a.params_by_part["lm_head"] == 0, name
        else:
            assert a.params_by_part["lm_head"] == a.vocab_size * a.hidden_size, name
    assert catalog.model("llama-3.2-1b").anatomy.tied_embeddings
    assert not catalog.model("llama-3.1-8b").anatomy.tied_embeddings


@pytest.mark.slow
def test_precomputed_anatomy_equals_a_fresh_meta_device_count():
    """models_anatomy.json is what `python -m estimators.build_catalog` writes today."""
    from estimators.build_catalog import build
    from estimators.catalog import ANATOMY_FILE

    assert ANATOMY_FILE.read_text() == build(), "run: python -m estimators.build_catalog"


@pytest.mark.slow
def test_every_instruct_checkpoint_counts_as_its_base_on_the_meta_device(catalog):
    """An instruct sibling reuses its base's anatomy; its own config (token ids, dtype, context changed) counts the
    same parameters, layer by layer, on the meta device."""
    from estimators.anatomy import compute_anatomy

    siblings = [n for n in catalog.model_names if catalog.model(n).base_name]
    assert len(siblings) >= 14 and {"llama-3.1-8b-instruct", "gemma-2-2b-it", "qwen2.5-7b-instruct"} <= set(siblings)
    for name in siblings:
        m = catalog.model(name)
        assert m.checkpoint == "instruct" and catalog.model(m.base_name).instruct_name == name
        assert compute_anatomy(m.config).to_dict() == m.anatomy.to_dict(), name


@pytest.mark.parametrize(
    "name,r,targets,dora",
    [
        ("qwen2.5-0.5b", 8, "all-linear", False),
        ("qwen2.5-0.5b", 16, ["q_proj", "v_proj"], True),
        ("llama-3.2-1b", 64, ["q_proj", "k_proj", "v_proj", "o_proj"], False),
        ("gemma-2-2b", 4, "all-linear", True),
        ("phi-3.5-mini", 32, ["qkv_proj", "down_proj"], False),
    ],
)
def test_lora_count_equals_peft_on_the_meta_model(catalog, name, r, targets, dora):
    m = catalog.model(name)
    assert lora_trainable_params(m.anatomy, r, targets, dora) == peft_trainable_params(m.config, r, targets, dora)


def test_llama_8b_lora_r16_all_linear(catalog):
    # 32 layers x 16 x (q 4096+4096, k 4096+1024, v 4096+1024, o 4096+4096, gate/up 4096+14336 x2, down 14336+4096)
    assert lora_trainable_params(catalog.model("llama-3.1-8b").anatomy, 16, "all-linear") == 41_943_040


def test_unknown_lora_target_names_the_known_ones(catalog):
    with pytest.raises(EstimateError, match=r"c_attn match no linear layer.*q_proj"):
        select_lora_targets(catalog.model("llama-3.1-8b").anatomy, ["c_attn"])


# ---- a config.json that leaves out its size is refused, never built with transformers' defaults -------------
def _full_llama() -> dict:
    return {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 192, "vocab_size": 512}


def test_a_bare_model_type_is_refused_naming_every_size_field():
    from estimators.anatomy import SIZE_FIELDS, build_config
    from estimators.errors import EstimateError

    with pytest.raises(EstimateError) as e:
        build_config({"model_type": "llama"})  # transformers' defaults would make it a 6.7B Llama-2
    assert str(e.value).startswith(f"config (llama) lacks {', '.join(SIZE_FIELDS)}:")


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                                   "vocab_size"])
def test_each_missing_size_field_is_named(field):
    from estimators.anatomy import build_config
    from estimators.errors import EstimateError

    cfg = _full_llama()
    del cfg[field]
    with pytest.raises(EstimateError, match=f"^config \\(llama\\) lacks {field}: transformers would fill it"):
        build_config(cfg)
    assert build_config(_full_llama()).hidden_size == 64


def test_size_fields_count_under_the_config_classes_own_names_and_inside_a_text_config():
    from estimators.anatomy import build_config
    from estimators.errors import EstimateError

    # GPT-2 names them n_embd, n_layer, n_head (GPT2Config.attribute_map)
    assert build_config({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 512,
                         "bos_token_id": 0, "eos_token_id": 0}).num_hidden_layers == 2
    text = {k: v for k, v in _full_llama().items() if k != "model_type"}
    del text["intermediate_size"]
    with pytest.raises(EstimateError, match="lacks text_config.intermediate_size"):
        build_config({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", **text}})
    # Google's own gemma-3-4b config.json leaves these two to Gemma3TextConfig (families.yaml config_defaults)
    text = {k: v for k, v in _full_llama().items() if k not in ("model_type", "vocab_size", "num_attention_heads")}
    cfg = build_config({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", **text}})
    assert cfg.text_config.vocab_size == 262208
