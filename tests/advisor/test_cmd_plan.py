"""`advise plan` on the command line: example, file, questionnaire, --out, --json, one-line errors."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.cli import main


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_example_prints_a_summary_and_json_is_the_same_plan():
    r = run("plan", "--example", "ticket-triage")
    assert r.exit_code == 0, r.output
    assert "Fine-tune qwen3-1.7b with distillation" in r.output
    assert "DISTILL_FOR_COST" in r.output and "Monthly: $2,500 today" in r.output
    j = run("plan", "--example", "ticket-triage", "--json")
    plan = json.loads(j.output)
    assert plan["recommendation"]["method"] == "distillation"
    assert plan["summary"] in r.output


def test_out_writes_plan_and_answers_byte_identically_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "plan"
    assert run("plan", "--example", "ticket-triage", "--out", str(out)).exit_code == 0
    first = (out / "plan.json").read_bytes()
    answers = yaml.safe_load((out / "answers.yaml").read_text())
    assert answers["workload"]["requests_per_month"] == 5_000_000
    r = run("plan", "--example", "ticket-triage", "--out", str(out))
    assert r.exit_code == 2 and "--out" in r.output and "--force" in r.output
    report, configs = (out / "report.html").read_bytes(), sorted((out / "configs").rglob("*"))
    # the folder's own answers are an input here: never replaced by the run that reads them
    r = run("plan", "--answers", str(out / "answers.yaml"), "--out", str(out), "--force")
    assert r.exit_code == 2 and "is the input" in r.output and len(r.output.strip().splitlines()) == 1
    saved = tmp_path / "answers.yaml"
    saved.write_bytes((out / "answers.yaml").read_bytes())
    (out / "configs" / "data").mkdir(exist_ok=True)
    (out / "configs" / "data" / "train.jsonl").write_text('{"messages": []}\n')  # the user's data, where the README says
    assert run("plan", "--answers", str(saved), "--out", str(out), "--force").exit_code == 0
    assert (out / "plan.json").read_bytes() == first  # the saved answers reproduce the plan exactly
    assert (out / "report.html").read_bytes() == report
    assert sorted(p.name for p in out.iterdir()) == [".advise-manifest.json", "answers.yaml", "configs", "plan.json",
                                                     "report.html"]
    assert (out / "configs" / "data" / "train.jsonl").read_text() == '{"messages": []}\n'  # kept
    assert sorted(p for p in (out / "configs").rglob("*") if p.name != "train.jsonl") == configs
    assert (out / "configs" / "README.md").is_file() and (out / "configs" / "trl").is_dir()
    assert "configs/trl/" in report.decode()  # the report shows the configs it was written with


def test_bad_answers_file_is_one_line_with_every_problem(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("project: x\nsymptoms: [speed]\ntried: {few_shot: maybe}\n")
    r = run("plan", "--answers", str(p))
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and line.startswith("Error: ") and "2 problems" in line
    assert "Traceback" not in r.output


def test_usage_errors_exit_2():
    assert run("plan", "--example", "nope").exit_code == 2
    r = run("plan", "--example", "ticket-triage", "--answers", "x.yaml")
    assert r.exit_code == 2 and "not both" in r.output


def test_questionnaire_asks_only_what_matters_and_saves_the_answers(tmp_path):
    saved = tmp_path / "answers.yaml"
    # project, kind, description, symptoms, prompting, few_shot, structured outputs, labeled, eval, api (blank), open weights,
    # base (blank), gpus, gpu count, owned (no), budget (blank), adapters -- no rag/tools/preference/corpus/workload
    # questions
    replies = ["Docs bot", "extraction", "Pull fields from invoices", "formt", "format", "partly", "failed", "failed",
               "3000", "", "50", "", "", "yes", "", "", "A100-80GB", "1", "no", "", "1", ""]
    r = run("plan", "--save-answers", str(saved), input="\n".join(replies) + "\n")
    assert r.exit_code == 0, r.output
    assert "not allowed" in r.output  # the typo was re-asked
    for skipped in ("retrieval (RAG)", "tools / function calling", "preference pairs", "Requests per month"):
        assert skipped not in r.output
    a = yaml.safe_load(saved.read_text())
    assert a["project"] == "Docs bot" and a["symptoms"] == ["format"] and a["hardware"]["gpus"] == ["A100-80GB"]
    assert a["tried"]["few_shot"] == "failed" and a["data"]["labeled_examples"] == 3000
    assert "Fine-tune qwen3-8b with supervised fine-tuning (SFT) using LoRA" in r.output


def test_questionnaire_rejects_unknown_catalog_names_and_asks_again():
    replies = ["p", "", "", "cost", "fixed", "0", "0", "gpt-4.1-mni", "gpt-4.1-mini", "no", "", "", "", "", ""]
    r = run("plan", "--json", input="\n".join(replies) + "\n")
    assert r.exit_code == 0, r.output
    assert "did you mean 'gpt-4.1-mini'" in r.output


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**8), st.floats(allow_nan=False, allow_infinity=False),
                  st.text(max_size=10), st.sampled_from(["format", "cost", "preference", "failed", "fixed", "L4",
                                                         "qwen2.5-0.5b", "gpt-4.1-mini", "classification"]))
_key = st.sampled_from(["project", "task", "kind", "symptoms", "tried", "few_shot", "prompting", "data",
                        "labeled_examples", "preference_pairs", "binary_feedback", "model", "open_weights_ok", "base",
                        "hardware", "gpus", "gpu_count", "workload", "requests_per_month", "deployment", "adapters"])
_doc = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(_key, inner, max_size=6)), max_leaves=15)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(_doc, st.fixed_dictionaries({"project": st.just("p"), "symptoms": st.lists(
    st.sampled_from(["format", "cost", "preference", "knowledge_gap", "domain_language"]), min_size=1)},
    optional={"tried": st.dictionaries(st.sampled_from(["few_shot", "prompting", "tools"]),
                                       st.sampled_from(["failed", "fixed", "partly", "bogus"])),
              "data": st.dictionaries(st.sampled_from(["labeled_examples", "preference_pairs", "binary_feedback",
                                                       "domain_corpus_tokens"]), st.integers(-1, 10**9)),
              "model": st.fixed_dictionaries({}, optional={"base": st.sampled_from(["qwen2.5-0.5b", "llama-3.1-70b"]),
                                                           "open_weights_ok": st.booleans()}),
              "hardware": st.fixed_dictionaries({}, optional={"gpus": st.lists(st.sampled_from(["L4", "H100-80GB"]),
                                                                               max_size=2),
                                                              "gpu_count": st.integers(0, 9)})})))
def test_fuzzed_answer_files_plan_or_fail_cleanly(tmp_path, doc):
    p = tmp_path / "fuzz.yaml"
    p.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(main, ["plan", "--answers", str(p), "--json"])
    assert r.exit_code in (0, 2), r.output
    if r.exit_code == 2:
        assert r.output.startswith("Error: ") and r.output.count("\n") == 1
    else:
        assert json.loads(r.output)["rules"]


def test_profile_option_marks_measured_numbers_and_rejects_a_bad_file(tmp_path, catalog):
    from advisor.contract.answers import load_answers
    from advisor.planner import build_plan, example_path
    from profiler.schema import profile_json
    from tests.helpers import profile_of_plan

    plan = build_plan(load_answers(example_path("ticket-triage"), catalog), catalog)
    p = tmp_path / "profile.json"
    p.write_text(profile_json(profile_of_plan(plan, [(16, True, 25 << 30, 15_000.0)])))
    r = run("plan", "--example", "ticket-triage", "--profile", str(p), "--json")
    assert r.exit_code == 0, r.output
    t = json.loads(r.output)["estimates"]["training"]
    assert t["measured"] == ["memory", "tokens_per_s"] and t["memory_bytes"] == 25 << 30
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1}')
    r = run("plan", "--example", "ticket-triage", "--profile", str(bad))
    assert r.exit_code == 2 and r.output.startswith("Error: ") and r.output.count("\n") == 1


def test_a_stage_priced_on_assumed_examples_says_so_on_the_terminal(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("project: x\nsymptoms: [format]\ntried: {prompting: partly, few_shot: failed, structured_output: partly}\n"
                 "model: {base: qwen2.5-0.5b}\nhardware: {gpus: [L4]}\n", encoding="utf-8")
    r = run("plan", "--answers", str(p))
    assert r.exit_code == 0, r.output
    assert "sft: 1,000 examples (assumed: the answers give no count" in r.output
    p.write_text(p.read_text().replace("model:", "data: {labeled_examples: 3000}\nmodel:"), encoding="utf-8")
    assert "assumed" not in run("plan", "--answers", str(p)).output.split("Fit per GPU")[0].split("Training on")[1]


def test_data_check_errors_block_the_start_on_the_terminal_the_report_and_the_configs(tmp_path):
    """Invalid lines and too few examples in the train file: the plan's first steps say fix the data, and the
    terminal, the report's first screen and the configs README list the errors with the field they are in."""
    lines = [json.dumps({"messages": [{"role": "user", "content": f"ticket {i}"},
                                      {"role": "assistant", "content": "billing"}]}) for i in range(40)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:20] + ["{not json"] + lines[20:]) + "\n")
    answers = tmp_path / "answers.yaml"
    answers.write_text("project: dc\nsymptoms: [format]\n"
                       "tried: {prompting: partly, few_shot: failed, structured_output: partly}\n"
                       "data: {labeled_examples: 8000, train_file: train.jsonl}\n"
                       "model: {base: qwen2.5-1.5b}\nhardware: {gpus: [L4]}\n")
    r = run("plan", "--answers", str(answers), "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert "Fix the data files" in r.output
    assert "data.labeled_examples: 40 counted in train.jsonl (declared: 8,000)" in r.output
    assert "ERROR data.train_file: 1 of 41 lines is invalid (first at line 21)" in r.output
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert "fix_data" in plan["prerequisites"]
    assert "DATA_CHECK_ERRORS" in [w["id"] for w in plan["warnings"]]
    first_screen = (tmp_path / "out" / "report.html").read_text().split('<nav class="toc"')[0]
    assert "Fix the data files" in first_screen and "1 of 41 lines is invalid" in first_screen
    readme = (tmp_path / "out" / "configs" / "README.md").read_text()
    assert readme.index("## Before the first run") < readme.index("## 1. Install")
    assert "ERROR data.train_file: 1 of 41 lines is invalid" in readme
    assert "too few to fine-tune" in readme  # 40 examples: the second ERROR verdict
