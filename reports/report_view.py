"""What the HTML report shows, prepared from the typed plan: every label, number and sentence as a string.

The template only loops and branches over what this module returns. The plan has been validated
(``advisor.contract.plan``), so every enumerated value is a key of the vocabulary and every field is there.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from advisor.contract.plan import DataCheck, Option, Plan
from advisor.contract.units import count, gib, host_ram_text, hourly, money, months_text
from advisor.contract.units import duration_hours as duration
from advisor.contract.vocab import (
    APPROACHES,
    DATA_KINDS,
    DELIVERIES,
    EFFORTS,
    METHODS,
    NEXT_STEPS,
    PREREQUISITES,
    RULE_STAGES,
    SERVING,
    SHARDING,
    TECHNIQUES,
    Terms,
)

#: the approaches the decision path shows as choices (hosted fine-tuning is a delivery of fine-tuning)
APPROACH_CHOICES = APPROACHES.where(hosted=False)
#: how many deciding rules the first screen shows (the decision path shows them all)
TOP_REASONS = 3


def label(terms: Terms[Any], key: Any) -> str:
    """How ``key`` reads as a heading or a table cell."""
    return terms.title(key)


# ---- text ----------------------------------------------------------------------------------------
def prose(text: Any) -> Markup:
    """Plan text as safe HTML: escaped, with `backticked` commands shown as code."""
    return Markup(re.sub(r"`([^`<>]+)`", r"<code>\1</code>", html.escape(str(text or ""), quote=False)))


def first_sentence(text: str | None) -> str:
    if not text:
        return ""
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip(), re.DOTALL)
    return m.group(1) if m else text.strip()


def anchor(rule_id: Any) -> str:
    """The element id of a rule in the decision path (ids from a foreign plan may hold any character)."""
    return "rule-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(rule_id))


# ---- sections -------------------------------------------------------------------------------------
def is_fine_tune(plan: Plan) -> bool:
    return plan.recommendation.fine_tune


def verdict(plan: Plan) -> dict[str, str]:
    approach = plan.recommendation.approach
    if approach == "fine_tune":
        return {"text": "Fine-tune", "tone": "go"}
    if approach == "hosted_fine_tune":
        return {"text": "Hosted fine-tune", "tone": "go"}
    return {"text": "Don't fine-tune yet", "tone": "hold"}


def host_ram(plan: Plan) -> str:
    """'needs 1,051.3 GiB of CPU RAM per machine for DeepSpeed ZeRO-3 optimizer offload (4 GPUs on one machine)',
    or '' when the training run offloads nothing."""
    t = plan.estimates.training
    return host_ram_text(t.host_ram_bytes_per_machine, t.sharding, t.offload, t.gpu_count) if t else ""


def kpis(plan: Plan) -> list[dict[str, str]]:
    """The four figures of the first screen (a fifth, the CPU RAM per machine, when the run offloads to it); empty
    when no fine-tune is recommended (a sentence says so)."""
    if not is_fine_tune(plan):
        return []
    rec, est = plan.recommendation, plan.estimates
    t, h, inf = est.training, est.hosted_fine_tuning, est.inference
    tiles = []
    if t:
        assumed = any(s.examples_assumed for s in t.stages)
        price = f" at {hourly(t.usd_per_gpu_hour)} ({t.provider})" if t.usd_per_gpu_hour is not None \
            else ", no listed price"
        sub = f"{label(TECHNIQUES, t.technique)} on {t.gpu_count} × {t.gpu}{price}"
        if assumed:
            sub += "; for 1,000 assumed examples"
        tiles.append({"label": "Training run", "value": f"{duration(t.hours)} · {money(t.usd)}",
                      "sub": sub, "tone": ""})
        if t.host_ram_bytes_per_machine:
            what = "parameter and optimizer" if t.offload == "params" else "optimizer"
            tiles.append({"label": "CPU RAM per machine", "value": gib(t.host_ram_bytes_per_machine),
                          "sub": f"for {SHARDING.title(t.sharding)} {what} offload ({t.gpu_count} × {t.gpu} on one "
                                 f"machine); time and cost include its slowdown", "tone": ""})
    elif h:
        tiles.append({"label": "Training run", "value": money(h.training_usd),
                      "sub": f"hosted by {h.provider} ({h.offer}); run time set by the vendor", "tone": ""})
    elif rec.approach == "fine_tune":
        tiles.append({"label": "Training run", "value": "no fit",
                      "sub": "nothing fits the GPUs given: see the fit matrix", "tone": "bad"})
    else:
        tiles.append({"label": "Training run", "value": "unknown",
                      "sub": "no hosted fine-tuning offer in the catalog for this model", "tone": "bad"})

    today = inf.today_usd_per_month if inf else None
    after = inf.after_usd_per_month if inf else None
    if inf and today is not None and after is not None:
        saving, be = inf.monthly_saving_usd, inf.break_even_months
        tiles.append({"label": "Monthly cost after", "value": f"{money(after)}/mo",
                      "sub": f"against {money(today)}/mo today", "tone": "good" if after < today else "bad"})
        if be is not None:
            tiles.append({"label": "Break-even", "value": months_text(be),
                          "sub": f"then saves {money(saving)} every month", "tone": "good"})
        else:
            tiles.append({"label": "Break-even", "value": "never",
                          "sub": f"{money(-(saving or 0.0))}/mo more than today: the case is quality, not cost",
                          "tone": "bad"})
        cum = inf.cumulative_usd_12_months
        if cum and cum.today and cum.after:
            net = cum.today[-1] - cum.after[-1]
            tiles.append({"label": "Over 12 months",
                          "value": f"saves {money(net)}" if net >= 0 else f"{money(-net)} more",
                          "sub": "training included, against today's bill", "tone": "good" if net >= 0 else "bad"})
    elif today is not None or after is not None:
        known = f"today {money(today)}/mo" if today is not None else f"after {money(after)}/mo"
        tiles.append({"label": "Monthly cost", "value": "not compared",
                      "sub": f"only {known} is known", "tone": ""})
    else:
        tiles.append({"label": "Monthly cost", "value": "not compared",
                      "sub": "give the workload (requests per month, tokens per request) to compare", "tone": ""})
    return tiles


def reasons(plan: Plan) -> list[dict[str, str]]:
    return [{"id": r.id, "anchor": anchor(r.id), "name": r.name, "short": prose(first_sentence(r.rationale)),
             "rationale": prose(r.rationale), "source": r.source} for r in plan.why]


def prerequisites(plan: Plan) -> list[dict[str, Any]]:
    """What must happen first; "fix the data files" lists the data check's ERROR verdicts under it."""
    texts = plan.prerequisite_steps
    errors = plan.data.errors() if plan.data is not None else []
    return [{"label": label(PREREQUISITES, k), "text": prose(texts[i]) if i < len(texts) else "",
             "details": errors if k == "fix_data" else []}
            for i, k in enumerate(plan.prerequisites)]


def _fits_by_technique(plan: Plan) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for r in plan.estimates.fit_matrix:
        out[r.technique] = out.get(r.technique, False) or r.fits
    return out


def decision_flow(plan: Plan) -> list[dict[str, Any]]:
    """The decision tree as four stages, each with its options and the branch taken marked."""
    rec = plan.recommendation
    approach, also = rec.approach, list(rec.also)
    ft = rec.fine_tune
    methods = rec.methods
    fits = _fits_by_technique(plan)
    serving = plan.serving.strategy

    def option(text: str, chosen: bool, note: str = "", secondary: bool = False) -> dict[str, Any]:
        return {"text": text, "chosen": chosen, "secondary": secondary, "note": note, "risk": note == "risk"}

    flow = []
    opts = [option(label(APPROACHES, a), a == approach or (a == "fine_tune" and ft), secondary=a in also)
            for a in APPROACH_CHOICES]
    rows = [{"title": "Change", "options": opts}]
    if ft:
        rows.append({"title": "Method", "options": [
            option(label(METHODS, m), m in methods, f"step {methods.index(m) + 1}" if m in methods else "")
            for m in METHODS]})
    outcome = " then ".join(label(METHODS, m) for m in methods) if ft else label(APPROACHES, approach)
    flow.append({"stage": "approach", "title": label(RULE_STAGES, "approach"), "reached": True, "outcome": outcome,
                 "rows": rows})

    flow.append({"stage": "delivery", "title": label(RULE_STAGES, "delivery"), "reached": ft,
                 "outcome": ("self-hosted open model" if approach == "fine_tune" else "vendor's hosted fine-tuning")
                 if ft else "not needed",
                 "rows": [{"title": "Where", "options": [
                     option("Self-hosted open model", approach == "fine_tune"),
                     option("Vendor's hosted fine-tuning", approach == "hosted_fine_tune")]}]})

    technique = rec.technique
    self_hosted = rec.self_hosted
    tech_outcome = "not needed"
    if self_hosted:
        tech_outcome = (f"{label(TECHNIQUES, technique)} on {rec.gpu_count} × {', '.join(rec.gpus)}"
                        if technique and rec.gpus else label(TECHNIQUES, technique) if technique
                        else "nothing fits")
    elif approach == "hosted_fine_tune":
        tech_outcome = "set by the vendor"
    flow.append({"stage": "technique", "title": label(RULE_STAGES, "technique"), "reached": self_hosted,
                 "outcome": tech_outcome,
                 "rows": [
                     {"title": "Technique", "options": [
                         option(label(TECHNIQUES, t), t == technique,
                                ("fits" if fits[t] else "does not fit") if t in fits else "")
                         for t in TECHNIQUES]},
                     {"title": "Serving", "options": [option(label(SERVING, s), s == serving) for s in SERVING]}]})

    prereq, warnings = plan.prerequisites, plan.warnings
    flow.append({"stage": "checks", "title": label(RULE_STAGES, "checks"), "reached": True,
                 "outcome": f"{len(prereq)} prerequisite{'s' if len(prereq) != 1 else ''}, "
                            f"{len(warnings)} risk{'s' if len(warnings) != 1 else ''}",
                 "rows": [{"title": "Flagged", "options": [
                     *(option(label(PREREQUISITES, p), True, "prerequisite") for p in prereq),
                     *(option(w.name, True, "risk") for w in warnings)]}]})
    return flow


def decision_stages(plan: Plan) -> list[dict[str, Any]]:
    """Every rule of the trace by stage: what fired (with its rationale) and what was considered and why not."""
    warning_ids = {r.id for r in plan.warnings}
    out = []
    for stage in RULE_STAGES:
        rules = [r for r in plan.rules if r.stage == stage]
        if not rules:
            continue
        fired, other = [], []
        for r in rules:
            row = {"id": r.id, "anchor": anchor(r.id), "name": r.name, "reason": r.reason,
                   "rationale": prose(r.rationale), "source": r.source,
                   "kind": "risk" if r.id in warning_ids else "decided"}
            (fired if r.fired else other).append(row)
        out.append({"stage": stage, "title": label(RULE_STAGES, stage), "question": RULE_STAGES[stage].question,
                    "fired": fired, "other": other,
                    "other_title": "Checks that did not apply" if stage == "checks" else "Alternatives considered"})
    return out


def training(plan: Plan) -> dict[str, Any] | None:
    """The recommended self-hosted run, as rows an engineer can copy into a trainer."""
    t, base = plan.estimates.training, plan.estimates.base_model
    if not t:
        return None
    ram = host_ram(plan)
    setup = [
        ("Base model", f"{base.name if base else plan.recommendation.base_model}"
                       + (f" ({base.hub_id})" if base and base.hub_id else "")),
        ("Parameters", count(base.params_total if base else None)
         + (f", {base.num_layers} layers" if base and base.num_layers else "")),
        ("Chosen by", (base.chosen_by if base else None) or "-"),
        ("Technique", label(TECHNIQUES, t.technique)),
        ("GPUs", f"{t.gpu_count} × {t.gpu}" + (f", {t.sharding}" if t.sharding != "none" else "")),
        ("Precision / optimizer", f"{t.precision} / {t.optimizer}"),
        ("Attention", t.attn_implementation),
        ("Gradient checkpointing", "on" if t.gradient_checkpointing else "off"),
        ("Micro-batch per GPU", count(t.micro_batch)),
        ("Peak memory per GPU", f"{gib(t.memory_bytes)} of {gib(t.usable_memory_bytes)} usable"),
        *([("CPU RAM per machine", ram[:1].upper() + ram[1:])] if ram else []),
        ("Speed", f"{count(round(t.tokens_per_s))} tokens/s"
                  + (" (CPU offload's copies and host optimizer step included)" if ram else "")),
    ]
    if t.lora:
        lo = t.lora
        setup.append(("LoRA", f"r={lo.r}, alpha={lo.alpha}, dropout={lo.dropout}, targets {', '.join(lo.targets)}"))
    if t.quantization:
        setup.append(("4-bit loading", ", ".join(f"{k}={v}" for k, v in sorted(t.quantization.model_dump().items()))))
    stages = [{
        "method": label(METHODS, s.method),
        "examples": count(s.examples) + (" (assumed)" if s.examples_assumed else ""),
        "seq_len": count(s.seq_len), "epochs": f"{s.epochs:g}", "tokens": count(s.training_tokens),
        "lr": f"{s.learning_rate:g}", "batch": f"{count(s.global_batch_sequences)} (accum {count(s.grad_accum)})",
        "beta": "-" if s.beta is None else f"{s.beta:g}", "hours": duration(s.hours),
    } for s in t.stages]
    return {"setup": setup, "stages": stages,
            "total": f"{duration(t.hours)}, {money(t.usd)}"
                     + (f" at {hourly(t.usd_per_gpu_hour)} on {t.provider}" if t.usd_per_gpu_hour is not None
                        else " (no listed price for this GPU)")}


def hosted(plan: Plan) -> dict[str, Any] | None:
    h = plan.estimates.hosted_fine_tuning
    if not h:
        return None
    rows = [("Offer", f"{h.offer} ({h.provider})"), ("Base model", str(h.base_model)),
            ("Training price", f"${h.usd_per_million_training_tokens:g} per 1M training tokens"),
            ("Training cost", money(h.training_usd)),
            ("Inference after", f"{money(h.usd_per_month)}/month" if h.usd_per_month is not None
             else "not estimated (no workload)")]
    if h.status:
        rows.append(("Status", h.status))
    rows.append(("Price source", h.source + (f" ({h.price_date})" if h.price_date else " (undated)")))
    stages = [{"method": label(METHODS, s.method), "examples": count(s.examples), "tokens": count(s.training_tokens),
               "epochs": f"{s.epochs:g}", "billed": count(s.billed_tokens), "usd": money(s.usd)} for s in h.stages]
    return {"rows": rows, "stages": stages}


#: the answers' data counts the report shows, in order, with their labels
DATA_FIELDS = (
    ("labeled_examples", "Labeled examples (prompt → answer)"),
    ("preference_pairs", "Preference pairs (better / worse answer)"),
    ("binary_feedback", "Thumbs up / down labels"),
    ("domain_corpus_tokens", "Domain text (tokens)"),
    ("eval_examples", "Eval examples (held out)"),
)
FILE_FIELDS = (("train_file", "Training file"), ("preference_file", "Preference file"), ("eval_file", "Eval file"))


def _used_by(count_field: str) -> tuple[str, ...]:
    """The methods that train on the data an answers' count describes (vocabulary: method -> data kind)."""
    return tuple(m for m, t in METHODS.items() if DATA_KINDS[t.data_kind].count_field == count_field)


def _data_files(plan: Plan) -> list[tuple[str, DataCheck]]:
    """The data-check reports in the plan, an eval file checked with its training file included, in the order
    training, preference, eval."""
    files = plan.data.files if plan.data else {}
    out: list[tuple[str, DataCheck]] = []
    for key, text in FILE_FIELDS:
        r = files.get(key)
        if r is not None:
            out.append((text, r))
            if r.eval is not None:
                out.append(("Eval file (checked with the training file)", r.eval))
    return out


def measured_counts(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text, r in _data_files(plan):
        if text.startswith("Eval"):
            out["eval_examples"] = r.valid_examples
        elif r.kind in DATA_KINDS:
            out[DATA_KINDS[r.kind].count_field] = r.total_tokens if r.kind == "text" else r.valid_examples
    return out


def _check_card(text: str, c: DataCheck) -> dict[str, Any]:
    dup = c.duplicates
    rows = [("Valid examples", f"{count(c.valid_examples)} of {count(c.lines_total)} lines"),
            ("Invalid lines", count(c.invalid_lines)),
            ("Tokens per example (p50 / p95 / max)",
             f"{count(c.p50_tokens)} / {count(c.p95_tokens)} / {count(c.max_tokens)}"
             + ("" if c.tokens_exact else f" ({c.token_method or 'estimated'})")),
            ("Tokens in all", count(c.total_tokens)),
            ("Duplicates", f"{count(dup.exact_duplicates)} exact, {count(dup.near_duplicates)} near"
                           f" ({dup.duplicate_share:.1%})")]
    if c.max_length is not None:
        rows.append(("Over the max length", f"{count(c.max_length.over_examples)} examples over "
                                            f"{count(c.max_length.max_length_tokens)} tokens"))
    if c.labels is not None:
        rows.append(("Answer labels", f"{count(c.labels.distinct)} distinct, most / least frequent "
                                      f"{c.labels.imbalance_ratio:.1f}×"))
    if c.eval_overlap is not None:
        rows.append(("Eval examples also in training", count(c.eval_overlap.examples)))
    return {"title": text, "path": c.path, "kind": c.kind or "unknown kind", "rows": rows,
            "problems": [f"{k} {count(v)}" for k, v in sorted(c.problem_counts.items())],
            "verdicts": [{"severity": v.severity, "message": v.message} for v in c.verdicts]}


def data_readiness(plan: Plan) -> dict[str, Any]:
    data = plan.answers.data
    methods = plan.recommendation.methods
    stages = {s.method: s for s in (plan.estimates.training.stages if plan.estimates.training else [])}
    measured = measured_counts(plan)
    rows = []
    for key, text in DATA_FIELDS:
        use = ""
        for m in methods:
            if m in _used_by(key):
                s = stages.get(m)
                use = f"{label(METHODS, m)} stage" + (
                    f": {count(s.examples)} × {count(s.tokens_per_example)} tokens, {s.epochs:g} epoch(s)"
                    if s else "")
        n = measured.get(key, getattr(data, key))
        if key == "eval_examples":
            use = "score the baseline and the tuned model" if n >= plan.thresholds["eval_min_examples"] else \
                f"too few: build {_eval_range(plan)} held-out cases first"
        rows.append({"label": text, "value": count(getattr(data, key)),
                     "measured": count(measured[key]) if key in measured else "", "use": use})
    files = [{"label": text, "path": getattr(data, key)} for key, text in FILE_FIELDS if getattr(data, key)]
    return {"rows": rows, "files": files, "any_measured": bool(measured),
            "checks": [_check_card(text, c) for text, c in _data_files(plan)],
            "notes": list(plan.data.notes) if plan.data else []}


def _eval_range(plan: Plan) -> str:
    """'20-200': the eval-set size the rules ask for (the plan's thresholds)."""
    return f"{plan.thresholds['eval_min_examples']:g}-{plan.thresholds['eval_max_examples']:g}"


def next_steps(plan: Plan) -> list[dict[str, str]]:
    return [{"label": label(NEXT_STEPS, s.step), "what": prose(s.what)} for s in plan.next_steps]


def instead(plan: Plan) -> Markup:
    """What to do instead of training, from the plan's "change" step (``Then add retrieval (RAG), ...``)."""
    what = next((s.what for s in plan.next_steps if s.step == "change"), "")
    what = re.sub(r"^Then\s+", "", what)
    return prose(f"Instead: {what}") if what else Markup("")


def eval_plan(plan: Plan) -> str:
    n = measured_counts(plan).get("eval_examples", plan.answers.data.eval_examples)
    if n == 0:
        return (f"No eval set yet: build {_eval_range(plan)} representative held-out cases with known good answers, "
                f"score today's setup on them (the baseline), and ship only what beats it.")
    if n >= plan.thresholds["eval_min_examples"]:
        return (f"{count(n)} held-out eval examples exist. Score today's setup on them first (the baseline), then "
                f"every candidate; ship only what beats the baseline.")
    return (f"Only {count(n)} eval examples: build {_eval_range(plan)} representative held-out cases with known "
            f"good answers, score today's setup on them (the baseline), and ship only what beats it.")


def risks(plan: Plan) -> dict[str, Any]:
    flagged = [{"id": w.id, "name": w.name, "rationale": prose(w.rationale), "source": w.source}
               for w in plan.warnings]
    warned = {w["id"] for w in flagged}
    clear = [{"name": r.name, "reason": r.reason} for r in plan.rules
             if r.stage == "checks" and not r.fired and r.id not in warned]
    return {"flagged": flagged, "unflagged": clear}


def serving(plan: Plan) -> dict[str, Any]:
    inf = plan.estimates.inference
    sh = inf.self_hosted if inf else None
    rows = []
    if sh:
        gpus = (f"{sh.gpu}: {sh.replicas} replica{'s' if sh.replicas != 1 else ''} of {sh.tensor_parallel} "
                f"GPU{'s' if sh.tensor_parallel != 1 else ''} (tensor parallel), always on")
        rows = [("GPUs", gpus), ("GPU-hours per month", count(sh.gpu_hours_per_month)),
                ("Price", f"{hourly(sh.usd_per_gpu_hour)} ({sh.provider})"),
                ("Cost", f"{money(sh.usd_per_month)}/month")]
    if inf and inf.requests_per_month is not None:
        rows.insert(0, ("Workload", f"{count(inf.requests_per_month)} requests/month × "
                                    f"({count(inf.input_tokens_per_request)} in + "
                                    f"{count(inf.output_tokens_per_request)} out) tokens"))
    if inf and inf.today_usd_per_month is not None:
        rows.append(("Today", f"{money(inf.today_usd_per_month)}/month, from {inf.today_source}"))
    if inf and inf.after_usd_per_month is not None and not sh:
        rows.append(("After", f"{money(inf.after_usd_per_month)}/month, from {inf.after_source}"))
    return {"strategy": label(SERVING, plan.serving.strategy), "notes": prose(plan.serving.notes), "rows": rows,
            "assumptions": list(sh.assumptions) if sh else []}


# ---- options against today's bill ------------------------------------------------------------------------------
def today_bill(plan: Plan) -> float | None:
    """Today's monthly bill: the "current" option's, else the inference estimate's (None: not known)."""
    current = next((o for o in plan.options if o.approach == "current" and o.monthly_usd is not None), None)
    if current is not None:
        return current.monthly_usd
    inf = plan.estimates.inference
    return inf.today_usd_per_month if inf else None


def option_verdict(o: Option) -> dict[str, str]:
    """How an option reads against today's bill: ``{"key", "text", "note"}``; the key is one of ``recommended``,
    ``today``, ``beats``, ``loses``, ``unpriced``, ``impossible`` (the chart's colours and the table's badges)."""
    if o.chosen:
        note = "" if o.approach == "current" else "beats today" if o.beats_today else \
            "does not beat today" if o.monthly_usd is not None else ""
        return {"key": "recommended", "text": "recommended", "note": note}
    if not o.feasible:
        key, text = ("impossible", "not possible") if o.monthly_usd is not None else ("unpriced", "not priced")
        return {"key": key, "text": f"{text}: {o.why_not}" if o.why_not else text, "note": ""}
    if o.approach == "current":
        return {"key": "today", "text": "today's setup", "note": ""}
    if o.beats_today:
        return {"key": "beats", "text": "beats today", "note": ""}
    if o.monthly_usd is None:
        return {"key": "unpriced", "text": f"not priced: {o.why_not}" if o.why_not else "not priced", "note": ""}
    return {"key": "loses", "text": "does not beat today", "note": ""}


def _saving(o: Option) -> str:
    """'saves $2,187/mo; pays back in 2.1 days', '$86/mo more', 'same as today' or '-' (not priced)."""
    s = o.monthly_saving_usd
    if s is None or o.monthly_usd is None:
        return "-"
    if s == 0:
        return "same as today"
    if s < 0:
        return f"{money(-s)}/mo more" + ("; never pays back" if o.one_off_usd else "")
    text = f"saves {money(s)}/mo"
    if o.one_off_usd:
        text += f"; pays back in {months_text(o.break_even_months)}" if o.break_even_months is not None \
            else "; never pays back"
    return text


def _options_lead(plan: Plan, today: float | None) -> Markup:
    """Which option the plan recommends and how its monthly cost compares with today's; how many beat today.
    Plan text is escaped (``Markup.format``); only the recommended option's name is set in bold."""
    opts = plan.options
    chosen = next((o for o in opts if o.chosen), None)
    out: list[Markup] = []
    if chosen is None:
        out.append(Markup("The plan's recommendation is not among the options priced below."))
    elif chosen.approach == "current":
        out.append(Markup("Recommended: keep today's setup, <strong>{}</strong>{}.").format(
            chosen.name, f", at {money(chosen.monthly_usd)}/month" if chosen.monthly_usd is not None else ""))
    elif chosen.monthly_usd is None:
        out.append(Markup("Recommended: <strong>{}</strong>; its monthly cost is not priced{}.").format(
            chosen.name, f" ({chosen.why_not})" if chosen.why_not else ""))
    else:
        if today is None:
            rel = "; today's bill is not known, so it is not compared"
        else:
            diff = today - chosen.monthly_usd
            rel = f" against {money(today)} today" + (f" ({money(diff)} less)" if diff > 0
                                                       else f" ({money(-diff)} more)" if diff < 0 else "")
        one_off = f", after a one-off {money(chosen.one_off_usd)} for training" if chosen.one_off_usd else ""
        out.append(Markup("Recommended: <strong>{}</strong>, at {}/month{}{}.").format(
            chosen.name, money(chosen.monthly_usd), rel, one_off))
    priced = [o for o in opts if o.approach != "current" and o.monthly_usd is not None]
    beats = [o for o in priced if o.beats_today]
    if today is None:
        out.append(Markup("Today's bill is not known, so no option is compared with it: give the workload "
                          "(requests per month, tokens per request) or today's monthly bill."))
    elif not priced:
        out.append(Markup("No other option could be priced, so none is compared with today's bill."))
    elif not beats:
        out.append(Markup("No option beats today's bill ({} other option{} priced).").format(
            len(priced), "s" if len(priced) != 1 else ""))
    elif len(priced) == 1:
        out.append(Markup("The one other option priced beats today's bill."))
    else:
        out.append(Markup("{} of the {} priced options beat{} today's bill.").format(
            len(beats), len(priced), "s" if len(beats) == 1 else ""))
        cheapest = min(beats, key=lambda o: (o.monthly_usd, o.one_off_usd or 0.0))
        if chosen is not None and cheapest is not chosen and cheapest.monthly_usd < (chosen.monthly_usd or 0.0):
            out.append(Markup("The cheapest per month: {}, at {}/month.").format(
                cheapest.name, money(cheapest.monthly_usd)))
    return Markup(" ").join(out)


def options(plan: Plan) -> dict[str, Any]:
    """The options section: a lead sentence, one row per option (in the plan's order) and what each effort means."""
    today = today_bill(plan)
    rows, efforts = [], {}
    for o in plan.options:
        price = ", ".join(x for x in (f"priced {o.price_date}" if o.price_date else "", o.source or "") if x)
        rows.append({
            "name": o.name, "delivery": label(DELIVERIES, o.delivery),
            "provider": o.provider or "",
            "one_off": "not priced" if o.one_off_usd is None else money(o.one_off_usd),
            "monthly": "not priced" if o.monthly_usd is None else f"{money(o.monthly_usd)}/mo",
            "saving": _saving(o), "effort": label(EFFORTS, o.effort), "effort_means": o.effort_means,
            "verdict": option_verdict(o), "assumptions": list(o.assumptions), "price": price,
        })
        efforts.setdefault(label(EFFORTS, o.effort), o.effort_means)
    return {"lead": _options_lead(plan, today) if plan.options else Markup(""), "rows": rows,
            "efforts": list(efforts.items())}


def price_dates(plan: Plan) -> list[str]:
    """Where each price in the plan comes from and how old it is."""
    out = []
    t, h = plan.estimates.training, plan.estimates.hosted_fine_tuning
    if t and t.provider:
        out.append(f"{t.gpu} on {t.provider}: " + (t.price_date or "undated in the catalog"))
    if h:
        out.append(f"{h.offer} hosted fine-tuning: " + (h.price_date or "undated in the catalog"))
    inf = plan.estimates.inference
    if inf and inf.today_source:
        out.append(f"today's bill: {inf.today_source}")
    return out


def catalog_dates(plan: Plan) -> list[str]:
    """The compile dates of the price lists the plan was made with (``plan.price_data``)."""
    pd = plan.price_data
    return [f"{name}: compiled {date}" for name, date in (("gpus.yaml", pd.gpus_compiled),
                                                          ("prices.yaml", pd.prices_compiled)) if date]


def run_command(path: str, text: str) -> str:
    """The command in a generated file's first comment line: ``# Run from the export folder: trl sft ...``
    (``run...:``, ``command:`` or ``usage:`` labels are dropped); a bare comment counts except in Markdown."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    m = re.match(r"^(?:#+|//+|--|;+)\s*(.*?)\s*$", first)
    if not m:
        return ""
    labelled = re.match(r"^(?:run\b[^:]*|command|usage)\s*:\s*(.+)$", m.group(1), flags=re.IGNORECASE)
    if labelled:
        return labelled.group(1).strip()
    return "" if path.lower().endswith((".md", ".markdown")) else m.group(1)


def configs(files: Mapping[str, str] | None) -> list[dict[str, str]]:
    """Each generated config, sorted by path, with the command that runs it."""
    out = []
    for i, path in enumerate(sorted(files or {})):
        text = str(files[path])
        out.append({"path": str(path), "text": text, "command": run_command(str(path), text), "id": f"config-{i}",
                    "lines": count(len(text.splitlines()))})
    return out


def assumptions(plan: Plan) -> list[str]:
    return list(plan.estimates.assumptions)
