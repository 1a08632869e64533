"""What the HTML report shows, prepared from the plan's JSON: every label, number and sentence as a string.

The template only loops and branches over what this module returns; nothing here imports ``advisor`` (the
report renders ``plan.json``, the same data ``advise plan --json`` prints). Unknown keys in a plan made by a
newer advise fall back to a readable form of the key instead of failing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from advisor.contract.units import GIB, count, gib
from advisor.contract.units import duration_hours as duration
from advisor.contract.vocab import (
    APPROACHES,
    METHODS,
    NEXT_STEPS,
    PREREQUISITES,
    RULE_STAGES,
    SERVING,
    TECHNIQUES,
    Terms,
)
from advisor.contract.units import money, months_text

#: the approaches the decision path shows as choices (hosted fine-tuning is a delivery of fine-tuning)
APPROACH_CHOICES = APPROACHES.where(hosted=False)
#: the serving strategies in the order the decision path shows them
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


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(p)
    return d


# ---- sections -------------------------------------------------------------------------------------
def is_fine_tune(plan: Mapping[str, Any]) -> bool:
    return _get(plan, "recommendation", "approach") in ("fine_tune", "hosted_fine_tune")


def verdict(plan: Mapping[str, Any]) -> dict[str, str]:
    approach = _get(plan, "recommendation", "approach")
    if approach == "fine_tune":
        return {"text": "Fine-tune", "tone": "go"}
    if approach == "hosted_fine_tune":
        return {"text": "Hosted fine-tune", "tone": "go"}
    return {"text": "Don't fine-tune yet", "tone": "hold"}


def kpis(plan: Mapping[str, Any]) -> list[dict[str, str]]:
    """The four figures of the first screen; empty when no fine-tune is recommended (a sentence says so)."""
    if not is_fine_tune(plan):
        return []
    rec = plan.get("recommendation") or {}
    est = plan.get("estimates") or {}
    t, h, inf = est.get("training"), est.get("hosted_fine_tuning"), est.get("inference") or {}
    tiles = []
    if t:
        stages = t.get("stages") or []
        assumed = any(s.get("examples_assumed") for s in stages)
        price = (f" at ${t['usd_per_gpu_hour']:.2f}/GPU-h ({t.get('provider')})"
                 if t.get("usd_per_gpu_hour") is not None else ", no listed price")
        sub = f"{label(TECHNIQUES, t.get('technique'))} on {t.get('gpu_count', 1)} × {t.get('gpu')}{price}"
        if assumed:
            sub += "; for 1,000 assumed examples"
        tiles.append({"label": "Training run", "value": f"{duration(t.get('hours'))} · {money(t.get('usd'))}",
                      "sub": sub, "tone": ""})
    elif h:
        tiles.append({"label": "Training run", "value": money(h.get("training_usd")),
                      "sub": f"hosted by {h.get('provider')} ({h.get('offer')}); run time set by the vendor",
                      "tone": ""})
    elif rec.get("approach") == "fine_tune":
        tiles.append({"label": "Training run", "value": "no fit",
                      "sub": "nothing fits the GPUs given: see the fit matrix", "tone": "bad"})
    else:
        tiles.append({"label": "Training run", "value": "unknown",
                      "sub": "no hosted fine-tuning offer in the catalog for this model", "tone": "bad"})

    today, after = inf.get("today_usd_per_month"), inf.get("after_usd_per_month")
    saving, be = inf.get("monthly_saving_usd"), inf.get("break_even_months")
    if today is not None and after is not None:
        tiles.append({"label": "Monthly cost after", "value": f"{money(after)}/mo",
                      "sub": f"against {money(today)}/mo today", "tone": "good" if after < today else "bad"})
        if be is not None:
            tiles.append({"label": "Break-even", "value": months_text(be),
                          "sub": f"then saves {money(saving)} every month", "tone": "good"})
        else:
            tiles.append({"label": "Break-even", "value": "never",
                          "sub": f"{money(-(saving or 0.0))}/mo more than today: the case is quality, not cost",
                          "tone": "bad"})
        cum = inf.get("cumulative_usd_12_months") or {}
        if cum.get("today") and cum.get("after"):
            net = cum["today"][-1] - cum["after"][-1]
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


def reasons(plan: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"id": str(r.get("id")), "anchor": anchor(r.get("id")), "name": str(r.get("name")),
             "short": prose(first_sentence(r.get("rationale"))),
             "rationale": prose(r.get("rationale")), "source": str(r.get("source") or "")}
            for r in plan.get("why") or []]


def prerequisites(plan: Mapping[str, Any]) -> list[dict[str, str]]:
    keys = plan.get("prerequisites") or []
    texts = plan.get("prerequisite_steps") or []
    return [{"label": label(PREREQUISITES, k), "text": prose(texts[i]) if i < len(texts) else ""}
            for i, k in enumerate(keys)]


def _fits_by_technique(plan: Mapping[str, Any]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for r in _get(plan, "estimates", "fit_matrix") or []:
        out[r["technique"]] = out.get(r["technique"], False) or bool(r.get("fits"))
    return out


def decision_flow(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The decision tree as four stages, each with its options and the branch taken marked."""
    rec = plan.get("recommendation") or {}
    approach, also = rec.get("approach"), list(rec.get("also") or [])
    ft = approach in ("fine_tune", "hosted_fine_tune")
    methods = [m for m in [rec.get("method"), *(rec.get("then") or [])] if m]
    fits = _fits_by_technique(plan)
    warnings = plan.get("warnings") or []
    serving = _get(plan, "serving", "strategy")

    def option(text: str, chosen: bool, note: str = "", secondary: bool = False) -> dict[str, Any]:
        return {"text": text, "chosen": chosen, "secondary": secondary, "note": note, "risk": note == "risk"}

    flow = []
    opts = [option(label(APPROACHES, a), a == approach or (a == "fine_tune" and ft), secondary=a in also)
            for a in APPROACH_CHOICES]
    if approach not in APPROACH_CHOICES and approach not in ("hosted_fine_tune", None):
        opts.append(option(label(APPROACHES, approach), True))
    rows = [{"title": "Change", "options": opts}]
    if ft:
        rows.append({"title": "Method", "options": [
            option(label(METHODS, m), m in methods, f"step {methods.index(m) + 1}" if m in methods else "")
            for m in (*METHODS, *[m for m in methods if m not in METHODS])]})
    outcome = " then ".join(label(METHODS, m) for m in methods) if ft else label(APPROACHES, approach)
    flow.append({"stage": "approach", "title": label(RULE_STAGES, "approach"), "reached": True, "outcome": outcome,
                 "rows": rows})

    flow.append({"stage": "delivery", "title": label(RULE_STAGES, "delivery"), "reached": ft,
                 "outcome": ("self-hosted open model" if approach == "fine_tune" else "vendor's hosted fine-tuning")
                 if ft else "not needed",
                 "rows": [{"title": "Where", "options": [
                     option("Self-hosted open model", approach == "fine_tune"),
                     option("Vendor's hosted fine-tuning", approach == "hosted_fine_tune")]}]})

    technique = rec.get("technique")
    self_hosted = approach == "fine_tune"
    gpus = rec.get("gpus") or []
    tech_outcome = "not needed"
    if self_hosted:
        tech_outcome = (f"{label(TECHNIQUES, technique)} on {rec.get('gpu_count', 1)} × {', '.join(gpus)}"
                        if technique and gpus else label(TECHNIQUES, technique) if technique
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
                     {"title": "Serving", "options": [option(label(SERVING, s), s == serving)
                                                      for s in SERVING]}]})

    prereq = plan.get("prerequisites") or []
    flow.append({"stage": "checks", "title": label(RULE_STAGES, "checks"), "reached": True,
                 "outcome": f"{len(prereq)} prerequisite{'s' if len(prereq) != 1 else ''}, "
                            f"{len(warnings)} risk{'s' if len(warnings) != 1 else ''}",
                 "rows": [{"title": "Flagged", "options": [
                     *(option(label(PREREQUISITES, p), True, "prerequisite") for p in prereq),
                     *(option(str(w.get("name")), True, "risk") for w in warnings)]}]})
    return flow


def decision_stages(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every rule of the trace by stage: what fired (with its rationale) and what was considered and why not."""
    explained = {str(r.get("id")): r for r in [*(plan.get("why") or []), *(plan.get("warnings") or [])]}
    warning_ids = {str(r.get("id")) for r in plan.get("warnings") or []}
    by_stage: dict[str, list[Mapping[str, Any]]] = {}
    for r in plan.get("rules") or []:
        by_stage.setdefault(str(r.get("stage")), []).append(r)
    order = [s for s in RULE_STAGES if s in by_stage] + [s for s in by_stage if s not in RULE_STAGES]
    out = []
    for s in order:
        fired, other = [], []
        for r in by_stage[s]:
            rid = str(r.get("id"))
            info = explained.get(rid, {})
            row = {"id": rid, "anchor": anchor(rid), "name": str(r.get("name")),
                   "reason": str(r.get("reason") or ""),
                   "rationale": prose(info.get("rationale") or r.get("rationale")),
                   "source": str(info.get("source") or r.get("source") or ""),
                   "kind": "risk" if rid in warning_ids else "decided"}
            (fired if r.get("fired") else other).append(row)
        out.append({"stage": s, "title": label(RULE_STAGES, s), "question": RULE_STAGES[s].question if s in RULE_STAGES else "",
                    "fired": fired, "other": other,
                    "other_title": "Checks that did not apply" if s == "checks" else "Alternatives considered"})
    return out


def training(plan: Mapping[str, Any]) -> dict[str, Any] | None:
    """The recommended self-hosted run, as rows an engineer can copy into a trainer."""
    t = _get(plan, "estimates", "training")
    if not t:
        return None
    base = _get(plan, "estimates", "base_model") or {}
    lora = t.get("lora")
    q = t.get("quantization")
    setup = [
        ("Base model", f"{base.get('name') or _get(plan, 'recommendation', 'base_model')}"
                       + (f" ({base['hub_id']})" if base.get("hub_id") else "")),
        ("Parameters", count(base.get("params_total")) + (f", {base['num_layers']} layers"
                                                          if base.get("num_layers") else "")),
        ("Chosen by", str(base.get("chosen_by") or "-")),
        ("Technique", label(TECHNIQUES, t.get("technique"))),
        ("GPUs", f"{t.get('gpu_count', 1)} × {t.get('gpu')}"
                 + (f", {t['sharding']}" if t.get("sharding") not in (None, "none") else "")),
        ("Precision / optimizer", f"{t.get('precision')} / {t.get('optimizer')}"),
        ("Attention", str(t.get("attn_implementation") or "-")),
        ("Gradient checkpointing", "on" if t.get("gradient_checkpointing") else "off"),
        ("Micro-batch per GPU", count(t.get("micro_batch"))),
        ("Peak memory per GPU", f"{gib(t.get('memory_bytes'))} of {gib(t.get('usable_memory_bytes'))} usable"),
        ("Speed", f"{count(round(t.get('tokens_per_s') or 0))} tokens/s"),
    ]
    if lora:
        targets = ", ".join(map(str, lora.get("targets") or []))
        setup.append(("LoRA", f"r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
                              + f"targets {targets}"))
    if q:
        setup.append(("4-bit loading", ", ".join(f"{k}={v}" for k, v in sorted(q.items()))))
    stages = [{
        "method": label(METHODS, s.get("method")),
        "examples": count(s.get("examples")) + (" (assumed)" if s.get("examples_assumed") else ""),
        "seq_len": count(s.get("seq_len")), "epochs": f"{s.get('epochs', 0):g}",
        "tokens": count(s.get("training_tokens")), "lr": f"{s.get('learning_rate', 0):g}",
        "batch": f"{count(s.get('global_batch_sequences'))} (accum {count(s.get('grad_accum'))})",
        "beta": "-" if s.get("beta") is None else f"{s['beta']:g}", "hours": duration(s.get("hours")),
    } for s in t.get("stages") or []]
    return {"setup": setup, "stages": stages,
            "total": f"{duration(t.get('hours'))}, {money(t.get('usd'))}"
                     + (f" at ${t['usd_per_gpu_hour']:.2f}/GPU-hour on {t.get('provider')}"
                        if t.get("usd_per_gpu_hour") is not None else " (no listed price for this GPU)")}


def hosted(plan: Mapping[str, Any]) -> dict[str, Any] | None:
    h = _get(plan, "estimates", "hosted_fine_tuning")
    if not h:
        return None
    rows = [("Offer", f"{h.get('offer')} ({h.get('provider')})"), ("Base model", str(h.get("base_model"))),
            ("Training price", f"${h.get('usd_per_million_training_tokens', 0):g} per 1M training tokens"),
            ("Training cost", money(h.get("training_usd"))),
            ("Inference after", f"{money(h.get('usd_per_month'))}/month" if h.get("usd_per_month") is not None
             else "not estimated (no workload)")]
    if h.get("status"):
        rows.append(("Status", str(h["status"])))
    rows.append(("Price source", f"{h.get('source')}" + (f" ({h['price_date']})" if h.get("price_date") else
                                                         " (undated)")))
    stages = [{"method": label(METHODS, s.get("method")), "examples": count(s.get("examples")),
               "tokens": count(s.get("training_tokens")), "epochs": f"{s.get('epochs', 0):g}",
               "billed": count(s.get("billed_tokens")), "usd": money(s.get("usd"))} for s in h.get("stages") or []]
    return {"rows": rows, "stages": stages}


DATA_FIELDS = (
    ("labeled_examples", "Labeled examples (prompt → answer)", ("sft", "distillation")),
    ("preference_pairs", "Preference pairs (better / worse answer)", ("dpo", "orpo")),
    ("binary_feedback", "Thumbs up / down labels", ("kto",)),
    ("domain_corpus_tokens", "Domain text (tokens)", ("continued_pretraining",)),
    ("eval_examples", "Eval examples (held out)", ()),
)
FILE_FIELDS = (("train_file", "Training file"), ("preference_file", "Preference file"), ("eval_file", "Eval file"))
#: which count a data file of each kind (``advise data check``) gives
KIND_COUNT = {"sft": "labeled_examples", "dpo": "preference_pairs", "kto": "binary_feedback",
              "text": "domain_corpus_tokens"}


def _data_files(plan: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The data-check reports in the plan (``plan["data"]["files"]``), an eval file checked with its training
    file included, in the order training, preference, eval."""
    files = _get(plan, "data", "files") or {}
    out: list[tuple[str, Mapping[str, Any]]] = []
    for key, text in FILE_FIELDS:
        r = files.get(key)
        if isinstance(r, Mapping):
            out.append((text, r))
            if isinstance(r.get("eval"), Mapping):
                out.append(("Eval file (checked with the training file)", r["eval"]))
    return out


def measured_counts(plan: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text, r in _data_files(plan):
        if text.startswith("Eval"):
            out["eval_examples"] = r.get("valid_examples")
        elif r.get("kind") in KIND_COUNT:
            out[KIND_COUNT[r["kind"]]] = r.get("total_tokens") if r["kind"] == "text" else r.get("valid_examples")
    return out


def _check_card(text: str, c: Mapping[str, Any]) -> dict[str, Any]:
    dup = c.get("duplicates") or {}
    rows = [("Valid examples", f"{count(c.get('valid_examples'))} of {count(c.get('lines_total'))} lines"),
            ("Invalid lines", count(c.get("invalid_lines"))),
            ("Tokens per example (p50 / p95 / max)",
             f"{count(c.get('p50_tokens'))} / {count(c.get('p95_tokens'))} / {count(c.get('max_tokens'))}"
             + ("" if c.get("tokens_exact") else f" ({c.get('token_method') or 'estimated'})")),
            ("Tokens in all", count(c.get("total_tokens"))),
            ("Duplicates", f"{count(dup.get('exact_duplicates'))} exact, {count(dup.get('near_duplicates'))} near"
                           + (f" ({dup['duplicate_share']:.1%})" if dup.get("duplicate_share") is not None else ""))]
    ml = c.get("max_length")
    if isinstance(ml, Mapping):
        over = f"{count(ml.get('over_examples'))} examples over {count(ml.get('max_length_tokens'))} tokens"
        rows.append(("Over the max length", over))
    lab = c.get("labels")
    if isinstance(lab, Mapping):
        balance = f"{count(lab.get('distinct'))} distinct, most / least frequent {lab.get('imbalance_ratio', 0):.1f}×"
        rows.append(("Answer labels", balance))
    ov = c.get("eval_overlap")
    if isinstance(ov, Mapping):
        rows.append(("Eval examples also in training", count(ov.get("examples"))))
    return {"title": text, "path": str(c.get("path")), "kind": str(c.get("kind") or "unknown kind"), "rows": rows,
            "problems": [f"{k} {count(v)}" for k, v in sorted((c.get("problem_counts") or {}).items())],
            "verdicts": [{"severity": str(v.get("severity")), "message": str(v.get("message"))}
                         for v in c.get("verdicts") or [] if isinstance(v, Mapping)]}


def data_readiness(plan: Mapping[str, Any]) -> dict[str, Any] | None:
    data = _get(plan, "answers", "data")
    if not isinstance(data, Mapping):
        return None
    rec = plan.get("recommendation") or {}
    methods = [m for m in [rec.get("method"), *(rec.get("then") or [])] if m]
    stages = {s.get("method"): s for s in _get(plan, "estimates", "training", "stages") or []}
    measured = measured_counts(plan)
    rows = []
    for key, text, used_by in DATA_FIELDS:
        if key not in data and key not in measured:
            continue
        use = ""
        for m in methods:
            if m in used_by:
                s = stages.get(m)
                use = f"{label(METHODS, m)} stage" + (
                    f": {count(s.get('examples'))} × {count(s.get('tokens_per_example'))} tokens, "
                    f"{s.get('epochs', 0):g} epoch(s)" if s else "")
        n = measured.get(key, data.get(key))
        if key == "eval_examples":
            use = "score the baseline and the tuned model" if (n or 0) >= 20 else \
                "too few: build 20-200 held-out cases first"
        rows.append({"label": text, "value": count(data.get(key)),
                     "measured": count(measured[key]) if key in measured else "", "use": use})
    files = [{"label": text, "path": str(data[key])} for key, text in FILE_FIELDS if data.get(key)]
    return {"rows": rows, "files": files, "any_measured": bool(measured),
            "checks": [_check_card(text, c) for text, c in _data_files(plan)],
            "notes": [str(n) for n in _get(plan, "data", "notes") or []]}


def next_steps(plan: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"label": label(NEXT_STEPS, s.get("step")), "what": prose(s.get("what"))}
            for s in plan.get("next_steps") or [] if isinstance(s, Mapping)]


def instead(plan: Mapping[str, Any]) -> Markup:
    """What to do instead of training, from the plan's "change" step (``Then add retrieval (RAG), ...``)."""
    what = next((str(s.get("what") or "") for s in plan.get("next_steps") or []
                 if isinstance(s, Mapping) and s.get("step") == "change"), "")
    what = re.sub(r"^Then\s+", "", what)
    return prose(f"Instead: {what}") if what else Markup("")


def eval_plan(plan: Mapping[str, Any]) -> str:
    n = measured_counts(plan).get("eval_examples", _get(plan, "answers", "data", "eval_examples"))
    if n is None:
        return "The plan does not say whether an eval set exists: build one (20-200 held-out cases) before training."
    if n == 0:
        return ("No eval set yet: build 20-200 representative held-out cases with known good answers, score "
                "today's setup on them (the baseline), and ship only what beats it.")
    if n >= 20:
        return (f"{count(n)} held-out eval examples exist. Score today's setup on them first (the baseline), then "
                f"every candidate; ship only what beats the baseline.")
    return (f"Only {count(n)} eval examples: build 20-200 representative held-out cases with known good answers, "
            f"score today's setup on them (the baseline), and ship only what beats it.")


def risks(plan: Mapping[str, Any]) -> dict[str, Any]:
    flagged = [{"id": str(w.get("id")), "name": str(w.get("name")), "rationale": prose(w.get("rationale")),
                "source": str(w.get("source") or "")} for w in plan.get("warnings") or []]
    warned = {w["id"] for w in flagged}
    clear = [{"name": str(r.get("name")), "reason": str(r.get("reason") or "")}
             for r in plan.get("rules") or [] if r.get("stage") == "checks" and not r.get("fired")
             and str(r.get("id")) not in warned]
    return {"flagged": flagged, "unflagged": clear}


def serving(plan: Mapping[str, Any]) -> dict[str, Any]:
    s = plan.get("serving") or {}
    inf = _get(plan, "estimates", "inference") or {}
    sh = inf.get("self_hosted")
    rows = []
    if sh:
        replicas, tp = sh.get("replicas"), sh.get("tensor_parallel")
        gpus = (f"{sh.get('gpu')}: {replicas} replica{'s' if replicas != 1 else ''} of {tp} "
                f"GPU{'s' if tp != 1 else ''} (tensor parallel), always on")
        rows = [("GPUs", gpus),
                ("GPU-hours per month", count(sh.get("gpu_hours_per_month"))),
                ("Price", f"${sh.get('usd_per_gpu_hour', 0):.2f}/GPU-hour ({sh.get('provider')})"),
                ("Cost", f"{money(sh.get('usd_per_month'))}/month")]
    if inf.get("requests_per_month") is not None:
        workload = (f"{count(inf.get('requests_per_month'))} requests/month × "
                    f"({count(inf.get('input_tokens_per_request'))} in + "
                    f"{count(inf.get('output_tokens_per_request'))} out) tokens")
        rows.insert(0, ("Workload", workload))
    if inf.get("today_usd_per_month") is not None:
        rows.append(("Today", f"{money(inf['today_usd_per_month'])}/month, from {inf.get('today_source')}"))
    if inf.get("after_usd_per_month") is not None and not sh:
        rows.append(("After", f"{money(inf['after_usd_per_month'])}/month, from {inf.get('after_source')}"))
    return {"strategy": label(SERVING, s.get("strategy")), "notes": prose(s.get("notes")), "rows": rows,
            "assumptions": [str(a) for a in (sh or {}).get("assumptions") or []]}


def price_dates(plan: Mapping[str, Any]) -> list[str]:
    """Where each price in the plan comes from and how old it is."""
    out = []
    t = _get(plan, "estimates", "training")
    if t and t.get("provider"):
        out.append(f"{t.get('gpu')} on {t.get('provider')}: " + (str(t["price_date"]) if t.get("price_date")
                                                                  else "undated in the catalog"))
    h = _get(plan, "estimates", "hosted_fine_tuning")
    if h:
        out.append(f"{h.get('offer')} hosted fine-tuning: " + (str(h["price_date"]) if h.get("price_date")
                                                               else "undated in the catalog"))
    src = _get(plan, "estimates", "inference", "today_source")
    if src:
        out.append(f"today's bill: {src}")
    return out


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


def assumptions(plan: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in _get(plan, "estimates", "assumptions") or []]
