"""The command line: output data, determinism, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from advisor.cli import main
from tests.helpers import assert_imports_none_of, cli_code


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args", [["--help"], ["estimate", "--model", "llama-3.1-70b", "--method", "qlora", "--json"],
                                  ["models"], ["gpus"], ["plan", "--example", "ticket-triage", "--json"]])
def test_help_and_catalog_estimates_do_not_import_torch(args):
    """Catalog anatomy is precomputed: nothing but a local/Hub config needs the meta device."""
    assert_imports_none_of(cli_code(args))


def test_python_dash_m_runs_the_same_command_line():
    out = subprocess.run([sys.executable, "-m", "advisor.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("advise, version "), out.stderr


def test_estimate_json_has_the_contract_fields():
    r = run("estimate", "--model", "llama-3.1-8b", "--method", "qlora", "--gpu", "A100-80GB", "--seq-len", "2048",
            "--batch-size", "4", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["params_total"] == 8_030_261_248
    assert d["trainable_params"] == 41_943_040
    from estimators.catalog import Catalog
    from estimators.memory import PART_LABELS, estimate_memory
    from estimators.setup import TrainingSetup

    m = estimate_memory(Catalog.load().model("llama-3.1-8b").anatomy,
                        TrainingSetup(technique="qlora", seq_len=2048, micro_batch=4))
    assert d["memory_total_bytes"] == m.total_bytes and d["memory"]["parts_bytes"] == m.parts
    assert list(d["memory"]["parts_bytes"]) == list(PART_LABELS) == list(d["memory"]["part_labels"])
    assert isinstance(d["fits"], bool) and d["gpu"]["name"] == "A100-80GB"
    by_gpu = {row["gpu"]: row for row in d["fit_by_gpu"]}
    assert {"H100-80GB", "RTX-4090", "L4"} <= set(by_gpu)
    assert all(row["memory_total_bytes"] == d["memory_total_bytes"] for row in by_gpu.values())
    assert by_gpu["A100-80GB"]["fits"] == d["fits"]
    assert d["assumptions"]


def test_sharded_estimate_reports_per_gpu_memory():
    one = json.loads(run("estimate", "--model", "llama-3.1-70b", "--method", "full", "--json").output)
    r = run("estimate", "--model", "llama-3.1-70b", "--method", "full", "--gpus", "8", "--sharding", "fsdp", "--json")
    assert r.exit_code == 0, r.output
    eight = json.loads(r.output)
    assert eight["setup"]["gpu_count"] == 8 and eight["memory_total_bytes"] < one["memory_total_bytes"] / 3
    assert not one["fits"]
    # DeepSpeed ZeRO-3 keeps fp32 master weights and Adam states: 18 bytes/param / 8 GPUs for 70B
    z3 = json.loads(run("estimate", "--model", "llama-3.1-70b", "--method", "full", "--gpus", "8",
                        "--sharding", "zero3", "--json").output)
    assert z3["memory_total_bytes"] > 18 * z3["params_total"] / 8 and not z3["fits"]


def test_same_inputs_give_byte_identical_output():
    args = ("estimate", "--model", "qwen2.5-7b", "--method", "lora", "--gpu", "L40S", "--tokens", "3e7", "--epochs", "2")
    assert run(*args, "--json").output == run(*args, "--json").output
    assert run(*args).output == run(*args).output


def test_table_output_shows_parts_fit_speed_and_assumptions():
    r = run("estimate", "--model", "llama-3.1-8b", "--method", "lora", "--gpu", "rtx-4090")
    assert r.exit_code == 0, r.output
    for text in ("Memory per GPU at the peak", "optimizer states", "activations", "logits and loss", "total",
                 "on RTX-4090", "tokens/s", "Fit across GPUs", "Assumptions:"):
        assert text in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (("estimate", "--model", "llama3-8b"), "did you mean 'llama-3.1-8b'?"),
        (("estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm4"), "is not a known gpu"),
        (("estimate", "--model", "llama-3.1-8b", "--lora-targets", "c_attn"), "match no linear layer"),
        (("estimate", "--model", "llama-3.1-8b", "--offload", "optimizer"), "offload needs sharding"),
        (("estimate", "--model", "gemma-2-9b", "--attn", "sdpa"), "use eager or flash"),
        (("estimate", "--model", "llama-3.1-8b", "--seq-len", "0"), "Invalid value for '--seq-len'"),
        (("estimate", "--model", "someorg/unknown-model"), "pass a local config.json"),
        (("--catalog", "/nonexistent.yaml", "gpus"), "does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    error_lines = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1


def test_models_and_gpus_list_the_catalogs():
    r = run("models", "--json")
    assert r.exit_code == 0
    names = {m["name"] for m in json.loads(r.output)}
    assert {"llama-3.1-8b", "qwen2.5-72b", "gemma-2-27b", "phi-3.5-mini"} <= names
    r = run("gpus")
    assert r.exit_code == 0 and "H100-80GB" in r.output and "RTX-3090" in r.output


def test_user_catalog_file_changes_the_price(tmp_path):
    f = tmp_path / "prices.yaml"
    f.write_text("gpus:\n  - name: RTX-4090\n    prices:\n"
                 "      - {provider: homelab, usd_per_hour: 0.05, offer: own card, source: electricity, date: 2026-11-01}\n")
    r = run("--catalog", str(f), "estimate", "--model", "llama-3.2-1b", "--gpu", "rtx-4090", "--json")
    assert r.exit_code == 0, r.output
    costs = json.loads(r.output)["training"]["costs"]
    assert costs[0]["provider"] == "homelab"


def test_workload_adds_monthly_inference_and_break_even():
    r = run("estimate", "--model", "llama-3.1-8b", "--method", "lora", "--gpu", "L40S", "--tokens", "2e7",
            "--requests-per-month", "5e6", "--input-tokens", "300", "--output-tokens", "20",
            "--api", "claude-haiku-4.5", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    inf = d["inference"]
    assert inf["api_usd_per_month"] == 2000.0  # 1.5e9 in x $1/M + 1e8 out x $5/M
    saving = inf["api_usd_per_month"] - inf["self_hosted"]["usd_per_month"]
    assert inf["break_even_months"] == pytest.approx(d["training"]["costs"][0]["usd"] / saving, rel=1e-5)
    assert d["hosted_finetuning"] and all(h["usd"] > 0 for h in d["hosted_finetuning"])
    table = run("estimate", "--model", "llama-3.1-8b", "--method", "lora", "--gpu", "L40S",
                "--requests-per-month", "5e6", "--api", "haiku-4.5")
    assert "break-even:" in table.output and "self-hosted on L40S" in table.output


def test_api_without_a_workload_is_a_usage_error():
    r = run("estimate", "--model", "llama-3.1-8b", "--api", "claude-haiku-4.5")
    assert r.exit_code == 2 and "give --requests-per-month" in r.output


def test_a_partial_config_json_is_refused_in_one_line_by_estimate_and_profile(tmp_path):
    """{"model_type": "llama"} would be a 6.7B model of transformers' defaults: refused, naming what is missing."""
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 4096}')
    for args in (("estimate", "--model", str(tmp_path / "config.json"), "--method", "lora"),
                 ("profile", "--model", str(tmp_path), "--device", "cpu", "--out", str(tmp_path / "p.json"))):
        r = run(*args)
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
        assert errors == ["Error: config (llama) lacks num_hidden_layers, num_attention_heads, intermediate_size, "
                          "vocab_size: transformers would fill them with its defaults and describe another model; "
                          "copy the model's whole config.json"]
    assert not (tmp_path / "p.json").exists()
