"""Model families are data: every catalog model has one, code reads its fields, a bad file is one clear error."""

from __future__ import annotations

import pytest

from estimators import families as fam_mod
from estimators.anatomy import compute_anatomy
from estimators.errors import CatalogError, EstimateError
from estimators.families import families, family, tiny_config
from estimators.setup import TrainingSetup


def test_every_catalog_model_has_a_known_family_with_a_tiny_config(catalog):
    for name in catalog.model_names:
        f = family(catalog.model(name).anatomy.model_type)
        assert f.known and f.tiny_config, name
        assert tiny_config(f.name)["model_type"] == f.name


def test_an_unknown_family_is_a_llama_style_default_marked_unverified():
    f = family("olmo2")
    assert (f.known, f.verified, f.sdpa, f.norm, f.system_role) == (False, False, True, "llama", True)
    assert f.chat_template("axolotl") == "tokenizer_default" and f.chat_template("trl") is None
    with pytest.raises(KeyError, match="no tiny config"):
        tiny_config("olmo2")


def test_an_architecture_of_an_unknown_family_is_refused_naming_the_supported_ones():
    cfg = {"model_type": "olmo2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "vocab_size": 512}
    with pytest.raises(EstimateError) as e:
        compute_anatomy(cfg)
    msg = str(e.value)
    assert "'olmo2' is not a family advise knows" in msg and "\n" not in msg
    assert all(name in msg for name in families() if families()[name].chat_of is None)
    assert "phi4" not in msg  # a chat variant (Phi-4's templates on the phi3 architecture), not a model_type


def test_a_chat_variant_keeps_its_architecture_and_brings_its_own_templates():
    from estimators.families import chat_family

    phi4 = chat_family("phi4", "phi3")
    assert phi4.name == "phi4" and phi4.chat_templates["llamafactory"] == "phi4" and phi4.end_of_turn == "<|im_end|>"
    assert chat_family("phi3", "phi3").chat_templates["llamafactory"] == "phi"
    small3 = chat_family("mistral_small3", "mistral")  # Mistral Small 3: V7-Tekken turns, not Mistral 7B's v3
    assert small3.chat_templates["axolotl"] == "mistral_v7_tekken" and small3.chat_templates["llamafactory"] == "mistral_small"
    # a variant applies only on its own architecture; any other family is the architecture's own
    assert chat_family("phi4", "llama").name == "llama" and chat_family(None, "qwen2").name == "qwen2"


def test_attention_follows_the_familys_sdpa_field():
    no_sdpa = [n for n, f in families().items() if not f.sdpa]
    # logit softcapping (gemma2), attention sinks (gpt-oss): transformers 5 runs them eager or flash only
    assert no_sdpa == ["gemma2", "gpt_oss"]
    assert TrainingSetup().resolved_attn("gemma2") == "eager" and TrainingSetup().resolved_attn("llama") == "sdpa"


def test_a_malformed_family_file_names_the_entry_and_field(tmp_path, monkeypatch):
    bad = tmp_path / "families.yaml"
    bad.write_text("families:\n  llama: {title: Llama, norm: rms}\n  qwen2: {title: Q, tiny_config: {model_type: x}}\n"
                   "  qwen9: {title: Q9, chat_of: qwen7}\n")
    monkeypatch.setattr(fam_mod, "FAMILIES_FILE", bad)
    families.cache_clear()
    try:
        with pytest.raises(CatalogError) as e:
            families()
        assert "llama.norm" in str(e.value) and "qwen2.tiny_config.model_type: must be 'qwen2'" in str(e.value)
        assert "qwen9.chat_of: 'qwen7' is not an architecture family" in str(e.value)
    finally:
        families.cache_clear()
