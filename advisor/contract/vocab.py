"""The vocabulary: every enumerated concept of advise, defined once, with its keys in order and how each reads.

A key is what appears in answers, plans, profiles and configs (a public contract: keep them). Each term carries
its ``label`` (the word in a sentence: "full fine-tuning"), ``title`` (a heading or table cell: "Full
fine-tuning", derived) and, where a concept needs them, a ``short`` form (a chart axis), a ``text`` (the phrase
the plan's sentences use) and the facts other modules branch on (which objective a method trains, which data
file it reads, ...). The CLI's choices, the rules' enums (pydantic ``Literal`` types from ``.keys``), the report
and the exporters all read these tables.

    >>> TECHNIQUES["qlora"].label, TECHNIQUES.title("full"), METHODS["continued_pretraining"].objective
    ('QLoRA', 'Full fine-tuning', 'cpt')
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(frozen=True)
class Term:
    key: str
    label: str  # as it reads inside a sentence
    short: str = ""  # a compact form (chart axes); the label when empty
    text: str = ""  # the phrase the plan's sentences use; the label when empty

    @property
    def title(self) -> str:
        """The label as a heading or table cell: first letter upper-case ("LoRA" stays "LoRA")."""
        return self.label[:1].upper() + self.label[1:]

    @property
    def compact(self) -> str:
        return self.short or self.label

    @property
    def phrase(self) -> str:
        return self.text or self.label


T = TypeVar("T", bound=Term)


class Terms(Mapping[str, T], Generic[T]):
    """An ordered, read-only table of terms by key; names are unique. ``tuple(terms)`` gives the keys in order
    (for ``Literal[...]`` types and ``click.Choice``)."""

    def __init__(self, name: str, *terms: T) -> None:
        self.name = name
        self._terms: dict[str, T] = {}
        for t in terms:
            if t.key in self._terms:
                raise ValueError(f"{name}: '{t.key}' is defined twice")
            self._terms[t.key] = t

    def __getitem__(self, key: str) -> T:
        return self._terms[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def label(self, key: str | None) -> str:
        """The label of ``key``; a key this version does not define reads as itself ('none' for None)."""
        if key is None:
            return "none"
        t = self._terms.get(key)
        return t.label if t else str(key).replace("_", " ")

    def title(self, key: str | None) -> str:
        if key is None:
            return "none"
        t = self._terms.get(key)
        return t.title if t else str(key).replace("_", " ")

    def phrase(self, key: str) -> str:
        """The phrase the plan's sentences use for ``key`` (its ``text``, else its label)."""
        return self._terms[key].phrase

    def where(self, **attrs: object) -> tuple[str, ...]:
        """Keys of the terms whose attributes equal ``attrs``: ``TECHNIQUES.where(adapter=True)``."""
        return tuple(k for k, t in self._terms.items() if all(getattr(t, a) == v for a, v in attrs.items()))


# ---- how a model is trained ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Technique(Term):
    adapter: bool = False  # LoRA family: a frozen base and trainable adapter matrices
    quantized: bool = False  # the frozen base is loaded in 4-bit (bitsandbytes NF4)


TECHNIQUES: Terms[Technique] = Terms(
    "technique",
    Technique("full", "full fine-tuning", short="Full"),
    Technique("lora", "LoRA", adapter=True),
    Technique("qlora", "QLoRA", adapter=True, quantized=True),
    Technique("dora", "DoRA", adapter=True),
)


@dataclass(frozen=True)
class DataKind(Term):
    """A dataset shape ``advise data check`` reads and a trainer trains on."""

    count_field: str = ""  # the answers' data.* count a file of this kind fills
    answers_file: str | None = None  # the answers' data.* field that names such a file
    export_path: str = ""  # where the exported configs expect it
    shape: str = ""  # the JSONL line shape (exporters and their README)


DATA_KINDS: Terms[DataKind] = Terms(
    "data kind",
    DataKind("sft", "chat messages", count_field="labeled_examples", answers_file="train_file",
             export_path="data/train.jsonl", shape="chat"),
    DataKind("dpo", "prompt/chosen/rejected", count_field="preference_pairs", answers_file="preference_file",
             export_path="data/preference.jsonl", shape="pairs"),
    DataKind("kto", "prompt/completion/label", count_field="binary_feedback", answers_file="preference_file",
             export_path="data/feedback.jsonl", shape="kto"),
    DataKind("text", "text", count_field="domain_corpus_tokens", answers_file=None,
             export_path="data/corpus.jsonl", shape="text"),
)


@dataclass(frozen=True)
class Objective(Term):
    """The loss a training step optimises; it decides the sequences per example and the reference model."""

    data_kind: str = "sft"
    paired: bool = False  # chosen and rejected run together: two sequences per example
    reference_model: bool = False  # a frozen reference policy runs a forward pass too
    packing: bool = False  # raw text is packed into full-length sequences


OBJECTIVES: Terms[Objective] = Terms(
    "objective",
    Objective("sft", "SFT", data_kind="sft"),
    Objective("cpt", "CPT", data_kind="text", packing=True),
    Objective("dpo", "DPO", data_kind="dpo", paired=True, reference_model=True),
    Objective("orpo", "ORPO", data_kind="dpo", paired=True),
    Objective("kto", "KTO", data_kind="kto", reference_model=True),
)


@dataclass(frozen=True)
class Method(Term):
    """A training stage the rules can recommend."""

    objective: str = "sft"
    pipeline_rank: int = 0  # stages run in this order (continued pre-training first, preference tuning last)
    hosted_method: str | None = None  # what hosted fine-tuning offers call it (None: not offered)
    preference: bool = False  # learns from preference data (pairs or thumbs)
    stage_name: str = ""  # file and folder names of the exported stage; the key when empty

    @property
    def data_kind(self) -> str:
        return OBJECTIVES[self.objective].data_kind

    @property
    def file_stem(self) -> str:
        return self.stage_name or self.key


#: in the order the report shows them; ``pipeline_rank`` orders a plan's stages
METHODS: Terms[Method] = Terms(
    "method",
    Method("sft", "SFT", text="supervised fine-tuning (SFT)", objective="sft", pipeline_rank=1, hosted_method="sft"),
    Method("distillation", "distillation", text="distillation (SFT on the big model's outputs)", objective="sft",
           pipeline_rank=1, hosted_method="sft"),
    Method("continued_pretraining", "continued pre-training", objective="cpt", pipeline_rank=0, stage_name="cpt"),
    Method("dpo", "DPO", objective="dpo", pipeline_rank=2, hosted_method="dpo", preference=True),
    Method("orpo", "ORPO", objective="orpo", pipeline_rank=2, preference=True),
    Method("kto", "KTO", objective="kto", pipeline_rank=2, preference=True),
)


def pipeline_order(methods: object) -> tuple[str, ...]:
    """Method keys in the order their stages run (continued pre-training, SFT, then preference tuning)."""
    chosen = set(methods)  # type: ignore[call-overload]
    return tuple(sorted((m for m in METHODS if m in chosen), key=lambda m: METHODS[m].pipeline_rank))


# ---- what to change, and how it is delivered and served -------------------------------------------------------
@dataclass(frozen=True)
class Approach(Term):
    fine_tune: bool = False  # trains a model
    hosted: bool = False  # the vendor trains it (a delivery of fine-tuning, not a change of its own)


APPROACHES: Terms[Approach] = Terms(
    "approach",
    Approach("prompting", "better prompts", text="improve the prompt"),
    Approach("few_shot", "few-shot examples", text="add few-shot examples to the prompt"),
    Approach("structured_output", "structured outputs",
             text="use structured outputs (a JSON schema or tool schema the decoder must follow)"),
    Approach("rag", "retrieval (RAG)", text="add retrieval (RAG)"),
    Approach("tools", "tools / function calling", text="give the model tools (function calling)"),
    Approach("reasoning_model", "reasoning model", text="use a reasoning model or chain-of-thought"),
    # the bill's levers that keep today's vendor (their options: OPTION_KINDS prompt_caching, batch_api, cheaper_tier)
    Approach("prompt_caching", "prompt caching", text="cache the static prompt prefix (prompt caching)"),
    Approach("batch_api", "batch API", text="send the requests that can wait through the vendor's batch API"),
    Approach("cheaper_model", "cheaper model of the same vendor",
             text="move to a cheaper model of the same vendor (once the eval set confirms its quality)"),
    Approach("fine_tune", "fine-tune", text="fine-tune an open model", fine_tune=True),
    Approach("hosted_fine_tune", "vendor's hosted fine-tuning", text="use the vendor's hosted fine-tuning",
             fine_tune=True, hosted=True),
)


@dataclass(frozen=True)
class Serving(Term):
    note: str = ""  # what to do, one or two sentences
    adapter: bool = False  # the base model is served with the LoRA adapter loaded (not merged into it)


SERVING: Terms[Serving] = Terms(
    "serving strategy",
    Serving("merged", "merged model",
            note="Merge the adapter into the bf16 base (peft merge_and_unload) and serve it as a plain model "
                 "(vLLM, TGI or SGLang); full fine-tunes are served as they are."),
    Serving("full_model", "the fine-tuned model",
            note="Serve the fully fine-tuned checkpoint as it is (vLLM, TGI or SGLang): there is no adapter to "
                 "merge."),
    Serving("single_adapter", "base + one adapter", adapter=True,
            note="Serve the base model with one LoRA adapter loaded (vLLM --enable-lora)."),
    Serving("multi_lora", "Multi-LoRA", adapter=True,
            note="Serve one base model and load each task's LoRA adapter per request (vLLM --enable-lora "
                 "--max-loras N); adapters are megabytes each."),
    Serving("hosted", "vendor's API", note="Call the fine-tuned model through the vendor's API, as today."),
    Serving("none", "nothing new", note="Nothing new to serve: keep calling today's model."),
)


# ---- the alternatives a plan prices (``Plan.options``) --------------------------------------------------------
@dataclass(frozen=True)
class Effort(Term):
    means: str = ""  # what the team has to do and run


#: in increasing order of work
EFFORTS: Terms[Effort] = Terms(
    "effort",
    Effort("none", "none", means="nothing changes"),
    Effort("request_change", "a request change",
           means="a change to how requests are sent (a cache marker, the batch endpoint); same model, same answers"),
    Effort("model_switch", "a model switch",
           means="point the requests at another model; the eval set must confirm its quality first"),
    Effort("hosted_training", "a hosted training job",
           means="a training dataset and a job at the provider, then an eval; the provider serves the model"),
    Effort("self_hosted", "a training pipeline and GPUs",
           means="a training pipeline, an eval, and GPU servers to run, monitor and keep up"),
)


@dataclass(frozen=True)
class OptionKind(Term):
    delivery: str = ""  # api | hosted | self_hosted
    effort: str = ""  # an EFFORTS key
    trains: bool = False


DELIVERIES: Terms[Term] = Terms(
    "delivery", Term("api", "hosted API"), Term("hosted", "hosted fine-tuning"),
    Term("self_hosted", "self-hosted"),
)

OPTION_KINDS: Terms[OptionKind] = Terms(
    "option",
    OptionKind("current", "today's API as it is", delivery="api", effort="none"),
    OptionKind("prompt_caching", "prompt caching", text="cache the static prompt prefix (prompt caching)",
               delivery="api", effort="request_change"),
    OptionKind("batch_api", "the batch API", text="send the requests through the vendor's batch API",
               delivery="api", effort="request_change"),
    OptionKind("cheaper_tier", "a cheaper tier", text="switch to a cheaper model of the same vendor",
               delivery="api", effort="model_switch"),
    OptionKind("vendor_fine_tune", "the vendor's hosted fine-tuning", delivery="hosted", effort="hosted_training",
               trains=True),
    OptionKind("open_model_hosted", "an open model fine-tuned and served by a provider",
               text="fine-tune an open model at a provider and call it per token", delivery="hosted",
               effort="hosted_training", trains=True),
    OptionKind("self_hosted", "an open model fine-tuned and served on your GPUs", delivery="self_hosted",
               effort="self_hosted", trains=True),
)


# ---- the rules' stages, prerequisites and the plan's next steps --------------------------------------------------
@dataclass(frozen=True)
class RuleStage(Term):
    question: str = ""
    deciding: bool = True  # its fired rules are the reasons for the recommendation (checks add warnings)


RULE_STAGES: Terms[RuleStage] = Terms(
    "rule stage",
    RuleStage("approach", "approach", question="What kind of change fixes the problem?"),
    RuleStage("delivery", "delivery", question="Train it yourself, or use the vendor's hosted fine-tuning?"),
    RuleStage("technique", "technique and serving",
              question="Full fine-tuning, LoRA, QLoRA or DoRA, on which GPU, served how?"),
    RuleStage("checks", "checks", question="What must happen first, and what can go wrong?", deciding=False),
)

#: ``text`` may name thresholds of the rules file (``{eval_min_examples}``); the planner fills them in
PREREQUISITES: Terms[Term] = Terms(
    "prerequisite",
    Term("eval_set", "eval set", text="Build an eval set: {eval_min_examples}-{eval_max_examples} representative "
                                      "cases with known good answers, held out of training."),
    Term("baseline", "baseline", text="Score today's setup (the current prompt and model) on the eval set: the "
                                      "baseline to beat."),
    Term("more_data", "more data", text="Collect more training examples (a few hundred clean, diverse ones at "
                                        "least)."),
    Term("preference_data", "preference data", text="Collect preference data: pairs of answers with the better "
                                                    "one marked, or thumbs up/down."),
    Term("fix_data", "fix the data files", text="Fix the data files: `advise data check` found errors in them "
                                                 "(the plan's data section lists them: invalid lines, overlap with "
                                                 "the eval set, too few examples)."),
    Term("workload", "the workload", text="Measure the workload: requests per month, input and output tokens per "
                                            "request and today's monthly bill (and the latency target, if any)."),
    Term("smaller_base_or_more_gpus", "smaller base or more GPUs",
         text="Choose a smaller base model or more/larger GPUs: nothing fits as planned."),
)

NEXT_STEPS: Terms[Term] = Terms(
    "next step",
    Term("eval_set", "eval set"), Term("baseline", "baseline"), Term("change", "change"), Term("data", "data"),
    Term("measure", "measure"), Term("train", "train"), Term("evaluate", "evaluate"), Term("deploy", "deploy"),
    Term("monitor", "monitor"),
)


# ---- the training setup --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Precision(Term):
    bytes: int = 2
    torch_name: str = ""  # torch / transformers dtype name


PRECISIONS: Terms[Precision] = Terms(
    "precision",
    Precision("bf16", "bf16", bytes=2, torch_name="bfloat16"),
    Precision("fp32", "fp32", bytes=4, torch_name="float32"),
)


@dataclass(frozen=True)
class Optimizer(Term):
    transformers_name: str = ""  # transformers ``OptimizerNames``: TRL and LLaMA-Factory's ``optim``, Axolotl's ``optimizer``
    eight_bit: bool = False  # bitsandbytes blockwise 8-bit states


#: adamw_torch_fused is the transformers default for torch >= 2.8
OPTIMIZERS: Terms[Optimizer] = Terms(
    "optimizer",
    Optimizer("adamw", "AdamW", transformers_name="adamw_torch_fused"),
    Optimizer("adamw-8bit", "8-bit AdamW", transformers_name="adamw_bnb_8bit", eight_bit=True),
    Optimizer("paged-adamw-8bit", "paged 8-bit AdamW", transformers_name="paged_adamw_8bit", eight_bit=True),
)


@dataclass(frozen=True)
class Attention(Term):
    transformers_name: str = ""  # ``attn_implementation`` (None for auto: the family decides)


ATTENTION: Terms[Attention] = Terms(
    "attention",
    Attention("auto", "auto"),
    Attention("sdpa", "SDPA", transformers_name="sdpa"),
    Attention("flash", "FlashAttention-2", transformers_name="flash_attention_2"),
    Attention("eager", "eager", transformers_name="eager"),
)

SHARDING: Terms[Term] = Terms(
    "sharding",
    Term("none", "none"),
    Term("zero2", "DeepSpeed ZeRO-2"),
    Term("zero3", "DeepSpeed ZeRO-3"),
    Term("fsdp", "FSDP"),
)

OFFLOAD: Terms[Term] = Terms(
    "offload",
    Term("none", "none"),
    Term("optimizer", "optimizer states"),
    Term("params", "parameters and optimizer states"),
)

#: how the lm_head output becomes the loss (``TrainingSetup.loss_kernel``); each is modelled from its own code in
#: ``estimators.activations._loss_kernel``
LOSS_KERNELS: Terms[Term] = Terms(
    "loss kernel",
    Term("standard", "transformers cross-entropy (fp32 logits)"),
    Term("chunked", "chunked cross-entropy (compiled, one fp32 chunk at a time)"),
    Term("liger", "Liger fused linear cross-entropy (+ Liger RMSNorm, SwiGLU, RoPE)"),
    Term("cce", "Cut Cross-Entropy (no logits in memory)"),
)

#: the dtype of the weights the optimizer updates: "auto" follows the recipe (pure bf16 on one GPU, fp32 under FSDP
#: mixed precision), "fp32" keeps fp32 master weights with bf16 autocast compute (AMP)
MASTER_WEIGHTS: Terms[Term] = Terms(
    "master weights",
    Term("auto", "as the recipe"),
    Term("fp32", "fp32 master weights, bf16 autocast"),
)

DEVICES: Terms[Term] = Terms("device", Term("cuda", "CUDA GPU"), Term("cpu", "CPU"))

#: how a profile entry (``advise profile``) was obtained, and how it ended
ENTRY_SOURCES: Terms[Term] = Terms("entry source", Term("measured", "measured"), Term("extrapolated", "extrapolated"))
ENTRY_STATUS: Terms[Term] = Terms("entry status", Term("ok", "ok"), Term("oom", "out of memory"),
                                  Term("error", "error"))


__all__ = [
    "APPROACHES", "ATTENTION", "DATA_KINDS", "DELIVERIES", "DEVICES", "EFFORTS", "ENTRY_SOURCES", "ENTRY_STATUS",
    "METHODS", "NEXT_STEPS", "OPTION_KINDS",
    "OBJECTIVES", "OFFLOAD", "OPTIMIZERS", "PRECISIONS", "PREREQUISITES", "RULE_STAGES", "SERVING", "SHARDING",
    "TECHNIQUES", "Term", "Terms", "pipeline_order",
]
