"""The answers a team gives (``answers.yaml``): a contract, validated with pydantic.

Every problem is reported together, each naming the field path and what is allowed. Names the answers
refer to (the hosted API, the GPUs, the base model) are checked against the catalog in the same pass, with
a did-you-mean. The field names below are a public contract: keep them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from advisor.contract.errors import AdviseError, UnknownNameError

TaskKind = Literal["classification", "extraction", "generation", "chat", "code", "tool_use", "summarization", "other"]
Symptom = Literal["knowledge_gap", "stale_knowledge", "format", "style", "reasoning", "actions", "tool_errors",
                  "cost", "latency", "preference", "domain_language"]
Tried = Literal["fixed", "partly", "failed", "not_tried"]

TASK_KINDS: tuple[str, ...] = TaskKind.__args__
SYMPTOMS: tuple[str, ...] = Symptom.__args__
TRIED: tuple[str, ...] = Tried.__args__


class AnswersError(AdviseError):
    """The answers file is missing, unreadable or invalid; ``problems`` lists every finding."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        head = f"{source}: {len(problems)} problems: " if len(problems) > 1 else f"{source}: "
        super().__init__(head + "; ".join(problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(_Section):
    kind: TaskKind = "other"
    description: str = ""


class TriedAnswers(_Section):
    prompting: Tried = "not_tried"
    few_shot: Tried = "not_tried"
    rag: Tried = "not_tried"
    tools: Tried = "not_tried"


class Data(_Section):
    labeled_examples: int = Field(default=0, ge=0)
    preference_pairs: int = Field(default=0, ge=0)
    binary_feedback: int = Field(default=0, ge=0)
    domain_corpus_tokens: int = Field(default=0, ge=0)
    eval_examples: int = Field(default=0, ge=0)
    train_file: str | None = None
    preference_file: str | None = None
    eval_file: str | None = None


class ModelAnswers(_Section):
    current_api: str | None = None
    base: str | None = None
    open_weights_ok: bool = True


class Hardware(_Section):
    gpus: list[str] = []
    gpu_count: int = Field(default=1, ge=1, le=64)


class Budget(_Section):
    training_usd: float | None = Field(default=None, ge=0)


class WorkloadAnswers(_Section):
    requests_per_month: int | None = Field(default=None, ge=0)
    input_tokens_per_request: int | None = Field(default=None, ge=0)
    output_tokens_per_request: int | None = Field(default=None, ge=0)
    current_monthly_cost_usd: float | None = Field(default=None, ge=0)


class Deployment(_Section):
    adapters: int = Field(default=1, ge=1)


class Answers(_Section):
    project: str = Field(min_length=1)
    task: Task = Task()
    symptoms: list[Symptom] = Field(min_length=1)
    tried: TriedAnswers = TriedAnswers()
    data: Data = Data()
    model: ModelAnswers = ModelAnswers()
    hardware: Hardware = Hardware()
    budget: Budget = Budget()
    workload: WorkloadAnswers = WorkloadAnswers()
    deployment: Deployment = Deployment()

    @field_validator("symptoms")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    def to_dict(self) -> dict[str, Any]:
        """Every field with its value (defaults filled in), in contract order: the answers the plan used."""
        return self.model_dump(mode="json")


# ---- messages -----------------------------------------------------------------------------------
def _allowed(err: dict[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    if err["type"] == "literal_error":
        return f"choose one of {ctx.get('expected', '').replace(chr(39), '')}"
    return err["msg"].removeprefix("Value error, ")


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    got = err.get("input")
    if kind == "missing":
        return f"{loc}: required; add it"
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in err["loc"][:-1])
        allowed = _fields_of(err["loc"][:-1])
        where = f" in {parent}" if parent else ""
        return f"{loc}: unknown field{where} (check the spelling; allowed: {', '.join(allowed)})"
    if kind == "literal_error":
        return f"{loc}: {json.dumps(got)} is not allowed; {_allowed(err)}"
    if kind == "too_short" and loc == "symptoms":
        return f"symptoms: give at least one of {', '.join(SYMPTOMS)}"
    shown = json.dumps(got) if isinstance(got, (str, int, float, bool)) or got is None else type(got).__name__
    return f"{loc}: {shown} is invalid: {_allowed(err)}"


def _fields_of(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Answers
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def validate_answers(raw: Any, source: str = "answers", catalog: Any = None) -> Answers:
    """Validate a parsed answers mapping; with a catalog, also check the names it refers to.

    Raises ``AnswersError`` listing every problem at once.
    """
    if not isinstance(raw, dict):
        raise AnswersError(source, [(f"the top level must be a mapping of fields (project, task, symptoms, ...); "
                                    f"got {type(raw).__name__}")])
    try:
        answers = Answers.model_validate(raw)
    except ValidationError as e:
        raise AnswersError(source, [_describe(err) for err in e.errors()]) from None
    if catalog is not None:
        problems = check_names(answers, catalog)
        if problems:
            raise AnswersError(source, problems)
    return answers


def check_names(answers: Answers, catalog: Any) -> list[str]:
    """Problems with the catalog names the answers use (API, GPUs, base model), each with a did-you-mean."""
    problems = []
    if answers.model.current_api:
        try:
            catalog.api(answers.model.current_api)
        except UnknownNameError as e:
            problems.append(f"model.current_api: {e} (run `advise plan --help` for the catalog, or add it with "
                            f"--catalog)")
    for i, g in enumerate(answers.hardware.gpus):
        try:
            catalog.gpu(g)
        except UnknownNameError as e:
            problems.append(f"hardware.gpus.{i}: {e}")
    if answers.model.base:
        try:
            catalog.resolve_model(answers.model.base)
        except AdviseError as e:
            problems.append(f"model.base: {e}")
    return problems


def load_answers(path: str | Path, catalog: Any = None) -> Answers:
    """Read answers from a YAML or JSON file (JSON is YAML), then validate them."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnswersError(str(p), [("file not found; pass an existing answers file (or run `advise plan` "
                                    "without --answers to answer the questions)")]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise AnswersError(str(p), [f"cannot read it ({type(e).__name__}); give a UTF-8 YAML or JSON file"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise AnswersError(str(p), [f"{where}not valid YAML/JSON ({getattr(e, 'problem', None) or e})"]) from None
    return validate_answers(raw, str(p), catalog)


def dump_answers(answers: Answers) -> str:
    """The answers as YAML, every field explicit (what ``--save-answers`` and ``--out`` write)."""
    return yaml.safe_dump(answers.to_dict(), sort_keys=False, allow_unicode=True, width=100)
