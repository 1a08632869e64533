"""The interactive questionnaire behind ``advise plan`` without an answers file.

Questions are data: the answers field they fill, a one-line explanation, a default, and ``ask_if``, a
condition on the answers so far in the rules engine's own language, so only the questions that matter are
asked (tools only when actions are a problem, the workload only when cost matters or an API is in use...).
``ask`` collects raw answers with an injectable prompt function; ``parse`` reads one typed answer the way
people type it (any case for choices, ``10k``, ``$1,200.50``...) and says in one line what to type instead;
validation of the whole is the answers schema's.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, get_args, get_origin

from advisor.contract.answers import SYMPTOMS, TASK_KINDS, TRIED, Answers
from advisor.engine import Context, evaluate, flatten_facts, load_rules

#: the rules file's thresholds, for the questions' help texts
_T = load_rules().threshold_values


@dataclass(frozen=True)
class Question:
    key: str  # dotted answers field
    text: str
    help: str
    kind: str  # text | choice | choices | int | float | bool
    default: Any = None  # None: optional (blank = not given) unless required
    choices: tuple[str, ...] = ()
    required: bool = False
    ask_if: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the prompt shows ``text`` (and ``help`` above it): the allowed answers go into the text, so they are
        # in view before anything is typed
        hint = self.answer_hint
        if hint and not self.text.endswith(hint):
            object.__setattr__(self, "text", f"{self.text} {hint}")

    @property
    def answer_hint(self) -> str:
        """What may be typed, shown after the question: ``(a/b/c)`` for one choice, ``(one or more,
        comma-separated: a, b)`` for several, ``(yes/no)``; empty for free text and numbers."""
        if self.kind == "choice":
            return f"({'/'.join(self.choices)})"
        if self.kind == "choices":
            return f"(one or more, comma-separated: {', '.join(self.choices)})"
        if self.kind == "bool":
            return "(yes/no)"
        return ""

    @property
    def prompt_text(self) -> str:
        """The question as the prompt shows it (``text`` already carries the allowed answers)."""
        return self.text


WORKLOAD_MATTERS = {"any": [{"fact": "symptoms", "has_any": ["cost", "latency"]},
                            {"fact": "model.current_api", "is_not": None}]}
OPEN_WEIGHTS = {"fact": "model.open_weights_ok", "is": True}
HAS_LABELED = {"fact": "data.labeled_examples", "gt": 0}
HAS_PREFERENCES = {"any": [{"fact": "data.preference_pairs", "gt": 0}, {"fact": "data.binary_feedback", "gt": 0}]}
HAS_EVAL = {"fact": "data.eval_examples", "gt": 0}
#: where a relative data-file path is read from, and how to check the file first (the data-file questions' help)
_FILE_HELP = ("a relative path is read from the folder the answers are saved in (the current folder for this run); "
              "blank: no file. Check it first with `advise data check FILE`.")

QUESTIONS: tuple[Question, ...] = (
    Question("project", "Project name", "A title for the plan and the report.", "text", "My LLM project",
             required=True),
    Question("task.kind", "What does the model do?", "The kind of task decides the default base model size.",
             "choice", "other", TASK_KINDS),
    Question("task.description", "Describe the task in one sentence", "Shown in the report.", "text", ""),
    Question("symptoms", "What is wrong today?",
             "knowledge_gap/stale_knowledge: missing or old facts; format/style: output shape or tone; reasoning: "
             "multi-step errors; actions/tool_errors: doing things or calling tools; cost/latency; preference: "
             "acceptable but not preferred answers; domain_language: jargon it does not know.",
             "choices", None, SYMPTOMS, required=True),
    Question("tried.prompting", "Have better instructions in the prompt been tried?",
             "fixed = solved it, partly = helped, failed = no help, not_tried.", "choice", "not_tried", TRIED),
    Question("tried.few_shot", "Have examples in the prompt (few-shot) been tried?",
             "Showing 3-10 good input/output examples often fixes format and style.", "choice", "not_tried", TRIED,
             ask_if={"fact": "symptoms", "has_any": ["format", "style"]}),
    Question("tried.rag", "Has retrieval (RAG) been tried?", "Search your documents and put passages in the prompt.",
             "choice", "not_tried", TRIED,
             ask_if={"fact": "symptoms", "has_any": ["knowledge_gap", "stale_knowledge", "domain_language"]}),
    Question("tried.structured_output", "Have structured outputs (JSON schema, tool schemas) been tried?",
             "The vendor's JSON mode or a schema the decoder must follow fixes an output's shape without training.",
             "choice", "not_tried", TRIED, ask_if={"fact": "symptoms", "has": "format"}),
    Question("tried.tools", "Are tools / function calling in place?", "Functions the model can call (search, APIs).",
             "choice", "not_tried", TRIED, ask_if={"fact": "symptoms", "has_any": ["actions", "tool_errors"]}),
    Question("data.labeled_examples", "How many labeled input/output examples exist?",
             "Examples of the right answer for real inputs (0 if none).", "int", 0),
    Question("data.train_file", "Training file (JSONL; blank: none yet)",
             f"One chat example per line ({{\"messages\": [...]}}); {_FILE_HELP}", "text", None, ask_if=HAS_LABELED),
    Question("data.preference_pairs", "How many preference pairs (a better and a worse answer)?",
             "Pairs of answers to the same prompt with the better one marked.", "int", 0,
             ask_if={"fact": "symptoms", "has": "preference"}),
    Question("data.binary_feedback", "How many thumbs-up/down ratings of single answers?",
             "Good/bad labels on individual answers.", "int", 0, ask_if={"fact": "symptoms", "has": "preference"}),
    Question("data.preference_file", "Preference or feedback file (JSONL; blank: none yet)",
             f"One prompt/chosen/rejected pair or one prompt/completion/label rating per line; {_FILE_HELP}", "text",
             None, ask_if=HAS_PREFERENCES),
    Question("data.domain_corpus_tokens", "How many tokens of raw domain text exist?",
             "Unlabeled documents in the domain's language (roughly 0.75 words per token).", "int", 0,
             ask_if={"fact": "symptoms", "has": "domain_language"}),
    Question("data.eval_examples", "How many eval examples with known good answers exist?",
             f"A held-out set to judge any change; {_T['eval_min_examples']}-{_T['eval_max_examples']} is enough to "
             "start.", "int", 0),
    Question("data.eval_file", "Eval file (JSONL; blank: none yet)",
             f"The held-out examples, in the training file's format; {_FILE_HELP}", "text", None, ask_if=HAS_EVAL),
    Question("model.current_api", "Which hosted model is used today? (blank: none)",
             "A catalog API name, e.g. claude-haiku-4.5 or gpt-4.1-mini.", "text", None),
    Question("model.open_weights_ok", "May the team run open-weights models on its own GPUs?",
             "No: only the vendor's hosted fine-tuning is possible.", "bool", True),
    Question("task.languages", "Which languages must the model handle? (ISO codes, comma-separated; blank: not stated)",
             "e.g. en, de, ja: the base is chosen among models whose publisher lists them.", "text", None,
             ask_if=OPEN_WEIGHTS),
    Question("model.base", "Base model to fine-tune (blank: let advise choose)",
             "A catalog name (advise models), a Hub id or a local config.json.", "text", None, ask_if=OPEN_WEIGHTS),
    Question("hardware.gpus", "Which GPUs can you use? (comma-separated; blank: compare all)",
             "Catalog names, e.g. A100-80GB, H100-80GB, L4 (advise gpus).", "text", None, ask_if=OPEN_WEIGHTS),
    Question("hardware.gpu_count", "How many of them per training run?", "More than one enables ZeRO-3/FSDP.",
             "int", 1, ask_if=OPEN_WEIGHTS),
    Question("hardware.owned", "Are these GPUs your own (not rented)?",
             "Own cards cost electricity, not rent, so training is priced at power x your electricity price.", "bool",
             False, ask_if={"all": [OPEN_WEIGHTS, {"fact": "hardware.gpus", "is_not": None}]}),
    Question("hardware.power_watts_per_gpu", "Power per GPU under load, in watts (blank: not counted)",
             "The card's board power, e.g. 300 for an L40S, 700 for an H100 SXM.", "float", None,
             ask_if={"fact": "hardware.owned", "is": True}),
    Question("hardware.usd_per_kwh", "Electricity price in USD per kWh (blank: not counted)",
             "What the site pays, e.g. 0.15.", "float", None, ask_if={"fact": "hardware.owned", "is": True}),
    Question("budget.training_usd", "Training budget in USD (blank: none)", "Flags runs that cost more.", "float",
             None),
    Question("workload.requests_per_month", "Requests per month (blank: unknown)",
             "Needed to compare monthly costs.", "int", None, ask_if=WORKLOAD_MATTERS),
    Question("workload.input_tokens_per_request", "Input tokens per request", "Prompt + context, on average.", "int",
             500, ask_if={"fact": "workload.requests_per_month", "is_not": None}),
    Question("workload.output_tokens_per_request", "Output tokens per request", "The answer, on average.", "int", 200,
             ask_if={"fact": "workload.requests_per_month", "is_not": None}),
    Question("workload.current_monthly_cost_usd", "Today's monthly bill in USD (blank: compute from list prices)",
             "What the hosted model costs per month now.", "float", None,
             ask_if={"fact": "workload.requests_per_month", "is_not": None}),
    Question("workload.static_prompt_tokens", "Tokens every request starts with (blank: unknown)",
             "The system prompt, instructions and few-shot examples that are the same in every request: prompt "
             "caching bills them at a fraction of the input price.", "int", None,
             ask_if={"all": [{"fact": "workload.requests_per_month", "is_not": None},
                             {"fact": "model.current_api", "is_not": None}]}),
    Question("workload.batch_ok", "May answers come back hours later (offline work)?",
             "Yes: batch APIs (about half price) and self-hosted serving without a peak or a latency target.", "bool",
             False, ask_if={"fact": "workload.requests_per_month", "is_not": None}),
    Question("workload.peak_to_average", "Busiest hour's traffic over the average (blank: 2)",
             "Serving is bought for the peak: 1 = flat traffic, 2 = business hours, 5+ = spiky.", "float", None,
             ask_if={"all": [{"fact": "workload.requests_per_month", "is_not": None}, OPEN_WEIGHTS]}),
    Question("workload.latency_p95_ms", "Slowest acceptable response, in milliseconds (blank: no target)",
             "Prefill + the whole answer; a target caps the serving batch and may need a faster card.", "float", None,
             ask_if={"all": [{"fact": "workload.requests_per_month", "is_not": None}, OPEN_WEIGHTS]}),
    Question("deployment.adapters", "How many tasks or tenants will share one base model?",
             "More than one favours LoRA adapters served together.", "int", 1, ask_if=OPEN_WEIGHTS),
    Question("data.examples_per_adapter", "How many labeled examples does each tenant have? (blank: an even split)",
             "An adapter per tenant trains on that tenant's own examples; under 100 each, one shared adapter.",
             "int", None, ask_if={"all": [{"fact": "deployment.adapters", "gt": 1},
                                          {"fact": "data.labeled_examples", "gt": 0}]}),
    Question("deployment.operate_gpus", "Will the team run GPU machines itself (training and serving)?",
             "No: only managed paths, the vendor's hosted fine-tuning or a provider that serves a tuned model per "
             "token.", "bool", True, ask_if=OPEN_WEIGHTS),
    Question("deployment.quantized_ok", "May the served model use FP8/INT4 weights?",
             "Halves or quarters the serving memory; confirm quality on the eval set first.", "bool", False,
             ask_if={"all": [{"fact": "workload.requests_per_month", "is_not": None}, OPEN_WEIGHTS]}),
)

Prompt = Callable[[Question, Any], Any]


def _set(raw: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for p in parents:
        raw = raw.setdefault(p, {})
    raw[last] = value


def should_ask(q: Question, raw: dict[str, Any]) -> bool:
    if not q.ask_if:
        return True
    return evaluate(q.ask_if, Context(flatten_facts(raw), set()))[0]


def ask(prompt: Prompt, questions: Sequence[Question] = QUESTIONS) -> dict[str, Any]:
    """Ask the questions that matter, in order; ``prompt(question, default)`` returns the parsed value
    (``None`` for a blank optional answer). Returns the raw answers mapping."""
    raw: dict[str, Any] = {}
    for q in questions:
        if should_ask(q, raw):
            value = prompt(q, q.default)
            if value is not None:
                _set(raw, q.key, value)
    return raw


def parse(q: Question, text: str) -> Any:
    """Parse one typed answer; raises ValueError with a one-line reason that says what to type."""
    text = text.strip()
    if text == "":
        return _blank(q)
    if q.kind == "text":
        if q.key == "hardware.gpus":
            return [g.strip() for g in text.split(",") if g.strip()]
        if q.key == "task.languages":
            codes = list(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
            bad = [c for c in codes if not (len(c) == 2 and c.isascii() and c.isalpha())]
            if bad:
                raise ValueError(f"{bad[0]!r} is not a language code: give two-letter ISO 639-1 codes, e.g. en, de, ja")
            return codes
        if q.key.endswith("_file") and len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1].strip() or _blank(q)  # a path pasted or dropped in quotes
        return text
    if q.kind == "choice":
        choice = _match_choice(q.choices, text)
        if choice is None:
            raise ValueError(f"{text}: not allowed{_did_you_mean(q.choices, text)}; choose one of "
                             f"{', '.join(q.choices)}")
        return choice
    if q.kind == "choices":
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            return _blank(q)
        matched = [_match_choice(q.choices, t) for t in items]
        bad = [t for t, m in zip(items, matched, strict=True) if m is None]
        if bad:
            hint = _did_you_mean(q.choices, bad[0]) if len(bad) == 1 else ""
            raise ValueError(f"{', '.join(bad)}: not allowed{hint}; choose from {', '.join(q.choices)} "
                             "(comma-separated)")
        return list(dict.fromkeys(matched))
    if q.kind == "bool":
        if text.lower() in _YES:
            return True
        if text.lower() in _NO:
            return False
        raise ValueError(f"{text}: answer yes or no (y/n)")
    return _number(q, text)


_YES = ("y", "yes", "true", "1")
_NO = ("n", "no", "false", "0")


def _blank(q: Question) -> Any:
    if q.required and q.default is None:
        raise ValueError("an answer is required" + (f"; choose from {', '.join(q.choices)}" if q.choices else ""))
    return q.default


# ---- choices ------------------------------------------------------------------------------------
def _normal(s: str) -> str:
    """A choice as compared: any case, spaces or dashes for underscores (``Not tried`` -> ``not_tried``)."""
    return re.sub(r"[\s_-]+", "_", s.strip().lower()).strip("_")


def _match_choice(choices: Sequence[str], typed: str) -> str | None:
    """The one choice ``typed`` spells, or None (also when the spelling fits more than one)."""
    if typed.strip() in choices:
        return typed.strip()
    hits = [c for c in choices if _normal(c) == _normal(typed)]
    return hits[0] if len(hits) == 1 else None


def _did_you_mean(choices: Sequence[str], typed: str) -> str:
    close = difflib.get_close_matches(_normal(typed), [_normal(c) for c in choices], n=1)
    return f" (did you mean {next(c for c in choices if _normal(c) == close[0])}?)" if close else ""


# ---- numbers ------------------------------------------------------------------------------------
#: k/M/B after a number, any case: 10k, 1.5M, 3B, 2bn
_SCALE = {"k": 3, "m": 6, "b": 9, "bn": 9}
_SCALED = re.compile(r"(?P<num>.*?)\s*(?P<scale>k|m|bn|b)", re.IGNORECASE)
#: a thousands separator: a comma, underscore or space between a digit and exactly three more (1,200 / 1 000)
_SEPARATOR = re.compile(r"(?<=\d)[,_ ](?=\d{3}(?!\d))")
_PLAIN = re.compile(r"(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", re.IGNORECASE)
_NOT_FINITE = ("nan", "inf", "infinity")
#: larger answers are typos (no count or amount in the answers comes near it); it also keeps 1e999999999 cheap
_LARGEST = Decimal(10) ** 18
#: a range this small is shown in full ("from 1 to 64"); a larger upper limit is only named when it is passed
_SMALL_RANGE = 10_000


def _number(q: Question, text: str) -> int | float:
    whole = q.kind == "int"
    amount = q.key.endswith("_usd")
    lo, hi = _bounds(q.key)
    what = "a whole number" if whole else "an amount in USD" if amount else "a number"
    if lo is not None and hi is not None and hi <= _SMALL_RANGE:
        what += f" from {lo:g} to {hi:g}"
    else:
        examples = "5000, 5,000 or 5k" if whole else "500, $1,200.50 or 2k" if amount else "2.5, 1,200 or 10k"
        what += (f" >= {lo:g}" if lo is not None else "") + f", e.g. {examples}"
    s = text
    if amount:  # $500, 500 USD, -$5
        s = re.sub(r"\s*usd$", "", s, flags=re.IGNORECASE)
        s = re.sub(r"^([+-]?)\s*\$\s*", r"\1", s)
    elif "$" in s or re.search(r"usd$", s, re.IGNORECASE):
        raise ValueError(f"{text}: this question is not about money; give {what}")
    negative = s.startswith("-")
    s = s.lstrip("+-").strip()
    if s.lower() in _NOT_FINITE:
        raise ValueError(f"{text}: not a finite number; give {what}")
    exponent = 0
    m = _SCALED.fullmatch(s)
    if m and m["num"]:
        s, exponent = m["num"], _SCALE[m["scale"].lower()]
    s = _SEPARATOR.sub("", s)
    if not _PLAIN.fullmatch(s):
        raise ValueError(f"{text}: not a number; give {what}")
    try:
        value = Decimal(s).scaleb(exponent)
    except ArithmeticError:
        raise ValueError(f"{text}: too large; give {what}") from None
    if negative and value != 0:
        raise ValueError(f"{text}: negative; give {what}")
    if value > _LARGEST:
        raise ValueError(f"{text}: too large; give {what}")
    if whole and value != value.to_integral_value():
        down = math.floor(value)
        raise ValueError(f"{text}: not a whole number; give a whole number, e.g. {down} or {down + 1}")
    if lo is not None and value < lo:
        raise ValueError(f"{text}: too small; give {what}")
    if hi is not None and value > hi:
        raise ValueError(f"{text}: too large (at most {hi:,.0f}); give {what}")
    return int(value) if whole else float(value)


def _bounds(key: str) -> tuple[float | None, float | None]:
    """The answers schema's limits on a number field (``ge``/``le``): the questionnaire refuses what the
    schema would, while the question is still on screen."""
    model: Any = Answers
    *parents, last = key.split(".")
    for p in parents:
        model = getattr(model, "model_fields", {}).get(p)
        model = model.annotation if model is not None else None
    f = getattr(model, "model_fields", {}).get(last)
    if f is None:  # not an answers field: no limits beyond >= 0
        return None, None
    found = list(f.metadata)
    for arg in get_args(f.annotation):  # ``Count | None``: the limits sit inside the union
        if get_origin(arg) is Annotated:
            for m in get_args(arg)[1:]:
                found += getattr(m, "metadata", [m])
    lo = next((m.ge for m in found if hasattr(m, "ge")), None)
    hi = next((m.le for m in found if hasattr(m, "le")), None)
    return lo, hi
