"""The answers a team gives (``answers.yaml``): a contract, validated with pydantic.

Every problem is reported together, each naming the field path and what is allowed. Names the answers
refer to (the hosted API, the GPUs, the base model) are checked against the catalog in the same pass, with
a did-you-mean. The field names below are a public contract: keep them.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from advisor.contract.errors import AdviseError, UnknownNameError
from advisor.contract.files import ANSWERS_MARK
from advisor.contract.text import PLAIN_PATTERN, TEXT_PATTERN

TaskKind = Literal["classification", "extraction", "generation", "chat", "code", "tool_use", "summarization", "other"]
Symptom = Literal["knowledge_gap", "stale_knowledge", "format", "style", "reasoning", "actions", "tool_errors",
                  "cost", "latency", "preference", "domain_language"]
Tried = Literal["fixed", "partly", "failed", "not_tried"]

#: counts are whole numbers, never booleans (``true`` is not 1) nor strings; capped far above any real figure
Count = Annotated[int, Field(strict=True, ge=0, le=10**15)]
#: money in USD: a finite number >= 0
Usd = Annotated[float, Field(strict=True, ge=0, le=1e12, allow_inf_nan=False)]
#: no control characters, line breaks or bidi overrides: these values reach file headers, YAML and terminals
_PLAIN = PLAIN_PATTERN
Name = Annotated[str, Field(min_length=1, max_length=300, pattern=_PLAIN)]
#: a file path (relative to the answers file's folder, or absolute)
FilePath = Annotated[str, Field(min_length=1, max_length=4096, pattern=_PLAIN)]

TASK_KINDS: tuple[str, ...] = TaskKind.__args__
SYMPTOMS: tuple[str, ...] = Symptom.__args__
TRIED: tuple[str, ...] = Tried.__args__


#: the first line of every answers file advise writes (``advisor.contract.files.ANSWERS_MARK``)
ANSWERS_HEADER = ANSWERS_MARK.decode() + ": read back with `advise plan --answers FILE`; edit freely\n"
#: problems listed in one error line (all are counted)
PROBLEMS_SHOWN = 10
#: characters of a user's value quoted back in an error
VALUE_SHOWN_CHARS = 60


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
    return text if len(text) <= VALUE_SHOWN_CHARS else text[: VALUE_SHOWN_CHARS - 3] + "..."


class AnswersError(AdviseError):
    """The answers file is missing, unreadable or invalid; ``problems`` lists every finding."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        head = f"{source}: {len(problems)} problems: " if len(problems) > 1 else f"{source}: "
        shown = problems[:PROBLEMS_SHOWN] + ([f"and {len(problems) - PROBLEMS_SHOWN} more"]
                                             if len(problems) > PROBLEMS_SHOWN else [])
        super().__init__(head + "; ".join(shown))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: an ISO 639-1 language code, lower case ("en", "de", "ja")
LanguageCode = Annotated[str, Field(strict=True, pattern=r"^[a-z]{2}$")]


class Task(_Section):
    kind: TaskKind = "other"
    description: Annotated[str, Field(max_length=4000, pattern=TEXT_PATTERN)] = ""
    #: the languages the model must read and write (empty: not stated); the base's model card should list them
    languages: Annotated[list[LanguageCode], Field(max_length=50)] = []


class TriedAnswers(_Section):
    prompting: Tried = "not_tried"
    few_shot: Tried = "not_tried"
    rag: Tried = "not_tried"
    tools: Tried = "not_tried"
    #: JSON mode / schema-constrained decoding / tool schemas for the output's shape
    structured_output: Tried = "not_tried"


class Data(_Section):
    labeled_examples: Count = 0
    preference_pairs: Count = 0
    binary_feedback: Count = 0
    domain_corpus_tokens: Count = 0
    eval_examples: Count = 0
    #: with deployment.adapters > 1: the labeled examples each tenant (adapter) has of its own; unset: an even
    #: split of labeled_examples
    examples_per_adapter: Count | None = None
    train_file: FilePath | None = None
    preference_file: FilePath | None = None
    eval_file: FilePath | None = None


class ApiPriceAnswer(_Section):
    """List prices of an API the catalog does not know (USD per 1M tokens)."""

    input_usd_per_million: Annotated[float, Field(strict=True, ge=0, le=1e6, allow_inf_nan=False)]
    output_usd_per_million: Annotated[float, Field(strict=True, ge=0, le=1e6, allow_inf_nan=False)]


class ModelAnswers(_Section):
    current_api: Name | None = None
    #: the current API's prices, for an API the price data lacks (or to override its list price)
    current_api_price: ApiPriceAnswer | None = None
    base: FilePath | None = None
    open_weights_ok: Annotated[bool, Field(strict=True)] = True


class Hardware(_Section):
    gpus: Annotated[list[Name], Field(max_length=64)] = []  # the training GPUs
    gpu_count: Annotated[int, Field(strict=True, ge=1, le=64)] = 1
    #: the GPUs serving may use (empty: any catalog GPU with a price)
    serving_gpus: Annotated[list[Name], Field(max_length=64)] = []
    #: the training GPUs are the team's own: training pays electricity, not rent
    owned: Annotated[bool, Field(strict=True)] = False
    power_watts_per_gpu: Annotated[float, Field(strict=True, gt=0, le=10_000, allow_inf_nan=False)] | None = None
    usd_per_kwh: Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)] | None = None
    #: the share of a GPU's usable memory a recommended run may take (empty: the rules file's max_memory_fraction)
    max_memory_fraction: Annotated[float, Field(strict=True, ge=0.5, le=1.0, allow_inf_nan=False)] | None = None


class Budget(_Section):
    training_usd: Usd | None = None


class WorkloadAnswers(_Section):
    requests_per_month: Count | None = None
    input_tokens_per_request: Annotated[int, Field(strict=True, ge=0, le=10_000_000)] | None = None
    output_tokens_per_request: Annotated[int, Field(strict=True, ge=0, le=10_000_000)] | None = None
    current_monthly_cost_usd: Usd | None = None
    #: the busiest hour's request rate over the month's average (empty: estimators.cost.DEFAULT_PEAK_TO_AVERAGE)
    peak_to_average: Annotated[float, Field(strict=True, ge=1, le=1000, allow_inf_nan=False)] | None = None
    #: a request's end-to-end time the service must stay under, in milliseconds
    latency_p95_ms: Annotated[float, Field(strict=True, gt=0, le=3_600_000, allow_inf_nan=False)] | None = None
    #: input tokens every request starts with (system prompt, instructions, few-shot examples): cacheable
    static_prompt_tokens: Annotated[int, Field(strict=True, ge=0, le=10_000_000)] | None = None
    #: the answers may come later (within a day): batch APIs and offline serving
    batch_ok: Annotated[bool, Field(strict=True)] = False

    @model_validator(mode="after")
    def _static_within_input(self) -> WorkloadAnswers:
        if (self.static_prompt_tokens is not None and self.input_tokens_per_request is not None
                and self.static_prompt_tokens > self.input_tokens_per_request):
            raise ValueError(f"static_prompt_tokens ({self.static_prompt_tokens}) is more than "
                             f"input_tokens_per_request ({self.input_tokens_per_request}); the static part is "
                             f"within the input")
        return self


class Deployment(_Section):
    adapters: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 1
    #: replicas kept up whatever the traffic (availability)
    replicas_min: Annotated[int, Field(strict=True, ge=1, le=1000)] = 1
    #: whether serving may use FP8 or INT4 weights (quality to be confirmed on the eval set)
    quantized_ok: Annotated[bool, Field(strict=True)] = False
    #: whether the team will run GPU machines itself (training jobs and a serving endpoint); false: only managed,
    #: per-token paths (the vendor's hosted fine-tuning, a provider that serves a tuned open model per token)
    operate_gpus: Annotated[bool, Field(strict=True)] = True


class Answers(_Section):
    project: Name
    task: Task = Task()
    symptoms: list[Symptom] = Field(min_length=1, max_length=64)
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
    if err["type"] == "string_pattern_mismatch":
        if err["loc"][:2] == ("task", "languages"):
            return "give a two-letter ISO 639-1 code in lower case (en, de, ja)"
        return "remove the control characters, line breaks or bidi marks from it"
    if err["type"] in ("int_type", "int_from_float") and isinstance(err.get("input"), (bool, str, float)):
        return "give a whole number (not true/false, text or a fraction)"
    return err["msg"].removeprefix("Value error, ")


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p)[:VALUE_SHOWN_CHARS] for p in err["loc"])
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
        return f"{loc}: {_shown(got)} is not allowed; {_allowed(err)}"
    if kind == "value_error" and isinstance(got, dict):  # a check across fields: its message names them
        return f"{loc}: {_allowed(err)}"
    if kind == "too_short" and loc == "symptoms":
        return f"symptoms: give at least one of {', '.join(SYMPTOMS)}"
    return f"{loc}: {_shown(got)} is invalid: {_allowed(err)}"


def _fields_of(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Answers
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        # an optional section (``ApiPriceAnswer | None``) is the section
        ann = next((a for a in (ann, *typing.get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel)),
                   None)
        if ann is None:
            return []
        model = ann
    return list(model.model_fields)


def validate_answers(raw: Any, source: str = "answers", catalog: Any = None, base_dir: Path | None = None) -> Answers:
    """Validate a parsed answers mapping; with a catalog, also check the names it refers to; with ``base_dir``
    (the answers file's folder), also that the data files it names exist.

    Raises ``AnswersError`` listing every problem at once: the schema's, the names' and the files' together (a
    typo in a field does not hide an unknown GPU or a missing file until the next run).
    """
    if not isinstance(raw, dict):
        raise AnswersError(source, [(f"the top level must be a mapping of fields (project, task, symptoms, ...); "
                                    f"got {type(raw).__name__}")])
    problems: list[str] = []
    answers = None
    try:
        answers = Answers.model_validate(raw)
    except ValidationError as e:
        problems += [_describe(err) for err in e.errors()]
    bad = {p.split(":", 1)[0] for p in problems}  # fields the schema already refused: said once
    if catalog is not None:
        problems += [p for p in check_names(raw, catalog) if p.split(":", 1)[0] not in bad]
    if base_dir is not None:
        problems += [p for p in check_files(raw, base_dir) if p.split(":", 1)[0] not in bad]
    if problems:
        raise AnswersError(source, problems)
    assert answers is not None
    return answers


def _get(raw: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(raw, dict):
            return None
        raw = raw.get(part)
    return raw


def check_names(raw: dict[str, Any], catalog: Any) -> list[str]:
    """Problems with the catalog names the answers use (API, GPUs, base model), each with a did-you-mean. Reads
    the raw mapping, so that it runs beside the schema's own checks; values of the wrong type are the schema's."""
    problems = []
    api = _get(raw, "model.current_api")
    priced = _get(raw, "model.current_api_price") is not None or \
        _get(raw, "workload.current_monthly_cost_usd") is not None
    if isinstance(api, str) and api and not priced:
        try:
            catalog.api(api)
        except UnknownNameError as e:
            problems.append(f"model.current_api: {e} (`advise apis` lists the price data; for another API give "
                            f"model.current_api_price or workload.current_monthly_cost_usd)")
    for field in ("gpus", "serving_gpus"):
        names = _get(raw, f"hardware.{field}")
        for i, g in enumerate(names if isinstance(names, list) else []):
            if not isinstance(g, str):
                continue
            try:
                catalog.gpu(g)
            except UnknownNameError as e:
                problems.append(f"hardware.{field}.{i}: {e}")
    base = _get(raw, "model.base")
    if isinstance(base, str) and base:
        try:
            catalog.resolve_model(base)
        except AdviseError as e:
            problems.append(f"model.base: {e}")
    return problems


def check_files(raw: dict[str, Any], base_dir: Path) -> list[str]:
    """The data files the answers name that are missing or not files (relative paths from ``base_dir``); what is
    inside them is ``advise data check``'s, when the plan is made."""
    problems = []
    for field in ("train_file", "preference_file", "eval_file"):
        value = _get(raw, f"data.{field}")
        if not isinstance(value, str) or not value:
            continue
        try:
            path = Path(value).expanduser()
            path = path if path.is_absolute() else base_dir / path
            missing, folder = not path.exists(), path.is_dir()
        except (OSError, ValueError, RuntimeError):
            missing, folder = True, False
        if missing:
            problems.append(f"data.{field}: {value} does not exist (a relative path is read from {base_dir}); "
                            f"fix the path or leave the field out")
        elif folder:
            problems.append(f"data.{field}: {value} is a folder; name the JSONL file")
    return problems


def load_answers(path: str | Path, catalog: Any = None) -> Answers:
    """Read answers from a YAML or JSON file (JSON is YAML), bounded and strict (``advisor.contract.files``),
    then validate them."""
    from advisor.contract.files import (
        MAX_ANSWERS_BYTES,
        InputFileError,
        parse_yaml,
        read_text,
    )

    p = Path(path)
    hint = "pass an existing answers file (or run `advise plan` without --answers to answer the questions)"
    try:
        raw = parse_yaml(read_text(p, "answers", MAX_ANSWERS_BYTES, hint), f"answers {p}")
    except InputFileError as e:
        raise AnswersError(str(p), [str(e).split(f"{p}: ", 1)[-1]]) from None
    return validate_answers(raw, str(p), catalog, p.resolve().parent)


def dump_answers(answers: Answers) -> str:
    """The answers as YAML, every field explicit (what ``--save-answers`` and ``--out`` write), under a header
    line that marks the file as advise's (``--save-answers`` replaces only such a file)."""
    return (ANSWERS_HEADER + yaml.safe_dump(answers.to_dict(), sort_keys=False, allow_unicode=True, width=100))
