"""Every rule in advisor/data/rules.yaml is pinned by answers that must and must not fire it.

Cases live in tests/rules/cases/<RULE_ID>.yaml; each is planned end to end (estimates included), so a
rule that depends on memory or cost estimates is tested against the real estimators.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from advisor.contract.answers import validate_answers
from advisor.engine import load_rules
from advisor.planner import build_plan

CASES_DIR = Path(__file__).parent / "cases"


def _cases():
    for path in sorted(CASES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for expected, key in ((True, "fires"), (False, "does_not_fire")):
            for case in doc.get(key, []):
                yield pytest.param(doc["rule"], expected, case["answers"],
                                   id=f"{doc['rule']}-{'fires' if expected else 'silent'}-{case['case']}")


def test_every_rule_has_cases_both_ways():
    ids = {r.id for r in load_rules().rules}
    files = {p.stem: yaml.safe_load(p.read_text()) for p in CASES_DIR.glob("*.yaml")}
    assert set(files) == ids, f"missing: {sorted(ids - set(files))}; unknown: {sorted(set(files) - ids)}"
    for rid, doc in files.items():
        assert doc["rule"] == rid
        assert doc.get("fires") and doc.get("does_not_fire"), f"{rid}: needs cases that fire and that do not"


@pytest.mark.parametrize("rule_id,expected,answers", list(_cases()))
def test_rule_case(catalog, rule_id, expected, answers):
    plan = build_plan(validate_answers(answers, "case", catalog), catalog)
    entry = next(r for r in plan.rules if r.id == rule_id)
    assert entry.fired is expected, entry.reason
    assert entry.reason, "every trace entry says why"
