"""``advise plan``: answers -> facts -> rules (with estimates) -> one typed plan (``advisor.contract.plan.Plan``).

The CLI prints a summary of the plan, ``--json`` and ``plan.json`` serialise it (``Plan.to_json``), and the
report and config exporters read the same document. Every number is computed here once (learning rates, batch
sizes, sequence length, epochs) and handed down; floats are rounded to stable precision so the same
answers give a byte-identical plan.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from advisor import __version__
from advisor.contract.answers import Answers
from advisor.contract.plan import (
    ApiPriceRef,
    BaseModelInfo,
    Cumulative,
    DataSummary,
    Estimates,
    FitRow,
    HostedFineTuning,
    HostedStage,
    Inference,
    LoraSettings,
    NextStep,
    Option,
    Plan,
    PriceData,
    ProfileUse,
    Quantization,
    Recommendation,
    RuleRef,
    SelfHostedServing,
    ServingPlan,
    StagePlan,
    TraceEntry,
    TrainingPlan,
)
from advisor.contract.units import (
    duration_hours,
    gib,
    host_ram_text,
    money,
    months_text,
    round_sig,
    round_sig_or_none,
)
from advisor.contract.vocab import (
    APPROACHES,
    ATTENTION,
    DATA_KINDS,
    EFFORTS,
    METHODS,
    OBJECTIVES,
    OFFLOAD,
    OPTION_KINDS,
    PREREQUISITES,
    RULE_STAGES,
    SERVING,
    SHARDING,
    TECHNIQUES,
)
from advisor.datafiles import read_data_files
from advisor.engine import Decision, decide, flatten_facts, load_rules
from advisor.options import (
    Context,
    TrainingNeed,
    api_options,
    best_beating,
    chosen_api_option,
    current_api,
    months_until,
    open_model_hosted_options,
    option,
    same_model_best_usd,
    vendor_fine_tune_options,
    vendor_offer_why_not,
)
from estimators.anatomy import (
    Anatomy,
    lora_dropout_for,
    select_lora_params,
    technique_unsupported,
    text_target_regex,
)
from estimators.catalog import DATA_DIR as CATALOG_DATA_DIR
from estimators.catalog import GPU, Catalog, FineTuningOffer, ModelSpec
from estimators.cost import (
    DEFAULT_PEAK_TO_AVERAGE,
    Workload,
    api_monthly_cost,
    api_monthly_usd,
    break_even_months,
    hosted_finetuning_cost,
    serving_estimate,
    serving_precision,
)
from estimators.memory import MemoryBreakdown, estimate_memory
from estimators.setup import TrainingSetup
from estimators.throughput import estimate_throughput

TRAINING_FILE = Path(__file__).parent / "data" / "training.yaml"
EXAMPLES_DIR = Path(__file__).parent / "examples"
#: when the answers give no count for a training stage, costs are shown per this many examples
PLACEHOLDER_EXAMPLES = 1000


@functools.lru_cache(maxsize=1)
def training_defaults() -> dict[str, Any]:
    return yaml.safe_load(TRAINING_FILE.read_text(encoding="utf-8"))


def example_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml")))


def example_path(name: str) -> Path:
    from advisor.contract.errors import UnknownNameError

    if name not in example_names():
        raise UnknownNameError("example", name, example_names(), hint=f"(built-in: {', '.join(example_names())})")
    return EXAMPLES_DIR / f"{name}.yaml"


# ---- facts from the answers ---------------------------------------------------------------------
def workload_of(answers: Answers) -> Workload | None:
    w = answers.workload
    if None in (w.requests_per_month, w.input_tokens_per_request, w.output_tokens_per_request):
        return None
    return Workload(w.requests_per_month, w.input_tokens_per_request, w.output_tokens_per_request)


def list_bill(answers: Answers, catalog: Catalog) -> tuple[float | None, str | None]:
    """The workload at the current API's list price (or the answers' ``model.current_api_price``)."""
    workload = workload_of(answers)
    api = current_api(answers, catalog)
    if workload is None or api is None:
        return None, None
    which = "price as answered" if api.source.startswith("model.current_api_price") else "list price"
    return api_monthly_cost(api, workload), (f"{api.name} {which} (${api.usd_per_million_input_tokens:g} in / "
                                             f"${api.usd_per_million_output_tokens:g} out per 1M tokens) x workload")


def todays_bill(answers: Answers, catalog: Catalog) -> tuple[float | None, str | None]:
    """Today's monthly bill and where the figure comes from: the stated bill when given, else list price x
    workload."""
    w = answers.workload
    if w.current_monthly_cost_usd is not None:
        return w.current_monthly_cost_usd, "workload.current_monthly_cost_usd (as answered)"
    return list_bill(answers, catalog)


def data_check_errors(summary: Mapping[str, Any] | None) -> int | None:
    """ERROR verdicts of ``advise data check`` over the answers' data files (their eval files included); None
    when the answers name no file."""
    if not summary:
        return None

    def count(report: Mapping[str, Any] | None) -> int:
        if not report:
            return 0
        own = sum(1 for v in report.get("verdicts", []) if v.get("severity") == "error")
        return own + count(report.get("eval"))

    return sum(count(r) for r in summary.get("files", {}).values())


def bill_vs_list_factor(answers: Answers, catalog: Catalog) -> float | None:
    """How far the stated bill is from list price x workload, as a factor >= 1 (either way); None unless both
    are known and above zero."""
    stated = answers.workload.current_monthly_cost_usd
    listed, _ = list_bill(answers, catalog)
    if not stated or not listed:
        return None
    return max(stated / listed, listed / stated)


def per_adapter_examples(answers: Answers) -> int:
    """The labeled examples one adapter trains on: ``data.examples_per_adapter`` when several adapters are
    planned and it is given, else an even split of ``data.labeled_examples`` over ``deployment.adapters``."""
    n = answers.deployment.adapters
    if n > 1 and answers.data.examples_per_adapter is not None:
        return answers.data.examples_per_adapter
    return answers.data.labeled_examples // n


def answer_facts(answers: Answers, catalog: Catalog, as_of: _dt.date | None = None) -> dict[str, Any]:
    facts = flatten_facts(answers.to_dict())
    facts["data.per_adapter_examples"] = per_adapter_examples(answers)
    w = answers.workload
    facts["workload.tokens_per_month"] = None if None in (
        w.requests_per_month, w.input_tokens_per_request, w.output_tokens_per_request) else \
        w.requests_per_month * (w.input_tokens_per_request + w.output_tokens_per_request)
    facts["workload.monthly_cost_usd"] = todays_bill(answers, catalog)[0]
    factor = bill_vs_list_factor(answers, catalog)
    facts["workload.bill_vs_list_factor"] = None if factor is None else round_sig(factor)
    api = current_api(answers, catalog)
    left = months_until(api.retires, as_of or _dt.date.today()) if api else None
    facts["model.current_api_retires_in_months"] = None if left is None else round_sig(left)
    return facts


# ---- training stages ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    method: str
    objective: str
    examples: int
    examples_assumed: bool
    tokens_per_example: int
    seq_len: int
    epochs: float
    training_tokens: float  # tokens processed per epoch (pairs count both answers)
    learning_rate: float
    global_batch_sequences: int
    beta: float | None


def _count_for(method: str, answers: Answers) -> int:
    """The answers' count of the data a method trains on (continued pre-training counts tokens, not examples)."""
    m = METHODS[method]
    return 0 if m.objective == "cpt" else getattr(answers.data, DATA_KINDS[m.data_kind].count_field)


def _examples_per_pair(method: str) -> int:
    """Training sequences per example: preference pairs train on the chosen and the rejected answer."""
    return 2 if OBJECTIVES[METHODS[method].objective].paired else 1


def _epochs_for(method: str, examples: int) -> float:
    m = METHODS[method]
    if m.preference or m.objective == "cpt":
        return 1.0
    for row in training_defaults()["epochs"]["by_examples"]:
        if row["below"] is None or examples < row["below"]:
            return float(row["epochs"])
    raise AssertionError("training.yaml epochs table has no open-ended row")  # pragma: no cover


def tokens_per_example(answers: Answers) -> int:
    w = answers.workload
    if w.input_tokens_per_request is not None and w.output_tokens_per_request is not None:
        return max(1, w.input_tokens_per_request + w.output_tokens_per_request)
    return int(training_defaults()["tokens"]["per_example_default"])


def grad_accum_for(stage: Stage, micro_batch: int, gpu_count: int) -> int:
    """Micro-batches per optimizer step that reach the stage's global batch on ``gpu_count`` GPUs."""
    return max(1, math.ceil(stage.global_batch_sequences / (micro_batch * gpu_count)))


def _round_up(tokens: float, step: int) -> int:
    return max(step, math.ceil(tokens / step) * step)


def plan_stages(decision: Decision, answers: Answers, technique: str | None, model: ModelSpec,
                measured: Mapping[str, Mapping[str, Any]] | None = None) -> list[Stage]:
    """The training stages with their sizes; ``measured`` (data kind -> token lengths from the data files)
    replaces the assumed lengths: the p95 length sets the sequence length, the file's tokens the total."""
    defaults = training_defaults()
    tok = defaults["tokens"]
    lora = defaults["lora"]
    step = int(tok["sequence_round_to"])
    max_len = int(model.config.get("max_position_embeddings") or 1 << 20)
    measured = measured or {}
    stages = []
    for m in decision.methods:
        md = defaults["methods"][m]
        data = measured.get(METHODS[m].data_kind)
        if m == "continued_pretraining":
            corpus = answers.data.domain_corpus_tokens
            seq = min(int(tok["cpt_sequence_length"]), max_len)
            examples, assumed, per, training_tokens = math.ceil(corpus / seq), False, seq, float(corpus)
        else:
            n = _count_for(m, answers)
            examples, assumed = (n, False) if n > 0 else (PLACEHOLDER_EXAMPLES, True)
            if data:
                per = max(1, math.ceil(data["mean_tokens"]))
                seq = min(_round_up(data["p95_tokens"], step), max_len)
                training_tokens = float(data["total_tokens"])
            else:
                per = tokens_per_example(answers)
                seq = min(_round_up(per, step), max_len)
                training_tokens = float(examples * per * _examples_per_pair(m))
        adapter = technique is not None and TECHNIQUES[technique].adapter
        lr = md["full_learning_rate"] * (lora["lr_multiplier"] if adapter else 1)
        stages.append(Stage(m, METHODS[m].objective, examples, assumed, per, seq, _epochs_for(m, examples), training_tokens,
                            round_sig(lr), int(md["global_batch_sequences"]), md.get("beta")))
    return stages


def lora_settings(answers: Answers, anatomy: Anatomy | None = None) -> dict[str, Any]:
    """The recipe's LoRA defaults (``TrainingSetup``), with training.yaml's larger rank for a large dataset; no
    dropout on a model whose experts peft adapts as parameters (``lora_dropout_for``), and those parameters named."""
    lo = training_defaults()["lora"]
    # the same threshold that makes RANK_FOR_LARGE_DATA warn "the plan raises the rank"
    large = answers.data.labeled_examples >= load_rules().threshold_values["large_dataset_examples"]
    d = TrainingSetup
    dropout, adapted, regex = d.lora_dropout, [], None
    if anatomy is not None:
        dropout = lora_dropout_for(anatomy, d.lora_targets, d.lora_dropout)
        adapted = [g.name for g, _ in select_lora_params(anatomy, d.lora_targets)]
        regex = text_target_regex(anatomy, d.lora_targets)
    return {"r": lo["large_data_r"] if large else d.lora_r, "alpha": lo["large_data_alpha"] if large else d.lora_alpha,
            "dropout": dropout, "targets": list(d.lora_targets), "adapted_parameters": adapted,
            "target_regex": regex}


# ---- base model ---------------------------------------------------------------------------------
def choose_base(answers: Answers, decision: Decision, catalog: Catalog) -> tuple[ModelSpec, str]:
    """The model to train, and why. A rule's checkpoint choice (PREFERENCE_FROM_INSTRUCT: the instruct sibling;
    CPT_FOR_DOMAIN_LANGUAGE: the pretrained base) moves the answered or default model to its catalog sibling,
    and the reason says so; otherwise the task's default checkpoint (training.yaml checkpoints) applies to the
    default model only: a model the answers name is trained as named."""
    defaults = training_defaults()
    if answers.model.base:
        m = catalog.resolve_model(answers.model.base)
        if decision.checkpoint == "instruct" and m.checkpoint == "base" and m.instruct_name:
            return catalog.model(m.instruct_name), (f"the instruct checkpoint of model.base {m.name} "
                                                    f"(PREFERENCE_FROM_INSTRUCT: preference tuning alone does not "
                                                    f"teach a base to chat)")
        return m, "model.base (as answered)"
    size = decision.base_size
    kind = answers.task.kind
    name = defaults["base_models"][size][kind]
    why = "a small model for a distilled task" if size == "small" else "the default size for this task"
    where = f"training.yaml base_models.{size}.{kind}"
    m = catalog.model(name)
    needed = answers.task.languages
    if needed and not set(needed) <= set(m.languages):
        # the default does not list a language the task needs: the size class's multilingual choice, if it does
        alt = catalog.model(defaults["multilingual_base_models"][size])
        if set(needed) <= set(alt.languages):
            where = f"training.yaml multilingual_base_models.{size}"
            why += f"; its publisher lists {', '.join(needed)}, {name}'s does not"
            m = alt
    want = decision.checkpoint or defaults["checkpoints"][kind]
    if want == "instruct" and m.instruct_name:
        by = ("PREFERENCE_FROM_INSTRUCT" if decision.checkpoint else f"training.yaml checkpoints.{kind}")
        return catalog.model(m.instruct_name), f"{where} ({why}), its instruct checkpoint ({by})"
    if want == "base" and m.base_name:
        m = catalog.model(m.base_name)
    return m, f"{where} ({why})"


# ---- estimates ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOption:
    """One technique on one GPU type: the largest micro-batch that fits every stage, and its cost."""

    technique: str
    gpu: GPU
    gpu_count: int
    sharding: str
    offload: str
    optimizer: str
    micro_batch: int
    memory: MemoryBreakdown  # the first stage at micro_batch (or micro-batch 1 if nothing fits), estimated
    memory_bytes: int  # per-GPU peak of the first stage: measured when a profile covers it, else memory's total
    fits: bool
    stage_hours: tuple[float, ...]
    tokens_per_s: float
    measured: tuple[str, ...] = ()  # which figures come from a profile: "memory", "tokens_per_s"
    #: the team's own cards: what an hour costs them (electricity; 0 when not stated), in place of rent
    owned_usd_per_gpu_hour: float | None = None
    #: does not fit within the memory margin but within the card (micro-batch 1)
    tight: bool = False

    @property
    def hours(self) -> float:
        return sum(self.stage_hours)

    @property
    def usd_per_gpu_hour(self) -> float | None:
        if self.owned_usd_per_gpu_hour is not None:
            return self.owned_usd_per_gpu_hour
        p = self.gpu.cheapest_price
        return None if p is None else p.usd_per_hour

    @property
    def provider(self) -> str | None:
        if self.owned_usd_per_gpu_hour is not None:
            return "owned"
        p = self.gpu.cheapest_price
        return p.provider if p else None

    @property
    def usd(self) -> float | None:
        rate = self.usd_per_gpu_hour
        return None if rate is None else self.hours * self.gpu_count * rate

    @property
    def host_ram_bytes_per_machine(self) -> int:
        """CPU RAM the offloaded states take on the one machine holding the ``gpu_count`` GPUs (0 without
        offload): ``MemoryBreakdown.states.host_bytes`` already sums every GPU's partition."""
        return self.memory.states.host_bytes


#: the multi-GPU layouts the planner tries, in order (sharding, offload): the first that fits is chosen
MULTI_GPU_LAYOUTS = (("none", "none"), ("fsdp", "none"), ("zero3", "none"), ("zero3", "optimizer"),
                     ("zero3", "params"))


class Estimator:
    """Computes (and caches) the fit matrix and the recommended run for the planner's stage hooks."""

    def __init__(self, answers: Answers, catalog: Catalog,
                 measured: Mapping[str, Mapping[str, Any]] | None = None, profile: Any = None) -> None:
        self.answers, self.catalog, self.measured, self.profile = answers, catalog, measured or {}, profile
        names = answers.hardware.gpus or [g.name for g in catalog.gpus]
        self.gpus = list(dict.fromkeys(catalog.gpu(n).name for n in names))
        self.gpu_count = answers.hardware.gpu_count
        self.model: ModelSpec | None = None
        self.model_source: str | None = None
        self.stages: list[Stage] = []
        self.options: dict[tuple[str, str], RunOption] = {}
        self.run: RunOption | None = None
        self.hosted: HostedFineTuning | None = None
        self.hosted_usd: tuple[float, float | None] = (0.0, None)  # unrounded training and monthly USD
        self.inference: SelfHostedServing | None = None
        self.decision: Decision | None = None
        self.money: dict[str, float | None] = {}
        self.after_usd: float | None = None
        self.options_context: Context | None = None  # set by build_plan before the rules run
        #: the answers one training run sees: with one adapter per tenant, its tenant's examples
        self.train_answers = answers
        self.train_measured = self.measured
        #: training runs the plan pays for: deployment.adapters with one adapter per tenant, else 1
        self.adapter_runs = 1
        self._memo: dict[tuple[Any, ...], MemoryBreakdown] = {}

    # the engine calls this before each stage
    def stage_facts(self, stage: str, decision: Decision) -> dict[str, Any]:
        self.decision = decision
        if stage == "delivery" and decision.fine_tune:
            return {"estimates.vendor_offer_open": self._hosted_offer(decision) is not None}
        if stage == "technique" and decision.self_hosted:
            return self._fit_facts(decision)
        if stage == "checks" and decision.fine_tune:
            counts = [_count_for(m, self.train_answers) for m in decision.methods if METHODS[m].objective != "cpt"]
            return {**self._run_facts(decision), "estimates.training_examples": min(counts, default=None),
                    "estimates.adapter_examples": self.train_answers.data.labeled_examples}
        return {}

    def supports(self, technique: str) -> bool:
        """Whether peft can train ``technique`` on the base at all (DoRA has no form for MoE expert parameters:
        ``estimators.anatomy.technique_unsupported``); an unsupported technique is neither estimated nor chosen."""
        assert self.model is not None
        return technique_unsupported(self.model.anatomy, technique,
                                     lora_settings(self.train_answers)["targets"]) is None

    def setup(self, technique: str, stage: Stage, micro_batch: int, sharding: str,
               optimizer: str = "adamw", offload: str = "none") -> TrainingSetup:
        lo = lora_settings(self.train_answers, self.model.anatomy if self.model is not None else None)
        return TrainingSetup(
            technique=technique, objective=stage.objective, seq_len=stage.seq_len, micro_batch=micro_batch,
            gradient_checkpointing=True, optimizer=optimizer,
            lora_r=lo["r"], lora_alpha=lo["alpha"], lora_dropout=lo["dropout"], lora_targets=tuple(lo["targets"]),
            gpu_count=self.gpu_count, sharding=sharding, offload=offload,
        )

    def speed_setup(self, setup: TrainingSetup, stage: Stage) -> TrainingSetup:
        """``setup`` with the stage's gradient accumulation, for the speed estimate: CPU offload's host copies and
        optimizer step come once per optimizer step (memory keeps the setup as it is)."""
        return replace(setup, grad_accum=grad_accum_for(stage, setup.micro_batch, self.gpu_count))

    def _memory(self, setup: TrainingSetup) -> MemoryBreakdown:
        if setup not in self._memo:
            assert self.model is not None
            self._memo[setup] = estimate_memory(self.model.anatomy, setup)
        return self._memo[setup]

    def option(self, technique: str, gpu: GPU) -> RunOption:
        key = (technique, gpu.name)
        if key in self.options:
            return self.options[key]
        assert self.model is not None
        # several GPUs: data parallel when a full replica fits, else FSDP2 when the sharded states fit on the
        # GPUs (PyTorch's own sharding: no DeepSpeed build, every trainer launches it through accelerate), else
        # ZeRO-3, then ZeRO-3 with the optimizer and then the parameters offloaded to CPU RAM: DeepSpeed can
        # offload the optimizer alone and steps it with its vectorised DeepSpeedCPUAdam, while FSDP's
        # CPUOffloadPolicy moves parameters, gradients and optimizer together and steps with torch's Adam on the
        # host (accelerate's "FSDP vs DeepSpeed" concept guide; estimators.throughput.offload_time).
        # Full fine-tuning that does not fit with AdamW may fit with 8-bit AdamW states (bitsandbytes)
        layouts = (("none", "none"),) if self.gpu_count == 1 else MULTI_GPU_LAYOUTS
        optimizers = ("adamw", "adamw-8bit") if technique == "full" else ("adamw",)
        micro_batches = [mb for mb in training_defaults()["candidate_micro_batches"]
                         if mb == 1 or all(mb * self.gpu_count <= s.global_batch_sequences for s in self.stages)]
        best = None
        for (sharding, offload), optimizer in ((lay, o) for lay in layouts for o in optimizers):
            fitting = 0
            for mb in micro_batches:
                mems = [self._memory(self.setup(technique, s, mb, sharding, optimizer, offload)) for s in self.stages]
                if not all(m.total_bytes <= self.memory_limit(gpu) for m in mems):
                    break
                fitting = mb
            if fitting:
                best = (sharding, offload, optimizer, fitting)
                break
        sharding, offload, optimizer, mb = best or (*layouts[-1], optimizers[0], 1)
        fits = best is not None
        setups = [self.setup(technique, s, mb, sharding, optimizer, offload) for s in self.stages]
        # above the margin but within the card: it may run, but one longer batch or allocator spike away from OOM
        tight = not fits and all(self._memory(st).total_bytes <= gpu.usable_memory_bytes for st in setups)
        # tokens/s include CPU offload's PCIe copies and host optimizer step (estimators.throughput.offload_time)
        tps = [estimate_throughput(self.model.anatomy, self.speed_setup(st, s), gpu).tokens_per_s
               for st, s in zip(setups, self.stages)]
        memory_bytes = self._memory(setups[0]).total_bytes
        measured: tuple[str, ...] = ()
        entry = self._profiled(technique, gpu, micro_batches, sharding, optimizer)
        if entry is not None:
            mb, e = entry
            setups[0] = self.setup(technique, self.stages[0], mb, sharding, optimizer, offload)
            ran = bool(e.fits) and e.device_peak_bytes is not None and e.device_peak_bytes <= gpu.usable_memory_bytes
            fits = ran and e.device_peak_bytes <= self.memory_limit(gpu)
            tight = ran and not fits
            memory_bytes = e.device_peak_bytes if e.device_peak_bytes is not None else memory_bytes
            measured = ("memory",)
            if e.tokens_per_s:
                tps[0] = e.tokens_per_s
                measured += ("tokens_per_s",)
        if not gpu.trains_bf16:  # the plan trains in bf16: a card without bf16 tensor cores (a T4) never trains
            fits = tight = False
        opt = RunOption(technique, gpu, self.gpu_count, sharding, offload, optimizer, mb, self._memory(setups[0]),
                        memory_bytes, fits,
                        tuple(s.training_tokens * s.epochs / t / 3600 * self.adapter_runs
                              for t, s in zip(tps, self.stages)),
                        tps[0], measured, self.owned_rate(gpu), tight)
        self.options[key] = opt
        return opt

    @property
    def memory_fraction(self) -> float:
        """The share of a GPU's usable memory a recommended run may take (``hardware.max_memory_fraction``, else
        the rules file's ``max_memory_fraction``)."""
        return self.answers.hardware.max_memory_fraction or load_rules().threshold_values["max_memory_fraction"]

    def memory_limit(self, gpu: GPU) -> int:
        return int(gpu.usable_memory_bytes * self.memory_fraction)

    def owned_rate(self, gpu: GPU) -> float | None:
        """USD per GPU-hour on the team's own cards (``hardware.owned``): power x electricity price, 0 where
        either is not stated; None for rented cards."""
        h = self.answers.hardware
        if not h.owned or gpu.name not in self.gpus or not h.gpus:
            return None
        if h.power_watts_per_gpu is None or h.usd_per_kwh is None:
            return 0.0
        return h.power_watts_per_gpu / 1000 * h.usd_per_kwh

    def _profiled(self, technique: str, gpu: GPU, micro_batches: Sequence[int], sharding: str,
                  optimizer: str) -> tuple[int, Any] | None:
        """The profile's measurement of the first stage on ``gpu``: the largest micro-batch that fitted, else
        the smallest that ran out of memory; None where the profile does not cover this model, GPU and setup."""
        p = self.profile
        if p is None or p.device.kind != "cuda" or p.device.catalog_gpu != gpu.name or self.gpu_count != 1:
            return None
        from profiler.schema import measured_entry

        assert self.model is not None
        found = []
        for mb in micro_batches:
            setup = self.setup(technique, self.stages[0], mb, sharding, optimizer)
            e = measured_entry(p, self.model.hub_id or self.model.name, technique, self.stages[0].seq_len, mb,
                               setup=setup)
            if e is not None:
                found.append((mb, e))
        fitting = [(mb, e) for mb, e in found if e.fits]
        if fitting:
            return fitting[-1]
        return found[0] if found else None

    def _fit_facts(self, decision: Decision) -> dict[str, Any]:
        self.model, self.model_source = choose_base(self.answers, decision, self.catalog)
        if decision.adapter_layout == "per_tenant":
            a = self.answers
            self.adapter_runs = a.deployment.adapters
            self.train_answers = a.model_copy(update={"data": a.data.model_copy(
                update={"labeled_examples": per_adapter_examples(a)})})
            # a measured file of labeled examples is the tenants' pool: one run sees its share of the tokens
            share = per_adapter_examples(a) / a.data.labeled_examples if a.data.labeled_examples else 1.0
            self.train_measured = {k: ({**v, "total_tokens": v["total_tokens"] * share}
                                       if DATA_KINDS[k].count_field == "labeled_examples" else v)
                                   for k, v in self.measured.items()}
        self.stages = plan_stages(decision, self.train_answers, "lora", self.model, self.train_measured)
        facts: dict[str, Any] = {}
        for t in TECHNIQUES:
            facts[f"estimates.fits.{t}"] = self.supports(t) and any(self.option(t, self.catalog.gpu(g)).fits
                                                                    for g in self.gpus)
        needed, listed = self.answers.task.languages, self.model.languages
        facts["estimates.languages_missing"] = (sum(1 for lang in needed if lang not in listed)
                                                if needed and listed else None)
        w = self.answers.workload
        context = self.model.config.get("max_position_embeddings")
        if context and w.input_tokens_per_request is not None and w.output_tokens_per_request is not None:
            facts["estimates.context_overflow_tokens"] = max(
                0, w.input_tokens_per_request + w.output_tokens_per_request - int(context))
        return facts

    def _cheapest(self, technique: str) -> RunOption | None:
        opts = [self.option(technique, self.catalog.gpu(g)) for g in self.gpus]
        opts = [o for o in opts if o.fits]
        return min(opts, key=lambda o: (o.usd is None, o.usd or 0.0, o.hours, o.gpu.name), default=None)

    def _run_facts(self, decision: Decision) -> dict[str, Any]:
        workload = workload_of(self.answers)
        today, _ = todays_bill(self.answers, self.catalog)
        training_usd = None
        after = None
        if decision.self_hosted and decision.technique is not None:
            assert self.model is not None
            self.stages = plan_stages(decision, self.train_answers, decision.technique, self.model,
                                      self.train_measured)
            self.run = self._cheapest(decision.technique)
            training_usd = self.run.usd if self.run else None
            if workload is not None and self.run is not None:
                after = self._serving(workload)
        elif decision.approach == "hosted_fine_tune":
            self.hosted = self._hosted(decision, workload)
            if self.hosted:
                training_usd, after = self.hosted_usd
        saving = None if today is None or after is None else today - after
        budget = self.answers.budget.training_usd
        self.money = {
            "estimates.hosted_offer_open": self.hosted is not None if decision.approach == "hosted_fine_tune"
            else None,
            "estimates.training_usd": training_usd,
            "estimates.monthly_saving_usd": saving,
            "estimates.break_even_months": None if saving is None or training_usd is None
            else break_even_months(training_usd, today, after),
            "estimates.budget_left_usd": None if budget is None or training_usd is None else budget - training_usd,
        }
        self.after_usd = after
        return self.money

    def _serving(self, workload: Workload) -> float | None:
        assert self.model is not None
        best = None
        a = self.answers
        # serving is sized on its own: any priced catalog GPU (or the answers' serving_gpus), not the training GPUs
        names = a.hardware.serving_gpus or [g.name for g in self.catalog.gpus if g.cheapest_price is not None]
        # work that can wait (workload.batch_ok) is spread over the month: no peak, no latency target
        peak_to_average = 1.0 if a.workload.batch_ok else a.workload.peak_to_average or DEFAULT_PEAK_TO_AVERAGE
        latency_s = a.workload.latency_p95_ms / 1000 if a.workload.latency_p95_ms is not None else None
        rank = lora_settings(self.train_answers)["r"]
        for g in names:
            gpu = self.catalog.gpu(g)
            s = serving_estimate(self.model.anatomy, gpu, workload, a.deployment.adapters,
                                 peak_to_average=peak_to_average, replicas_min=a.deployment.replicas_min,
                                 precision=serving_precision(gpu, a.deployment.quantized_ok), latency_p95_s=latency_s,
                                 lora_rank=rank)
            if s is not None and (best is None or (s.usd_per_month, s.gpu) < (best.usd_per_month, best.gpu)):
                best = s
        self.inference = None if best is None else SelfHostedServing(
            gpu=best.gpu, tensor_parallel=best.tensor_parallel, replicas=best.replicas,
            scale_to_zero=best.scale_to_zero, max_loras=best.max_loras, lora_bytes=best.lora_bytes,
            gpu_hours_per_month=round_sig(best.gpu_hours_per_month), provider=best.provider,
            usd_per_gpu_hour=best.usd_per_gpu_hour, usd_per_month=round_sig(best.usd_per_month),
            assumptions=list(best.assumptions))
        return None if best is None else best.usd_per_month

    def _hosted_offer(self, decision: Decision) -> FineTuningOffer | None:
        """The current vendor's own offer that trains the plan's methods and is open to new jobs (the same
        model's offer first, else its cheapest); never another vendor's, never one closed or retiring."""
        api = current_api(self.answers, self.catalog)
        if api is None:
            return None
        need = training_need(decision.methods, self.answers, self.measured)
        offers = [o for o in self.catalog.finetuning if o.base_model and o.min_params_b is None
                  and o.provider == api.provider and vendor_offer_why_not(self.options_context, o, need) is None]
        if "distillation" not in decision.methods:
            same = [o for o in offers if o.base_model.startswith(api.name)]
            if same:
                return same[0]
        return min(offers, key=lambda o: (o.usd_per_million_training_tokens, o.name), default=None)

    def _hosted(self, decision: Decision, workload: Workload | None) -> HostedFineTuning | None:
        offer = self._hosted_offer(decision)
        if offer is None:
            return None
        stages = []
        total = 0.0
        for m in decision.methods:
            if not METHODS[m].hosted_method:
                continue
            n = _count_for(m, self.answers) or PLACEHOLDER_EXAMPLES
            tokens, epochs = _hosted_tokens(m, self.answers, self.measured)
            cost = hosted_finetuning_cost(offer, tokens, epochs)
            total += cost.usd
            stages.append(HostedStage(method=m, examples=n, training_tokens=tokens, epochs=epochs,
                                      billed_tokens=cost.billed_tokens, usd=round_sig(cost.usd)))
        monthly = None
        if workload is not None and offer.inference_usd_per_million_input_tokens is not None:
            monthly = api_monthly_usd(offer.inference_usd_per_million_input_tokens,
                                      offer.inference_usd_per_million_output_tokens or 0.0, workload)
        self.hosted_usd = (total, monthly)
        return HostedFineTuning(
            offer=offer.name, provider=offer.provider, base_model=offer.base_model,
            usd_per_million_training_tokens=offer.usd_per_million_training_tokens, stages=stages,
            training_usd=round_sig(total), usd_per_month=round_sig_or_none(monthly), status=offer.status,
            price_date=offer.date, source=offer.source)


def _hosted_tokens(method: str, answers: Answers, measured: Mapping[str, Mapping[str, Any]]) -> tuple[float, float]:
    """Training tokens per epoch and epochs of one stage at a hosted provider (the data file's tokens where
    checked, else examples x tokens per example)."""
    n = _count_for(method, answers) or PLACEHOLDER_EXAMPLES
    data = measured.get(METHODS[method].data_kind)
    tokens = data["total_tokens"] if data else n * tokens_per_example(answers) * _examples_per_pair(method)
    return float(tokens), _epochs_for(method, n)


def training_need(methods: Sequence[str], answers: Answers,
                  measured: Mapping[str, Mapping[str, Any]]) -> TrainingNeed:
    """What a fine-tuning option trains: the plan's stages that a provider can run (continued pre-training has
    no hosted form), or SFT on the answers' examples when the plan does not fine-tune."""
    methods = [m for m in methods if METHODS[m].hosted_method] or ["sft"]
    stages = tuple((m, *_hosted_tokens(m, answers, measured)) for m in methods)
    parts = []
    for m, tokens, epochs in stages:
        n = _count_for(m, answers)
        count = f"{n:,} examples" if n else f"{PLACEHOLDER_EXAMPLES:,} examples (assumed: the answers give none)"
        parts.append(f"{METHODS.label(m)} on {count}, {tokens:,.0f} tokens x {epochs:g} epoch(s)")
    return TrainingNeed(stages, "priced for " + "; ".join(parts))


# ---- the plan -----------------------------------------------------------------------------------
def prerequisite_text(key: str) -> str:
    """The sentence of a prerequisite, with the thresholds of the rules file filled in."""
    return PREREQUISITES[key].text.format(**load_rules().threshold_values)


def _fit_row(o: RunOption, stage: Stage) -> FitRow:
    return FitRow(
        technique=o.technique, gpu=o.gpu.name, gpu_count=o.gpu_count, sharding=o.sharding, offload=o.offload,
        objective=stage.objective, seq_len=stage.seq_len, micro_batch=o.micro_batch, optimizer=o.optimizer,
        memory_bytes=o.memory_bytes, memory_parts_bytes=dict(o.memory.parts), measured=list(o.measured),
        usable_memory_bytes=o.gpu.usable_memory_bytes, host_ram_bytes_per_machine=o.host_ram_bytes_per_machine,
        fits=o.fits, tight=o.tight, tokens_per_s=round_sig(o.tokens_per_s),
        hours=round_sig(o.hours), usd=round_sig_or_none(o.usd) if o.fits else None,
        provider=o.provider)


def build_plan(answers: Answers, catalog: Catalog, base_dir: Path | None = None, profile: Any = None,
               as_of: _dt.date | None = None) -> Plan:
    """The whole plan for ``answers`` (already validated against ``catalog``), as the typed ``Plan``.

    Data files named in the answers are checked (relative paths from ``base_dir``, the answers file's
    folder) and their counts and token lengths replace the declared ones. A ``profile``
    (``profiler.schema.Profile`` from ``advise profile``) replaces estimated peak memory and tokens/s
    wherever it measured the same model, GPU, technique, shape and setup; those figures are marked.
    ``as_of`` (default: today) is the date retirement dates are compared with; the plan records it.
    """
    given = answers
    as_of = as_of or _dt.date.today()
    data_inputs = read_data_files(answers, base_dir)
    answers = data_inputs.answers
    est = Estimator(answers, catalog, data_inputs.measured, profile)
    today, today_source = todays_bill(answers, catalog)
    workload = workload_of(answers)
    thresholds = load_rules().threshold_values
    ctx = Context(answers, catalog, workload, today, as_of, thresholds["payback_months"],
                  thresholds["retirement_warning_months"])
    est.options_context = ctx
    api_side = api_options(ctx, today_source)
    facts = answer_facts(answers, catalog, as_of)
    facts["data_check.errors"] = data_check_errors(data_inputs.summary)
    facts["options.same_model_best_usd_per_month"] = round_sig_or_none(same_model_best_usd(api_side))
    facts["options.lora_serverless_available"] = any(r.lora_serverless for r in catalog.open_inference)
    for kind, fact in (("prompt_caching", "options.prompt_caching_usd_per_month"),
                       ("batch_api", "options.batch_api_usd_per_month"),
                       ("cheaper_tier", "options.cheaper_tier_usd_per_month")):
        best = best_beating(api_side, kind)
        facts[fact] = round_sig_or_none(best.monthly_usd) if best else None
    decision = decide(facts, load_rules(), est.stage_facts)
    book = {r.id: r for r in load_rules().rules}

    base = None
    if est.model is not None and decision.self_hosted:
        a = est.model.anatomy
        base = BaseModelInfo(name=est.model.name, hub_id=est.model.hub_id, family=est.model.family,
                             model_type=a.model_type, max_position_embeddings=est.model.config.get(
                                 "max_position_embeddings"),
                             params_total=a.params_total, num_layers=a.num_layers, chosen_by=est.model_source,
                             checkpoint=est.model.checkpoint, gated=est.model.gated,
                             params_frozen_vision=a.frozen_vision_params)

    run = est.run if decision.self_hosted else None
    recommendation = Recommendation(
        approach=decision.approach, also=list(decision.also),
        method=decision.methods[0] if decision.methods else None, then=list(decision.methods[1:]),
        technique=decision.technique,
        base_model=base.name if base else (est.hosted.base_model if est.hosted else None),
        gpus=[run.gpu.name] if run else [], gpu_count=run.gpu_count if run else 0,
    )

    assumptions: list[str] = list((data_inputs.summary or {}).get("notes", []))
    no_bf16 = [g for g in answers.hardware.gpus if not catalog.gpu(g).trains_bf16]
    if decision.self_hosted and no_bf16:
        assumptions.append(f"{', '.join(no_bf16)}: no bf16 tensor cores (compute capability below 8.0, before "
                           f"Ampere), so never the training GPU; the plan and its configs train in bf16")
    fit_matrix = []
    if decision.self_hosted and est.model is not None:
        fit_matrix = [_fit_row(est.option(t, catalog.gpu(g)), est.stages[0])
                      for t in TECHNIQUES if est.supports(t) for g in est.gpus]
    training = None
    if run is not None:
        training = _training(est, run, answers)
        assumptions += _training_assumptions(est, run, answers, data_inputs.measured, profile)

    inference = None
    after, figures = est.after_usd, est.money
    if decision.fine_tune and (today is not None or after is not None):
        saving, be = figures.get("estimates.monthly_saving_usd"), figures.get("estimates.break_even_months")
        training_usd = figures.get("estimates.training_usd")
        w = answers.workload
        inference = Inference(
            requests_per_month=w.requests_per_month, input_tokens_per_request=w.input_tokens_per_request,
            output_tokens_per_request=w.output_tokens_per_request,
            today_usd_per_month=round_sig_or_none(today), today_source=today_source,
            after_usd_per_month=round_sig_or_none(after),
            after_source=("self-hosted serving estimate" if decision.self_hosted else "hosted fine-tuned model "
                          "inference prices") if after is not None else None,
            self_hosted=est.inference if decision.self_hosted else None,
            monthly_saving_usd=round_sig_or_none(saving), break_even_months=round_sig_or_none(be),
            cumulative_usd_12_months=None if today is None or after is None or training_usd is None else Cumulative(
                today=[round_sig(today * m) for m in range(13)],
                after=[round_sig(training_usd + after * m) for m in range(13)]),
        )
        if est.inference:
            assumptions += est.inference.assumptions
    if workload is None and decision.fine_tune:
        assumptions.append("no complete workload (requests and tokens per request): monthly inference cost not compared")
    estimates = Estimates(base_model=base, fit_matrix=fit_matrix, training=training, hosted_fine_tuning=est.hosted,
                          inference=inference, assumptions=list(dict.fromkeys(assumptions)))

    options = _options(ctx, est, decision, api_side, data_inputs.measured, catalog)
    options, recommendation = _delivery(options, decision, recommendation, ctx)
    if recommendation.provider and estimates.inference is not None:
        estimates = estimates.model_copy(update={"inference": _provider_inference(
            estimates.inference, next(o for o in options if o.chosen))})
    if (answers.workload.current_monthly_cost_usd is not None and facts["workload.bill_vs_list_factor"] is not None
            and today is not None):
        listed, how = list_bill(answers, catalog)
        assumptions.append(f"the stated bill ({money(today)}/month) is {facts['workload.bill_vs_list_factor']:g}x "
                           f"away from {how} ({money(listed)}/month); the plan compares against the stated bill")
    estimates = estimates.model_copy(update={"assumptions": list(dict.fromkeys(assumptions))})
    fired = [book[t.id] for t in decision.trace if t.fired]
    deciding = [r for r in fired if not r.recommends.warning and RULE_STAGES[r.stage].deciding]
    return Plan(
        advise_version=__version__,
        project=answers.project,
        summary=_summary(decision, recommendation, estimates, options, answers.symptoms),
        recommendation=recommendation,
        prerequisites=list(decision.prerequisites),
        prerequisite_steps=[prerequisite_text(p) for p in decision.prerequisites],
        serving=ServingPlan(strategy=decision.serving, notes=SERVING[decision.serving].note),
        why=[RuleRef(id=r.id, name=r.name, rationale=r.rationale, source=r.source) for r in deciding],
        warnings=[RuleRef(id=r.id, name=r.name, rationale=r.rationale, source=r.source)
                  for r in fired if r.recommends.warning],
        rules=[TraceEntry(id=t.id, name=t.name, stage=t.stage, fired=t.fired, reason=t.reason,
                          rationale=book[t.id].rationale, source=book[t.id].source) for t in decision.trace],
        thresholds=load_rules().threshold_values,
        price_data=_price_data(answers, catalog, est, decision, as_of),
        estimates=estimates,
        options=options,
        next_steps=_next_steps(decision, recommendation, estimates),
        data=None if data_inputs.summary is None else DataSummary.model_validate(data_inputs.summary),
        profile=None if profile is None else ProfileUse(
            device=profile.device.name, catalog_gpu=profile.device.catalog_gpu, model=profile.model.name,
            created=profile.created, entries=len(profile.entries),
            used=sorted({f"{r.technique} on {r.gpu}" for r in fit_matrix if r.measured})),
        answers=given,
    )


def _self_hosted_option(ctx: Context, est: Estimator, decision: Decision, chosen: bool) -> Option:
    """The open model fine-tuned on rented (or owned) GPUs and served on the cheapest card that carries the
    traffic. When the plan does not fine-tune itself, the same estimate is made for LoRA (QLoRA where LoRA does
    not fit) SFT of the default base, so the path is priced all the same."""
    a = ctx.answers
    if not a.model.open_weights_ok:
        return option(ctx, "self_hosted", "an open model on your GPUs", one_off_usd=None,
                      why_not="the team cannot use open-weights models (model.open_weights_ok: false)")
    no_ops = None if a.deployment.operate_gpus else "the team will not operate GPUs (deployment.operate_gpus: false)"
    if not decision.self_hosted:
        est = Estimator(a, ctx.catalog, est.measured, est.profile)
        est.options_context = ctx
        trial = replace(decision, approach="fine_tune", methods=decision.methods if decision.fine_tune else ("sft",),
                        technique=None)
        fits = est.stage_facts("technique", trial)
        technique = next((t for t in ("lora", "qlora") if fits.get(f"estimates.fits.{t}")), "lora")
        est.stage_facts("checks", replace(trial, technique=technique))
    run = est.run
    model = est.model.name if est.model else None
    name = f"{model} {TECHNIQUES.label(run.technique) if run else ''} on your GPUs".replace("  ", " ")
    notes = []
    if run is not None and est.model is not None:
        notes.append(f"training: {run.gpu_count} x {run.gpu.name}, {duration_hours(run.hours)} "
                     f"({est.model_source})")
    if est.inference is not None:
        notes += est.inference.assumptions
    why = no_ops
    if no_ops is not None:
        pass  # priced all the same, for the comparison
    elif run is None or not run.fits:
        why = "no candidate GPU holds the training run (see the fit matrix)"
    elif ctx.workload is None:
        why = "needs the workload (requests and tokens per request) to size serving"
    elif est.after_usd is None:
        why = "no catalog GPU serves the workload within its limits (memory, latency target)"
    return option(ctx, "self_hosted", name, provider=est.inference.provider if est.inference else None,
                  model=(est.model.hub_id or est.model.name) if est.model else None,
                  one_off_usd=run.usd if run else None, monthly_usd=est.after_usd, why_not=why, assumptions=notes,
                  chosen=chosen)


def _options(ctx: Context, est: Estimator, decision: Decision, api_side: list[Option],
             measured: Mapping[str, Mapping[str, Any]], catalog: Catalog) -> list[Option]:
    """Every path priced against today's bill, with the plan's own marked ``chosen``."""
    a = ctx.answers
    need = training_need(decision.methods if decision.fine_tune else (), a, measured)
    hosted_offer = est.hosted.offer if decision.approach == "hosted_fine_tune" and est.hosted else None
    base = est.model
    if base is None:  # the plan did not pick a base: price the default one for the task
        base, _ = choose_base(a, decision, catalog)
    out = list(api_side)
    out += vendor_fine_tune_options(ctx, need, hosted_offer)
    out += open_model_hosted_options(ctx, need, base)
    out.append(_self_hosted_option(ctx, est, decision, chosen=decision.self_hosted))
    if not decision.fine_tune:
        i = chosen_api_option(out, "cost" in a.symptoms, decision.approach)
        if i is not None:
            out[i] = out[i].model_copy(update={"chosen": True})
    return out


def horizon_usd(o: Option, months: float) -> float | None:
    """One-off plus ``months`` of the monthly cost (None where either is not priced)."""
    return None if o.one_off_usd is None or o.monthly_usd is None else o.one_off_usd + months * o.monthly_usd


def _provider_inference(inf: Inference, o: Option) -> Inference:
    """The monthly comparison when the model is fine-tuned and called per token at a provider (the self-hosted
    serving estimate stays, as the alternative)."""
    today = inf.today_usd_per_month
    saving = None if today is None or o.monthly_usd is None else round_sig(today - o.monthly_usd)
    be = None if saving is None or o.one_off_usd is None else break_even_months(o.one_off_usd, today, o.monthly_usd)
    return inf.model_copy(update={
        "after_usd_per_month": o.monthly_usd, "after_source": f"{o.name}: per-token inference prices",
        "monthly_saving_usd": saving, "break_even_months": round_sig_or_none(be),
        "cumulative_usd_12_months": None if today is None or o.monthly_usd is None or o.one_off_usd is None
        else Cumulative(today=[round_sig(today * m) for m in range(13)],
                        after=[round_sig(o.one_off_usd + o.monthly_usd * m) for m in range(13)])})


def _delivery(options: list[Option], decision: Decision, rec: Recommendation,
              ctx: Context) -> tuple[list[Option], Recommendation]:
    """Who runs the fine-tuned model. A self-hosted plan moves to an open model fine-tuned and called per token at
    a provider when that is feasible and cheaper over the payback horizon (training + months x monthly) than
    training and serving on rented GPUs (or when nothing fits on them): less to operate, and cheaper."""
    if not decision.fine_tune:
        return options, rec
    if not decision.self_hosted:
        return options, rec.model_copy(update={"delivery": "hosted"})
    months = ctx.payback_months
    own = next(o for o in options if o.approach == "self_hosted")
    at_provider = [o for o in options if o.approach == "open_model_hosted" and o.feasible
                   and horizon_usd(o, months) is not None]
    best = min(at_provider, key=lambda o: (horizon_usd(o, months), o.name), default=None)
    own_total = horizon_usd(own, months) if own.feasible else None
    if best is None or (own_total is not None and horizon_usd(best, months) >= own_total):
        return options, rec.model_copy(update={"delivery": "self_hosted"})
    out = [o.model_copy(update={"chosen": o is best}) for o in options]
    return out, rec.model_copy(update={"delivery": "hosted", "provider": best.provider})


def _training(est: Estimator, run: RunOption, answers: Answers) -> TrainingPlan:
    """The recommended run as the trainers need it (the exporters read nothing else)."""
    assert est.model is not None
    lo = lora_settings(est.train_answers, est.model.anatomy)
    price = run.gpu.cheapest_price
    owned = run.owned_usd_per_gpu_hour is not None
    return TrainingPlan(
        technique=run.technique, gpu=run.gpu.name, gpu_count=run.gpu_count, sharding=run.sharding,
        offload=run.offload, optimizer=run.optimizer, precision="bf16", gradient_checkpointing=True,
        attn_implementation=ATTENTION[TrainingSetup().resolved_attn(est.model.anatomy.model_type)].transformers_name,
        quantization=Quantization(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype="bfloat16") if TECHNIQUES[run.technique].quantized else None,
        micro_batch=run.micro_batch,
        stages=[StagePlan(
            method=s.method, objective=s.objective, examples=s.examples, examples_assumed=s.examples_assumed,
            tokens_per_example=s.tokens_per_example, seq_len=s.seq_len, epochs=s.epochs,
            training_tokens=s.training_tokens, learning_rate=s.learning_rate,
            global_batch_sequences=s.global_batch_sequences,
            grad_accum=grad_accum_for(s, run.micro_batch, run.gpu_count),
            beta=s.beta, hours=round_sig(h)) for s, h in zip(est.stages, run.stage_hours)],
        lora=LoraSettings(**lo) if TECHNIQUES[run.technique].adapter else None,
        **{k: v for k, v in training_defaults()["schedule"].items() if k != "source"},
        memory_bytes=run.memory_bytes, measured=list(run.measured), memory_parts_bytes=dict(run.memory.parts),
        usable_memory_bytes=run.gpu.usable_memory_bytes, host_ram_bytes_per_machine=run.host_ram_bytes_per_machine,
        tokens_per_s=round_sig(run.tokens_per_s), hours=round_sig(run.hours), usd=round_sig_or_none(run.usd),
        adapters=est.adapter_runs, adapter_layout=est.decision.adapter_layout if est.decision else None,
        provider=run.provider, usd_per_gpu_hour=run.usd_per_gpu_hour,
        price_date=None if owned else price.date if price else None,
    )


def _training_assumptions(est: Estimator, run: RunOption, answers: Answers,
                          measured: Mapping[str, Mapping[str, Any]], profile: Any) -> list[str]:
    assert est.model is not None
    out = list(run.memory.assumptions)
    setup0 = est.setup(run.technique, est.stages[0], run.micro_batch, run.sharding, run.optimizer, run.offload)
    out += list(estimate_throughput(est.model.anatomy, est.speed_setup(setup0, est.stages[0]), run.gpu).assumptions)
    for stage in est.stages[1:] if run.offload != "none" else ():
        # each later stage's own optimizer step under offload (the first stage's is above): its last assumption
        st = est.setup(run.technique, stage, run.micro_batch, run.sharding, run.optimizer, run.offload)
        out.append(estimate_throughput(est.model.anatomy, est.speed_setup(st, stage), run.gpu).assumptions[-1])
    if run.sharding == "fsdp" and run.offload == "none":
        out.append(f"A full replica does not fit on one {run.gpu.name}: FSDP2 shards parameters, gradients and "
                   f"optimizer states over the {run.gpu_count} GPUs (PyTorch's own sharding, launched through "
                   f"accelerate by every exported trainer); DeepSpeed ZeRO-3 would be chosen if the optimizer "
                   f"had to move to CPU RAM")
    elif run.sharding == "zero3":
        why = "the sharded states do not fit under FSDP2" if run.offload == "none" else \
            "DeepSpeed offloads to CPU RAM with its vectorised DeepSpeedCPUAdam (FSDP moves parameters, " \
            "gradients and optimizer together and steps with torch's slower CPU Adam)"
        out.append(f"DeepSpeed ZeRO-3 over the {run.gpu_count} GPUs: {why}")
    if run.offload != "none":
        out.append(f"{SHARDING.title(run.sharding)} offloads the {OFFLOAD[run.offload].label} to CPU RAM: the run "
                   f"{host_ram_text(run.host_ram_bytes_per_machine, run.sharding, run.offload, run.gpu_count)}, "
                   f"every GPU's partition together (runs over several machines are not modelled); DeepSpeed's "
                   f"estimator adds 50% for buffers ({gib(run.host_ram_bytes_per_machine * 1.5)}); measure before "
                   f"budgeting")
    if run.measured:
        out.insert(0, f"{' and '.join(run.measured)} of the {est.stages[0].method} stage measured by "
                      f"`advise profile` on {profile.device.name} ({profile.versions.torch}); memory parts stay "
                      f"estimates")
    layout, n = est.decision.adapter_layout if est.decision else None, answers.deployment.adapters
    if layout == "per_tenant":
        given = answers.data.examples_per_adapter is not None
        per = per_adapter_examples(answers)
        out.append(f"{n:,} adapters, one per tenant, each trained on its own {per:,} examples "
                   f"({'data.examples_per_adapter' if given else f'data.labeled_examples split evenly over {n:,}'}); "
                   f"time and cost are for all {n:,} runs, one after another on the GPU shown (several GPUs run "
                   f"them side by side: the same GPU-hours); the LoRA rank is for one tenant's data")
    elif layout == "shared":
        out.append(f"one shared adapter on the pooled {answers.data.labeled_examples:,} examples for the {n:,} "
                   f"tenants (under {load_rules().threshold_values['too_few_examples']:,} examples each: too few "
                   f"for adapters of their own)")
    if run.owned_usd_per_gpu_hour is not None:
        h = answers.hardware
        out.append(f"the team's own {run.gpu.name} cards: no rent; " + (
            f"electricity at {h.power_watts_per_gpu:g} W per GPU x ${h.usd_per_kwh:g}/kWh = "
            f"${run.owned_usd_per_gpu_hour:.4g} per GPU-hour" if h.power_watts_per_gpu is not None
            and h.usd_per_kwh is not None else "electricity not counted (give hardware.power_watts_per_gpu and "
                                              "hardware.usd_per_kwh to count it)")
                   + "; serving is priced at rental")
    out.append(f"runs are recommended within {est.memory_fraction:.0%} of the GPU's usable memory "
               f"({gib(est.memory_limit(run.gpu))} of {gib(run.gpu.usable_memory_bytes)} on {run.gpu.name}; "
               f"hardware.max_memory_fraction changes it)")
    if any(s.examples_assumed for s in est.stages):
        out.append(f"no example count for a training stage: costs are for {PLACEHOLDER_EXAMPLES:,} examples")
    if not measured.get(METHODS[est.stages[0].method].data_kind):
        w = answers.workload
        out.append(f"{est.stages[0].tokens_per_example} tokens per example "
                   + ("(workload input + output tokens)" if w.input_tokens_per_request is not None
                      and w.output_tokens_per_request is not None
                      else "(default; give data files or the workload's token counts)"))
    return out


def _price_data(answers: Answers, catalog: Catalog, est: Estimator, decision: Decision,
                as_of: _dt.date) -> PriceData:
    """Where the prices come from and how old they are (the catalog files carry their compile date)."""
    api = current_api(answers, catalog)
    serving_gpu = est.inference.gpu if decision.self_hosted and est.inference else None
    serving_price = catalog.gpu(serving_gpu).cheapest_price if serving_gpu else None
    training_price = est.run.gpu.cheapest_price if decision.self_hosted and est.run else None
    return PriceData(
        as_of=as_of.isoformat(),
        gpus_compiled=compiled_date(CATALOG_DATA_DIR / "gpus.yaml"),
        prices_compiled=compiled_date(CATALOG_DATA_DIR / "prices.yaml"),
        training_price_date=training_price.date if training_price else None,
        serving_price_date=serving_price.date if serving_price else None,
        api=None if api is None else ApiPriceRef(name=api.name, date=api.date, source=api.source,
                                                 retires=api.retires),
    )


def compiled_date(path: Path) -> str | None:
    """The 'Compiled YYYY-MM-DD' date a catalog data file states in its header comment."""
    import re

    m = re.search(r"Compiled (\d{4}-\d{2}-\d{2})", path.read_text(encoding="utf-8"))
    return m.group(1) if m else None


def _summary(d: Decision, rec: Recommendation, est: Estimates, options: Sequence[Option],
             symptoms: Sequence[str] = ()) -> str:
    """The plan in a sentence or three; a workload the cost advice cannot rest on is said first."""
    body = _summary_body(d, rec, est, options, symptoms)
    t = est.training
    assumed = [st for st in t.stages if st.examples_assumed] if t else []
    if assumed:
        what = {"labeled_examples": "training examples", "preference_pairs": "preference pairs",
                "binary_feedback": "thumbs-up/down ratings"}[DATA_KINDS[METHODS[assumed[0].method].data_kind].count_field]
        note = f"No {what} yet: collect them first (the training figures assume {assumed[0].examples:,}). "
        # "nothing beats today's bill" stays the first thing said (class 11); the missing data comes next
        lead, sep, rest = body.partition(". ")
        body = f"{lead}. {note}{rest}" if sep and body.startswith(("No option priced", "For the bill")) \
            else note + body
    if "WORKLOAD_IMPLAUSIBLE" in d.fired:
        return ("Check the workload first: it is beyond what one task serves (a per-year or per-company figure?), "
                "and every monthly sum below scales with it. " + body)
    if "WORKLOAD_UNKNOWN" in d.fired:
        if "cost" in symptoms:
            return ("Measure the workload first (requests a month, tokens per request, today's bill): the cost "
                    "advice rests on it. " + body)
        return ("Measure the workload first (requests a month, tokens per request, the latency target): the "
                "serving advice rests on it. " + body)
    return body


def _summary_body(d: Decision, rec: Recommendation, est: Estimates, options: Sequence[Option],
                  symptoms: Sequence[str] = ()) -> str:
    if not d.fine_tune:
        parts = [d.phrase(d.approach)] + [d.phrase(a) for a in d.also]
        head = f"Don't fine-tune yet: {'; then '.join(parts) if len(parts) < 3 else ', '.join(parts)}."
        chosen = next((o for o in options if o.chosen and o.approach != "current"), None)
        today = next((o.monthly_usd for o in options if o.approach == "current"), None)
        if chosen is not None and chosen.monthly_usd is not None and today is not None:
            how = (f"switch to {chosen.model}" if chosen.approach == "cheaper_tier"
                   else f"{OPTION_KINDS[chosen.approach].label} on {chosen.model}")
            head += f" Cut the bill with {how}: {money(chosen.monthly_usd)}/month instead of {money(today)}."
            cheaper = min((o for o in options if o.beats_today and o.approach == "cheaper_tier"
                           and o.monthly_usd < chosen.monthly_usd), key=lambda o: (o.monthly_usd, o.name), default=None)
            if cheaper is not None:
                head += (f" Cheaper still if it passes the eval set: {cheaper.name} at "
                         f"{money(cheaper.monthly_usd)}/month.")
        return head
    methods = " then ".join(METHODS.phrase(m) for m in d.methods)
    ram = ""
    if APPROACHES[d.approach].hosted:
        h = est.hosted_fine_tuning
        head = f"Use hosted {methods} of {h.base_model} ({h.offer})" if h else \
            f"Use the vendor's hosted {methods} (no offer for it is open to new jobs in the price data)"
        usd = money(h.training_usd) if h else ""
        cost = "" if not h else f": {usd} of training" if usd.startswith("under") else f": about {usd} of training"
    elif rec.provider:
        o = next(o for o in options if o.chosen)
        own = next(o for o in options if o.approach == "self_hosted")
        usd = money(o.one_off_usd)
        head = f"Fine-tune {o.model} with {methods} using LoRA at {rec.provider}, and call it per token"
        cost = f": {usd} of training" if usd.startswith("under") else f": about {usd} of training"
        if own.monthly_usd is not None:
            ram = (f" On your own GPUs it would cost {money(own.monthly_usd)}/month to serve; the exported configs "
                   f"train it that way if you prefer.")
    else:
        t = est.training
        tech = TECHNIQUES.phrase(d.technique) if d.technique else "a technique that fits (none does yet)"
        head = f"Fine-tune {rec.base_model} with {methods} using {tech}"
        if t and t.adapter_layout == "per_tenant":
            head += f", one adapter per tenant ({t.adapters:,} adapters)"
        elif t and t.adapter_layout == "shared":
            head += ", one adapter shared by the tenants"
        cost = (f" on {t.gpu_count} x {t.gpu}: about {duration_hours(t.hours)} and {money(t.usd)} of training"
                + (f" for all {t.adapters:,}" if t.adapters > 1 else "") if t else "")
        if t and t.host_ram_bytes_per_machine:
            ram = f" The run {host_ram_text(t.host_ram_bytes_per_machine, t.sharding, t.offload, t.gpu_count)}."
    inf = est.inference
    tail = ""
    if inf and inf.today_usd_per_month is not None and inf.after_usd_per_month is not None:
        tail = f", then {money(inf.after_usd_per_month)}/month instead of {money(inf.today_usd_per_month)}"
        tail += (f" (break-even in {months_text(inf.break_even_months)})" if inf.break_even_months is not None
                 else " (more per month than today: it does not pay back in money)")
    also = f"; also {', '.join(d.phrase(a) for a in d.also)}" if d.also else ""
    lead = _cost_lead(options) if "cost" in symptoms else ""
    return f"{lead}{head}{cost}{tail}{also}.{ram}{'' if lead else _without_training(options)}"


def _cost_lead(options: Sequence[Option]) -> str:
    """When cost is the reason and the fine-tune does not beat today's bill, the plan says so first."""
    today = next((o.monthly_usd for o in options if o.approach == "current"), None)
    chosen = next((o for o in options if o.chosen), None)
    if today is None or chosen is None or chosen.beats_today:
        return ""
    best = min((o for o in options if o.beats_today), key=lambda o: (o.monthly_usd, o.name), default=None)
    if best is None:
        return f"No option priced here beats today's bill of {money(today)}/month. "
    return (f"For the bill, {best.name} beats fine-tuning: {money(best.monthly_usd)}/month against "
            f"{money(today)} today ({EFFORTS.label(best.effort)}). ")


def _without_training(options: Sequence[Option]) -> str:
    """For a fine-tuning plan: the cheapest option that beats today without training, if there is one."""
    best = min((o for o in options if o.beats_today and not OPTION_KINDS[o.approach].trains),
               key=lambda o: (o.monthly_usd, o.name), default=None)
    if best is None:
        return ""
    return (f" Without training: {best.name}, {money(best.monthly_usd)}/month ({EFFORTS.label(best.effort)}; "
            f"{EFFORTS[best.effort].means}).")


def _next_steps(d: Decision, rec: Recommendation, est: Estimates) -> list[NextStep]:
    have_eval = "eval_set" not in d.prerequisites
    steps = [
        NextStep(step="eval_set", what="Keep the eval set held out of any training data, and add the failures you "
                                       "see in production to it." if have_eval else prerequisite_text("eval_set")),
        NextStep(step="baseline", what=prerequisite_text("baseline")),
    ]
    if not d.fine_tune:
        steps.append(NextStep(step="change", what="Then " + "; ".join(d.phrase(a) for a in (d.approach, *d.also))
                              + ", and score each change on the eval set."))
        steps.append(NextStep(step="monitor", what="Keep scoring a sample of production traffic; revisit this plan "
                                                   "if the problems persist or the volume grows."))
        return steps
    steps.append(NextStep(step="data", what="Prepare the training data (`advise data check FILE` finds problems "
                                            "before a GPU is paid for)."))
    if APPROACHES[d.approach].hosted:
        steps.append(NextStep(step="train", what="Upload the training file and start a fine-tuning job with the "
                                                 "vendor."))
    elif rec.provider:
        steps.append(NextStep(step="train", what=f"Upload the training file to {rec.provider} and start a LoRA "
                                                 f"fine-tuning job of the base in the plan's options; call the "
                                                 f"tuned adapter per token. To train on your own GPUs instead, "
                                                 f"use the exported configs."))
    else:
        t = est.training
        where = f" on {t.gpu_count} x {t.gpu}" if t else ""
        if t:
            s0 = t.stages[0]
            model = (est.base_model.hub_id if est.base_model else None) or rec.base_model
            steps.append(NextStep(step="measure", what=f"Check memory and speed on the real GPU before the full run: "
                                                       f"`advise profile --model {model} --methods {t.technique} "
                                                       f"--seq-len {s0.seq_len} --batch-size {t.micro_batch}`, then "
                                                       f"re-plan with `--profile profile.json`."))
        settings = "learning rate, batch, LoRA, epochs" if t and t.lora else "learning rate, batch, epochs"
        steps.append(NextStep(step="train", what=f"Train {rec.base_model}{where} with the settings in the plan's "
                                                 f"training section ({settings})."))
    steps.append(NextStep(step="evaluate", what="Score the tuned model on the eval set against the baseline; ship "
                                                "only if it wins."))
    steps.append(NextStep(step="deploy", what=SERVING[d.serving].note))
    steps.append(NextStep(step="monitor", what="Score a sample of production traffic weekly; retrain when quality "
                                               "drifts or the data changes."))
    return steps
