"""``advise data check``: every problem on its line with its reason, statistics, verdicts, CLI exit codes.

Fixture files live in ``data_fixtures/`` (one per kind of problem, plus clean files of each format).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor import datacheck
from advisor.cli import main
from advisor.contract.errors import AdviseError
from advisor.datacheck import DataReport, check_data
from advisor.datacheck import scan as datacheck_scan
from tests.helpers import assert_imports_none_of, cli_code

FIX = Path(__file__).parent / "data_fixtures"


def problems(report: DataReport) -> list[tuple[int, str, str]]:
    return [(p.line, p.code, p.reason) for p in report.problems]


def codes(report: DataReport) -> set[str]:
    return {v.code for v in report.verdicts}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(u: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}


# ---- clean files of each format ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,kind,lines", [
    ("sft_clean.jsonl", "sft", 5), ("dpo_clean.jsonl", "dpo", 3), ("dpo_messages_clean.jsonl", "dpo", 2),
    ("kto_clean.jsonl", "kto", 3), ("text_clean.jsonl", "text", 2),
])
def test_clean_files_of_each_format_are_detected_and_valid(name, kind, lines):
    r = check_data(FIX / name)
    assert (r.kind, r.kind_source) == (kind, "detected")
    assert (r.lines_total, r.valid_examples, r.invalid_lines, r.problems_total) == (lines, lines, 0, 0)
    assert r.p50_tokens <= r.p95_tokens <= r.max_tokens and r.total_tokens >= r.max_tokens > 0
    assert not r.tokens_exact and r.token_method.startswith("estimate: ~4 characters per token")
    assert "invalid_lines" not in codes(r)


def test_chat_turn_statistics():
    t = check_data(FIX / "sft_clean.jsonl").turns
    assert t is not None
    assert (t.messages_min, t.messages_p50, t.messages_max) == (2, 3, 4)  # 3, 2, 4, 4, 2 messages
    assert (t.multi_turn_examples, t.examples_with_system, t.examples_with_tools) == (2, 1, 1)


# ---- one fixture per kind of problem: line, code and reason pinned ----------------------------------------

CASES = {
    "invalid_json.jsonl": [(2, "invalid_json", "invalid JSON: Expecting ',' delimiter at column 48"),
                           (3, "invalid_json", "invalid JSON: Expecting value at column 1")],
    "json_array.json": [(1, "invalid_json", ("invalid JSON: Expecting value at column 95 (the file looks like a "
                         "JSON array; JSONL holds one object per line)")),
                        (2, "invalid_json", "invalid JSON: Expecting value at column 1")],
    "non_utf8.jsonl": [(2, "invalid_utf8", ("byte 0xe9 at byte 47 of the line is not UTF-8; re-encode the file "
                        "as UTF-8"))],
    "blank_lines.jsonl": [(2, "blank_line", "blank line; remove it (JSONL holds one JSON object per line)"),
                          (3, "blank_line", "blank line; remove it (JSONL holds one JSON object per line)")],
    "missing_key.jsonl": [(2, "missing_key", "messages[0] has no 'content'"),
                          (3, "missing_key", "missing key 'messages' (an sft line holds 'messages')")],
    "extra_key.jsonl": [(2, "extra_key", ("extra keys 'id', 'source' (an sft line holds 'messages' and optionally "
                         "'tools'); remove them")),
                        (3, "extra_key", ("messages[0] has extra key 'lang' (a message holds role, content and "
                         "optionally name, tool_calls, tool_call_id); remove them"))],
    "wrong_type.jsonl": [(2, "wrong_type", "'messages' must be a list of messages, got a string"),
                         (3, "wrong_type", "messages[0].content must be a string, got a number"),
                         (4, "not_object", ("the line is a list, not a JSON object; each line holds one example "
                          "object")),
                         (5, "wrong_type", "'tools' must be a list of tool definitions (objects), got a string")],
    "empty_content.jsonl": [(2, "empty_content", ("messages[1].content (assistant) is empty; remove the turn or "
                             "fill it in")),
                            (3, "empty_content", "'messages' is an empty list; give at least one message")],
    "roles_two_user.jsonl": [(2, "role_order", ("messages[0] and messages[1] are both user turns; roles must "
                              "alternate (merge them, or add the missing turn between them)"))],
    "roles_no_assistant.jsonl": [(2, "no_assistant_turn", ("'messages' has no assistant turn: nothing to learn "
                                  "from; add the answer"))],
    "roles_system_not_first.jsonl": [(2, "role_order", ("messages[1] is a system turn after the first turn; the "
                                      "system message must come first"))],
    "roles_assistant_first.jsonl": [(2, "role_order", ("messages[0] is an assistant turn before any user turn; "
                                     "start the conversation with a user turn"))],
    "roles_ends_on_user.jsonl": [(2, "role_order", ("'messages' ends on a user turn (messages[2]); end on the "
                                  "assistant's answer"))],
    "unknown_role.jsonl": [(2, "unknown_role", ("messages[0].role 'human' is not one of system, user, assistant, "
                            "tool")),
                           (2, "unknown_role", ("messages[1].role 'gpt' is not one of system, user, assistant, "
                            "tool"))],
    "chosen_equals_rejected.jsonl": [(2, "chosen_equals_rejected", ("'chosen' and 'rejected' are identical: the "
                                      "pair teaches nothing; fix or remove it"))],
    "dpo_mixed_forms.jsonl": [(2, "wrong_type", ("'prompt' is a string but 'chosen' is a list; give 'prompt', "
                               "'chosen', 'rejected' in the same form (all strings or all message lists)")),
                              (3, "role_order", ("chosen[0] is a user turn; 'chosen' holds only the answer "
                               "(assistant turns), the conversation before it goes in 'prompt'"))],
    "kto_bad_label.jsonl": [(2, "wrong_type", "'label' must be true or false, got a string (\"false\")"),
                            (3, "wrong_type", "'label' must be true or false, got a number (1)")],
    "mixed_kinds.jsonl": [(3, "mixed_kind", ("a dpo line (keys 'chosen', 'prompt', 'rejected') in an sft file "
                           "(detected from the first 1000 lines); keep one kind per file")),
                          (4, "mixed_kind", ("a text line (keys 'text') in an sft file (detected from the first "
                           "1000 lines); keep one kind per file"))],
    "unknown_format.jsonl": [(1, "unknown_format", ("keys 'answer', 'question' match no format (messages | prompt, "
                              "chosen, rejected | prompt, completion, label | text)")),
                             (2, "unknown_format", ("keys 'input', 'output' match no format (messages | prompt, "
                              "chosen, rejected | prompt, completion, label | text)"))],
    "surrogate.jsonl": [(2, "invalid_unicode", ("a string holds an unpaired surrogate escape (such as \\ud800), "
                         "which is not valid Unicode; fix the text"))],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_problem_is_reported_on_its_line_with_its_reason(name):
    r = check_data(FIX / name)
    assert problems(r) == CASES[name]
    bad_lines = {line for line, _, _ in CASES[name]}
    assert r.invalid_lines == len(bad_lines)
    assert r.valid_examples + r.invalid_lines == r.lines_total  # nothing skipped silently
    assert r.problems_total == len(CASES[name])
    assert "invalid_lines" in codes(r)
    assert dict(r.problem_counts) == {c: sum(1 for _, x, _ in CASES[name] if x == c) for _, c, _ in CASES[name]}


def test_every_fixture_file_is_covered():
    clean = {"sft_clean.jsonl", "sft_eval.jsonl", "dpo_clean.jsonl", "dpo_messages_clean.jsonl",
             "kto_clean.jsonl", "text_clean.jsonl", "duplicates.jsonl", "labels_imbalanced.jsonl"}
    assert {p.name for p in FIX.iterdir()} == clean | set(CASES)


def test_bom_and_tool_turns(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(chat("a", "b")).encode() + b"\n")
    assert problems(check_data(f, kind="sft")) == [
        (1, "utf8_bom", "the file starts with a UTF-8 byte order mark; save it as UTF-8 without BOM")]
    tool_first = {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"},
                               {"role": "assistant", "content": "z"}]}
    user_calls = {"messages": [{"role": "user", "content": "x", "tool_calls": [{"id": 1}]},
                               {"role": "assistant", "content": "z"}]}
    r = check_data(write_jsonl(tmp_path / "t.jsonl", [tool_first, user_calls]), kind="sft")
    assert problems(r) == [
        (1, "role_order", "messages[1] is a tool turn that does not follow an assistant turn"),
        (2, "role_order", "messages[0] is a user turn with tool_calls; only assistant turns call tools")]


def test_kind_given_reports_lines_of_another_kind(tmp_path):
    r = check_data(FIX / "sft_clean.jsonl", kind="dpo")
    assert r.kind_source == "given" and r.valid_examples == 0 and r.invalid_lines == 5
    assert problems(r)[0] == (1, "mixed_kind", ("an sft line (keys 'messages') in a dpo file (--kind); keep one "
                              "kind per file"))
    assert {"mixed_kinds", "no_valid_examples"} <= codes(r)
    only_prompt = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hi"}])
    assert problems(check_data(only_prompt, kind="dpo")) == [
        (1, "missing_key", "missing keys 'chosen', 'rejected' (a dpo line holds 'prompt', 'chosen', 'rejected')")]


def test_mixed_kinds_verdict_names_the_other_kinds():
    r = check_data(FIX / "mixed_kinds.jsonl")
    v = {x.code: x for x in r.verdicts}["mixed_kinds"]
    assert v.severity == "error"
    assert v.message == ("the file mixes kinds: sft and dpo on 1 line (first at line 3), text on 1 line (first at "
                         "line 4); keep one kind per file")


def test_stored_problems_are_capped_but_all_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(datacheck_scan, "PROBLEMS_KEPT", 10)
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(chat("a", "b")) + "\n" + "{oops\n" * 25)
    r = check_data(f)
    assert (r.problems_total, len(r.problems), r.problems_left_out, r.invalid_lines) == (25, 10, 15, 25)
    d = r.to_dict()
    assert d["problems_left_out"] == 15 and d["problem_counts"] == {"invalid_json": 25}


# ---- statistics --------------------------------------------------------------------------------------------


def test_exact_and_near_duplicates():
    r = check_data(FIX / "duplicates.jsonl")
    assert (r.exact_duplicates, r.near_duplicates, r.duplicate_share) == (1, 1, 0.4)
    assert r.duplicate_lines == ((3, 1, True), (4, 1, False))
    assert "heavy_duplication" in codes(r)


def test_eval_overlap_and_size():
    r = check_data(FIX / "sft_clean.jsonl", eval_path=FIX / "sft_eval.jsonl")
    assert r.eval is not None and r.eval.kind_source == "training file" and r.eval.valid_examples == 3
    assert r.eval_overlap_examples == 1 and r.eval_overlap_lines == ((2, 2),)  # case/punctuation differ only
    assert {"eval_overlaps_train", "eval_too_small"} <= codes(r) and "no_eval_set" not in codes(r)
    d = r.to_dict()
    assert d["eval_overlap"] == {"examples": 1, "share": 0.3333, "lines": [{"eval_line": 2, "train_line": 2}]}
    assert "no_eval_set" in codes(check_data(FIX / "sft_clean.jsonl"))


def test_label_distribution_of_classification_like_answers():
    r = check_data(FIX / "labels_imbalanced.jsonl")
    assert r.labels is not None
    assert r.labels.counts == (("positive", 23), ("negative", 2)) and r.labels.imbalance_ratio == 11.5
    v = {x.code: x for x in r.verdicts}["label_imbalance"]
    assert v.severity == "warning" and "'positive' 23 vs 'negative' 2 (11.5:1)" in v.message
    assert check_data(FIX / "sft_clean.jsonl").labels is None  # free-form answers are not labels


def test_kto_label_balance_gives_trl_weight_range():
    r = check_data(FIX / "kto_clean.jsonl")
    assert (r.kto_desirable, r.kto_undesirable) == (2, 1)
    v = {x.code: x for x in r.verdicts}["kto_unbalanced"]
    assert "set desirable_weight in [0.5, 0.67]" in v.message


def test_max_length_share_and_truncated_tokens(tmp_path):
    f = write_jsonl(tmp_path / "len.jsonl", [{"text": "x" * 400}, {"text": "y" * 40}, {"text": "z" * 4000}])
    r = check_data(f, max_length=50)  # estimate: 100, 10 and 1000 tokens
    assert (r.p50_tokens, r.max_tokens, r.total_tokens) == (100, 1000, 1110)
    assert (r.over_max_length_examples, r.truncated_tokens, r.over_max_length_lines) == (2, 50 + 950, (1, 3))
    assert r.over_max_length_share == 0.6667 and "over_max_length" in codes(r)


def test_dpo_counts_both_sequences_and_the_longest_sets_the_length(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p" * 40, "chosen": "c" * 80, "rejected": "r" * 400}])
    r = check_data(f)
    assert (r.max_tokens, r.total_tokens) == (110, 30 + 110)


@pytest.mark.parametrize("n,expected,absent", [
    (5, "too_few_examples", "thin_data"), (99, "too_few_examples", "thin_data"),
    (100, "thin_data", "too_few_examples"), (499, "thin_data", "too_few_examples"),
])
def test_example_count_verdicts(tmp_path, n, expected, absent):
    f = write_jsonl(tmp_path / "n.jsonl", [chat(f"question {i}", f"answer number {i} is here") for i in range(n)])
    c = codes(check_data(f))
    assert expected in c and absent not in c


def test_enough_examples_and_a_good_eval_set_give_no_count_verdicts(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [chat(f"question {i}", f"answer {i} here") for i in range(500)])
    ev = write_jsonl(tmp_path / "eval.jsonl", [chat(f"held out {i}", f"reply {i} there") for i in range(50)])
    r = check_data(train, eval_path=ev)
    assert codes(r) == {"tokens_estimated"}
    assert r.eval is not None and codes(r.eval) == set()


# ---- tokenizer -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A tiny byte-level BPE with a ChatML template, trained offline and saved like a Hub tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [line for f in FIX.glob("*clean.jsonl") for line in f.read_text().splitlines()]
    tok.train_from_iterator(corpus * 5, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] or '' }}"
                          "<|im_end|>\n{% endfor %}")
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return path


def test_tokenizer_counts_are_exact(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    r = check_data(FIX / "sft_clean.jsonl", tokenizer=str(tokenizer_dir))
    assert r.tokens_exact and r.token_method == f"tokenizer {tokenizer_dir}"
    rows = [json.loads(x) for x in (FIX / "sft_clean.jsonl").read_text().splitlines()]
    lengths = sorted(len(tok.apply_chat_template(x["messages"], tokenize=True)["input_ids"]) for x in rows)
    assert (r.total_tokens, r.max_tokens, r.p50_tokens) == (sum(lengths), lengths[-1], lengths[2])
    assert "tokens_estimated" not in codes(r)

    text = check_data(FIX / "text_clean.jsonl", tokenizer=tok)  # a loaded tokenizer works too
    texts = [json.loads(x)["text"] for x in (FIX / "text_clean.jsonl").read_text().splitlines()]
    assert text.total_tokens == sum(len(tok(t)["input_ids"]) + 1 for t in texts)  # + EOS

    dpo = check_data(FIX / "dpo_clean.jsonl", tokenizer=tok)
    rows = [json.loads(x) for x in (FIX / "dpo_clean.jsonl").read_text().splitlines()]
    n = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])
    assert dpo.total_tokens == sum(2 * n(x["prompt"]) + n(x["chosen"]) + n(x["rejected"]) + 2 for x in rows)


def test_chat_template_that_refuses_an_example_is_a_problem(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    tok.chat_template = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
                         "supported') }}{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    r = check_data(FIX / "sft_clean.jsonl", tokenizer=tok)
    assert problems(r) == [(1, "chat_template_error", ("the tokenizer's chat template refused this example: "
                            "System role not supported"))]


def test_tokenizer_without_chat_template_is_not_exact_for_chat(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    tok.chat_template = None
    r = check_data(FIX / "sft_clean.jsonl", tokenizer=tok)
    assert not r.tokens_exact and "no chat template" in r.token_method
    assert check_data(FIX / "text_clean.jsonl", tokenizer=tok).tokens_exact


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing", "is not a local directory; pass a folder saved with save_pretrained"),
    (lambda p: p, "holds no tokenizer files (tokenizer.json, tokenizer_config.json"),
])
def test_bad_tokenizer_path_is_one_line_error(tmp_path, make, message):
    with pytest.raises(AdviseError, match=r"^tokenizer '.*' " + message.replace("(", r"\(")) as e:
        check_data(FIX / "sft_clean.jsonl", tokenizer=str(make(tmp_path)))
    assert "\n" not in str(e.value)


def test_broken_tokenizer_folder_is_one_line_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(AdviseError, match=r"does not load \(.*\); pass a folder saved with save_pretrained$") as e:
        check_data(FIX / "sft_clean.jsonl", tokenizer=str(tmp_path))
    assert "\n" not in str(e.value)


# ---- API errors and determinism ------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,message", [
    ({"path": "/nonexistent/x.jsonl"}, "data file '/nonexistent/x.jsonl' does not exist; pass the path of a JSONL"),
    ({"path": str(FIX)}, "is a directory, not a regular file; pass the path of a JSONL file"),
    ({"path": FIX / "sft_clean.jsonl", "kind": "chat"}, "kind 'chat' is not one of sft, dpo, kto, text"),
    ({"path": FIX / "sft_clean.jsonl", "max_length": 0}, "max_length must be a positive whole number of tokens"),
    ({"path": FIX / "sft_clean.jsonl", "eval_path": "/nonexistent/e.jsonl"}, "eval file '/nonexistent/e.jsonl'"),
])
def test_user_errors_raise_advise_error(kwargs, message):
    with pytest.raises(AdviseError, match=message.replace("(", r"\(")):
        check_data(**kwargs)


def test_empty_file_is_a_report_with_an_error_verdict(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_bytes(b"")
    for kind in (None, "sft"):
        r = check_data(f, kind=kind)
        assert (r.lines_total, r.valid_examples, r.p95_tokens) == (0, 0, 0)
        assert [(v.code, v.severity, v.message) for v in r.verdicts] == [
            ("empty_file", "error", "the file is empty: it holds no example")]


def test_report_dict_is_deterministic_and_json_ready():
    a = check_data(FIX / "duplicates.jsonl", eval_path=FIX / "sft_eval.jsonl", max_length=8).to_dict()
    b = check_data(FIX / "duplicates.jsonl", eval_path=FIX / "sft_eval.jsonl", max_length=8).to_dict()
    assert json.dumps(a) == json.dumps(b)
    for key in ("valid_examples", "p95_tokens", "total_tokens", "kind", "tokens_exact", "verdicts", "problems"):
        assert key in a


# ---- fuzzing: random lines never crash the checker ---------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "bot", "", 3])
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": st.one_of(st.text(max_size=20), json_values)}),
                    max_size=5)
shaped = st.one_of(
    st.fixed_dictionaries({"messages": st.one_of(messages, json_values)}),
    st.fixed_dictionaries({"prompt": st.one_of(st.text(), messages), "chosen": st.one_of(st.text(), messages),
                           "rejected": st.one_of(st.text(), messages, json_values)}),
    st.fixed_dictionaries({"prompt": st.text(), "completion": st.one_of(st.text(), messages),
                           "label": json_values}),
    st.fixed_dictionaries({"text": json_values}),
    st.dictionaries(st.sampled_from(["messages", "prompt", "chosen", "rejected", "completion", "label", "text",
                                     "tools", "id"]), json_values, max_size=4),
)
lines = st.lists(
    st.one_of(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ")),
              json_values.map(lambda v: json.dumps(v).encode()),
              shaped.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=lines, ev=lines, kind=st.sampled_from([None, *datacheck.KINDS]), max_length=st.sampled_from([None, 4]))
def test_fuzzed_lines_never_crash_the_checker(train, ev, kind, max_length):
    with tempfile.TemporaryDirectory() as d:
        tf, ef = Path(d) / "train.jsonl", Path(d) / "eval.jsonl"
        tf.write_bytes(b"\n".join(train))
        ef.write_bytes(b"\n".join(ev))
        try:
            r = check_data(tf, kind=kind, eval_path=ef, max_length=max_length)
        except AdviseError as e:  # not UTF-8 text at all (a UTF-16/32 BOM, mostly NUL bytes): one line
            assert "is not UTF-8 text" in str(e) and "\n" not in str(e)
            return
        for rep in (r, r.eval):
            assert rep is not None
            assert rep.valid_examples + rep.invalid_lines == rep.lines_total
            assert rep.invalid_lines <= rep.problems_total == sum(n for _, n in rep.problem_counts)
            assert all(p.reason and "\n" not in p.reason and 1 <= p.line <= rep.lines_total for p in rep.problems)
        json.dumps(r.to_dict())


# ---- command line ----------------------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(main, ["data", "check", *args])


def test_cli_summary_then_exit_1_on_error_verdicts():
    r = run(str(FIX / "sft_clean.jsonl"), "--eval", str(FIX / "sft_eval.jsonl"), "--max-length", "20")
    assert r.exit_code == 1, r.output
    assert r.stderr == "not ready: 2 ERROR verdicts (too_few_examples, eval_overlaps_train)\n"
    for text in ("sft_clean.jsonl: sft (detected); 5 lines: 5 valid, 0 invalid", "messages per example: 2-4",
                 "tokens per example (estimate: ~4 characters per token", "over 20 tokens:",
                 "Eval ", "overlap with training: 1 example (33.3%): eval line 2 = train line 2", "Verdicts:",
                 "ERROR    eval_overlaps_train"):
        assert text in r.output


def test_cli_json_is_the_report_dict_and_byte_identical():
    args = (str(FIX / "duplicates.jsonl"), "--json")
    a, b = run(*args), run(*args)
    assert a.exit_code == 1 and a.stdout == b.stdout  # 5 examples: too_few_examples is an ERROR verdict
    assert json.loads(a.stdout) == check_data(FIX / "duplicates.jsonl").to_dict() | {
        "path": str(FIX / "duplicates.jsonl")}


def test_cli_invalid_lines_exit_1_after_printing_with_or_without_strict():
    for strict in ((), ("--strict",)):
        r = run(str(FIX / "wrong_type.jsonl"), *strict, "--json")
        assert r.exit_code == 1
        assert json.loads(r.stdout)["invalid_lines"] == 4
        assert "invalid_lines" in r.stderr and r.stderr.startswith("--strict: " if strict else "not ready: ")


def test_cli_problems_table_names_lines():
    r = run(str(FIX / "roles_two_user.jsonl"))
    assert "line 2       role_order             messages[0] and messages[1] are both user turns" in r.output


@pytest.mark.parametrize("args,message", [
    (("/nonexistent.jsonl",), "Error: data file '/nonexistent.jsonl' does not exist"),
    ((str(FIX / "sft_clean.jsonl"), "--kind", "chat"), "Invalid value for '--kind'"),
    ((str(FIX / "sft_clean.jsonl"), "--max-length", "0"), "Invalid value for '--max-length'"),
    ((str(FIX / "sft_clean.jsonl"), "--tokenizer", "/nonexistent-tok"), "Error: tokenizer '/nonexistent-tok' is not"),
    ((str(FIX / "sft_clean.jsonl"), "--eval", "/nonexistent.jsonl"), "Error: eval file '/nonexistent.jsonl'"),
])
def test_cli_user_errors_exit_2_with_one_line(args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len([x for x in r.output.splitlines() if x.startswith("Error:")]) == 1


def test_data_check_without_tokenizer_imports_no_torch():
    code = cli_code(["data", "check", str(FIX / "sft_clean.jsonl"), "--json"]).replace(
        "assert r.exit_code == 0", "assert r.exit_code == 1 and r.exception.code == 1")  # too_few_examples
    assert_imports_none_of(code)
