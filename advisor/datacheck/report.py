"""The data check's result: ``DataReport`` (frozen), its parts, and ``to_dict`` (the JSON ``--json`` prints and a
plan embeds, ``advisor.contract.plan.DataCheck``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advisor.contract.errors import AdviseError
from advisor.datacheck.formats import NORMALISATION


class DataCheckError(AdviseError, ValueError):
    """A data check cannot start: missing file, bad option, tokenizer that does not load."""


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    code: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    code: str
    severity: str  # error | warning | info
    message: str


@dataclass(frozen=True)
class TurnStats:
    """Messages per chat example."""

    messages_min: int
    messages_p50: int
    messages_max: int
    multi_turn_examples: int  # more than one assistant turn
    examples_with_system: int
    examples_with_tools: int


@dataclass(frozen=True)
class LabelStats:
    """Final assistant answers of classification-like chat data, most frequent first."""

    counts: tuple[tuple[str, int], ...]
    imbalance_ratio: float  # most / least frequent


@dataclass(frozen=True)
class DataReport:
    path: str
    kind: str | None
    kind_source: str | None  # "given", "detected", "training file"
    file_bytes: int
    lines_total: int
    valid_examples: int
    invalid_lines: int
    problems_total: int
    problem_counts: tuple[tuple[str, int], ...]
    problems: tuple[Problem, ...]  # the first PROBLEMS_KEPT, in line order
    turns: TurnStats | None
    p50_tokens: int
    p95_tokens: int
    max_tokens: int
    mean_tokens: float
    total_tokens: int  # every sequence the trainer processes once (DPO: chosen and rejected)
    tokens_exact: bool
    token_method: str
    max_length_tokens: int | None
    over_max_length_examples: int
    over_max_length_share: float
    truncated_tokens: int
    over_max_length_lines: tuple[int, ...]
    exact_duplicates: int
    near_duplicates: int  # equal after normalisation, beyond the exact ones
    duplicate_share: float
    duplicate_lines: tuple[tuple[int, int, bool], ...]  # (line, duplicate of line, exact)
    labels: LabelStats | None
    kto_desirable: int | None
    kto_undesirable: int | None
    eval: DataReport | None
    eval_overlap_examples: int | None
    eval_overlap_lines: tuple[tuple[int, int], ...]  # (eval line, train line)
    verdicts: tuple[Verdict, ...]

    @property
    def problems_left_out(self) -> int:
        return self.problems_total - len(self.problems)

    @property
    def errors(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.severity == "error")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready and deterministic: the same file and options give the same dict."""
        t = self.turns
        lab = self.labels
        return {
            "path": self.path,
            "kind": self.kind,
            "kind_source": self.kind_source,
            "file_bytes": self.file_bytes,
            "lines_total": self.lines_total,
            "valid_examples": self.valid_examples,
            "invalid_lines": self.invalid_lines,
            "problems_total": self.problems_total,
            "problem_counts": dict(self.problem_counts),
            "problems": [{"line": p.line, "code": p.code, "reason": p.reason} for p in self.problems],
            "problems_left_out": self.problems_left_out,
            "turns": None if t is None else {
                "messages_min": t.messages_min, "messages_p50": t.messages_p50, "messages_max": t.messages_max,
                "multi_turn_examples": t.multi_turn_examples, "examples_with_system": t.examples_with_system,
                "examples_with_tools": t.examples_with_tools,
            },
            "p50_tokens": self.p50_tokens,
            "p95_tokens": self.p95_tokens,
            "max_tokens": self.max_tokens,
            "mean_tokens": self.mean_tokens,
            "total_tokens": self.total_tokens,
            "tokens_exact": self.tokens_exact,
            "token_method": self.token_method,
            "max_length": None if self.max_length_tokens is None else {
                "max_length_tokens": self.max_length_tokens,
                "over_examples": self.over_max_length_examples,
                "over_share": self.over_max_length_share,
                "truncated_tokens": self.truncated_tokens,
                "over_lines": list(self.over_max_length_lines),
            },
            "duplicates": {
                "exact_duplicates": self.exact_duplicates,
                "near_duplicates": self.near_duplicates,
                "duplicate_share": self.duplicate_share,
                "normalisation": NORMALISATION,
                "lines": [{"line": a, "duplicate_of_line": b, "exact": e} for a, b, e in self.duplicate_lines],
            },
            "labels": None if lab is None else {
                "distinct": len(lab.counts),
                "imbalance_ratio": lab.imbalance_ratio,
                "counts": [{"label": k, "count": n, "share": share(n, self.valid_examples)} for k, n in lab.counts],
            },
            "kto_labels": None if self.kto_desirable is None else {
                "desirable": self.kto_desirable, "undesirable": self.kto_undesirable,
            },
            "eval": None if self.eval is None else self.eval.to_dict(),
            "eval_overlap": None if self.eval_overlap_examples is None else {
                "examples": self.eval_overlap_examples,
                "share": share(self.eval_overlap_examples, self.eval.valid_examples if self.eval else 0),
                "lines": [{"eval_line": a, "train_line": b} for a, b in self.eval_overlap_lines],
            },
            "verdicts": [{"code": v.code, "severity": v.severity, "message": v.message} for v in self.verdicts],
        }


def share(n: int, total: int) -> float:
    return round(n / total, 4) if total else 0.0
