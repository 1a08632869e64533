"""The interactive questionnaire behind ``advise plan`` without an answers file.

Questions are data: the answers field they fill, a one-line explanation, a default, and ``ask_if``, a
condition on the answers so far in the rules engine's own language, so only the questions that matter are
asked (tools only when actions are a problem, the workload only when cost matters or an API is in use...).
``ask`` collects raw answers with an injectable prompt function; validation is the answers schema's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from advisor.contract.answers import SYMPTOMS, TASK_KINDS, TRIED
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


WORKLOAD_MATTERS = {"any": [{"fact": "symptoms", "has_any": ["cost", "latency"]},
                            {"fact": "model.current_api", "is_not": None}]}
OPEN_WEIGHTS = {"fact": "model.open_weights_ok", "is": True}

QUESTIONS: tuple[Question, ...] = (
    Question("project", "Project name", "A title for the plan and the report.", "text", "My LLM project",
             required=True),
    Question("task.kind", "What does the model do?", "The kind of task decides the default base model size.",
             "choice", "other", TASK_KINDS),
    Question("task.description", "Describe the task in one sentence", "Shown in the report.", "text", ""),
    Question("symptoms", "What is wrong today? (comma-separated)",
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
    Question("tried.tools", "Are tools / function calling in place?", "Functions the model can call (search, APIs).",
             "choice", "not_tried", TRIED, ask_if={"fact": "symptoms", "has_any": ["actions", "tool_errors"]}),
    Question("data.labeled_examples", "How many labeled input/output examples exist?",
             "Examples of the right answer for real inputs (0 if none).", "int", 0),
    Question("data.preference_pairs", "How many preference pairs (a better and a worse answer)?",
             "Pairs of answers to the same prompt with the better one marked.", "int", 0,
             ask_if={"fact": "symptoms", "has": "preference"}),
    Question("data.binary_feedback", "How many thumbs-up/down ratings of single answers?",
             "Good/bad labels on individual answers.", "int", 0, ask_if={"fact": "symptoms", "has": "preference"}),
    Question("data.domain_corpus_tokens", "How many tokens of raw domain text exist?",
             "Unlabeled documents in the domain's language (roughly 0.75 words per token).", "int", 0,
             ask_if={"fact": "symptoms", "has": "domain_language"}),
    Question("data.eval_examples", "How many eval examples with known good answers exist?",
             f"A held-out set to judge any change; {_T['eval_min_examples']}-{_T['eval_max_examples']} is enough to "
             "start.", "int", 0),
    Question("model.current_api", "Which hosted model is used today? (blank: none)",
             "A catalog API name, e.g. claude-haiku-4.5 or gpt-4.1-mini.", "text", None),
    Question("model.open_weights_ok", "May the team run open-weights models on its own GPUs?",
             "No: only the vendor's hosted fine-tuning is possible.", "bool", True),
    Question("model.base", "Base model to fine-tune (blank: let advise choose)",
             "A catalog name (advise models), a Hub id or a local config.json.", "text", None, ask_if=OPEN_WEIGHTS),
    Question("hardware.gpus", "Which GPUs can you use? (comma-separated; blank: compare all)",
             "Catalog names, e.g. A100-80GB, H100-80GB, L4 (advise gpus).", "text", None, ask_if=OPEN_WEIGHTS),
    Question("hardware.gpu_count", "How many of them per training run?", "More than one enables ZeRO-3/FSDP.",
             "int", 1, ask_if=OPEN_WEIGHTS),
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
    Question("deployment.adapters", "How many tasks or tenants will share one base model?",
             "More than one favours LoRA adapters served together.", "int", 1, ask_if=OPEN_WEIGHTS),
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
    """Parse one typed answer; raises ValueError with a one-line reason."""
    text = text.strip()
    if text == "":
        if q.required and q.default is None:
            raise ValueError("an answer is required")
        return q.default
    if q.kind == "text":
        if q.key == "hardware.gpus":
            return [g.strip() for g in text.split(",") if g.strip()]
        return text
    if q.kind == "choice":
        if text not in q.choices:
            raise ValueError(f"choose one of {', '.join(q.choices)}")
        return text
    if q.kind == "choices":
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in q.choices]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not allowed; choose from {', '.join(q.choices)}")
        return list(dict.fromkeys(items))
    if q.kind == "bool":
        if text.lower() in ("y", "yes", "true", "1"):
            return True
        if text.lower() in ("n", "no", "false", "0"):
            return False
        raise ValueError("answer yes or no")
    try:
        value = int(text.replace(",", "").replace("_", "")) if q.kind == "int" else float(text.replace(",", ""))
    except ValueError:
        raise ValueError(f"give a {'whole number' if q.kind == 'int' else 'number'}") from None
    if value < 0:
        raise ValueError("give a number >= 0")
    return value
