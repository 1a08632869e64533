"""Catalog lookups, user overrides and their validation errors."""

from __future__ import annotations

import json
import textwrap

import pytest

from advisor.contract.errors import AdviseError, UnknownNameError
from estimators.catalog import Catalog
from estimators.errors import CatalogError

REQUIRED_MODELS = [
    "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b", "qwen2.5-0.5b", "qwen2.5-1.5b",
    "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b", "mistral-7b-v0.3",
    "gemma-2-2b", "gemma-2-9b", "gemma-2-27b", "phi-3.5-mini",
]
REQUIRED_GPUS = ["H100-80GB", "H100-PCIe", "H200", "A100-80GB", "A100-40GB", "L40S", "A10G", "L4", "RTX-4090",
                 "RTX-3090"]


def test_required_models_and_gpus_are_there(catalog):
    assert set(REQUIRED_MODELS) <= set(catalog.model_names)
    assert set(REQUIRED_GPUS) <= {g.name for g in catalog.gpus}
    for name in ("claude-haiku-4.5", "gpt-4o-mini", "gpt-4.1-mini"):
        assert catalog.api(name).usd_per_million_output_tokens > 0


def test_every_price_row_has_a_source_and_a_date(catalog):
    import datetime

    for g in catalog.gpus:
        assert g.spec_source and g.prices, g.name
        for p in g.prices:
            assert p.source and p.usd_per_hour > 0
            datetime.date.fromisoformat(p.date)
    rows = (*catalog.apis, *catalog.finetuning, *catalog.open_inference)
    assert catalog.apis and catalog.finetuning and catalog.open_inference
    for r in rows:
        assert r.source, r.name
        datetime.date.fromisoformat(r.date)


def test_an_undated_price_row_is_refused_naming_the_field(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("apis:\n  - name: my-api\n    provider: me\n    usd_per_million_input_tokens: 1\n"
                 "    usd_per_million_output_tokens: 2\n    source: my invoice\n    date: null\n")
    with pytest.raises(CatalogError, match=r"apis\[\d+\] 'my-api': date: "):
        Catalog.load([f])
    f.write_text(f.read_text().replace("date: null", "date: 2026-11-30"))
    assert Catalog.load([f]).api("my-api").date == "2026-11-30"


@pytest.mark.parametrize("query", ["llama-3.1-8b", "LLAMA-3.1-8B", "meta-llama/Llama-3.1-8B", " Llama-3.1-8b "])
def test_model_lookup_is_case_insensitive_and_takes_hub_ids(catalog, query):
    assert catalog.resolve_model(query).name == "llama-3.1-8b"


def test_unknown_model_suggests_the_closest_name(catalog):
    with pytest.raises(UnknownNameError, match=r"'llama3-8b' is not a known model; did you mean 'llama-3.1-8b'\?"):
        catalog.model("llama3-8b")


@pytest.mark.parametrize("alias,name", [("h100", "H100-80GB"), ("H100-SXM5", "H100-80GB"), ("rtx4090", "RTX-4090"),
                                        ("a100", "A100-80GB"), ("a100-40gb", "A100-40GB"), ("l40s", "L40S")])
def test_gpu_aliases(catalog, alias, name):
    assert catalog.gpu(alias).name == name


def test_unknown_gpu_is_a_one_line_error(catalog):
    with pytest.raises(UnknownNameError) as e:
        catalog.gpu("h100-sxm4")
    assert "\n" not in str(e.value) and "did you mean" in str(e.value)


def test_usable_memory_is_below_the_nvidia_smi_total(catalog):
    for g in catalog.gpus:
        assert 0 < g.usable_memory_bytes < g.memory_bytes, g.name


def test_user_file_adds_a_price_overrides_a_spec_and_adds_a_gpu(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(textwrap.dedent("""
        gpus:
          - name: h100                      # an alias names the existing entry
            prices:
              - {provider: mycloud, usd_per_hour: 1.50, offer: reserved, source: our contract, date: 2026-11-01}
          - name: L4
            bf16_dense_tflops: 100
          - name: MI300X
            memory_gb: 192
            bf16_dense_tflops: 1307
            memory_bandwidth_tb_s: 5.3
            spec_source: AMD datasheet
        """))
    base = Catalog.load()
    cat = Catalog.load([f])
    h100 = cat.gpu("H100-80GB")
    assert h100.cheapest_price.provider == "mycloud"
    assert len(h100.prices) == len(base.gpu("H100-80GB").prices) + 1
    assert h100.bf16_dense_tflops == base.gpu("H100-80GB").bf16_dense_tflops
    assert cat.gpu("l4").bf16_dense_tflops == 100
    assert cat.gpu("mi300x").memory_bytes == 192_000_000_000
    assert base.gpu("L4").bf16_dense_tflops != 100  # the built-in catalog is untouched


def test_user_file_errors_are_reported_together_with_file_entry_and_field(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(textwrap.dedent("""
        gpus:
          - name: X1
            bf16_dense_tflops: -3
            memory_bandwidth_tb_s: 1
            spec_source: me
            memory_gb: 10
          - name: X2
            bf16_dense_tflops: 10
            memory_bandwidth_tb_s: 1
            spec_source: me
            memory_gb: 10
            usd_per_hr: 3
        """))
    with pytest.raises(CatalogError) as e:
        Catalog.load([f])
    msg = str(e.value)
    assert "bad.yaml: gpus[" in msg and "'X1': bf16_dense_tflops" in msg
    assert "'X2': usd_per_hr: unknown field" in msg
    assert "\n" not in msg


def test_user_file_that_is_not_yaml_names_the_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("gpus:\n  - name: [unclosed\n")
    with pytest.raises(CatalogError, match=r"broken.yaml: line \d+: not valid YAML"):
        Catalog.load([f])


def test_local_config_json_is_counted_on_the_meta_device(tmp_path, catalog):
    cfg = dict(catalog.model("qwen2.5-0.5b").config)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = catalog.resolve_model(str(tmp_path))
    assert spec.anatomy.params_total == 494_032_768
    by_file = catalog.resolve_model(str(tmp_path / "config.json"))
    assert by_file.anatomy == spec.anatomy
    # the trainers load the folder: a config.json path names its folder, absolute (the configs run elsewhere)
    assert by_file.name == spec.name == str(tmp_path.resolve())


def test_a_local_base_is_exported_as_its_folder(tmp_path, catalog):
    from advisor.contract.answers import validate_answers
    from advisor.planner import build_plan
    from reports.export import render_all

    (tmp_path / "config.json").write_text(json.dumps(dict(catalog.model("qwen2.5-0.5b").config)))
    plan = build_plan(validate_answers({"project": "p", "symptoms": ["format"], "data": {"labeled_examples": 2000},
                                        "tried": {"prompting": "partly", "few_shot": "failed",
                                                  "structured_output": "partly"},
                                        "model": {"base": str(tmp_path / "config.json")},
                                        "hardware": {"gpus": ["L4"]}}, "a", catalog), catalog)
    files = render_all(plan, ["axolotl", "trl"])
    assert f"base_model: {tmp_path.resolve()}\n" in files["axolotl/sft.yml"]
    assert f"model_name_or_path: {tmp_path.resolve()}\n" in files["trl/sft.yaml"]


def test_local_path_without_config_is_a_clear_error(tmp_path, catalog):
    with pytest.raises(AdviseError, match="no config.json there"):
        catalog.resolve_model(str(tmp_path))


def test_offline_hub_id_outside_the_catalog_says_to_pass_a_local_config(catalog):
    # conftest sets HF_HUB_OFFLINE=1
    with pytest.raises(AdviseError, match="pass a local config.json or model directory"):
        catalog.resolve_model("someorg/some-model")
