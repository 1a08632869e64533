"""Every rule in advisor/data/rules.yaml is pinned by answers that must and must not fire it.

Cases live in tests/rules/cases/<RULE_ID>.yaml; each is planned end to end (estimates included), so a
rule that depends on memory or cost estimates is tested against the real estimators.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from advisor.contract.answers import validate_answers
from advisor.engine import load_rules
from advisor.planner import build_plan

CASES_DIR = Path(__file__).parent / "cases"
#: data files in the cases are named from the repository root
REPO = Path(__file__).parents[2]
#: the date the cases are planned as of (retirement dates in the price data are compared with it)
AS_OF = datetime.date(2026, 12, 1)


def _cases():
    for path in sorted(CASES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for expected, key in ((True, "fires"), (False, "does_not_fire")):
            for case in doc.get(key, []):
                yield pytest.param(doc["rule"], expected, case["answers"], case.get("catalog"),
                                   id=f"{doc['rule']}-{'fires' if expected else 'silent'}-{case['case']}")


def test_every_rule_has_cases_both_ways():
    ids = {r.id for r in load_rules().rules}
    files = {p.stem: yaml.safe_load(p.read_text()) for p in CASES_DIR.glob("*.yaml")}
    assert set(files) == ids, f"missing: {sorted(ids - set(files))}; unknown: {sorted(set(files) - ids)}"
    for rid, doc in files.items():
        assert doc["rule"] == rid
        assert doc.get("fires") and doc.get("does_not_fire"), f"{rid}: needs cases that fire and that do not"


@pytest.mark.parametrize("rule_id,expected,answers,extra_catalog", list(_cases()))
def test_rule_case(catalog, rule_id, expected, answers, extra_catalog):
    """A case may add a catalog file of its own (``catalog:``, from the repository root): a vendor with an open
    hosted offer, which the built-in price data lacks today."""
    if extra_catalog:
        from estimators.catalog import Catalog

        catalog = Catalog.load([REPO / extra_catalog])
    plan = build_plan(validate_answers(answers, "case", catalog, base_dir=REPO), catalog, base_dir=REPO, as_of=AS_OF)
    entry = next(r for r in plan.rules if r.id == rule_id)
    assert entry.fired is expected, entry.reason
    assert entry.reason, "every trace entry says why"


# ---- every threshold is pinned at its edge ----------------------------------------------------------------
#: facts derived from an answer the case files set directly
DERIVED = {"workload.monthly_cost_usd": "workload.current_monthly_cost_usd",
           "options.same_model_best_usd_per_month": "workload.current_monthly_cost_usd",
           "estimates.training_examples": "data.labeled_examples",
           "data.per_adapter_examples": "data.examples_per_adapter",
           "estimates.adapter_examples": "data.labeled_examples"}
#: the two sides of a leaf's edge: (the value where the leaf is true, the nearest value where it is false)
EDGES = {"gte": lambda v: (v, v - 1), "gt": lambda v: (v + 1, v), "lte": lambda v: (v, v + 1),
         "lt": lambda v: (v - 1, v), "is": lambda v: (v, v + 1)}


def _numeric_leaves(cond):
    if "all" in cond or "any" in cond:
        for c in cond.get("all", cond.get("any")):
            yield from _numeric_leaves(c)
    elif "not" in cond:
        yield from _numeric_leaves(cond["not"])
    elif "fact" in cond:
        op = next(k for k in cond if k != "fact")
        v = cond[op]
        if op in EDGES and isinstance(v, (int, float)) and not isinstance(v, bool):
            yield cond["fact"], op, v


def _flat(answers):
    """The case's answers with every default filled in, flattened (``data.labeled_examples`` -> 500)."""
    from advisor.engine import flatten_facts

    return flatten_facts(validate_answers(answers, "case").to_dict())


def _pinned(doc, field, true_value, false_value):
    """A case that fires and one that does not, equal but for ``field`` = the two sides of the edge."""
    fires = [_flat(c["answers"]) for c in doc["fires"]]
    silent = [_flat(c["answers"]) for c in doc["does_not_fire"]]
    for f in fires:
        for s in silent:
            if f.get(field) == true_value and s.get(field) == false_value and \
                    {k: v for k, v in f.items() if k != field} == {k: v for k, v in s.items() if k != field}:
                return True
    # a leaf that only blocks the rule (is 0 in "pairs only") fires on the other side
    return False


def test_every_numeric_threshold_on_the_answers_has_cases_just_below_and_at_it():
    """Moving a threshold of rules.yaml (TOO_FEW_EXAMPLES 100 -> 150) must fail a case: each numeric leaf on an
    answers field has a pair of cases that differ only there, one on each side of the edge."""
    from advisor.engine import answer_facts

    answer_fields = answer_facts() | set(DERIVED)
    missing = []
    for rule in load_rules().rules:
        doc = yaml.safe_load((CASES_DIR / f"{rule.id}.yaml").read_text())
        for fact, op, v in _numeric_leaves(rule.when):
            if fact not in answer_fields:
                continue  # estimates (budget left, monthly saving): their cases sit on either side, not at 0
            field = DERIVED.get(fact, fact)
            on, off = EDGES[op](v)
            if not (_pinned(doc, field, on, off) or _pinned(doc, field, off, on)):
                missing.append(f"{rule.id}: {fact} {op} {v} needs cases at {on} and {off} that differ only there")
    assert not missing, "; ".join(missing)


def test_the_planner_raises_the_lora_rank_from_the_same_threshold(catalog):
    """RANK_FOR_LARGE_DATA says the plan raises the rank: at 99,999 examples an adapter it does not, at 100,000 it
    does (three tenants' adapters: each one's own examples count)."""
    def rank(n):
        plan = build_plan(validate_answers({"project": "p", "symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                                            "data": {"labeled_examples": 3 * n, "examples_per_adapter": n},
                                            "model": {"base": "llama-3.1-8b"},
                                            "hardware": {"gpus": ["A100-80GB"]}, "deployment": {"adapters": 3}},
                                           "p", catalog), catalog)
        return plan.estimates.training.lora.r

    assert (rank(99_999), rank(100_000)) == (16, 64)
