"""Data files named in the answers (``data.train_file``, ``preference_file``, ``eval_file``) feed the plan.

Each file goes through ``advise data check``; the counts it finds replace the declared ones (and the plan
says so), and its token lengths set the sequence length and the training tokens of the estimates and
configs. Relative paths are read from the answers file's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.contract.answers import Answers, AnswersError
from advisor.contract.vocab import DATA_KINDS

#: problems kept per file in the plan (the data check itself keeps up to 1,000; all are counted)
PLAN_PROBLEMS_KEPT = 20


@dataclass(frozen=True)
class DataInputs:
    answers: Answers  # with measured counts in place of declared ones
    measured: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # data kind -> token lengths
    summary: Mapping[str, Any] | None = None  # plan["data"]


def _trim(report: dict[str, Any]) -> dict[str, Any]:
    out = dict(report)
    out["problems"] = report["problems"][:PLAN_PROBLEMS_KEPT]
    out["problems_left_out"] = report["problems_total"] - len(out["problems"])
    if report.get("eval"):
        out["eval"] = _trim(report["eval"])
    return out


def read_data_files(answers: Answers, base_dir: Path | None, source: str = "answers") -> DataInputs:
    d = answers.data
    if not (d.train_file or d.preference_file or d.eval_file):
        return DataInputs(answers)
    from advisor.contract.errors import AdviseError
    from advisor.datacheck import check_data

    base = base_dir or Path.cwd()

    def resolve(p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else base / path

    def check(field_name: str, path: str, eval_path: str | None = None) -> Any:
        try:
            return check_data(resolve(path), eval_path=resolve(eval_path) if eval_path else None)
        except AdviseError as e:
            raise AnswersError(source, [f"data.{field_name}: {e}"]) from None

    files: dict[str, Any] = {}
    updates: dict[str, int] = {}
    measured: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    eval_report = None
    for field_name in ("train_file", "preference_file"):
        path = getattr(d, field_name)
        if not path:
            continue
        with_eval = d.eval_file if field_name == "train_file" or not d.train_file else None
        r = check(field_name, path, with_eval)
        files[field_name] = _trim(r.to_dict())
        if r.kind is None:
            notes.append(f"data.{field_name}: no valid examples, so nothing is counted from it")
            continue
        count_field = DATA_KINDS[r.kind].count_field
        value = r.total_tokens if r.kind == "text" else r.valid_examples
        declared = getattr(d, count_field)
        updates[count_field] = value
        measured[r.kind] = {"mean_tokens": r.mean_tokens, "p95_tokens": r.p95_tokens, "total_tokens": r.total_tokens,
                            "tokens_exact": r.tokens_exact, "token_method": r.token_method}
        notes.append(f"data.{count_field}: {value:,} counted in {path} (declared: {declared:,}); token lengths "
                     f"from the file ({r.token_method})")
        if r.eval is not None:
            eval_report = r.eval
    if d.eval_file and eval_report is None:
        eval_report = check("eval_file", d.eval_file)
        files["eval_file"] = _trim(eval_report.to_dict())
    if eval_report is not None:
        updates["eval_examples"] = eval_report.valid_examples
        notes.append(f"data.eval_examples: {eval_report.valid_examples:,} counted in {d.eval_file} "
                     f"(declared: {d.eval_examples:,})")
    new = answers.model_copy(update={"data": d.model_copy(update=updates)})
    return DataInputs(new, measured, {"files": files, "notes": notes})
