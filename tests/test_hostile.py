"""Hostile and unlucky input, across every command: the answer is exit 0, or one ``Error:`` line with exit 2 (data
check: 1 for data that is not ready); no file outside the output folder is touched, no user file is removed or
replaced, and what is written parses and carries nothing the user injected.

Property tests (hypothesis) cover answers, plans, catalogs, config.json and CLI flags; the rest are the probes a
hostile-input review ran (data loss, injection, unbounded work), each written as the user would meet it.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import shlex
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.cli import main
from advisor.contract import files as F
from advisor.contract.errors import AdviseError
from advisor.contract.plan import Plan
from reports.export import render_all
from tests.helpers import ROOT

GOLDEN = ROOT / "tests" / "golden"
EXAMPLE = ROOT / "advisor" / "examples" / "ticket-triage.yaml"
#: what a hostile value may hold: shell, YAML, Markdown, HTML and Python breakouts, controls and bidi overrides
NASTY = ["$(touch /tmp/pwned)", "`id`", "a\nimport os", "x\n# trust_remote_code: true", "<img src=x onerror=alert(1)>",
         "## heading", "-->", "'; rm -rf ~; '", '"); import os; ("', "\x1b[31mred", "\u202eevil", "a|b", "[x](javascript:1)",
         "trust_remote_code: true", "\r\x00", "x" * 5000]

settings.register_profile("hostile", deadline=None, max_examples=25, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def assert_clean(r, codes=(0, 2)) -> None:
    """Exit 0 (or an allowed code), or exactly one ``Error:`` line with exit 2; never a traceback."""
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code in codes, r.output[-2000:]
    if r.exit_code == 2:
        errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, r.output[-2000:]
        assert len(errors[0]) < 2000, errors[0][:300]
    assert "Traceback" not in r.output


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def golden_plan() -> dict:
    return json.loads((GOLDEN / "ticket-triage" / "plan.json").read_text())


def keys_of(text: str) -> set[str]:
    def walk(v, out):
        if isinstance(v, dict):
            for k, x in v.items():
                out.add(str(k))
                walk(x, out)
        elif isinstance(v, list):
            for x in v:
                walk(x, out)
        return out
    return walk(yaml.safe_load(text), set())


# ---- data loss ----------------------------------------------------------------------------------------------
def test_force_keeps_the_users_files_and_replaces_only_what_advise_wrote(tmp_path):
    out = tmp_path / "out"
    assert run("plan", "--example", "ticket-triage", "--out", str(out)).exit_code == 0
    (out / "configs" / "data").mkdir(exist_ok=True)
    (out / "configs" / "data" / "train.jsonl").write_text("mine\n")
    (out / "configs" / "mine").mkdir()
    (out / "configs" / "mine" / "ds.json").write_text("{}")
    assert run("plan", "--example", "ticket-triage", "--out", str(out), "--force").exit_code == 0
    assert (out / "configs" / "data" / "train.jsonl").read_text() == "mine\n"
    assert (out / "configs" / "mine" / "ds.json").read_text() == "{}"


def test_force_refuses_a_generated_file_the_user_edited_and_changes_nothing(tmp_path):
    out = tmp_path / "out"
    assert run("plan", "--example", "ticket-triage", "--out", str(out)).exit_code == 0
    edited = out / "configs" / "README.md"
    edited.write_text(edited.read_text() + "\nmy notes\n")
    before = snapshot(out)
    r = run("plan", "--example", "brand-voice", "--out", str(out), "--force")
    assert_clean(r)
    assert r.exit_code == 2 and "was changed since advise wrote it" in r.output
    assert snapshot(out) == before


def test_out_dot_never_overwrites_the_input_answers_nor_a_users_file(tmp_path, monkeypatch):
    answers = tmp_path / "answers.yaml"
    answers.write_text(EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    r = run("plan", "--answers", "answers.yaml", "--out", ".", "--force")
    assert_clean(r)
    assert r.exit_code == 2 and "answers.yaml" in r.output
    assert answers.read_text() == EXAMPLE.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.yaml"]


def test_report_never_replaces_its_plan_a_device_or_a_users_file(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text((GOLDEN / "ticket-triage" / "plan.json").read_text())
    text = plan.read_text()
    for target, message in ((plan, "is the input"),):
        r = run("report", str(plan), "-o", str(target))
        assert_clean(r)
        assert r.exit_code == 2 and message in r.output and plan.read_text() == text
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = run("report", str(plan), "-o", str(fifo))
    assert r.exit_code == 2 and "not a regular file" in r.output and fifo.is_fifo()
    mine = tmp_path / "notes.html"
    mine.write_text("<p>mine</p>")
    r = run("report", str(plan), "-o", str(mine))
    assert r.exit_code == 2 and "not written by advise" in r.output and mine.read_text() == "<p>mine</p>"
    ours = tmp_path / "report.html"
    assert run("report", str(plan), "-o", str(ours)).exit_code == 0
    assert run("report", str(plan), "-o", str(ours)).exit_code == 0  # its own report: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.html", "pipe", "plan.json", "report.html"]


def test_writes_do_not_follow_links_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "configs").symlink_to(outside, target_is_directory=True)
    r = run("plan", "--example", "ticket-triage", "--out", str(out), "--force")
    assert_clean(r)
    assert r.exit_code == 2 and "symbolic link" in r.output
    assert list(outside.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["configs"]
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "a.yaml"
    link.symlink_to(victim)
    r = run("plan", "--example", "ticket-triage", "--save-answers", str(link))
    assert r.exit_code == 2 and "symbolic link" in r.output and victim.read_text() == "keep"


def test_a_preplanted_temp_name_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = tmp_path / "plan.json"
    for name in (f".{target.name}.tmp", f".{target.name}.x.tmp"):
        (tmp_path / name).symlink_to(victim)
    F.write_file(target, "{}\n")
    assert victim.read_text() == "keep" and target.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == ["plan.json", "victim"]


def test_save_answers_into_a_missing_folder_is_refused_before_the_first_question(tmp_path):
    r = run("plan", "--save-answers", str(tmp_path / "nodir" / "a.yaml"), input="")
    assert_clean(r)
    assert r.exit_code == 2 and "does not exist" in r.output and "Project name" not in r.output


@pytest.mark.parametrize("where", ["file/below", "/proc/advise-out", "/sys/advise-out"])
def test_unwritable_out_is_one_line(tmp_path, where):
    (tmp_path / "file").write_text("x")
    out = where if where.startswith("/") else str(tmp_path / where)
    r = run("plan", "--example", "ticket-triage", "--out", out)
    assert_clean(r)
    assert r.exit_code == 2


def test_a_full_disk_leaves_no_temp_file_and_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text('<meta name="generator" content="advise 0.1.0">old')
    real_write = os.write

    def full(fd, data):
        if os.fstat(fd).st_size > 10:  # the first bytes land, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data[:16])

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(F.OutputError, match=r"cannot write \(no space left on the device\); nothing was changed") as e:
        F.write_file(target, "x" * 100_000, "-o", may_replace=F.file_starts_with(F.REPORT_MARK))
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert target.read_text().endswith("old")


def test_two_profile_runs_on_one_file_cannot_interleave(tmp_path):
    out = tmp_path / "profile.json"
    with F.FileLock(out, "--out"):
        with pytest.raises(F.OutputError, match="another advise run is writing it"):
            with F.FileLock(out, "--out"):
                pass
    with F.FileLock(out, "--out"):  # released: the next run may start
        pass


# ---- injection ----------------------------------------------------------------------------------------------
@settings(settings.get_profile("hostile"))
@given(field=st.sampled_from(["advise_version", "project", "summary", "base_model", "hub_id", "gpu", "provider",
                              "next_step"]),
       value=st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=40)))
def test_a_crafted_plan_is_refused_or_exported_inert(field, value):
    plan = golden_plan()
    clean = render_all(Plan.model_validate(copy.deepcopy(plan)))
    if field in ("advise_version", "project", "summary"):
        plan[field] = value
    elif field == "base_model":
        plan["recommendation"]["base_model"] = value
    elif field == "hub_id":
        plan["estimates"]["base_model"]["hub_id"] = value
    elif field == "gpu":
        plan["estimates"]["training"]["gpu"] = value
    elif field == "provider":
        plan["estimates"]["training"]["provider"] = value
    else:
        plan["next_steps"][0]["what"] = value
    try:
        files = render_all(plan)
    except AdviseError as e:
        assert "\n" not in str(e)
        return
    for rel, text in files.items():
        if rel.endswith((".yaml", ".yml")):
            assert keys_of(text) == keys_of(clean[rel]), rel  # nothing injected becomes a key
        if rel.endswith(".py"):
            compile(text, rel, "exec")  # still Python, and the same statements
            assert text.count("\n") == clean[rel].count("\n")
        if rel.endswith(".md"):
            text = re.sub(r"(`+)(.+?)\1", "", text)  # code spans show their text literally: HTML there is inert
            if text.startswith("<!--"):  # the header comment: closed once, where advise closes it
                assert text.count("-->") == 1
                text = text[text.index("-->") + 3:]
            assert "<img" not in text and "\x1b" not in text and "\u202e" not in text
            assert text.count("\n## ") == clean[rel].count("\n## ")  # no heading injected
            for line in text.splitlines():
                if "vllm serve" in line:
                    command = line.split("`")[1] if line.count("`") >= 2 else line
                    argv = shlex.split(command.replace("\\|", "|"))
                    assert argv[:2] == ["vllm", "serve"] and not any("$(" in a and a == "$(touch" for a in argv)


def test_terminal_output_escapes_controls_and_bidi(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["task"]["description"] = "desc \x1b[2J\u202e"
    p = tmp_path / "a.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True))
    r = run("plan", "--answers", str(p))
    assert_clean(r)
    assert "\x1b" not in r.output and "\u202e" not in r.output


# ---- bounded input ------------------------------------------------------------------------------------------
def _timed(*args: str, input: str | None = None):
    t0 = time.perf_counter()
    r = run(*args, input=input)
    return r, time.perf_counter() - t0


@pytest.mark.parametrize("text,message", [
    ("a: &a [" + ",".join(["x"] * 9) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
     + "project: p\nsymptoms: [cost]\n", "aliases"),
    ("[" * 100_000, "nested deeper"),
    ("project: p\nproject: q\nsymptoms: [cost]\n", "duplicate key \"project\""),
    ("project: p\nsymptoms: [cost]\nbudget: {training_usd: .nan}\n", "not a finite number"),
    ("project: p\nsymptoms: [cost]\ndata: {labeled_examples: true}\n", "data.labeled_examples"),
    ("project: p\nsymptoms: [cost]\ndeployment: {adapters: many}\n", "deployment.adapters"),
    ("\x00\x01binary", "binary"),
])
def test_hostile_answers_are_one_line_fast(tmp_path, text, message):
    p = tmp_path / "a.yaml"
    p.write_bytes(text.encode("utf-8"))
    r, seconds = _timed("plan", "--answers", str(p))
    assert_clean(r)
    assert r.exit_code == 2 and message in r.output, r.output
    assert seconds < 20  # bounded work: the billion laughs is measured, never expanded


def test_answers_from_a_device_or_a_huge_file_are_refused(tmp_path):
    r = run("plan", "--answers", "/dev/zero")
    assert_clean(r)
    assert r.exit_code == 2 and "device" in r.output
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (F.MAX_ANSWERS_BYTES + 1))
    r = run("plan", "--answers", str(big))
    assert r.exit_code == 2 and "larger than" in r.output


@pytest.mark.parametrize("config,message", [
    ({"model_type": "llama", "num_hidden_layers": 10**6}, "num_hidden_layers is 1000000"),
    ({"model_type": "llama", "hidden_size": "4096"}, "hidden_size is '4096'"),
    ({"model_type": "llama", "hidden_size": 4096.5}, "whole number"),
    ({"model_type": "llama", "vocab_size": 0}, "vocab_size is 0"),
    ({"model_type": "llama", "num_attention_heads": -8}, "num_attention_heads is -8"),
    ({"model_type": "llama", "num_hidden_layers": True}, "whole number"),
    ({"model_type": "not-a-model-" + "x" * 5000}, "does not know model_type"),
    ({"model_type": 7}, "model_type is 7"),
])
def test_hostile_config_json_is_one_line_fast(tmp_path, config, message):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(config))
    r, seconds = _timed("estimate", "--model", str(p), "--gpu", "L4")
    assert_clean(r)
    assert r.exit_code == 2 and message in r.output, r.output
    assert seconds < 30


@pytest.mark.parametrize("entry,message", [
    ({"gpus": [{"name": 123, "bf16_dense_tflops": 1, "memory_bandwidth_tb_s": 1, "memory_gb": 8, "spec_source": "x"}]},
     "name"),
    ({"gpus": [{"name": "g", "bf16_dense_tflops": float("nan"), "memory_bandwidth_tb_s": 1, "memory_gb": 8,
                "spec_source": "x"}]}, "finite"),
    ({"gpus": [{"name": "g", "bf16_dense_tflops": 1, "memory_bandwidth_tb_s": 1, "memory_gb": 0, "spec_source": "x"}]},
     "memory_gb"),
    ({"apis": [{"name": "$(id)", "provider": "p", "usd_per_million_input_tokens": 1,
                "usd_per_million_output_tokens": 1, "source": "s", "date": None}]}, "name"),
])
def test_hostile_catalog_is_one_line(tmp_path, entry, message):
    p = tmp_path / "cat.yaml"
    p.write_text(yaml.safe_dump(entry) if "nan" not in json.dumps(entry, allow_nan=True) else
                 yaml.safe_dump(entry).replace("nan", ".nan"))
    r = run("--catalog", str(p), "gpus")
    assert_clean(r)
    assert r.exit_code == 2 and message in r.output, r.output


def test_a_binary_catalog_is_one_line(tmp_path):
    p = tmp_path / "cat.yaml"
    p.write_bytes(bytes(range(256)) * 4)
    r = run("--catalog", str(p), "gpus")
    assert_clean(r)
    assert r.exit_code == 2


@pytest.mark.parametrize("flag", ["nan", "inf", "-inf", "1e400"])
def test_cli_numbers_are_finite(flag):
    r = run("estimate", "--model", "qwen2.5-0.5b", "--gpu", "L4", "--requests-per-month", flag)
    assert_clean(r)
    assert r.exit_code == 2 and "--requests-per-month" in r.output


# ---- properties ---------------------------------------------------------------------------------------------
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.sampled_from(NASTY), st.text(max_size=20))
_answers = st.fixed_dictionaries({
    "project": _scalar,
    "symptoms": st.one_of(_scalar, st.lists(st.sampled_from(["cost", "format", "latency", "x"]), max_size=3)),
}, optional={
    "task": st.dictionaries(st.sampled_from(["kind", "description", "x"]), _scalar, max_size=2),
    "data": st.dictionaries(st.sampled_from(["labeled_examples", "eval_examples", "train_file"]), _scalar, max_size=3),
    "model": st.dictionaries(st.sampled_from(["base", "current_api", "open_weights_ok"]), _scalar, max_size=2),
    "hardware": st.dictionaries(st.sampled_from(["gpus", "gpu_count"]), _scalar, max_size=2),
    "workload": st.dictionaries(st.sampled_from(["requests_per_month", "current_monthly_cost_usd"]), _scalar,
                                max_size=2),
    "deployment": st.dictionaries(st.just("adapters"), _scalar, max_size=1),
})


@settings(settings.get_profile("hostile"))
@given(answers=_answers)
def test_any_answers_give_a_plan_or_one_line_and_write_only_inside_out(tmp_path_factory, answers):
    root = tmp_path_factory.mktemp("h")
    p = root / "a.yaml"
    p.write_text(yaml.safe_dump(answers, allow_unicode=True))
    r = run("plan", "--answers", str(p), "--out", str(root / "out"))
    assert_clean(r)
    assert p.read_text() == yaml.safe_dump(answers, allow_unicode=True)
    assert {q.name for q in root.iterdir()} <= {"a.yaml", "out"}
    if r.exit_code == 0:
        written = root / "out"
        assert Plan.model_validate(json.loads((written / "plan.json").read_text()))
        for f in written.rglob("*.y*ml"):
            yaml.safe_load(f.read_text())


@settings(settings.get_profile("hostile"))
@given(args=st.lists(st.one_of(st.sampled_from(["--seq-len", "--batch-size", "--gpus", "--lora-r", "--tokens",
                                                "--epochs", "--technique", "--json"]),
                               st.sampled_from(["0", "-1", "nan", "1e9", "x", "", "99999999999"] + NASTY[:4])),
                     max_size=4))
def test_any_estimate_flags_give_an_answer_or_one_line(args):
    r = run("estimate", "--model", "qwen2.5-0.5b", "--gpu", "L4", *args)
    assert_clean(r)


def test_a_symlink_loop_and_an_unreadable_proc_file_are_one_line(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    r = run("plan", "--answers", str(loop))
    assert_clean(r)
    assert r.exit_code == 2 and "symlink loop" in r.output
    r = run("plan", "--answers", "/proc/self/mem")
    assert_clean(r)
    assert r.exit_code == 2 and "/proc/self/mem" in r.output


def test_a_profile_that_matches_nothing_is_said(tmp_path):
    from tests.helpers import profile_of_plan

    plan = Plan.model_validate(golden_plan())
    profile = profile_of_plan(plan, [(1, True, 10 << 30, 1000.0)])
    profile.model.name, profile.model.hub_id = "another-model", "someone/another-model"
    p = tmp_path / "profile.json"
    from profiler.schema import write_profile

    write_profile(profile, p)
    r = run("plan", "--example", "ticket-triage", "--profile", str(p))
    assert_clean(r)
    assert r.exit_code == 0 and "measured nothing this plan uses" in r.output
