"""The rules engine: conditions explain themselves, the rule file is checked, decisions compose."""

from __future__ import annotations

import pytest
import yaml

from advisor.engine import Context, RulesError, compose, decide, evaluate, load_rules


def ev(cond, facts, fired=()):
    return evaluate(cond, Context(facts, set(fired)))


@pytest.mark.parametrize("cond,facts,ok,why", [
    ({"fact": "tried.few_shot", "in": ["failed", "partly"]}, {"tried.few_shot": "failed"}, True,
     ["tried.few_shot = failed"]),
    ({"fact": "tried.few_shot", "in": ["failed", "partly"]}, {"tried.few_shot": "not_tried"}, False,
     ["tried.few_shot = not_tried, not one of failed, partly"]),
    ({"fact": "symptoms", "has_any": ["format", "style"]}, {"symptoms": ["cost", "style"]}, True,
     ["symptoms include style"]),
    ({"fact": "symptoms", "has_none": ["cost", "latency"]}, {"symptoms": ["cost"]}, False, ["symptoms include cost"]),
    ({"fact": "data.labeled_examples", "gte": 500}, {"data.labeled_examples": 120}, False,
     ["data.labeled_examples = 120 < 500"]),
    ({"fact": "estimates.fits.lora", "is": True}, {"estimates.fits.lora": None}, False,
     ["estimates.fits.lora = unknown, not yes"]),
    ({"fact": "workload.monthly_cost_usd", "gte": 1000}, {"workload.monthly_cost_usd": None}, False,
     ["workload.monthly_cost_usd is unknown"]),
    ({"not": {"rule": "A"}}, {}, True, ["A did not fire"]),
])
def test_leaves_say_why(cond, facts, ok, why):
    assert ev(cond, facts) == (ok, why)


def test_all_reports_the_failing_clauses_and_any_the_holding_ones():
    facts = {"symptoms": ["format"], "tried.few_shot": "fixed", "data.eval_examples": 3}
    cond = {"all": [{"fact": "symptoms", "has": "format"}, {"fact": "tried.few_shot", "is": "failed"}]}
    assert ev(cond, facts) == (False, ["tried.few_shot = fixed, not failed"])
    cond = {"any": [{"fact": "symptoms", "has": "cost"}, {"fact": "data.eval_examples", "lt": 20}]}
    assert ev(cond, facts) == (True, ["data.eval_examples = 3 < 20"])


def _book(tmp_path, rules, priority=None):
    p = tmp_path / "rules.yaml"
    prio = priority or {"hosted_fine_tune": 7, "fine_tune": 6, "few_shot": 5, "reasoning_model": 4, "tools": 3,
                        "rag": 2, "prompting": 1}
    p.write_text(yaml.safe_dump({"approach_priority": prio, "rules": rules}))
    return p


def _rule(id_, when, **recommends):
    return {"id": id_, "name": id_.lower(), "stage": "approach", "when": when, "recommends": recommends,
            "rationale": "r", "source": "s"}


@pytest.mark.parametrize("rules,match", [
    ([_rule("AA", {"fact": "symtoms", "has": "format"}, approach="rag")], "unknown fact 'symtoms'"),
    ([_rule("AA", {"rule": "BB"}, approach="rag"), _rule("BB", {"fact": "symptoms", "has": "x"}, approach="rag")],
     "rule 'BB' is not an earlier rule"),
    ([_rule("AA", {"fact": "symptoms", "contains": "x"}, approach="rag")], "a leaf is"),
    ([_rule("AA", {"fact": "symptoms", "has": "x"}, approach="rag")] * 2, "duplicate id"),
    ([_rule("AA", {"fact": "symptoms", "has": "x"}, approach="magic")], "approach"),
    ([_rule("AA", {"all": []}, approach="rag")], "non-empty list"),
])
def test_malformed_rules_are_refused_with_the_rule_named(tmp_path, rules, match):
    with pytest.raises(RulesError, match=match):
        load_rules(_book(tmp_path, rules))


def test_builtin_rules_load_and_cover_the_tree():
    book = load_rules()
    ids = [r.id for r in book.rules]
    assert len(ids) == len(set(ids)) >= 30
    recommended = {r.recommends.approach for r in book.rules} | {m for r in book.rules for m in r.recommends.methods}
    for x in ("prompting", "few_shot", "rag", "tools", "reasoning_model", "fine_tune", "hosted_fine_tune",
              "sft", "dpo", "orpo", "kto", "continued_pretraining", "distillation"):
        assert x in recommended, x
    assert {r.recommends.technique for r in book.rules} >= {"full", "lora", "qlora", "dora"}
    assert all(r.rationale.strip() and r.source.strip() for r in book.rules)


def test_priorities_replacements_and_pipeline_order():
    book = load_rules()
    by_id = {r.id: r for r in book.rules}
    d = compose(book, [by_id["RAG_FOR_KNOWLEDGE"], by_id["SFT_FOR_FORMAT_STYLE"], by_id["DPO_FOR_PREFERENCES"],
                       by_id["CPT_FOR_DOMAIN_LANGUAGE"]])
    assert (d.approach, d.also) == ("fine_tune", ("rag",))
    assert d.methods == ("continued_pretraining", "sft", "dpo")
    d = compose(book, [by_id["SFT_FOR_FORMAT_STYLE"], by_id["ORPO_WHEN_PAIRS_ONLY"]])
    assert d.methods == ("orpo",)
    d = compose(book, [by_id["SFT_FOR_FORMAT_STYLE"], by_id["HOSTED_WHEN_CLOSED"]])
    assert (d.approach, d.serving, d.technique) == ("hosted_fine_tune", "hosted", None)
    d = compose(book, [])
    assert (d.approach, d.methods, d.serving) == ("prompting", (), "none")


def test_every_rule_lands_in_the_trace_in_stage_order():
    facts = {"symptoms": ["format"], "tried.prompting": "not_tried", "tried.few_shot": "not_tried",
             "data.eval_examples": 0}
    d = decide(facts)
    assert [t.id for t in d.trace] == [r.id for s in ("approach", "delivery", "technique", "checks")
                                       for r in load_rules().rules if r.stage == s]
    # clearer instructions before few-shot examples (the consensus order)
    assert d.approach == "prompting" and d.also == ("few_shot",)
    assert set(d.fired) == {"PROMPT_FIRST", "FEWSHOT_FIRST", "EVAL_SET_FIRST"}
