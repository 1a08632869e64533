"""Statistics and verdicts of a scanned file: percentiles, duplicates, train/eval overlap, label balance, and the
findings a user acts on (too few examples, no or tiny eval set, duplication, imbalance, truncation).

The thresholds the rules also use (too few / thin data, the eval-set bounds) are the rules file's named thresholds
(``advisor/data/rules.yaml``), read here, so ``advise data check`` and ``advise plan`` judge with the same numbers.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import replace
from typing import Any

from advisor.contract.units import plural
from advisor.datacheck.formats import show
from advisor.datacheck.report import DataReport, LabelStats, TurnStats, Verdict, share
from advisor.datacheck.scan import SAMPLES_KEPT, Scan


def threshold(name: str) -> int | float:
    """A named threshold of the rules file (``advisor/data/rules.yaml``)."""
    from advisor.engine import load_rules

    return load_rules().threshold_values[name]


# OpenAI's fine-tuning guide: "The minimum number of examples you can provide for fine-tuning is 10" (for its
# hosted models). The other bounds on counts are the rules file's thresholds (too_few_examples, thin_sft_examples,
# eval_min_examples, eval_max_examples), with their sources there.
OPENAI_MIN_EXAMPLES = 10
# Lee et al. 2022, "Deduplicating Training Data Makes Language Models Better": duplicated examples are
# memorised (deduplicated models emit memorised text 10x less often) and train/validation overlap inflates
# evaluation (over 4% of standard validation sets). Hernandez et al. 2022 ("Scaling Laws and
# Interpretability of Learning from Repeated Data") saw an 800M model degrade to the level of a 400M one
# when 0.1% of its data was repeated 100 times. The 10% line for "heavy" is this project's.
HEAVY_DUPLICATE_SHARE = 0.10
# OpenAI's fine-tuning best practices: "If 60% of the assistant responses in the data says 'I cannot answer
# this', but at inference time only 5% of responses should say that, you will likely get an overabundance
# of refusals": the model learns the answer distribution it is shown. Flag a most/least frequent label
# ratio of 10 or more (this project's line).
LABEL_IMBALANCE_RATIO = 10.0
# Classification-like: the final assistant answers are short (scan.LABEL_MAX_CHARS), few and repeated.
LABEL_MAX_CLASSES = 20
LABEL_MIN_EXAMPLES = 20
LABEL_SHORT_SHARE = 0.95
# Truncation: flag when more than 1% of examples exceed --max-length (the end, usually the answer, is lost).
OVER_MAX_LENGTH_WARN_SHARE = 0.01
# KTO paper (Ethayarajh et al. 2024) eq. 8, as TRL's KTOTrainer applies it: with n_D desirable and n_U
# undesirable examples, keep desirable_weight * n_D / (undesirable_weight * n_U) within [1, 4/3].
KTO_WEIGHT_RATIO_MAX = 1.33


def _percentile(sorted_values: Any, p: float) -> int:
    """Nearest-rank percentile of a sorted array (an element of the data, so an integer)."""
    n = len(sorted_values)
    return int(sorted_values[max(0, math.ceil(p * n) - 1)]) if n else 0


def _duplicates(digests: array, lines: array) -> tuple[int, list[tuple[int, int]]]:
    """Examples equal to an earlier one, and (line, line of the first occurrence) for the first few."""
    import numpy as np

    d = np.frombuffer(digests, dtype=np.uint64)
    if d.size < 2:
        return 0, []
    order = np.argsort(d, kind="stable")  # stable: the first of equal digests is the earliest line
    s = d[order]
    starts = np.empty(s.size, dtype=bool)
    starts[0] = True
    np.not_equal(s[1:], s[:-1], out=starts[1:])
    dup_count = int(s.size - np.count_nonzero(starts))
    if not dup_count:
        return 0, []
    first = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]  # per sorted position: index of its group's first
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    ln = np.frombuffer(lines, dtype=np.uint32)
    dup_idx = np.sort(order[~starts])[:SAMPLES_KEPT]
    return dup_count, [(int(ln[i]), int(ln[first[rank[i]]])) for i in dup_idx]


def _overlap(ev: Scan, train: Scan) -> tuple[int, list[tuple[int, int]]]:
    import numpy as np

    e = np.frombuffer(ev.norm_digests, dtype=np.uint64)
    t = np.frombuffer(train.norm_digests, dtype=np.uint64)
    if not e.size or not t.size:
        return 0, []
    hit = np.isin(e, t)
    count = int(hit.sum())
    pairs: list[tuple[int, int]] = []
    if count:
        ev_lines = np.frombuffer(ev.example_lines, dtype=np.uint32)
        tr_lines = np.frombuffer(train.example_lines, dtype=np.uint32)
        order = np.argsort(t, kind="stable")
        for i in np.flatnonzero(hit)[:SAMPLES_KEPT]:
            j = order[np.searchsorted(t[order], e[i])]
            pairs.append((int(ev_lines[i]), int(tr_lines[j])))
    return count, pairs


def _labels(sc: Scan) -> LabelStats | None:
    n = len(sc.example_lines)
    if sc.kind != "sft" or sc.label_overflow or n < LABEL_MIN_EXAMPLES or not sc.labels:
        return None
    short = n - sc.long_answers
    if short / n < LABEL_SHORT_SHARE or len(sc.labels) > LABEL_MAX_CLASSES or len(sc.labels) * 2 > short:
        return None
    counts = tuple(sorted(sc.labels.items(), key=lambda kv: (-kv[1], kv[0])))
    return LabelStats(counts, round(counts[0][1] / counts[-1][1], 2))


def build_report(train: Scan, ev: Scan | None, path_label: str, eval_label: str | None) -> DataReport:
    overlap = _overlap(ev, train) if ev is not None else None
    ev_report = _build(ev, eval_label or "", None, None, is_eval=True) if ev is not None else None
    return _build(train, path_label, ev_report, overlap, is_eval=False)


def _build(sc: Scan, label: str, ev: DataReport | None, overlap: tuple[int, list] | None,
           is_eval: bool) -> DataReport:
    import numpy as np

    n = len(sc.example_lines)
    lengths = np.sort(np.frombuffer(sc.lengths, dtype=np.uint32)) if n else np.zeros(0, dtype=np.uint32)
    msgs = np.sort(np.frombuffer(sc.messages, dtype=np.uint32)) if len(sc.messages) else None
    exact, _ = _duplicates(sc.raw_digests, sc.example_lines)
    near_all, near_pairs = _duplicates(sc.norm_digests, sc.example_lines)
    exact_lines = _exact_lines(sc, near_pairs)
    turns = None
    if sc.kind == "sft" and msgs is not None:
        turns = TurnStats(int(msgs[0]), _percentile(msgs, 0.5), int(msgs[-1]), sc.multi_turn, sc.with_system,
                          sc.with_tools)
    labels = _labels(sc)
    report = DataReport(
        path=label, kind=sc.kind, kind_source=sc.kind_source, file_bytes=sc.file_bytes,
        lines_total=sc.lines_total, valid_examples=n, invalid_lines=sc.invalid,
        problems_total=sc.problems_total, problem_counts=tuple(sorted(sc.problem_counts.items())),
        problems=tuple(sc.problems), turns=turns,
        p50_tokens=_percentile(lengths, 0.5), p95_tokens=_percentile(lengths, 0.95),
        max_tokens=int(lengths[-1]) if n else 0, mean_tokens=round(sc.total_tokens / n, 1) if n else 0.0,
        total_tokens=sc.total_tokens, tokens_exact=sc.counter.exact, token_method=sc.counter.method,
        max_length_tokens=sc.max_length, over_max_length_examples=sc.over,
        over_max_length_share=share(sc.over, n), truncated_tokens=sc.truncated,
        over_max_length_lines=tuple(sc.over_lines),
        exact_duplicates=exact, near_duplicates=near_all - exact, duplicate_share=share(near_all, n),
        duplicate_lines=tuple((a, b, (a, b) in exact_lines) for a, b in near_pairs),
        labels=labels,
        kto_desirable=sc.kto[0] if sc.kind == "kto" else None,
        kto_undesirable=sc.kto[1] if sc.kind == "kto" else None,
        eval=ev, eval_overlap_examples=overlap[0] if overlap else None,
        eval_overlap_lines=tuple(overlap[1]) if overlap else (), verdicts=(),
    )
    return replace(report, verdicts=tuple(_verdicts(report, sc, is_eval)))


def _exact_lines(sc: Scan, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which sampled (line, duplicate-of) pairs are identical lines."""
    if not pairs:
        return set()
    import numpy as np

    lines = np.frombuffer(sc.example_lines, dtype=np.uint32)  # ascending: examples are kept in line order
    raw = np.frombuffer(sc.raw_digests, dtype=np.uint64)
    return {(a, b) for a, b in pairs if raw[np.searchsorted(lines, a)] == raw[np.searchsorted(lines, b)]}


def _verdicts(r: DataReport, sc: Scan, is_eval: bool) -> list[Verdict]:
    too_few_examples, thin_sft_examples = threshold("too_few_examples"), threshold("thin_sft_examples")
    eval_min_examples, eval_max_examples = threshold("eval_min_examples"), threshold("eval_max_examples")
    v: list[Verdict] = []
    what = "eval file" if is_eval else "file"
    n = r.valid_examples
    if r.lines_total == 0:
        v.append(Verdict("empty_file", "error", f"the {what} is empty: it holds no example"))
    elif r.kind is None:
        v.append(Verdict("unknown_format", "error", f"no line of the {what} matches a known format (chat "
                         "messages, prompt/chosen/rejected, prompt/completion/label, text); pass --kind to "
                         "see what each line lacks"))
    if n == 0 and r.lines_total:
        v.append(Verdict("no_valid_examples", "error", f"the {what} holds no valid example"))
    if sc.other_kinds:
        parts = ", ".join(f"{k} on {plural(c, 'line')} (first at line {first})"
                          for k, (c, first) in sorted(sc.other_kinds.items()))
        v.append(Verdict("mixed_kinds", "error", f"the {what} mixes kinds: {r.kind} and {parts}; keep one "
                         "kind per file"))
    if r.invalid_lines:
        first = r.problems[0].line if r.problems else 0
        v.append(Verdict("invalid_lines", "error", f"{r.invalid_lines:,} of {plural(r.lines_total, 'line')} "
                         f"{'is' if r.invalid_lines == 1 else 'are'} invalid (first at line {first}); trainers fail on "
                         "them or drop them: fix or remove them"))
    if not is_eval and n and r.kind is not None and r.kind != "text":  # examples, pairs or labels; not raw text
        unit = plural(n, "preference pair" if r.kind == "dpo" else "example")
        if n < too_few_examples:
            floor = (f" (OpenAI's hosted fine-tuning refuses fewer than {OPENAI_MIN_EXAMPLES})"
                     if n < OPENAI_MIN_EXAMPLES else "")
            v.append(Verdict("too_few_examples", "error", f"{unit} is too few to fine-tune reliably: "
                             f"collect at least {too_few_examples}, ideally {thin_sft_examples}+{floor}"))
        elif n < thin_sft_examples and r.kind == "sft":
            v.append(Verdict("thin_data", "warning", f"{n:,} examples is thin for SFT: the model may learn the "
                             f"format but miss cases; aim for {thin_sft_examples}+ (LIMA aligned a 65B model with "
                             "1,000 curated examples)"))
    if not is_eval and n:
        ev = r.eval
        if ev is None:
            v.append(Verdict("no_eval_set", "warning", f"no eval set: hold out {eval_min_examples}-"
                             f"{eval_max_examples} examples that are not in training (--eval FILE) to see "
                             "whether training helps"))
        else:
            if ev.valid_examples < eval_min_examples:
                v.append(Verdict("eval_too_small", "warning", f"the eval set has "
                                 f"{plural(ev.valid_examples, 'valid example')}; {eval_min_examples}-"
                                 f"{eval_max_examples} give a usable signal"))
            elif ev.valid_examples > eval_max_examples:
                v.append(Verdict("eval_large", "info", f"the eval set has {ev.valid_examples:,} examples; "
                                 f"{eval_max_examples} are usually enough and each evaluation costs time"))
            if r.eval_overlap_examples:
                v.append(Verdict("eval_overlaps_train", "error", f"{plural(r.eval_overlap_examples, 'eval example')} "
                                 "also found in training (after normalisation): the eval score will be "
                                 "inflated; remove them from one of the files"))
    dups = r.exact_duplicates + r.near_duplicates
    if dups:
        heavy = r.duplicate_share >= HEAVY_DUPLICATE_SHARE
        v.append(Verdict("heavy_duplication" if heavy else "duplicates", "warning" if heavy else "info",
                         f"{plural(dups, 'example')} ({r.duplicate_share:.1%}) {'repeats' if dups == 1 else 'repeat'} "
                         f"an earlier one ({r.exact_duplicates:,} identical, {r.near_duplicates:,} equal after "
                         "normalisation): repeated examples are memorised; deduplicate"))
    if r.labels is not None:
        counts = r.labels.counts
        if len(counts) == 1:
            v.append(Verdict("single_label", "warning", f"every final answer is '{show(counts[0][0])}': the model "
                             "will learn to always answer it"))
        elif r.labels.imbalance_ratio >= LABEL_IMBALANCE_RATIO:
            v.append(Verdict("label_imbalance", "warning", f"answers look like labels and are imbalanced: "
                             f"'{show(counts[0][0])}' {counts[0][1]:,} vs '{show(counts[-1][0])}' {counts[-1][1]:,} "
                             f"({r.labels.imbalance_ratio:g}:1); the model learns this distribution, so "
                             "balance it or match the distribution you expect in use"))
    if r.kind == "kto" and n:
        d, u = r.kto_desirable or 0, r.kto_undesirable or 0
        if not d or not u:
            v.append(Verdict("kto_one_sided", "warning", f"all {n:,} KTO examples are "
                             f"{'desirable' if d else 'undesirable'}; KTO learns from both kinds of feedback"))
        elif d != u:
            lo, hi = round(u / d, 2), round(u / d * KTO_WEIGHT_RATIO_MAX, 2)  # as TRL computes them
            v.append(Verdict("kto_unbalanced", "info", f"{d:,} desirable vs {u:,} undesirable examples: set "
                             f"desirable_weight in [{lo}, {hi}] (KTO paper "
                             "eq. 8, as TRL recommends)"))
    if r.max_length_tokens is not None and r.over_max_length_examples:
        warn = r.over_max_length_share > OVER_MAX_LENGTH_WARN_SHARE
        v.append(Verdict("over_max_length", "warning" if warn else "info",
                         f"{plural(r.over_max_length_examples, 'example')} ({r.over_max_length_share:.1%}) exceed "
                         f"{r.max_length_tokens:,} tokens; {plural(r.truncated_tokens, 'token')} would be cut "
                         f"(usually the end of the answer): raise the max length or shorten them"))
    if n and not r.tokens_exact and not is_eval:
        v.append(Verdict("tokens_estimated", "info", f"token counts are not exact ({r.token_method}); pass the "
                         "model's tokenizer for exact counts"))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(v, key=lambda x: order[x.severity])
