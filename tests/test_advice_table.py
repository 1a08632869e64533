"""docs/advice-table.md is what benchmarks/advice_table.py writes today: a change in advice is a reviewed diff."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from advisor.contract.answers import load_answers

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "tests" / "scenarios").glob("*.yaml"))


def _script():
    spec = importlib.util.spec_from_file_location("advice_table", ROOT / "benchmarks" / "advice_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_advice_table_is_current():
    script = _script()
    want = script.table()
    have = (ROOT / "docs" / "advice-table.md").read_text(encoding="utf-8")
    assert have == want, "advice changed: run `python benchmarks/advice_table.py` and review the diff of docs/advice-table.md"
    rows = want.count("\n| ") - 1  # the header row aside
    assert rows == len(script.cases()) and len(SCENARIOS) >= 20
    assert "| invalid: " not in want  # every case plans


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_says_who_asks_and_what_a_practitioner_expects_and_validates(path, catalog):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# persona: ") and len(lines[0]) > 20, path.name
    assert lines[1].startswith("# expect: ") and len(lines[1]) > 20, path.name
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["project"]
    load_answers(path, catalog)  # raises on a refused field
