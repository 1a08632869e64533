"""The questionnaire: answers read the way people type them, choices in view, data files asked when relevant."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from advisor.contract.answers import SYMPTOMS, TASK_KINDS, TRIED, validate_answers
from advisor.engine import _check_condition, answer_facts
from advisor.questionnaire import QUESTIONS, Question, _bounds, ask, parse, should_ask

Q = {q.key: q for q in QUESTIONS}
INT = Q["data.labeled_examples"]
AMOUNT = Q["budget.training_usd"]
MONTHLY = Q["workload.current_monthly_cost_usd"]
FILES = ("data.train_file", "data.preference_file", "data.eval_file")


def refusal(q: Question, text: str) -> str:
    with pytest.raises(ValueError) as e:
        parse(q, text)
    message = str(e.value)
    assert "\n" not in message and message.strip() == message and message
    return message


# ---- choices ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("typed", "want"), [
    ("extraction", "extraction"), ("Extraction", "extraction"), ("EXTRACTION", "extraction"),
    ("  Summarization \t", "summarization"), ("tool_use", "tool_use"), ("Tool use", "tool_use"),
    ("tool-use", "tool_use"), ("TOOL - USE", "tool_use"),
])
def test_choice_accepts_any_case_spaces_and_dashes(typed, want):
    assert parse(Q["task.kind"], typed) == want


@pytest.mark.parametrize("typed", ["not tried", "Not tried", "NOT-TRIED", "not_tried", " not  tried "])
def test_tried_accepts_not_tried_spelled_with_a_space_or_dash(typed):
    assert parse(Q["tried.prompting"], typed) == "not_tried"


@pytest.mark.parametrize(("typed", "want"), [
    (" FORMAT , Cost", ["format", "cost"]), ("format,cost,format", ["format", "cost"]),
    ("Knowledge gap, tool-errors", ["knowledge_gap", "tool_errors"]), ("domain language,", ["domain_language"]),
])
def test_several_choices_accept_any_case_and_spaces_and_drop_repeats(typed, want):
    assert parse(Q["symptoms"], typed) == want


def test_unknown_choice_is_refused_naming_the_choices_and_the_closest():
    msg = refusal(Q["task.kind"], "extrction")
    assert "did you mean extraction?" in msg and all(c in msg for c in TASK_KINDS)
    msg = refusal(Q["task.kind"], "banana")
    assert "did you mean" not in msg and "choose one of" in msg


def test_unknown_symptom_is_refused_naming_it_and_the_choices():
    msg = refusal(Q["symptoms"], "format, formt")
    assert msg.startswith("formt: not allowed (did you mean format?)") and all(s in msg for s in SYMPTOMS)
    msg = refusal(Q["symptoms"], "formt, cots")
    assert msg.startswith("formt, cots: not allowed;")


def test_a_spelling_that_fits_two_choices_is_refused():
    q = Question("task.kind", "Which?", "", "choice", None, ("a_b", "a-b"))
    assert "choose one of a_b, a-b" in refusal(q, "A B")
    assert parse(q, "a_b") == "a_b" and parse(q, " a-b ") == "a-b"  # the exact spelling is not ambiguous


def test_blank_symptoms_are_refused_with_the_choices():
    for typed in ("", "  ", ",", " , ,"):
        msg = refusal(Q["symptoms"], typed)
        assert msg.startswith("an answer is required") and "preference" in msg


def test_blank_choice_takes_the_default():
    assert parse(Q["task.kind"], "") == "other"
    assert parse(Q["tried.prompting"], "  ") == "not_tried"


def test_every_choice_question_shows_its_choices_in_the_prompt_text():
    shown = [q for q in QUESTIONS if q.kind in ("choice", "choices")]
    assert {q.key for q in shown} == {"task.kind", "symptoms", "tried.prompting", "tried.few_shot", "tried.rag",
                                      "tried.tools", "tried.structured_output"}
    for q in shown:
        assert "\n" not in q.text and q.prompt_text == q.text
        assert all(c in q.text for c in q.choices), q.key
    assert Q["task.kind"].text == ("What does the model do? (classification/extraction/generation/chat/code/tool_use/"
                                   "summarization/other)")
    assert Q["tried.rag"].text.endswith(f"({'/'.join(TRIED)})")
    assert Q["symptoms"].text == f"What is wrong today? (one or more, comma-separated: {', '.join(SYMPTOMS)})"
    assert Q["model.open_weights_ok"].text.endswith("(yes/no)")
    assert Q["project"].text == "Project name" and Q["data.labeled_examples"].text.endswith("exist?")


def test_the_choices_are_added_once():
    import dataclasses

    q = dataclasses.replace(Q["task.kind"], default="chat")
    assert q.text == Q["task.kind"].text


# ---- yes/no -------------------------------------------------------------------------------------
@pytest.mark.parametrize("typed", ["y", "Y", "yes", "YES", "Yes", "true", "TRUE", "True", " yes "])
def test_yes_in_any_case(typed):
    assert parse(Q["model.open_weights_ok"], typed) is True


@pytest.mark.parametrize("typed", ["n", "N", "no", "NO", "No", "false", "FALSE", "False", " no "])
def test_no_in_any_case(typed):
    assert parse(Q["model.open_weights_ok"], typed) is False


@pytest.mark.parametrize("typed", ["maybe", "yess", "nope", "ja"])
def test_other_yes_no_answers_are_refused(typed):
    assert "answer yes or no" in refusal(Q["model.open_weights_ok"], typed)


def test_blank_yes_no_takes_the_default():
    assert parse(Q["model.open_weights_ok"], "") is True


# ---- numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("typed", "want"), [
    ("500", 500), ("0", 0), (" 42 ", 42), ("1,200", 1_200), ("1,000,000", 1_000_000), ("1_000", 1_000),
    ("1 000", 1_000), ("1 000 000", 1_000_000), ("2e6", 2_000_000), ("2E6", 2_000_000), ("2e+6", 2_000_000),
    ("2.0", 2), ("10k", 10_000), ("10K", 10_000), ("10 k", 10_000), ("1.5M", 1_500_000), ("1.5m", 1_500_000),
    ("1.1M", 1_100_000), ("3B", 3_000_000_000), ("3b", 3_000_000_000), ("2bn", 2_000_000_000),
    ("2BN", 2_000_000_000), ("1,500k", 1_500_000), ("0.5k", 500), ("+7", 7),
])
def test_whole_numbers_typed_the_way_people_type_them(typed, want):
    value = parse(INT, typed)
    assert value == want and type(value) is int


@pytest.mark.parametrize(("typed", "want"), [
    ("500", 500.0), ("$500", 500.0), ("$1,200.50", 1200.5), ("1200.50", 1200.5), ("500 USD", 500.0),
    ("500usd", 500.0), ("500 usd", 500.0), ("$2k", 2000.0), ("$ 1.5M USD", 1_500_000.0), ("2e3", 2000.0),
    ("0.99", 0.99), ("$0", 0.0), ("1_000.25", 1000.25),
])
def test_amounts_accept_a_dollar_sign_and_usd(typed, want):
    for q in (AMOUNT, MONTHLY):
        value = parse(q, typed)
        assert value == want and type(value) is float


@pytest.mark.parametrize(("typed", "between"), [("2.5", "2 or 3"), ("1.2345k", "1234 or 1235"), ("0.1", "0 or 1"),
                                                ("1e-3", "0 or 1")])
def test_a_whole_number_question_refuses_fractions_naming_what_to_type(typed, between):
    assert refusal(INT, typed) == f"{typed}: not a whole number; give a whole number, e.g. {between}"


@pytest.mark.parametrize("typed", ["-5", "-1k", "- 3", "-0.5"])
def test_negative_numbers_are_refused(typed):
    assert refusal(INT, typed) == f"{typed}: negative; give a whole number >= 0, e.g. 5000, 5,000 or 5k"


@pytest.mark.parametrize("typed", ["-5", "-$5", "$-5", "-5 USD"])
def test_negative_amounts_are_refused(typed):
    assert refusal(AMOUNT, typed) == f"{typed}: negative; give an amount in USD >= 0, e.g. 500, $1,200.50 or 2k"


@pytest.mark.parametrize("typed", ["nan", "NaN", "inf", "-inf", "+inf", "Infinity", "INF"])
def test_nan_and_infinity_are_refused(typed):
    assert refusal(INT, typed).startswith(f"{typed}: not a finite number; give a whole number >= 0")
    assert refusal(AMOUNT, f"${typed}" if not typed.startswith(("-", "+")) else typed).endswith(
        "give an amount in USD >= 0, e.g. 500, $1,200.50 or 2k")


@pytest.mark.parametrize("typed", ["abc", "1,5", "1,2345", "12,34", "0x10", "1..2", "1.2.3", "k", "10kk", "5 apples",
                                   "1__000", "1,,000", ",100", "1e", "e5"])
def test_what_is_not_a_number_is_refused(typed):
    assert refusal(INT, typed) == f"{typed}: not a number; give a whole number >= 0, e.g. 5000, 5,000 or 5k"


@pytest.mark.parametrize("typed", ["USD", "$", "$$5", "5 dollars", "USD 5", "5 EUR", "€5", "1,5"])
def test_what_is_not_an_amount_is_refused(typed):
    assert refusal(AMOUNT, typed) == f"{typed}: not a number; give an amount in USD >= 0, e.g. 500, $1,200.50 or 2k"


@pytest.mark.parametrize("typed", ["$500", "500 USD", "500usd"])
def test_a_count_refuses_money(typed):
    assert refusal(INT, typed).startswith(f"{typed}: this question is not about money; give a whole number")


@pytest.mark.parametrize("typed", ["1e19", "1e400", "1e999999999", "1e9999999999999999999999", "10000000000000000000k"])
def test_absurdly_large_numbers_are_refused(typed):
    assert refusal(INT, typed).startswith(f"{typed}: too large")
    assert refusal(AMOUNT, typed).startswith(f"{typed}: too large")


def test_numbers_follow_the_schemas_upper_limits():
    for q in (INT, AMOUNT, Q["workload.requests_per_month"], Q["workload.input_tokens_per_request"]):
        hi = _bounds(q.key)[1]
        assert hi is not None and hi <= 10**18, q.key  # every number in the answers has a cap
        assert parse(q, f"{hi:.0f}") == hi
        assert refusal(q, f"{hi + 1:.0f}").startswith(f"{hi + 1:.0f}: too large (at most {hi:,.0f}); give ")


def test_numbers_outside_the_schemas_limits_are_refused_while_the_question_is_on_screen():
    count = Q["hardware.gpu_count"]  # the schema: 1 <= gpu_count <= 64
    assert parse(count, "1") == 1 and parse(count, "64") == 64
    assert refusal(count, "0") == "0: too small; give a whole number from 1 to 64"
    assert refusal(count, "65") == "65: too large (at most 64); give a whole number from 1 to 64"
    adapters = Q["deployment.adapters"]  # the schema: adapters >= 1
    assert parse(adapters, "1") == 1 and parse(adapters, "1k") == 1000
    assert refusal(adapters, "0") == "0: too small; give a whole number >= 1, e.g. 5000, 5,000 or 5k"


def test_a_number_question_outside_the_answers_has_no_limits_but_zero():
    q = Question("extra.count", "How many?", "", "int", 0)
    assert parse(q, "1e18") == 10**18 and "negative" in refusal(q, "-1")


def test_blank_numbers_take_the_default_or_are_not_given():
    assert parse(INT, "") == 0
    assert parse(AMOUNT, "") is None
    assert parse(Q["workload.input_tokens_per_request"], " ") == 500


@given(st.integers(0, 10**15))  # the schema's cap on counts
def test_any_count_written_with_separators_reads_back(n):
    for typed in (str(n), f"{n:,}", f"{n:_}", f"{n:,}".replace(",", " ")):
        assert parse(INT, typed) == n


@given(st.integers(0, 10**14))  # up to $1e12, the schema's cap on amounts
def test_any_amount_in_dollars_and_cents_reads_back(cents):
    want = float(Decimal(cents) / 100)
    for typed in (f"${cents / 100:,.2f}", f"{cents / 100:.2f} USD", f"{Decimal(cents) / 100}"):
        assert parse(AMOUNT, typed) == want


# ---- data files ---------------------------------------------------------------------------------
def scripted(replies: dict[str, str]):
    """A prompt that answers from ``replies`` (blank otherwise) through ``parse``; records what was asked."""
    asked: list[str] = []

    def prompt(q: Question, default: Any) -> Any:
        asked.append(q.key)
        return parse(q, replies.get(q.key, ""))

    return prompt, asked


BASE = {"project": "p", "symptoms": "format"}


@pytest.mark.parametrize(("labeled", "asked"), [("0", False), ("", False), ("1", True), ("3k", True)])
def test_the_training_file_is_asked_only_when_there_are_labeled_examples(labeled, asked):
    prompt, keys = scripted({**BASE, "data.labeled_examples": labeled})
    ask(prompt)
    assert ("data.train_file" in keys) is asked
    assert keys.index("data.train_file") == keys.index("data.labeled_examples") + 1 if asked else True


@pytest.mark.parametrize(("evals", "asked"), [("0", False), ("", False), ("1", True), ("50", True)])
def test_the_eval_file_is_asked_only_when_there_are_eval_examples(evals, asked):
    prompt, keys = scripted({**BASE, "data.eval_examples": evals})
    ask(prompt)
    assert ("data.eval_file" in keys) is asked


@pytest.mark.parametrize(("symptoms", "pairs", "feedback", "asked"), [
    ("preference", "0", "0", False), ("preference", "1", "0", True), ("preference", "0", "1", True),
    ("preference", "2k", "500", True), ("preference", "", "", False),
    ("format", "5", "5", False),  # the counts are not asked (nor kept) without the preference symptom
])
def test_the_preference_file_is_asked_only_when_there_are_pairs_or_ratings(symptoms, pairs, feedback, asked):
    prompt, keys = scripted({"project": "p", "symptoms": symptoms, "data.preference_pairs": pairs,
                             "data.binary_feedback": feedback})
    ask(prompt)
    assert ("data.preference_file" in keys) is asked


def test_the_data_file_conditions_directly():
    def asked(key: str, **data: int) -> bool:
        return should_ask(Q[key], {"data": data})

    assert not asked("data.train_file") and not asked("data.train_file", labeled_examples=0)
    assert asked("data.train_file", labeled_examples=1)
    assert not asked("data.eval_file", eval_examples=0) and asked("data.eval_file", eval_examples=1)
    assert not asked("data.preference_file", preference_pairs=0, binary_feedback=0)
    assert asked("data.preference_file", preference_pairs=1) and asked("data.preference_file", binary_feedback=1)


def test_data_file_answers_land_in_the_answers_and_blank_means_not_given():
    prompt, keys = scripted({"project": "p", "symptoms": "preference", "data.labeled_examples": "10",
                             "data.train_file": "data/train.jsonl", "data.preference_pairs": "5",
                             "data.preference_file": "'my prefs.jsonl'", "data.eval_examples": "20",
                             "data.eval_file": ""})
    raw = ask(prompt)
    assert raw["data"]["train_file"] == "data/train.jsonl"
    assert raw["data"]["preference_file"] == "my prefs.jsonl"  # quotes from a pasted path are dropped
    assert "eval_file" not in raw["data"] and "data.eval_file" in keys
    d = validate_answers(raw).data
    assert (d.train_file, d.preference_file, d.eval_file) == ("data/train.jsonl", "my prefs.jsonl", None)
    assert parse(Q["data.eval_file"], '""') is None


def test_data_file_questions_explain_the_path_and_the_check():
    for key in FILES:
        q = Q[key]
        assert q.kind == "text" and q.default is None and not q.required and "JSONL" in q.text
        assert "relative path" in q.help and "folder the answers are saved in" in q.help
        assert "current folder" in q.help and "advise data check FILE" in q.help and "blank: no file" in q.help


def test_every_question_condition_is_valid_in_the_rules_language():
    facts = answer_facts()
    assert set(FILES) <= facts
    for q in QUESTIONS:
        assert q.key in facts
        if q.ask_if:
            assert _check_condition(q.ask_if, q.key, facts, set()) == [], q.key


# ---- on the terminal ----------------------------------------------------------------------------
def test_the_terminal_prompt_shows_the_choices_and_reads_answers_as_typed(catalog):
    from advisor.cli.plan import _click_prompt

    # project, kind, description, symptoms, prompting, few_shot, structured outputs, labeled, train file, eval,
    # eval file, api, open weights, base, gpus, gpu count (0 is re-asked), budget, adapters
    replies = ["Docs bot", "Extraction", "", " FORMAT ", "Partly", "not tried", "", "3k", '"data/train.jsonl"', "1,200",
               "", "", "Y", "", "", "", "0", "1", "$1,500.50", "", ""]
    with CliRunner().isolation(input="\n".join(replies) + "\n") as (_, _, output):
        raw = ask(_click_prompt(catalog))
        shown = output.getvalue().decode()
    assert "What does the model do? (classification/extraction/" in shown
    assert "Have examples in the prompt (few-shot) been tried? (fixed/partly/failed/not_tried)" in shown
    assert "advise data check FILE" in shown and "Training file (JSONL; blank: none yet)" in shown
    assert "0: too small; give a whole number from 1 to 64" in shown
    assert "Eval file (JSONL; blank: none yet)" in shown and "Preference or feedback file" not in shown
    a = validate_answers(raw, "typed", catalog).to_dict()
    assert a["task"]["kind"] == "extraction" and a["symptoms"] == ["format"]
    assert a["tried"] == {"prompting": "partly", "few_shot": "not_tried", "rag": "not_tried", "tools": "not_tried",
                          "structured_output": "not_tried"}
    assert a["data"]["labeled_examples"] == 3000 and a["data"]["train_file"] == "data/train.jsonl"
    assert a["data"]["eval_examples"] == 1200 and a["data"]["eval_file"] is None
    assert a["budget"]["training_usd"] == 1500.5 and a["hardware"]["gpu_count"] == 1


SERVING_QUESTIONS = ("workload.peak_to_average", "workload.latency_p95_ms", "deployment.quantized_ok")


@pytest.mark.parametrize("requests,open_weights,asked", [(None, True, False), (1000, True, True), (1000, False, False)])
def test_the_serving_questions_are_asked_only_for_a_self_hostable_workload(requests, open_weights, asked):
    raw = {"symptoms": ["cost"], "model": {"open_weights_ok": open_weights}}
    if requests is not None:
        raw["workload"] = {"requests_per_month": requests}
    assert all(should_ask(Q[k], raw) == asked for k in SERVING_QUESTIONS)


def test_the_serving_answers_follow_the_schemas_limits():
    assert parse(Q["workload.peak_to_average"], "3") == 3.0
    assert parse(Q["workload.peak_to_average"], "") is None
    with pytest.raises(ValueError):
        parse(Q["workload.peak_to_average"], "0.5")  # below 1: the peak cannot be under the average
    assert parse(Q["workload.latency_p95_ms"], "1,500") == 1500.0
    assert parse(Q["deployment.quantized_ok"], "Yes") is True and parse(Q["deployment.quantized_ok"], "") is False
    validate_answers({"project": "p", "symptoms": ["cost"], "workload": {"peak_to_average": 3.0,
                                                                         "latency_p95_ms": 1500.0},
                      "deployment": {"quantized_ok": True}})


@pytest.mark.parametrize(("adapters", "labeled", "asked"), [
    (1, 5000, False), (2, 5000, True), (300, 150_000, True), (300, 0, False)])
def test_examples_per_tenant_are_asked_only_with_several_adapters_and_examples(adapters, labeled, asked):
    raw = {"deployment": {"adapters": adapters}, "data": {"labeled_examples": labeled}}
    assert should_ask(Q["data.examples_per_adapter"], raw) is asked


def test_languages_are_read_as_iso_codes_and_anything_else_is_refused_in_one_line():
    q = Q["task.languages"]
    assert parse(q, " EN, ja,en ") == ["en", "ja"] and parse(q, "") is None
    with pytest.raises(ValueError, match=r"'english' is not a language code: give two-letter ISO 639-1 codes"):
        parse(q, "english, de")
    assert should_ask(q, {"model": {"open_weights_ok": True}}) and not should_ask(q, {"model": {"open_weights_ok": False}})
