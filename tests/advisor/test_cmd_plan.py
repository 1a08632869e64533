"""`advise plan` on the command line: example, file, questionnaire, --out, --json, one-line errors."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from advisor.cli import main


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_example_prints_a_summary_and_json_is_the_same_plan():
    r = run("plan", "--example", "ticket-triage")
    assert r.exit_code == 0, r.output
    assert "Fine-tune qwen2.5-1.5b with distillation" in r.output
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
    assert run("plan", "--answers", str(out / "answers.yaml"), "--out", str(out), "--force").exit_code == 0
    assert (out / "plan.json").read_bytes() == first  # the saved answers reproduce the plan exactly
    assert sorted(p.name for p in out.iterdir()) == ["answers.yaml", "plan.json"]


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
    # project, kind, description, symptoms, prompting, few_shot, labeled, eval, api (blank), open weights,
    # base (blank), gpus, gpu count, budget (blank), adapters -- no rag/tools/preference/corpus/workload questions
    replies = ["Docs bot", "extraction", "Pull fields from invoices", "formt", "format", "partly", "failed", "3000",
               "50", "", "yes", "", "A100-80GB", "1", "", "1"]
    r = run("plan", "--save-answers", str(saved), input="\n".join(replies) + "\n")
    assert r.exit_code == 0, r.output
    assert "not allowed" in r.output  # the typo was re-asked
    for skipped in ("retrieval (RAG)", "tools / function calling", "preference pairs", "Requests per month"):
        assert skipped not in r.output
    a = yaml.safe_load(saved.read_text())
    assert a["project"] == "Docs bot" and a["symptoms"] == ["format"] and a["hardware"]["gpus"] == ["A100-80GB"]
    assert a["tried"]["few_shot"] == "failed" and a["data"]["labeled_examples"] == 3000
    assert "Fine-tune llama-3.1-8b with supervised fine-tuning (SFT) using LoRA" in r.output


def test_questionnaire_rejects_unknown_catalog_names_and_asks_again():
    replies = ["p", "", "", "cost", "fixed", "0", "0", "gpt-4.1-mni", "gpt-4.1-mini", "no", "", "", "", "", ""]
    r = run("plan", "--json", input="\n".join(replies) + "\n")
    assert r.exit_code == 0, r.output
    assert "did you mean 'gpt-4.1-mini'" in r.output
