"""``advise data check`` on hostile input: a line over the length cap, duplicate keys, NaN/Infinity, nesting,
files that are not regular UTF-8 files, control and bidi characters bound for the terminal, and the exit codes
(0 ready, 1 an ERROR verdict or with --strict a WARNING one, 2 the check could not run: one ``Error:`` line).

Every file is written to ``tmp_path`` and checked through the real command line.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.cli import main
from advisor.datacheck import MAX_LINE_BYTES, check_data
from advisor.datacheck import formats as datacheck_formats
from advisor.datacheck.formats import SKIP_CHUNK_BYTES, read_lines, terminal_safe
from tests.helpers import ROOT

FIX = Path(__file__).parent / "data_fixtures"
MIB = 1024 * 1024
# what must never reach the terminal raw: C0/C1 controls and DEL, bidi embeddings/overrides/isolates and marks,
# line/paragraph separators, lone surrogates (the newline between lines is the only control allowed)
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def run(*args: str):
    return CliRunner().invoke(main, ["data", "check", *args])


def chat(u: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def problems(path: Path, **kw) -> list[tuple[int, str, str]]:
    return [(p.line, p.code, p.reason) for p in check_data(path, **kw).problems]


def text_line(size: int) -> bytes:
    """A valid ``{"text": "..."}`` line of exactly ``size`` bytes."""
    head, tail = b'{"text": "', b'"}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def one_error_line(r) -> str:
    """The whole output of an exit-2 run: exactly one line, ``Error: ...``, and no traceback."""
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.output, r.output
    return lines[0]


# ---- 1. lines over the length cap -----------------------------------------------------------------------


def test_line_cap_is_4_mib_and_documented():
    assert MAX_LINE_BYTES == 4 * MIB  # moving the cap is a decision: change this, the README and the comment
    readme = (ROOT / "README.md").read_text()
    assert "longer than 4 MiB" in readme[readme.index("`advise data check FILE"):][:3000]


def test_line_at_the_cap_is_parsed_and_one_byte_over_is_a_problem(tmp_path):
    f = tmp_path / "long.jsonl"
    with open(f, "wb") as out:
        out.write(json.dumps({"text": "first"}).encode() + b"\n")
        out.write(text_line(MAX_LINE_BYTES) + b"\n")  # at the cap: parsed
        out.write(text_line(MAX_LINE_BYTES) + b"\r\n")  # at the cap with CRLF: the line ending does not count
        out.write(text_line(MAX_LINE_BYTES + 1) + b"\n")  # just over: a problem on its line
        out.write(text_line(MAX_LINE_BYTES + 1) + b"\r\n")
        out.write(json.dumps({"text": "after"}).encode() + b"\n")  # the reader is back on track
        out.write(text_line(3 * MAX_LINE_BYTES + 5))  # over, and the last line without a newline
    r = check_data(f)
    over = "longer than 4 MiB ({:,} bytes); not parsed: one line holds one example, split or shorten it"
    assert [(p.line, p.code, p.reason) for p in r.problems] == [
        (4, "line_too_long", over.format(MAX_LINE_BYTES + 1)),
        (5, "line_too_long", over.format(MAX_LINE_BYTES + 1)),
        (7, "line_too_long", over.format(3 * MAX_LINE_BYTES + 5)),
    ]
    assert (r.lines_total, r.valid_examples, r.invalid_lines) == (7, 4, 3)
    assert r.max_tokens == (MAX_LINE_BYTES - len('{"text": ""}')) // 4  # the line at the cap was measured


def test_long_line_is_skipped_without_being_held(tmp_path):
    f = tmp_path / "huge.jsonl"
    with open(f, "wb") as out:
        out.write(b'{"text": "')
        out.writelines(b"x" * SKIP_CHUNK_BYTES for _ in range(6 * MAX_LINE_BYTES // SKIP_CHUNK_BYTES))
        out.write(b'"}\n{"text": "next"}\n')
    tracemalloc.start()
    try:
        got = [(n, line if isinstance(line, int) else bytes(line)) for n, line in read_lines(f)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [(1, 6 * MAX_LINE_BYTES + 12), (2, b'{"text": "next"}')]
    # readline(cap) joins its pieces (twice the cap at the peak), then 1 MiB pieces; never the whole line (6x the cap)
    assert peak < 2 * MAX_LINE_BYTES + 3 * SKIP_CHUNK_BYTES


def test_cli_reports_the_long_line_and_exits_1(tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_bytes(text_line(MAX_LINE_BYTES + 1) + b"\n" + json.dumps(chat("q", "a")).encode() + b"\n")
    r = run(str(f))
    assert r.exit_code == 1, r.output
    assert re.search(r"line 1 +line_too_long +longer than 4 MiB \(4,194,305 bytes\); not parsed", r.output)


# ---- 2. duplicate keys, NaN/Infinity, nesting --------------------------------------------------------------


def test_duplicate_keys_are_an_invalid_line_naming_the_key(tmp_path):
    good = json.dumps(chat("q", "a"))
    msgs = json.dumps(chat("q", "a")["messages"])
    f = tmp_path / "dup.jsonl"
    f.write_text(f'{{"messages": {msgs}, "messages": {msgs}}}\n'
                 '{"messages": [{"role": "user", "role": "assistant", "content": "x"}]}\n'
                 f"{good}\n")
    dup = ("key '{}' appears twice in one object; JSON readers keep one of the values (Python's the last) and drop "
           "the other silently: remove one")
    r = check_data(f)
    assert [(p.line, p.code, p.reason) for p in r.problems] == [
        (1, "duplicate_key", dup.format("messages")), (2, "duplicate_key", dup.format("role"))]
    assert (r.valid_examples, r.invalid_lines) == (1, 2)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_an_invalid_line_naming_them(tmp_path, literal):
    f = tmp_path / "nan.jsonl"
    f.write_text('{"prompt": "p", "completion": "c", "label": true, "score": ' + literal + "}\n")
    assert problems(f, kind="kto") == [(1, "non_standard_json", (f"{literal} is not valid JSON (only JavaScript and "
                                        "Python write it); use a number or null"))]


@pytest.mark.parametrize("line", [b"[" * 100_000, b'{"a": ' * 100_000, b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000
                                  + b"}"])
def test_deep_nesting_is_reported_never_a_traceback(tmp_path, line):
    f = tmp_path / "deep.jsonl"
    f.write_bytes(line + b"\n" + json.dumps(chat("q", "a")).encode() + b"\n")
    assert problems(f, kind="sft") == [(1, "too_deep", "JSON nested too deeply to parse; flatten it")]
    r = run(str(f), "--kind", "sft")
    assert r.exit_code == 1 and r.exception is not None and isinstance(r.exception, SystemExit), r.output
    assert "too_deep" in r.output and "Traceback" not in r.output


def test_nesting_that_parses_but_is_deep_is_checked_without_a_crash(tmp_path):
    deep = "[" * 900 + "]" * 900
    f = tmp_path / "deepish.jsonl"
    f.write_text(f'{{"prompt": "p", "completion": "c", "label": {deep}}}\n'
                 f'{{"messages": [{{"role": "assistant", "content": "x", "tool_calls": [{{"a": {deep}}}]}}]}}\n')
    r = check_data(f, kind="kto")
    assert r.invalid_lines == 2 and r.valid_examples + r.invalid_lines == r.lines_total


# ---- 3. exit codes ------------------------------------------------------------------------------------------


def test_help_documents_the_exit_codes():
    r = CliRunner().invoke(main, ["data", "check", "--help"])
    assert r.exit_code == 0
    for text in ("Exit codes", "0  ready: no ERROR verdict", "1  not ready: an ERROR verdict",
                 "2  the check could not run"):
        assert text in r.output


@pytest.mark.parametrize("strict", [(), ("--strict",)])
def test_empty_file_exits_1_with_an_error_verdict(tmp_path, strict):
    f = tmp_path / "empty.jsonl"
    f.write_bytes(b"")
    r = run(str(f), *strict)
    assert r.exit_code == 1, r.output
    assert "ERROR    empty_file" in r.output
    assert r.output.index("Verdicts:") < r.output.index("not ready: 1 ")  # the report first, then the exit
    assert r.stderr.endswith(" verdict (empty_file)\n")


def test_ready_data_exits_0_and_strict_fails_on_warnings_only(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [chat(f"question {i}", f"answer {i} here") for i in range(500)])
    ev = write_jsonl(tmp_path / "eval.jsonl", [chat(f"held out {i}", f"reply {i} there") for i in range(50)])
    assert run(str(train), "--eval", str(ev)).exit_code == 0  # only an INFO verdict
    assert run(str(train), "--eval", str(ev), "--strict").exit_code == 0
    r = run(str(train))  # WARNING no_eval_set, no ERROR
    assert r.exit_code == 0 and "WARNING  no_eval_set" in r.output
    r = run(str(train), "--strict")
    assert r.exit_code == 1 and r.stderr == "--strict: not ready: 1 ERROR or WARNING verdict (no_eval_set)\n"


def test_error_verdict_of_the_eval_file_exits_1(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [chat(f"question {i}", f"answer {i} here") for i in range(500)])
    ev = tmp_path / "eval.jsonl"
    ev.write_bytes(b"")
    r = run(str(train), "--eval", str(ev), "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["eval"]["verdicts"][0]["code"] == "empty_file"


def _symlink_loop(p: Path) -> Path:
    (p / "a").symlink_to(p / "b")
    (p / "b").symlink_to(p / "a")
    return p / "a"


def _utf16(p: Path) -> Path:
    f = p / "utf16.jsonl"
    f.write_text(json.dumps(chat("q", "a")) + "\n", encoding="utf-16")
    return f


def _utf16_no_bom(p: Path) -> Path:
    f = p / "utf16le.jsonl"
    f.write_bytes((json.dumps(chat("q", "a")) + "\n").encode("utf-16-le"))
    return f


def _gzip(p: Path) -> Path:
    f = p / "train.jsonl.gz"
    f.write_bytes(gzip.compress(json.dumps(chat("q", "a")).encode()))
    return f


def _dangling(p: Path) -> Path:
    (p / "link").symlink_to(p / "gone")
    return p / "link"


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing.jsonl", "data file '{}/missing.jsonl' does not exist; pass the path of a JSONL file"),
    (lambda p: p / "file.jsonl" / "x", "does not exist"),
    (lambda p: p, "data file '{}' is a directory, not a regular file; pass the path of a JSONL file"),
    (_dangling, "data file '{}/link' does not exist (a symlink to a missing file)"),
    (_symlink_loop, "data file '{}/a' is a symlink loop; point it at a JSONL file"),
    (lambda p: Path("/dev/null"), "data file '/dev/null' is a device, not a regular file"),
    (_utf16, "is not UTF-8 text: it is UTF-16 text (byte order mark); re-encode it as UTF-8"),
    (_utf16_no_bom, ("is not UTF-8 text: {n} of its first {size} bytes are NUL (UTF-16 or UTF-32 text, or "
                     "binary data); re-encode it as UTF-8")),
    (_gzip, "is not UTF-8 text: it is gzip-compressed; decompress it first (gunzip)"),
])
def test_files_that_cannot_be_checked_exit_2_with_one_line(tmp_path, make, message):
    (tmp_path / "file.jsonl").write_text("{}\n")
    path = make(tmp_path)
    size = path.stat().st_size if path.is_file() else 0
    line = one_error_line(run(str(path)))
    assert message.format(tmp_path, n=size // 2, size=size) in line
    ev = one_error_line(run(str(FIX / "sft_clean.jsonl"), "--eval", str(path)))
    assert ev.startswith("Error: eval file '")


def test_unreadable_file_exits_2(tmp_path, monkeypatch):
    f = tmp_path / "secret.jsonl"
    f.write_text(json.dumps(chat("q", "a")) + "\n")
    if os.geteuid() != 0:  # root reads any file: simulate the refusal instead
        f.chmod(0)
    else:
        real_open = os.open

        def refuse(path, *a, **k):
            if Path(path) == f:
                raise PermissionError(13, "Permission denied")
            return real_open(path, *a, **k)

        monkeypatch.setattr(os, "open", refuse)
    try:
        line = one_error_line(run(str(f)))
    finally:
        f.chmod(0o644)
    assert line == f"Error: data file '{f}' cannot be read (Permission denied); check its permissions"


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_fifo_and_dev_zero_are_refused_at_once_not_read_forever(tmp_path, target):
    if target == "fifo":
        target = str(tmp_path / "pipe.jsonl")
        os.mkfifo(target)  # nobody writes to it: opening it for reading would block
    out = subprocess.run([sys.executable, "-m", "advisor.cli", "data", "check", target], capture_output=True,
                         text=True, cwd=ROOT, timeout=120, check=False)
    assert out.returncode == 2 and out.stdout == ""
    what = "a FIFO (named pipe)" if target.endswith("pipe.jsonl") else "a device"
    assert out.stderr == f"Error: data file '{target}' is {what}, not a regular file; pass the path of a JSONL file\n"


# ---- 4. control and bidi characters never reach the terminal raw ------------------------------------------


def test_terminal_safe_escapes_controls_and_bidi():
    assert terminal_safe("a\x1b[31mb\u202ec\u2066d\x07\x9b\n") == "a\\x1b[31mb\\u202ec\\u2066d\\x07\\x9b\\n"
    assert terminal_safe("\ud800 caf\u00e9 \u65e5\u672c \U0001f600 \\x1b") == "\\ud800 caf\u00e9 \u65e5\u672c \U0001f600 \\x1b"
    s = "".join(chr(c) for c in range(0x10000))
    assert not UNSAFE.search(terminal_safe(s).replace("\n", ""))
    assert terminal_safe(terminal_safe(s)) == terminal_safe(s)  # already safe text comes back unchanged


def test_values_of_the_file_are_escaped_in_the_summary(tmp_path):
    evil = "\x1b[2J\u202eevil\u2066\x07\x9b"
    rows = [
        {"messages": [{"role": evil, "content": "x"}, {"role": "assistant", "content": "y"}]},  # unknown role
        {"messages": [{"role": "user", "content": "x", evil: 1}, {"role": "assistant", "content": "y"}]},  # extra key
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], evil: 2},
        {"messages": [{"role": "\ud800", "content": "x"}, {"role": "assistant", "content": "y"}]},  # lone surrogate
        *[chat(f"q{i}", evil if i % 2 else "ok") for i in range(30)],  # classification-like labels quoting evil
    ]
    f = tmp_path / f"name{evil}.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run(str(f))
    assert r.exit_code == 1 and r.exception is not None and isinstance(r.exception, SystemExit), r.output
    assert not UNSAFE.search(r.output), [m.group() for m in UNSAFE.finditer(r.output)]
    safe = "\\x1b[2J\\u202eevil\\u2066\\x07\\x9b"
    for text in (f"name{safe}.jsonl", f"messages[0].role '{safe}' is not one of", f"extra key '{safe}'",
                 "messages[0].role '\\ud800'", f'answers look like labels (2 distinct, ratio 1:1): "{safe}" 15, "ok" 15'):
        assert text in r.output, text
    kto = tmp_path / "kto.jsonl"
    kto.write_text(json.dumps({"prompt": "p", "completion": "c", "label": evil}) + "\n")
    r = run(str(kto), "--kind", "kto")
    assert "got a string (\"\\x1b[2J" in r.output and not UNSAFE.search(r.output)
    missing = one_error_line(run(str(tmp_path / f"gone{evil}.jsonl")))
    assert not UNSAFE.search(missing) and f"gone{safe}.jsonl" in missing


def test_a_line_of_many_bad_keys_or_messages_is_reported_briefly(tmp_path):
    f = tmp_path / "many.jsonl"
    many_keys = {"messages": chat("q", "a")["messages"], **{f"k{i}": 0 for i in range(100_000)}}
    many_turns = {"messages": [{"role": "bot", "content": "x"}] * 100_000}
    write_jsonl(f, [many_keys, many_turns])
    r = check_data(f)
    assert r.problems[0].reason.startswith("extra keys 'k0', 'k1', 'k10', 'k100', 'k1000', 'k10000', 'k10001', "
                                           "'k10002' and 99,992 more")
    lines = [p.line for p in r.problems]
    assert lines.count(2) == 21 and r.problems[-1].code == "too_many_problems"
    assert r.problems[-1].reason == ("messages[20:] not checked: the line already has 20 problems; fix those first")
    assert r.problems_total == 22 and sum(len(p.reason) for p in r.problems) < 5000
    assert datacheck_formats.MAX_PROBLEMS_PER_LINE == 20


# ---- 5. property: whatever the bytes, exit 0, 1 or 2, and 2 is one line -----------------------------------

hostile_lines = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),  # binary, invalid UTF-8, NUL bytes
    st.integers(min_value=1, max_value=30_000).map(lambda n: b"[" * n),  # nesting
    st.integers(min_value=1, max_value=20_000).map(lambda n: b'{"text": ' + b"9" * n + b"}"),  # huge numbers
    st.sampled_from([b'{"text": NaN}', b'{"text": -Infinity}', b'{"text": 1e999}', b'{"text": "a", "text": "b"}',
                     b"\xef\xbb\xbf{}", b"\xff\xfe", b"\x1f\x8b\x08", b"PAR1", b'{"text": "\\ud800"}',
                     b'{"text": "\x1b[31m\xe2\x80\xae"}', b"\r", b""]),
    st.builds(lambda u, a: json.dumps(chat(u, a), ensure_ascii=False).encode("utf-8", "surrogatepass"),
              st.text(max_size=20), st.text(max_size=20)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=st.lists(hostile_lines, max_size=6), strict=st.booleans(), kind=st.sampled_from([None, "sft", "text"]))
def test_any_bytes_exit_0_1_or_2_and_never_a_traceback(train, strict, kind):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "train.jsonl"
        f.write_bytes(b"\n".join(train))
        args = [str(f), *(["--strict"] if strict else []), *(["--kind", kind] if kind else [])]
        r = run(*args)
        assert r.exit_code in (0, 1, 2), r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
        assert "Traceback" not in r.output
        assert not UNSAFE.search(r.output)
        if r.exit_code == 2:
            one_error_line(r)
        else:
            assert "Verdicts:" in r.output
