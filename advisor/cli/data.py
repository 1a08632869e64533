"""``advise data check``: is the training data ready? A thin click layer over ``advisor.datacheck``.

The check computes a ``DataReport``; the terminal summary and ``--json`` both print its ``to_dict()``.
"""

from __future__ import annotations

from typing import Any

import click

from advisor.cli.common import domain_errors, dump_json
from advisor.contract.vocab import DATA_KINDS

PROBLEMS_SHOWN = 20
SOURCES = {"given": "--kind", "detected": "detected", "training file": "as the training file"}


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


@click.group()
def data() -> None:
    """Check fine-tuning data before anyone pays for a GPU."""


@data.command("check")
@click.argument("file", type=click.Path())  # checked by the data check: one "Error: ..." line, exit 2
@click.option("--kind", type=click.Choice(tuple(DATA_KINDS)),
              help="sft (chat messages), dpo (prompt/chosen/rejected), kto (prompt/completion/label) or text; "
                   "detected from the first lines when left out.")
@click.option("--eval", "eval_file", type=click.Path(),
              help="Held-out eval set (same format): its size and its overlap with training are checked.")
@click.option("--tokenizer", help="Local tokenizer folder for exact token counts (otherwise ~4 characters/token).")
@click.option("--max-length", type=click.IntRange(min=1), help="Tokens per sequence the trainer keeps.")
@click.option("--strict", is_flag=True, help="Exit 1 on WARNING verdicts too (after printing the report).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (same data as the summary).")
@click.pass_context
@domain_errors
def check(ctx: click.Context, file: str, kind: str | None, eval_file: str | None, tokenizer: str | None,
          max_length: int | None, strict: bool, as_json: bool) -> None:
    """Validate and measure a JSONL dataset: problems by line, lengths, duplicates, labels, verdicts.

    \b
    Exit codes (the report is printed first):
      0  ready: no ERROR verdict (with --strict: no WARNING verdict either)
      1  not ready: an ERROR verdict (any invalid line, an empty file, too
         few examples, ...), or with --strict a WARNING verdict
      2  the check could not run: the file is missing, unreadable, not a
         regular file, not UTF-8 text, or an option is wrong (one line
         "Error: ...")
    """
    from advisor.datacheck import check_data

    d = check_data(file, kind=kind, eval_path=eval_file, tokenizer=tokenizer, max_length=max_length).to_dict()
    if as_json:
        dump_json(d)
    else:
        _print_report(d)
    failing = ("error", "warning") if strict else ("error",)
    bad = [v for v in _all_verdicts(d) if v["severity"] in failing]
    if bad:  # exit 1, after the report
        names = ", ".join(dict.fromkeys(v["code"] for v in bad))
        level = " or ".join(f.upper() for f in failing)
        click.echo(f"{'--strict: ' if strict else ''}not ready: {len(bad):,} {level} verdict{'s' if len(bad) > 1 else ''}"
                   f" ({names})", err=True)
        ctx.exit(1)


def _all_verdicts(d: dict[str, Any]) -> list[dict[str, Any]]:
    ev = d["eval"]
    return d["verdicts"] + ([{**v, "message": "eval: " + v["message"]} for v in ev["verdicts"]] if ev else [])


def echo(text: str = "") -> None:
    """Every summary line goes out through ``terminal_safe``: values of the file are already escaped where the
    messages quote them (``formats.show``), and this leaves such text unchanged, so nothing raw gets past."""
    from advisor.datacheck.formats import terminal_safe

    click.echo(terminal_safe(text))


def _print_report(d: dict[str, Any]) -> None:
    _print_file(d, "")
    ev = d["eval"]
    if ev is not None:
        echo("")
        _print_file(ev, "Eval ")
        ov = d["eval_overlap"]
        pairs = ", ".join(f"eval line {p['eval_line']} = train line {p['train_line']}" for p in ov["lines"][:5])
        echo(f"  overlap with training: {_n(ov['examples'], 'example')} ({ov['share']:.1%})"
             + (f": {pairs}" if pairs else ""))
    echo("")
    verdicts = _all_verdicts(d)
    order = {"error": 0, "warning": 1, "info": 2}
    echo("Verdicts:" if verdicts else "Verdicts: none")
    for v in sorted(verdicts, key=lambda v: order[v["severity"]]):
        echo(f"  {v['severity'].upper():8} {v['code']:22} {v['message']}")


def _print_file(d: dict[str, Any], prefix: str) -> None:
    kind = d["kind"] or "unknown format"
    how = f" ({SOURCES[d['kind_source']]})" if d["kind_source"] else ""
    echo(f"{prefix}{d['path']}: {kind}{how}; {_n(d['lines_total'], 'line')}: {d['valid_examples']:,} valid, "
         f"{d['invalid_lines']:,} invalid")
    if d["problems_total"]:
        counts = ", ".join(f"{code} {n:,}" for code, n in d["problem_counts"].items())
        echo(f"  problems ({counts}):")
        for p in d["problems"][:PROBLEMS_SHOWN]:
            echo(f"    line {p['line']:<7} {p['code']:22} {p['reason']}")
        rest = d["problems_total"] - min(PROBLEMS_SHOWN, len(d["problems"]))
        if rest:
            echo(f"    ... {rest:,} more (--json lists the first {len(d['problems']):,})")
    if not d["valid_examples"]:
        return
    t = d["turns"]
    if t:
        echo(f"  messages per example: {t['messages_min']}-{t['messages_max']} (median {t['messages_p50']}); "
             f"{t['multi_turn_examples']:,} multi-turn, {t['examples_with_system']:,} with a system prompt, "
             f"{t['examples_with_tools']:,} with tools")
    echo(f"  tokens per example ({d['token_method']}): p50 {d['p50_tokens']:,}, p95 {d['p95_tokens']:,}, "
         f"max {d['max_tokens']:,}; total {d['total_tokens']:,}")
    ml = d["max_length"]
    if ml:
        echo(f"  over {ml['max_length_tokens']:,} tokens: {_n(ml['over_examples'], 'example')} "
             f"({ml['over_share']:.1%}), {_n(ml['truncated_tokens'], 'token')} truncated")
    du = d["duplicates"]
    if du["exact_duplicates"] or du["near_duplicates"]:
        lines = ", ".join(f"{x['line']} = {x['duplicate_of_line']}" for x in du["lines"][:5])
        echo(f"  duplicates: {du['exact_duplicates']:,} exact, {du['near_duplicates']:,} near "
             f"({du['duplicate_share']:.1%} of examples; lines {lines})")
    else:
        echo("  duplicates: none (exact or near)")
    lab = d["labels"]
    if lab:
        from advisor.datacheck.formats import show

        dist = ", ".join(f"\"{show(c['label'])}\" {c['count']:,}" for c in lab["counts"][:8])
        echo(f"  answers look like labels ({lab['distinct']} distinct, ratio {lab['imbalance_ratio']:g}:1): {dist}")
    kto = d["kto_labels"]
    if kto:
        echo(f"  labels: {kto['desirable']:,} desirable, {kto['undesirable']:,} undesirable")
