"""`advise report` on the command line: writes the page, --cdn, --profile, one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import main
from tests.helpers import assert_imports_none_of, cli_code, h100_profile
from tests.reports.test_report import build_plans


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="session")
def plans(tmp_path_factory):
    return build_plans(tmp_path_factory)


@pytest.fixture()
def plan_file(plans, tmp_path) -> Path:
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(plans["ticket-triage"], indent=2), encoding="utf-8")
    return p


def test_writes_one_self_contained_page_byte_identically(plan_file, tmp_path):
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    r = run("report", str(plan_file), "-o", str(a))
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"Wrote {a} (4.") and "MB" in r.output
    assert run("report", str(plan_file), "--out", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="chart-memory"' in text and "cdn.plot.ly/plotly-" not in text
    assert not list(tmp_path.glob(".*.tmp"))


def test_cdn_is_small(plan_file, tmp_path):
    out = tmp_path / "r.html"
    r = run("report", str(plan_file), "-o", str(out), "--cdn")
    assert r.exit_code == 0 and "plotly.js from the CDN" in r.output
    assert out.stat().st_size < 150_000 and "https://cdn.plot.ly/plotly-" in out.read_text(encoding="utf-8")


def test_profile_adds_the_measured_section(plans, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plans["brand-voice"]), encoding="utf-8")
    prof = tmp_path / "profile.json"
    prof.write_text(h100_profile().model_dump_json(), encoding="utf-8")
    out = tmp_path / "r.html"
    r = run("report", str(plan), "--profile", str(prof), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert 'id="chart-profile"' in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("content, message", [
    (None, "Error: plan {p}: does not exist; make one with `advise plan --json > plan.json`"),
    ("{", "Error: plan {p}: line 1: not valid JSON"),
    ('{"project": "x"}', "Error: plan {p}: advise_version: Field required"),
    ("[1]", "Error: plan {p}: must be a JSON object"),
    ('{"summary": "s", "recommendation": {}, "rules": [], "estimates": "x"}', "Error: plan {p}: advise_version: Field required"),
])
def test_bad_plan_is_one_line_exit_2(tmp_path, content, message):
    p = tmp_path / "plan.json"
    if content is not None:
        p.write_text(content, encoding="utf-8")
    r = run("report", str(p), "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 2
    assert r.output.startswith(message.format(p=p)) and r.output.count("\n") == 1, r.output
    assert not (tmp_path / "r.html").exists()


def test_bad_profile_or_output_folder_is_one_line_exit_2(plan_file, tmp_path):
    r = run("report", str(plan_file), "--profile", str(tmp_path / "none.json"), "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 2 and r.output.startswith("Error: profile ") and r.output.count("\n") == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "entries": []}', encoding="utf-8")
    r = run("report", str(plan_file), "--profile", str(bad), "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 2 and r.output.startswith(f"Error: profile {bad}:") and r.output.count("\n") == 1
    r = run("report", str(plan_file), "-o", str(tmp_path / "no" / "r.html"))
    assert r.exit_code == 2 and "folder" in r.output and "does not exist" in r.output
    assert run("report", str(plan_file)).exit_code == 2  # -o is required


def test_help_lists_report_without_importing_plotly():
    r = run("--help")
    assert r.exit_code == 0 and "report" in r.output
    assert_imports_none_of(cli_code(["--help"]), ("plotly", "jinja2", "torch", "reports"))
