"""Model families are data: every catalog model has one, code reads its fields, a bad file is one clear error."""

from __future__ import annotations

import pytest

from estimators import families as fam_mod
from estimators.errors import CatalogError
from estimators.families import families, family, tiny_config
from estimators.setup import TrainingSetup


def test_every_catalog_model_has_a_known_family_with_a_tiny_config(catalog):
    for name in catalog.model_names:
        f = family(catalog.model(name).anatomy.model_type)
        assert f.known and f.tiny_config, name
        assert tiny_config(f.name)["model_type"] == f.name


def test_an_unknown_family_is_a_llama_style_default_marked_unverified():
    f = family("qwen3_moe")
    assert (f.known, f.verified, f.sdpa, f.norm, f.system_role) == (False, False, True, "llama", True)
    assert f.chat_template("axolotl") == "tokenizer_default" and f.chat_template("trl") is None
    with pytest.raises(KeyError, match="no tiny config"):
        tiny_config("qwen3_moe")


def test_attention_follows_the_familys_sdpa_field():
    no_sdpa = [n for n, f in families().items() if not f.sdpa]
    assert no_sdpa == ["gemma2"]  # logit softcapping: transformers 5 runs it eager or flash only
    assert TrainingSetup().resolved_attn("gemma2") == "eager" and TrainingSetup().resolved_attn("llama") == "sdpa"


def test_a_malformed_family_file_names_the_entry_and_field(tmp_path, monkeypatch):
    bad = tmp_path / "families.yaml"
    bad.write_text("families:\n  llama: {title: Llama, norm: rms}\n  qwen2: {title: Q, tiny_config: {model_type: x}}\n")
    monkeypatch.setattr(fam_mod, "FAMILIES_FILE", bad)
    families.cache_clear()
    try:
        with pytest.raises(CatalogError) as e:
            families()
        assert "llama.norm" in str(e.value) and "qwen2.tiny_config.model_type: must be 'qwen2'" in str(e.value)
    finally:
        families.cache_clear()
