"""The plan (``plan.json``): what ``advise plan`` decides and estimates, as one typed document.

The planner (``advisor.planner``) builds a ``Plan``; ``advise plan --json`` and ``plan.json`` are its
``to_json()``; the HTML report and the config exporters validate a plan with ``as_plan`` (or read a file with
``load_plan``) and read attributes. A document of another shape fails in one line naming the field, as
``profiler.schema.load_profile`` does for profiles. Field order is the file's order; numbers carry their unit in
their names; floats are rounded to 6 significant digits by the planner, so the same answers give the same bytes.

Enumerated fields take the keys of ``advisor.contract.vocab`` (a technique is one of ``TECHNIQUES`` ...).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from advisor.contract.answers import Answers
from advisor.contract.errors import AdviseError
from advisor.contract.text import UNSAFE
from advisor.contract.vocab import (
    APPROACHES,
    ATTENTION,
    DELIVERIES,
    EFFORTS,
    METHODS,
    NEXT_STEPS,
    OBJECTIVES,
    OFFLOAD,
    OPTIMIZERS,
    OPTION_KINDS,
    PRECISIONS,
    PREREQUISITES,
    RULE_STAGES,
    SERVING,
    SHARDING,
    TECHNIQUES,
)


def _keys(terms: Any) -> Any:
    """The pydantic type of a field that takes one key of a vocabulary table."""
    return Literal[tuple(terms)]


# the enumerated fields' types, one per vocabulary table
(Approach, Method, Objective, Technique, ServingStrategy, Prerequisite, Step, RuleStage, Sharding, Offload, Optimizer,
 Precision) = (_keys(t) for t in (APPROACHES, METHODS, OBJECTIVES, TECHNIQUES, SERVING, PREREQUISITES, NEXT_STEPS,
                                  RULE_STAGES, SHARDING, OFFLOAD, OPTIMIZERS, PRECISIONS))
#: transformers' attn_implementation names of the attention choices (auto is resolved by the planner)
OptionKindKey, Delivery, EffortKey = _keys(OPTION_KINDS), _keys(DELIVERIES), _keys(EFFORTS)
AttnImplementation = _keys(a.transformers_name for a in ATTENTION.values() if a.transformers_name)
Number = int | float


#: the thresholds the plan's readers use (the report's eval-set sentences)
READ_THRESHOLDS = ("eval_min_examples", "eval_max_examples")


class PlanError(AdviseError, ValueError):
    """A plan file or document cannot be read: one line naming the field."""


#: what a plan's text may not hold: control characters (line breaks included) and bidi overrides. Plan strings
#: reach file headers, YAML, Markdown, shell lines and terminals; none of the planner's own texts has them.
UNSAFE_TEXT = UNSAFE
#: a plan string's length, far above the longest the planner writes (a rule's rationale, ~600 characters)
MAX_TEXT_CHARS = 20_000
#: an integer in a plan (bytes, tokens, counts): below 2**62, so JSON readers keep it exact
MAX_INT = 1 << 62
#: the advise version in a plan: a PEP 440 / local version string, nothing a header could be broken with
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$"


class _Part(BaseModel):
    # finite numbers only: a plan with nan/inf cannot be written as standard JSON nor priced
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _inert(cls, v: Any) -> Any:
        _check_inert(v)
        return v


def _check_inert(v: Any) -> None:
    """Raise ``ValueError`` for a string with control characters or bidi overrides, an overlong string, or an
    integer out of range, at any depth of a field's value."""
    if isinstance(v, str):
        if UNSAFE_TEXT.search(v):
            raise ValueError("holds control characters, line breaks or bidi marks")
        if len(v) > MAX_TEXT_CHARS:
            raise ValueError(f"is longer than {MAX_TEXT_CHARS:,} characters")
    elif isinstance(v, bool):
        return
    elif isinstance(v, int):
        if not -MAX_INT <= v <= MAX_INT:
            raise ValueError("is out of range (|value| <= 2**62)")
    elif isinstance(v, (list, tuple)):
        for item in v:
            _check_inert(item)
    elif isinstance(v, dict):
        for k, item in v.items():
            _check_inert(k)
            _check_inert(item)


# ---- the decision ---------------------------------------------------------------------------------------------
class Recommendation(_Part):
    approach: Approach
    also: list[Approach]
    method: Method | None  # the first training stage
    then: list[Method]  # the stages after it, in order
    technique: Technique | None
    base_model: str | None
    gpus: list[str]
    gpu_count: int = Field(ge=0, le=4096)  # 0: nothing runs on a GPU
    #: who runs the result: today's API (no training), a provider or vendor (hosted), or your GPUs
    delivery: Delivery = "api"
    provider: str | None = None  # the provider that trains and serves it, when delivery is hosted

    @property
    def methods(self) -> list[str]:
        """Every training stage in order (empty when nothing is trained)."""
        return [self.method, *self.then] if self.method else []

    @property
    def fine_tune(self) -> bool:
        return APPROACHES[self.approach].fine_tune

    @property
    def self_hosted(self) -> bool:
        return self.fine_tune and not APPROACHES[self.approach].hosted


class ServingPlan(_Part):
    strategy: ServingStrategy
    notes: str


class RuleRef(_Part):
    """A fired rule as the summary cites it."""

    id: str
    name: str
    rationale: str
    source: str


class TraceEntry(_Part):
    """One rule of the trace: fired or not, and the clauses that decided it."""

    id: str
    name: str
    stage: RuleStage
    fired: bool
    reason: str
    rationale: str
    source: str


class ApiPriceRef(_Part):
    name: str
    date: str | None
    source: str
    retires: str | None = None  # the vendor's announced shutdown date


class PriceData(_Part):
    #: the date the plan was priced on: retirement dates are compared with it
    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    gpus_compiled: str | None
    prices_compiled: str | None
    training_price_date: str | None
    serving_price_date: str | None
    api: ApiPriceRef | None


# ---- the estimates --------------------------------------------------------------------------------------------
class BaseModelInfo(_Part):
    name: str
    hub_id: str | None
    family: str
    model_type: str
    max_position_embeddings: int | None
    params_total: int
    num_layers: int
    chosen_by: str | None
    #: "base" (pretrained) or "instruct" (chat-tuned) weights; None for a local or Hub config (not known)
    checkpoint: Literal["base", "instruct"] | None = None
    #: the Hub repo is gated (licence to accept, a token to download)
    gated: bool = False
    #: a multimodal wrapper's image tower and projector, held in memory and never trained by the plan
    params_frozen_vision: int = Field(default=0, ge=0)


class FitRow(_Part):
    """One technique on one GPU type: memory at the largest micro-batch that fits every stage, time and cost."""

    technique: Technique
    gpu: str
    gpu_count: int = Field(ge=1, le=4096)
    sharding: Sharding
    offload: Offload
    objective: Objective
    seq_len: int = Field(ge=1)
    micro_batch: int = Field(ge=1)
    optimizer: Optimizer
    memory_bytes: int = Field(ge=0)
    memory_parts_bytes: dict[str, int]
    measured: list[Literal["memory", "tokens_per_s"]]
    usable_memory_bytes: int = Field(gt=0)
    #: CPU RAM the offloaded states take on the machine (all gpu_count GPUs on one machine); 0 without offload
    host_ram_bytes_per_machine: int = Field(default=0, ge=0)
    fits: bool  # within the memory margin (the plan's max_memory_fraction of usable memory)
    tight: bool = False  # above the margin but within the card: not recommended
    tokens_per_s: float = Field(ge=0)
    hours: float = Field(ge=0)
    usd: float | None = Field(ge=0)
    provider: str | None


class StagePlan(_Part):
    method: Method
    objective: Objective
    examples: int = Field(ge=0)
    examples_assumed: bool
    tokens_per_example: int = Field(ge=0)
    seq_len: int = Field(gt=0)
    epochs: float = Field(gt=0)
    training_tokens: float  # tokens processed per epoch (pairs count both answers)
    learning_rate: float = Field(gt=0)
    global_batch_sequences: int = Field(ge=1)
    grad_accum: int = Field(ge=1)
    beta: float | None
    hours: float = Field(ge=0)


class LoraSettings(_Part):
    r: int = Field(ge=1, le=4096)
    alpha: int = Field(ge=1, le=1 << 20)
    dropout: float = Field(ge=0, lt=1)
    targets: list[str] = Field(min_length=1)
    #: the MoE parameters peft's targets reach as parameters (fused experts, a router: peft ParamWrapper), e.g.
    #: mlp.experts.gate_up_proj; empty for a dense model. Trainers that pass module names only cannot adapt them
    adapted_parameters: list[str] = Field(default_factory=list)
    #: the targets as one peft regular expression on the text decoder only, for a multimodal wrapper whose vision
    #: tower stays frozen (estimators.anatomy.text_target_regex); None for a text-only model
    target_regex: str | None = Field(default=None, max_length=500, pattern=r"^[A-Za-z0-9_.()|^$*?!\\]+$")

    @field_validator("adapted_parameters")
    @classmethod
    def _parameter_names(cls, v: list[str]) -> list[str]:
        # printed into trainer configs and READMEs: dotted Python identifiers only
        bad = [n for n in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", n) or len(n) > 200]
        if bad:
            raise ValueError(f"not a parameter name: {bad[0]!r}")
        return v


class Quantization(_Part):
    """bitsandbytes 4-bit loading (transformers ``BitsAndBytesConfig`` fields)."""

    load_in_4bit: bool
    bnb_4bit_quant_type: str
    bnb_4bit_use_double_quant: bool
    bnb_4bit_compute_dtype: str


class TrainingPlan(_Part):
    """The recommended self-hosted run: everything a trainer config needs, and what it costs."""

    technique: Technique
    gpu: str
    gpu_count: int = Field(ge=1)
    sharding: Sharding
    offload: Offload
    optimizer: Optimizer
    precision: Precision
    gradient_checkpointing: bool
    attn_implementation: AttnImplementation
    quantization: Quantization | None
    micro_batch: int = Field(ge=1, le=65_536)
    stages: list[StagePlan] = Field(min_length=1)
    lora: LoraSettings | None
    lr_scheduler: str = Field(pattern=r"^[a-z_]{1,40}$")
    warmup_ratio: float = Field(ge=0, le=1)
    logging_steps: int = Field(ge=1)
    memory_bytes: int = Field(ge=0)
    measured: list[Literal["memory", "tokens_per_s"]]
    memory_parts_bytes: dict[str, int]
    usable_memory_bytes: int
    #: CPU RAM the offloaded states take on the machine (all gpu_count GPUs on one machine); 0 without offload
    host_ram_bytes_per_machine: int = Field(default=0, ge=0)
    tokens_per_s: float
    hours: float
    usd: float | None
    provider: str | None
    usd_per_gpu_hour: float | None
    price_date: str | None
    #: training runs the hours and usd cover: one per tenant (adapter_layout per_tenant), else 1; each stage's
    #: examples are one run's
    adapters: int = Field(default=1, ge=1)
    adapter_layout: Literal["per_tenant", "shared"] | None = None

    @model_validator(mode="after")
    def _technique_needs(self) -> TrainingPlan:
        tech = TECHNIQUES[self.technique]
        if tech.adapter and self.lora is None:
            raise ValueError(f"lora is missing for technique {self.technique}")
        if tech.quantized and self.quantization is None:
            raise ValueError(f"quantization is missing for technique {self.technique}")
        return self


class HostedStage(_Part):
    method: Method
    examples: int
    training_tokens: Number
    epochs: float
    billed_tokens: float
    usd: float


class HostedFineTuning(_Part):
    offer: str
    provider: str
    base_model: str | None
    usd_per_million_training_tokens: float
    stages: list[HostedStage]
    training_usd: float
    usd_per_month: float | None
    status: str | None
    price_date: str | None
    source: str


class SelfHostedServing(_Part):
    gpu: str
    tensor_parallel: int
    replicas: int  # always-on replicas (0: scale-to-zero, billed while up)
    scale_to_zero: bool
    max_loras: int = Field(ge=0)  # vLLM --max-loras (0: one merged model)
    lora_bytes: int = Field(ge=0)  # GPU memory of the adapter slots
    gpu_hours_per_month: float
    provider: str
    usd_per_gpu_hour: float
    usd_per_month: float
    assumptions: list[str]


class Cumulative(_Part):
    today: list[float]  # month 0..12, USD
    after: list[float]


class Inference(_Part):
    requests_per_month: int | None
    input_tokens_per_request: int | None
    output_tokens_per_request: int | None
    today_usd_per_month: float | None
    today_source: str | None
    after_usd_per_month: float | None
    after_source: str | None
    self_hosted: SelfHostedServing | None
    monthly_saving_usd: float | None
    break_even_months: float | None
    cumulative_usd_12_months: Cumulative | None


class Option(_Part):
    """One path the plan priced against today's bill (``Plan.options``)."""

    approach: OptionKindKey
    name: str  # what it is, in a few words ("claude-haiku-4.5 with prompt caching")
    delivery: Delivery
    provider: str | None
    model: str | None
    one_off_usd: float | None = Field(ge=0)  # training; 0 for API changes; null: not priced
    monthly_usd: float | None = Field(ge=0)
    monthly_saving_usd: float | None  # today's bill minus monthly_usd
    break_even_months: float | None = Field(ge=0)
    effort: EffortKey
    effort_means: str
    feasible: bool
    why_not: str | None  # why it is not feasible (or not priced)
    beats_today: bool  # feasible, cheaper per month, and the one-off paid back within the payback horizon
    chosen: bool  # the path the plan recommends
    assumptions: list[str]
    price_date: str | None
    source: str | None


class Estimates(_Part):
    base_model: BaseModelInfo | None
    fit_matrix: list[FitRow]
    training: TrainingPlan | None
    hosted_fine_tuning: HostedFineTuning | None
    inference: Inference | None
    assumptions: list[str]


class NextStep(_Part):
    step: Step
    what: str


# ---- the data check of the files the answers name (``advise data check --json``, trimmed) -----------------------
class Problem(_Part):
    line: int
    code: str
    reason: str


class Turns(_Part):
    messages_min: int
    messages_p50: int
    messages_max: int
    multi_turn_examples: int
    examples_with_system: int
    examples_with_tools: int


class MaxLength(_Part):
    max_length_tokens: int
    over_examples: int
    over_share: float
    truncated_tokens: int
    over_lines: list[int]


class DuplicateLine(_Part):
    line: int
    duplicate_of_line: int
    exact: bool


class Duplicates(_Part):
    exact_duplicates: int
    near_duplicates: int
    duplicate_share: float
    normalisation: str
    lines: list[DuplicateLine]


class LabelCount(_Part):
    label: str
    count: int
    share: float


class Labels(_Part):
    distinct: int
    imbalance_ratio: float
    counts: list[LabelCount]


class KtoLabels(_Part):
    desirable: int
    undesirable: int


class OverlapLine(_Part):
    eval_line: int
    train_line: int


class EvalOverlap(_Part):
    examples: int
    share: float
    lines: list[OverlapLine]


class Verdict(_Part):
    code: str
    severity: Literal["error", "warning", "info"]
    message: str


class DataCheck(_Part):
    """One file's data check (``advisor.datacheck.DataReport.to_dict``)."""

    path: str
    kind: str | None
    kind_source: str | None
    file_bytes: int
    lines_total: int
    valid_examples: int
    invalid_lines: int
    problems_total: int
    problem_counts: dict[str, int]
    problems: list[Problem]
    problems_left_out: int
    turns: Turns | None
    p50_tokens: int
    p95_tokens: int
    max_tokens: int
    mean_tokens: float
    total_tokens: int
    tokens_exact: bool
    token_method: str
    max_length: MaxLength | None
    duplicates: Duplicates
    labels: Labels | None
    kto_labels: KtoLabels | None
    eval: DataCheck | None
    eval_overlap: EvalOverlap | None
    verdicts: list[Verdict]


#: the answers' data fields that name a file (a file checked with its training file sits under its ``eval``)
DataFileField = Literal["train_file", "preference_file", "eval_file"]


class DataSummary(_Part):
    files: dict[DataFileField, DataCheck]
    notes: list[str]

    def errors(self) -> list[str]:
        """The ERROR verdicts of every file (an eval file checked with its training file included), one line
        each, naming the answers field: what blocks a run (DATA_CHECK_ERRORS)."""
        out = []
        for field, check in self.files.items():
            for c, where in ((check, f"data.{field}"), (check.eval, "data.eval_file")):
                if c is None:
                    continue
                out += [f"{where}: {v.message}" for v in c.verdicts if v.severity == "error"]
        return out


class ProfileUse(_Part):
    """Which profile the plan read and what it took from it."""

    device: str
    catalog_gpu: str | None
    model: str
    created: str
    entries: int
    used: list[str]  # "lora on A100-80GB": fit-matrix cells whose memory or speed were measured


# ---- the plan -------------------------------------------------------------------------------------------------
class Plan(_Part):
    advise_version: str = Field(pattern=VERSION_PATTERN)
    project: str
    summary: str
    recommendation: Recommendation
    prerequisites: list[Prerequisite]
    prerequisite_steps: list[str]
    serving: ServingPlan
    why: list[RuleRef]
    warnings: list[RuleRef]
    rules: list[TraceEntry]
    thresholds: dict[str, Number]  # the named numbers the rules compared against (advisor/data/rules.yaml)
    price_data: PriceData
    estimates: Estimates
    #: every path priced against today's bill (API changes, hosted and self-hosted fine-tuning)
    options: list[Option]
    next_steps: list[NextStep]
    data: DataSummary | None
    profile: ProfileUse | None
    answers: Answers

    @field_validator("thresholds")
    @classmethod
    def _thresholds_the_readers_need(cls, v: dict[str, Number]) -> dict[str, Number]:
        missing = [k for k in READ_THRESHOLDS if k not in v]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        return v

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data, fields in the file's order."""
        return self.model_dump(mode="json", exclude_unset=False)

    def to_json(self) -> str:
        """The text of ``plan.json`` (what ``advise plan --json`` prints, plus a final newline)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def _first_problem(e: ValidationError) -> str:
    errors = e.errors()
    err = errors[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}"


def as_plan(plan: Plan | Mapping[str, Any], source: str = "plan") -> Plan:
    """``plan`` as a validated ``Plan``; anything else is one ``PlanError`` line naming the first bad field."""
    if isinstance(plan, Plan):
        return plan
    if not isinstance(plan, Mapping):
        raise PlanError(f"{source}: must be a JSON object (what `advise plan --json` prints), got "
                        f"{type(plan).__name__}")
    try:
        return Plan.model_validate(dict(plan))
    except ValidationError as e:
        raise PlanError(f"{source}: {_first_problem(e)}; make the plan with `advise plan --json` (or `--out DIR`) "
                        f"of this version") from None


def load_plan(path: str | os.PathLike[str], what: str = "plan") -> Plan:
    """Read and validate ``plan.json`` (bounded and strict: ``advisor.contract.files``); a missing, unreadable,
    oversized or foreign file is one ``PlanError`` line."""
    from advisor.contract.files import (
        MAX_PLAN_BYTES,
        InputFileError,
        parse_json,
        read_text,
    )

    hint = "make one with `advise plan --json > plan.json` or `advise plan --out DIR`"
    try:
        data = parse_json(read_text(path, what, MAX_PLAN_BYTES, hint), f"{what} {path}")
    except InputFileError as e:
        raise PlanError(str(e)) from None
    return as_plan(data, f"{what} {path}")
