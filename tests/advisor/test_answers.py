"""The answers contract: defaults, every problem reported at once with its field path, catalog names."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.contract.answers import (
    Answers,
    AnswersError,
    dump_answers,
    load_answers,
    validate_answers,
)


def test_minimal_answers_fill_every_default():
    a = validate_answers({"project": "p", "symptoms": ["format"]})
    d = a.to_dict()
    assert d["tried"] == {"prompting": "not_tried", "few_shot": "not_tried", "rag": "not_tried", "tools": "not_tried",
                          "structured_output": "not_tried"}
    assert d["data"]["eval_examples"] == 0 and d["model"]["open_weights_ok"] is True
    assert d["hardware"] == {"gpus": [], "gpu_count": 1, "serving_gpus": [], "owned": False,
                             "power_watts_per_gpu": None, "usd_per_kwh": None, "max_memory_fraction": None}
    assert d["deployment"] == {"adapters": 1, "replicas_min": 1, "quantized_ok": False, "operate_gpus": True}
    assert d["data"]["examples_per_adapter"] is None
    assert d["workload"]["peak_to_average"] is None and d["workload"]["latency_p95_ms"] is None
    assert list(d) == ["project", "task", "symptoms", "tried", "data", "model", "hardware", "budget", "workload",
                       "deployment"]


def test_several_problems_are_reported_together_with_their_paths():
    raw = {"project": "p", "symptoms": ["format", "speed"], "tried": {"few_shot": "maybe"},
           "data": {"labeled_examples": -3}, "hardware": {"gpu": ["A100"]}}
    with pytest.raises(AnswersError) as e:
        validate_answers(raw, "answers.yaml")
    msg = str(e.value)
    assert msg.startswith("answers.yaml: 4 problems: ")
    assert "symptoms.1: \"speed\" is not allowed; choose one of knowledge_gap, stale_knowledge" in msg
    assert "tried.few_shot: \"maybe\" is not allowed; choose one of fixed, partly, failed or not_tried" in msg
    assert "data.labeled_examples: -3 is invalid: Input should be greater than or equal to 0" in msg
    assert ("hardware.gpu: unknown field in hardware (check the spelling; allowed: gpus, gpu_count, serving_gpus, "
            "owned, power_watts_per_gpu, usd_per_kwh, max_memory_fraction)") in msg
    assert "\n" not in msg


def test_required_fields_and_the_top_level_shape():
    with pytest.raises(AnswersError, match=r"project: required; add it; symptoms: required; add it"):
        validate_answers({})
    with pytest.raises(AnswersError, match="symptoms: give at least one of knowledge_gap"):
        validate_answers({"project": "p", "symptoms": []})
    with pytest.raises(AnswersError, match="the top level must be a mapping"):
        validate_answers(["project"])


def test_catalog_names_are_checked_with_a_did_you_mean(catalog):
    raw = {"project": "p", "symptoms": ["cost"], "model": {"current_api": "claude-haiku-3-6", "base": "llama3-8b"},
           "hardware": {"gpus": ["A100-80GB", "A100-80"]}}
    with pytest.raises(AnswersError) as e:
        validate_answers(raw, "a.yaml", catalog)
    msg = str(e.value)
    assert "model.current_api: 'claude-haiku-3-6' is not a known api model; did you mean" in msg
    assert "hardware.gpus.1: 'A100-80' is not a known gpu; did you mean" in msg
    assert "model.base: 'llama3-8b' is not a known model; did you mean 'llama-3.1-8b'?" in msg


def test_files_yaml_json_and_their_errors(tmp_path, catalog):
    good = tmp_path / "a.json"
    good.write_text('{"project": "p", "symptoms": ["style"]}')
    assert load_answers(good, catalog).symptoms == ["style"]
    with pytest.raises(AnswersError, match="missing.yaml: does not exist; pass an existing answers file"):
        load_answers(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("project: p\nsymptoms: [format\n")
    with pytest.raises(AnswersError, match=r"bad.yaml: line \d+: not valid YAML/JSON"):
        load_answers(bad)


def test_dumped_answers_load_back_identically(tmp_path):
    a = validate_answers({"project": "Ünïcode project", "symptoms": ["cost", "cost", "latency"],
                          "workload": {"requests_per_month": 10}})
    assert a.symptoms == ["cost", "latency"]
    p = tmp_path / "a.yaml"
    p.write_text(dump_answers(a))
    assert load_answers(p) == a


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**9), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["format", "cost", "fixed", "A100-80GB", "llama-3.1-8b"]))
_fields = st.sampled_from(["project", "task", "symptoms", "tried", "data", "model", "hardware", "budget", "workload",
                           "deployment", "kind", "gpus", "few_shot", "labeled_examples", "base", "current_api", "x"])
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_fields, inner, max_size=5)), max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(_values, st.dictionaries(_fields, _values, max_size=8)))
def test_fuzzed_answers_only_ever_give_clean_errors(catalog, raw):
    try:
        a = validate_answers(raw, "fuzz", catalog)
    except AnswersError as e:
        assert str(e).startswith("fuzz: ") and "\n" not in str(e)
    else:
        assert isinstance(a, Answers)


def test_the_example_answers_are_valid(catalog):
    from advisor.planner import EXAMPLES_DIR

    for p in EXAMPLES_DIR.glob("*.yaml"):
        load_answers(p, catalog)
        assert yaml.safe_load(p.read_text())["project"]


def test_schema_names_and_files_are_reported_in_one_round(tmp_path, catalog):
    """A typo in a field does not hide an unknown GPU, an unknown API or a missing data file until the next run."""
    from advisor.contract.answers import load_answers

    (tmp_path / "train.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    (tmp_path / "evals").mkdir()
    p = tmp_path / "answers.yaml"
    p.write_text("project: x\nsymptoms: [speed]\nmodel: {current_api: gpt-4.1-mni}\n"
                 "hardware: {gpus: [A100-80GB, H1OO]}\n"
                 "data: {train_file: train.jsonl, preference_file: nothere.jsonl, eval_file: evals}\n", encoding="utf-8")
    with pytest.raises(AnswersError) as e:
        load_answers(p, catalog)
    msg = str(e.value)
    assert msg.startswith(f"{p}: 5 problems: ") and "\n" not in msg
    for part in ('symptoms.0: "speed" is not allowed', "model.current_api: 'gpt-4.1-mni' is not a known api model",
                 "hardware.gpus.1: 'H1OO' is not a known gpu", "data.preference_file: nothere.jsonl does not exist",
                 "data.eval_file: evals is a folder"):
        assert part in msg, part
    assert "train_file" not in msg  # the file that exists is not a problem
    # a field the schema refuses is said once, not again by the name check
    p.write_text("project: x\nsymptoms: [format]\nhardware: {gpus: H100}\n", encoding="utf-8")
    with pytest.raises(AnswersError) as e:
        load_answers(p, catalog)
    assert str(e.value).count("hardware.gpus") == 1


def test_a_language_that_is_not_an_iso_code_is_one_line_naming_the_field():
    from advisor.contract.answers import AnswersError

    with pytest.raises(AnswersError, match=r"task\.languages\.0: .*give a two-letter ISO 639-1 code"):
        validate_answers({"project": "p", "symptoms": ["format"], "task": {"languages": ["English"]}})


def test_an_unknown_field_in_an_optional_section_lists_the_fields_it_allows():
    from advisor.contract.answers import AnswersError

    with pytest.raises(AnswersError, match=r"unknown field in model\.current_api_price \(check the spelling; "
                                           r"allowed: input_usd_per_million, output_usd_per_million\)"):
        validate_answers({"project": "p", "symptoms": ["cost"],
                          "model": {"current_api_price": {"input_usd_per_million_tokens": 3}}})
