"""``advise apis``: the hosted-API price catalog as a table and as JSON, with user catalog files merged in."""

from __future__ import annotations

import dataclasses
import json

from click.testing import CliRunner

from advisor.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def _sorted_apis(cat):
    return sorted(cat.apis, key=lambda a: (a.provider, a.usd_per_million_input_tokens, a.name))


def _as_json(value):
    return list(value) if isinstance(value, tuple) else value


def test_table_lists_every_api_row(catalog):
    r = run("apis")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    for a in catalog.apis:
        assert any(line.split()[:2] == [a.name, a.provider] for line in lines), a.name
    assert "advise --catalog my.yaml apis" in r.output and "apis:" in r.output


def test_json_rows_match_the_catalog_field_by_field(catalog):
    r = run("apis", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    expected = _sorted_apis(catalog)
    assert [row["name"] for row in rows] == [a.name for a in expected]
    for row, a in zip(rows, expected):
        for f in dataclasses.fields(a):
            assert row[f.name] == _as_json(getattr(a, f.name)), (a.name, f.name)
        assert {"source", "aliases", "status"} <= set(row)


def _user_catalog(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text(
        "apis:\n"
        "  - name: test-closed-model\n"
        "    provider: testvendor\n"
        "    usd_per_million_input_tokens: 0.075\n"
        "    usd_per_million_output_tokens: 0.3\n"
        "    usd_per_million_cache_read_tokens: 0.01\n"
        "    batch_discount: 0.5\n"
        "    source: a test\n"
        "    date: 2026-11-01\n"
        "    open_to_new_users: false\n"
        "    retires: 2027-01-14\n"
        "  - name: test-retiring-model\n"
        "    provider: testvendor\n"
        "    usd_per_million_input_tokens: 1\n"
        "    usd_per_million_output_tokens: 2\n"
        "    source: a test\n"
        "    date: 2026-11-01\n"
        "    retires: 2027-01-14\n"
    )
    return f


def test_user_catalog_rows_show_their_availability(tmp_path):
    f = _user_catalog(tmp_path)
    r = run("--catalog", str(f), "apis")
    assert r.exit_code == 0, r.output
    closed = next(line for line in r.output.splitlines() if line.startswith("test-closed-model "))
    assert "closed to new users" in closed and "$0.075" in closed and "50%" in closed and "2026-11-01" in closed
    retiring = next(line for line in r.output.splitlines() if line.startswith("test-retiring-model "))
    assert "retires 2027-01-14" in retiring and "closed to new users" not in retiring

    rows = {row["name"]: row for row in json.loads(run("--catalog", str(f), "apis", "--json").output)}
    assert rows["test-closed-model"]["open_to_new_users"] is False
    assert rows["test-closed-model"]["retires"] == "2027-01-14"
    assert rows["test-retiring-model"]["availability"] == "retires 2027-01-14"


def test_hosted_json_has_both_lists(catalog):
    r = run("apis", "--hosted", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d) == {"hosted_finetuning", "open_model_inference"}
    assert len(d["hosted_finetuning"]) == len(catalog.finetuning)
    assert len(d["open_model_inference"]) == len(catalog.open_inference)
    assert {row["name"] for row in d["hosted_finetuning"]} == {f.name for f in catalog.finetuning}
    assert {row["name"] for row in d["open_model_inference"]} == {o.name for o in catalog.open_inference}


def test_hosted_table_lists_every_offer(catalog):
    r = run("apis", "--hosted")
    assert r.exit_code == 0, r.output
    for f in catalog.finetuning:
        assert f.name in r.output
    for o in catalog.open_inference:
        assert o.name in r.output
