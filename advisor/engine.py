"""The rules engine: rules are data (``advisor/data/rules.yaml``); evaluation returns a decision and a trace.

A rule has an id, a name, a stage, a condition (``when``) on *facts*, what it recommends, a rationale a
manager can read, and its source. Facts are the answers (``symptoms``, ``tried.few_shot``, ...), a few
derived figures (``workload.monthly_cost_usd``), the estimates (``estimates.fits.lora``) and the decision
so far (``decision.approach``); ``FACTS`` documents each one.

Stages run in order (``STAGES``); before each, the caller may add facts (the planner adds the estimates
before ``technique`` and the recommended run's cost before ``checks``). After each stage the decision is
recomposed after every rule that fires, so later rules can look at it. Every rule is evaluated and lands in
the trace with the clauses that decided it: a fired rule says which conditions held, a silent one which
did not.

Conditions are small and explicit::

    when:
      all:
        - {fact: symptoms, has_any: [format, style]}
        - {fact: tried.few_shot, in: [failed, partly]}
        - not: {rule: KEEP_PROMPTING}

Leaves: ``is``, ``is_not``, ``in``, ``not_in``, ``has``, ``has_any``, ``has_none``, ``gte``, ``gt``, ``lte``,
``lt``; ``{rule: ID}`` is true when an earlier rule fired. Combinators: ``all``, ``any``, ``not``. A value
written ``$name`` is the rules file's threshold of that name (``thresholds:``), resolved when the file loads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from advisor.contract.errors import AdviseError
from advisor.contract.vocab import (
    APPROACHES,
    METHODS,
    PREREQUISITES,
    RULE_STAGES,
    SERVING,
    TECHNIQUES,
    pipeline_order,
)

RULES_FILE = Path(__file__).parent / "data" / "rules.yaml"
STAGES: tuple[str, ...] = tuple(RULE_STAGES)

#: every fact a condition may name, with what it means (the answers' own fields are added from the schema)
FACTS: dict[str, str] = {
    "workload.monthly_cost_usd": "today's monthly bill: workload.current_monthly_cost_usd if given, else the "
                                 "current API's list price x the workload (null when unknown)",
    "data_check.errors": "ERROR verdicts `advise data check` found in the answers' data files (null: no file named)",
    "estimates.fits.full": "full fine-tuning of the base fits one of the candidate GPUs (x hardware.gpu_count)",
    "estimates.fits.lora": "LoRA fits one of the candidate GPUs",
    "estimates.fits.qlora": "QLoRA fits one of the candidate GPUs",
    "estimates.fits.dora": "DoRA fits one of the candidate GPUs",
    "estimates.context_overflow_tokens": "how many tokens a request (input + output) has beyond the base model's "
                                         "context (max_position_embeddings); 0 when it fits, null when unknown",
    "estimates.training_examples": "the fewest examples any training stage trains on (its own data: labeled "
                                   "examples, preference pairs or feedback labels; continued pre-training aside)",
    "estimates.adapter_examples": "the labeled examples one adapter trains on (one tenant's with an adapter per "
                                  "tenant, else data.labeled_examples): the LoRA rank follows it",
    "estimates.languages_missing": "how many of task.languages the base's publisher does not list (null: the base "
                                   "lists none, or no language was stated)",
    "estimates.training_usd": "cost of the recommended training run (cheapest listed price)",
    "estimates.monthly_saving_usd": "today's monthly bill minus the monthly cost after fine-tuning",
    "estimates.break_even_months": "training cost / monthly saving (null when it never pays back)",
    "estimates.budget_left_usd": "budget.training_usd minus the recommended run's cost (null without a budget)",
    "estimates.vendor_offer_open": "the current vendor has a hosted fine-tuning offer for the decision's methods "
                                   "that is open to new users and not retiring (null without a fine-tune)",
    "options.lora_serverless_available": "a provider in the price data serves customers' LoRA adapters of open "
                                         "models per token (false: a tuned open model needs GPUs someone operates "
                                         "for you by the hour)",
    "estimates.hosted_offer_open": "hosted fine-tuning was chosen and the current vendor has an offer for the "
                                   "plan's methods that is open to new users and not retiring (null otherwise)",
    "options.same_model_best_usd_per_month": "the lowest monthly bill that keeps today's model and its answers: "
                                             "today's, with prompt caching, or through the batch API when the work "
                                             "can wait (null when unknown)",
    "options.prompt_caching_usd_per_month": "today's model with prompt caching, per month, when that beats today's "
                                            "bill (null otherwise)",
    "options.batch_api_usd_per_month": "today's model through the batch API, per month, when the work can wait and "
                                       "that beats today's bill (null otherwise)",
    "options.cheaper_tier_usd_per_month": "the cheapest open, not retiring model of the same vendor, per month, when "
                                          "that beats today's bill (null otherwise)",
    "workload.tokens_per_month": "requests_per_month x (input + output tokens per request); null unless all three "
                                 "are known",
    "workload.bill_vs_list_factor": "how far the stated bill is from list price x workload, as a factor >= 1 "
                                    "either way (null unless both are known)",
    "model.current_api_retires_in_months": "months until the current API's announced shutdown (null: none "
                                           "announced)",
    "decision.approach": "the primary approach chosen by the earlier stages",
    "decision.approaches": "every approach recommended so far",
    "decision.fine_tune": "a fine-tuning approach (self-hosted or hosted) was chosen",
    "decision.self_hosted": "self-hosted fine-tuning was chosen (open weights on your GPUs)",
    "decision.methods": "the training stages chosen so far, in order",
    "decision.technique": "the technique chosen (full, lora, qlora, dora) or null",
    "decision.adapter_layout": "per_tenant (one adapter per tenant on its own data), shared (one adapter on the "
                               "pooled data) or null (one adapter: deployment.adapters is 1)",
    "data.per_adapter_examples": "the labeled examples one adapter trains on: data.examples_per_adapter, else "
                                 "data.labeled_examples / deployment.adapters",
}


class RulesError(AdviseError):
    """The rules file is malformed (names the rule and the field)."""


# ---- schema -------------------------------------------------------------------------------------
class Recommends(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approach: Literal[tuple(APPROACHES)] | None = None  # type: ignore[valid-type]
    methods: list[Literal[tuple(METHODS)]] = []  # type: ignore[valid-type]
    replaces: list[str] = []  # approaches or methods this rule supersedes
    technique: Literal[tuple(TECHNIQUES)] | None = None  # type: ignore[valid-type]
    base_size: Literal["small", "default"] | None = None
    #: start from the base's instruct (chat-tuned) checkpoint, or from the pretrained base itself
    checkpoint: Literal["instruct", "base"] | None = None
    #: several adapters: one per tenant on its own data, or one shared adapter on the pooled data
    adapter_layout: Literal["per_tenant", "shared"] | None = None
    prerequisites: list[Literal[tuple(PREREQUISITES)]] = []  # type: ignore[valid-type]
    warning: bool = False
    serving: Literal[tuple(SERVING)] | None = None  # type: ignore[valid-type]
    #: how the plan's sentences name the approach when this rule chose it ("improve retrieval ..."), in place of
    #: the approach's own phrase ("add retrieval (RAG)")
    says: str | None = Field(default=None, max_length=300)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$")
    name: str
    stage: Literal[tuple(RULE_STAGES)]  # type: ignore[valid-type]
    when: dict[str, Any]
    recommends: Recommends
    rationale: str
    source: str

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        r = self.recommends
        if not (r.approach or r.methods or r.technique or r.base_size or r.checkpoint or r.adapter_layout or r.prerequisites or r.warning
                or r.serving):
            raise ValueError("recommends nothing")
        return self


class Threshold(BaseModel):
    """A number conditions compare against, named once (``$name`` in a condition)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: int | float
    about: str


class RuleBook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: dict[str, Threshold] = {}
    approach_priority: dict[Literal[tuple(APPROACHES)], int]  # type: ignore[valid-type]
    rules: list[Rule]

    @property
    def threshold_values(self) -> dict[str, int | float]:
        """Every named threshold and its value, in file order (what a plan records)."""
        return {k: t.value for k, t in self.thresholds.items()}


# ---- conditions ---------------------------------------------------------------------------------
LEAF_OPS = ("is", "is_not", "in", "not_in", "has", "has_any", "has_none", "gte", "gt", "lte", "lt")


def _show(v: Any) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:,.2f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v) if v else "none"
    return str(v)


def _leaf(fact: str, op: str, want: Any, got: Any) -> tuple[bool, str]:
    if op in ("gte", "gt", "lte", "lt"):
        if got is None:
            return False, f"{fact} is unknown"
        ok = {"gte": got >= want, "gt": got > want, "lte": got <= want, "lt": got < want}[op]
        sym = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}[op]
        neg = {"gte": "<", "gt": "<=", "lte": ">", "lt": ">="}[op]
        return ok, f"{fact} = {_show(got)} {sym if ok else neg} {_show(want)}"
    if op in ("is", "is_not"):
        ok = (got == want) == (op == "is")
        return ok, (f"{fact} = {_show(got)}" if (got == want) else f"{fact} = {_show(got)}, not {_show(want)}")
    if op in ("in", "not_in"):
        inside = got in want
        ok = inside == (op == "in")
        return ok, (f"{fact} = {_show(got)}" + ("" if inside else f", not one of {_show(want)}"))
    values = list(got or [])
    wanted = [want] if op == "has" else list(want)
    hits = [w for w in wanted if w in values]
    ok = bool(hits) if op in ("has", "has_any") else not hits
    if hits:
        return ok, f"{fact} include {_show(hits)}"
    return ok, f"{fact} include none of {_show(wanted)}"


@dataclass
class Context:
    """What a condition is evaluated against: the facts, and the ids of the rules that fired so far."""

    facts: Mapping[str, Any]
    fired: set[str] = field(default_factory=set)


def _check_condition(cond: Any, where: str, known_facts: set[str], earlier: set[str]) -> list[str]:
    """Static check of a condition: shape, operators, fact names, rule references (earlier rules only)."""
    if not isinstance(cond, dict) or not cond:
        return [f"{where}: a condition must be a non-empty mapping"]
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        if len(cond) != 1 or not isinstance(cond[key], list) or not cond[key]:
            return [f"{where}: '{key}' takes a non-empty list and nothing beside it"]
        return [p for i, c in enumerate(cond[key]) for p in _check_condition(c, f"{where}.{key}[{i}]", known_facts,
                                                                             earlier)]
    if "not" in cond:
        if len(cond) != 1:
            return [f"{where}: 'not' takes one condition and nothing beside it"]
        return _check_condition(cond["not"], f"{where}.not", known_facts, earlier)
    if "rule" in cond:
        if set(cond) != {"rule"}:
            return [f"{where}: a rule reference is {{rule: ID}}"]
        return [] if cond["rule"] in earlier else [f"{where}: rule '{cond['rule']}' is not an earlier rule"]
    ops = [k for k in cond if k != "fact"]
    if "fact" not in cond or len(ops) != 1 or ops[0] not in LEAF_OPS:
        return [f"{where}: a leaf is {{fact: NAME, OP: VALUE}} with OP one of {', '.join(LEAF_OPS)}"]
    if cond["fact"] not in known_facts:
        return [f"{where}: unknown fact '{cond['fact']}'"]
    return []


def evaluate(cond: Mapping[str, Any], ctx: Context) -> tuple[bool, list[str]]:
    """(holds, the clauses that decided it): for a true condition the clauses that made it true, for a false
    one those that made it false."""
    if "all" in cond:
        results = [evaluate(c, ctx) for c in cond["all"]]
        ok = all(r[0] for r in results)
        return ok, [w for r in results if r[0] == ok for w in r[1]]
    if "any" in cond:
        results = [evaluate(c, ctx) for c in cond["any"]]
        ok = any(r[0] for r in results)
        return ok, [w for r in results if r[0] == ok for w in r[1]]
    if "not" in cond:
        ok, why = evaluate(cond["not"], ctx)
        return not ok, why
    if "rule" in cond:
        fired = cond["rule"] in ctx.fired
        return fired, [f"{cond['rule']} {'fired' if fired else 'did not fire'}"]
    fact = cond["fact"]
    op = next(k for k in cond if k != "fact")
    ok, why = _leaf(fact, op, cond[op], ctx.facts.get(fact))
    return ok, [why]


def flatten_facts(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested answers as facts: ``{"tried": {"few_shot": "failed"}}`` -> ``{"tried.few_shot": "failed"}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten_facts(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


# ---- loading ------------------------------------------------------------------------------------
def answer_facts() -> set[str]:
    """Fact names that come straight from the answers (``data.labeled_examples``, ``symptoms``, ...)."""
    from advisor.contract.answers import Answers

    out: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            else:
                out.add(prefix + name)

    walk(Answers, "")
    return out


def _resolve_thresholds(cond: Any, values: Mapping[str, Any], where: str, problems: list[str]) -> Any:
    """``cond`` with every ``$name`` value replaced by the threshold's number."""
    if isinstance(cond, dict):
        return {k: _resolve_thresholds(v, values, where, problems) for k, v in cond.items()}
    if isinstance(cond, list):
        return [_resolve_thresholds(v, values, where, problems) for v in cond]
    if isinstance(cond, str) and cond.startswith("$"):
        name = cond[1:]
        if name not in values:
            problems.append(f"{where}: unknown threshold '{cond}' (thresholds: {', '.join(values) or 'none'})")
            return cond
        return values[name]
    return cond


@functools.lru_cache(maxsize=4)
def load_rules(path: str | Path = RULES_FILE) -> RuleBook:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise RulesError(f"{path}: cannot read the rules ({e})") from None
    if isinstance(raw, dict) and isinstance(raw.get("rules"), list):
        values = {k: v.get("value") for k, v in (raw.get("thresholds") or {}).items() if isinstance(v, dict)}
        unresolved: list[str] = []
        raw = {**raw, "rules": [
            {**r, "when": _resolve_thresholds(r.get("when"), values, f"rule {r.get('id')}: when", unresolved)}
            if isinstance(r, dict) else r for r in raw["rules"]]}
        if unresolved:
            raise RulesError(f"{path}: " + "; ".join(unresolved))
    try:
        book = RuleBook.model_validate(raw)
    except ValidationError as e:
        raise RulesError(f"{path}: " + "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())) from None
    known = answer_facts() | set(FACTS)
    problems, earlier = [], set()
    for r in book.rules:
        if r.id in earlier:
            problems.append(f"rule {r.id}: duplicate id")
        problems += _check_condition(r.when, f"rule {r.id}: when", known, earlier)
        for x in r.recommends.replaces:
            if x not in APPROACHES and x not in METHODS:
                problems.append(f"rule {r.id}: replaces '{x}', which is neither an approach nor a method")
        earlier.add(r.id)
    missing = set(APPROACHES) - set(book.approach_priority)
    if missing:
        problems.append(f"approach_priority: missing {', '.join(sorted(missing))}")
    if problems:
        raise RulesError(f"{path}: " + "; ".join(problems))
    return book


# ---- decision -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceEntry:
    id: str
    name: str
    stage: str
    fired: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    approach: str
    also: tuple[str, ...]
    methods: tuple[str, ...]
    technique: str | None
    base_size: str
    prerequisites: tuple[str, ...]
    warnings: tuple[str, ...]  # ids of fired warning rules
    serving: str
    trace: tuple[TraceEntry, ...] = field(default=())
    says: tuple[tuple[str, str], ...] = field(default=())  # approach -> the phrase a fired rule gave it
    #: "instruct" / "base" when a rule chose the checkpoint to train from ("base" wins: continued pre-training);
    #: None: the task's default (training.yaml checkpoints)
    checkpoint: str | None = None
    #: "per_tenant" / "shared" when a rule chose how several adapters are trained; None: one adapter
    adapter_layout: str | None = None

    def phrase(self, approach: str) -> str:
        """How the plan's sentences name ``approach``: the deciding rule's own words, else the vocabulary's."""
        return dict(self.says).get(approach) or APPROACHES.phrase(approach)

    @property
    def fine_tune(self) -> bool:
        return APPROACHES[self.approach].fine_tune

    @property
    def self_hosted(self) -> bool:
        return APPROACHES[self.approach].fine_tune and not APPROACHES[self.approach].hosted

    @property
    def fired(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.trace if t.fired)

    def facts(self) -> dict[str, Any]:
        return {
            "decision.approach": self.approach,
            "decision.approaches": [self.approach, *self.also],
            "decision.fine_tune": self.fine_tune,
            "decision.self_hosted": self.self_hosted,
            "decision.methods": list(self.methods),
            "decision.technique": self.technique,
            "decision.adapter_layout": self.adapter_layout,
        }


def compose(book: RuleBook, fired: Sequence[Rule], trace: Sequence[TraceEntry] = ()) -> Decision:
    """The decision the fired rules make together.

    The primary approach is the fired approach with the highest ``approach_priority`` (nothing fired:
    prompting); the training stages are the fired methods in pipeline order (``vocab.pipeline_order``); a rule's
    ``replaces`` removes approaches or methods it supersedes (ORPO replaces SFT + DPO, hosted fine-tuning
    replaces self-hosted). The first fired technique and serving rule win (rules are ordered by preference).
    """
    replaced = {x for r in fired for x in r.recommends.replaces}
    approaches = [a for a in dict.fromkeys(r.recommends.approach for r in fired if r.recommends.approach)
                  if a not in replaced]
    approaches.sort(key=lambda a: -book.approach_priority[a])
    primary = approaches[0] if approaches else "prompting"
    ft = APPROACHES[primary].fine_tune
    stages = {m for r in fired for m in r.recommends.methods} - replaced
    methods = pipeline_order(stages) if ft else ()
    technique = next((r.recommends.technique for r in fired if r.recommends.technique), None) \
        if primary == "fine_tune" else None
    if not ft:
        serving = "none"
    elif APPROACHES[primary].hosted:
        serving = "hosted"
    else:
        serving = next((r.recommends.serving for r in fired if r.recommends.serving), "none")
    return Decision(
        approach=primary,
        also=tuple(approaches[1:]),
        methods=methods,
        technique=technique,
        base_size=next((r.recommends.base_size for r in fired if r.recommends.base_size), "default"),
        checkpoint=next((c for c in ("base", "instruct") if any(r.recommends.checkpoint == c for r in fired)), None)
        if ft else None,
        adapter_layout=next((r.recommends.adapter_layout for r in fired if r.recommends.adapter_layout), None)
        if ft and not APPROACHES[primary].hosted else None,
        prerequisites=tuple(p for p in PREREQUISITES if any(p in r.recommends.prerequisites for r in fired)),
        warnings=tuple(r.id for r in fired if r.recommends.warning),
        serving=serving,
        trace=tuple(trace),
        says=tuple((a, next(r.recommends.says for r in fired if r.recommends.approach == a and r.recommends.says))
                   for a in approaches if any(r.recommends.approach == a and r.recommends.says for r in fired)),
    )


StageFacts = Callable[[str, Decision], Mapping[str, Any]]


def decide(facts: Mapping[str, Any], book: RuleBook | None = None, stage_facts: StageFacts | None = None) -> Decision:
    """Evaluate every rule, stage by stage, and return the decision with its full trace.

    ``stage_facts(stage, decision_so_far)`` may add facts before a stage (the planner's estimates).
    """
    book = book or load_rules()
    ctx = Context(dict(facts), set())
    fired: list[Rule] = []
    trace: list[TraceEntry] = []
    decision = compose(book, fired)
    ctx.facts.update(decision.facts())
    for stage in STAGES:
        if stage_facts is not None:
            ctx.facts.update(stage_facts(stage, decision))
        for rule in (r for r in book.rules if r.stage == stage):
            ok, why = evaluate(rule.when, ctx)
            trace.append(TraceEntry(rule.id, rule.name, stage, ok, "; ".join(why)))
            if ok:
                ctx.fired.add(rule.id)
                fired.append(rule)
                decision = compose(book, fired)
                ctx.facts.update(decision.facts())
    return compose(book, fired, trace)
