"""The paths a plan prices against today's bill (``Plan.options``).

Every option is one way to run the workload next month: today's API as it is, the same model with prompt
caching or through the batch API, a cheaper model of the same vendor, the vendor's hosted fine-tuning, an open
model fine-tuned and called per token at a provider, or an open model fine-tuned and served on rented GPUs. Each
carries its one-off and monthly cost from the price data (``estimators/data/prices.yaml``, ``gpus.yaml``: source
and date per row), the effort it takes (``advisor.contract.vocab.EFFORTS``), whether it is feasible for this team
and why not, and whether it beats today's bill: cheaper per month, its one-off cost paid back within the payback
horizon (the rules file's ``payback_months``).

API options are priced at list price x the workload; today's bill is the plan's figure (the stated bill when
given). Retirement dates are compared with the plan's ``as_of`` date.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.contract.answers import Answers
from advisor.contract.errors import UnknownNameError
from advisor.contract.plan import Option
from advisor.contract.units import round_sig_or_none
from advisor.contract.vocab import EFFORTS, METHODS, OPTION_KINDS
from estimators.catalog import (
    ApiPrice,
    Catalog,
    FineTuningOffer,
    ModelSpec,
    OpenModelInference,
)
from estimators.cost import (
    Workload,
    api_monthly_cost,
    api_monthly_usd,
    batch_api_cost,
    break_even_months,
    cached_api_cost,
    hosted_finetuning_cost,
)

#: days per month for "retires in N months" (365.25 / 12)
DAYS_PER_MONTH = 30.4375


def months_until(date: str | None, as_of: _dt.date) -> float | None:
    """Months from ``as_of`` to an ISO ``date`` (negative once past); None without a date."""
    if date is None:
        return None
    return (_dt.date.fromisoformat(date) - as_of).days / DAYS_PER_MONTH


def current_api(answers: Answers, catalog: Catalog) -> ApiPrice | None:
    """Today's API as the price data knows it, with the answers' own prices (``model.current_api_price``) in
    place of the list price where given; an API the price data lacks is known by those prices alone."""
    m = answers.model
    row = None
    if m.current_api:
        try:
            row = catalog.api(m.current_api)
        except UnknownNameError:
            row = None
    p = m.current_api_price
    if p is None:
        return row
    source = "model.current_api_price (as answered)"
    if row is not None:
        return dataclasses.replace(row, usd_per_million_input_tokens=p.input_usd_per_million,
                                   usd_per_million_output_tokens=p.output_usd_per_million, source=source)
    return ApiPrice(m.current_api or "the current API", (), "unknown", p.input_usd_per_million,
                    p.output_usd_per_million, source, None, None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainingNeed:
    """What a fine-tuning option trains: per stage (method, tokens per epoch, epochs), and how it was sized."""

    stages: tuple[tuple[str, float, float], ...]
    note: str  # "SFT on 1,000 examples (assumed: the answers give none)"

    @property
    def hosted_methods(self) -> set[str]:
        return {METHODS[m].hosted_method or m for m, _, _ in self.stages}


@dataclass(frozen=True)
class Context:
    answers: Answers
    catalog: Catalog
    workload: Workload | None
    today_usd: float | None
    as_of: _dt.date
    payback_months: float
    retirement_months: float

    def retiring(self, date: str | None) -> str | None:
        """Why an offer retiring on ``date`` is not planned on (None if it is not retiring soon)."""
        left = months_until(date, self.as_of)
        if left is None or left > self.retirement_months:
            return None
        return f"retired on {date}" if left <= 0 else f"retires on {date} (in {left:.1f} months)"


def option(ctx: Context, kind: str, name: str, *, provider: str | None = None, model: str | None = None,
           one_off_usd: float | None = 0.0, monthly_usd: float | None = None, why_not: str | None = None,
           assumptions: Sequence[str] = (), price_date: str | None = None, source: str | None = None,
           chosen: bool = False) -> Option:
    """One priced option; ``why_not`` makes it infeasible."""
    today = ctx.today_usd
    saving = None if today is None or monthly_usd is None else today - monthly_usd
    be = None
    if saving is not None and one_off_usd is not None:
        be = 0.0 if one_off_usd == 0 and saving > 0 else break_even_months(one_off_usd, today, monthly_usd)
    feasible = why_not is None
    beats = (feasible and kind != "current" and saving is not None and saving > 0 and be is not None
             and be <= ctx.payback_months)
    k = OPTION_KINDS[kind]
    return Option(
        approach=kind, name=name, delivery=k.delivery, provider=provider, model=model,
        one_off_usd=round_sig_or_none(one_off_usd), monthly_usd=round_sig_or_none(monthly_usd),
        monthly_saving_usd=round_sig_or_none(saving), break_even_months=round_sig_or_none(be),
        effort=k.effort, effort_means=EFFORTS[k.effort].means, feasible=feasible, why_not=why_not,
        beats_today=beats, chosen=chosen, assumptions=list(assumptions), price_date=price_date, source=source)


# ---- the API side: no training ------------------------------------------------------------------
def api_options(ctx: Context, today_source: str | None) -> list[Option]:
    """Today's API, prompt caching, the batch API and the vendor's cheaper tiers."""
    api = current_api(ctx.answers, ctx.catalog)
    w = ctx.workload
    out = []
    if ctx.today_usd is not None or api is not None:
        note = today_source or "not priced: give the workload or workload.current_monthly_cost_usd"
        out.append(option(ctx, "current", f"{api.name} as today" if api else "today's setup",
                          provider=api.provider if api else None, model=api.name if api else None,
                          monthly_usd=ctx.today_usd, assumptions=[note],
                          price_date=api.date if api else None, source=api.source if api else None))
    if api is None or api.provider == "unknown":
        return out
    if w is None:
        why = "needs the workload (requests and tokens per request) to price"
        for kind, name in (("prompt_caching", f"{api.name} with prompt caching"),
                           ("batch_api", f"{api.name} through the batch API")):
            out.append(option(ctx, kind, name, provider=api.provider, model=api.name, why_not=why,
                              price_date=api.date, source=api.source))
        return out
    out.append(_caching(ctx, api, w))
    out.append(_batch(ctx, api, w))
    out += _tiers(ctx, api, w)
    return out


def _caching(ctx: Context, api: ApiPrice, w: Workload) -> Option:
    static = ctx.answers.workload.static_prompt_tokens
    name = f"{api.name} with prompt caching"
    common = dict(provider=api.provider, model=api.name, price_date=api.date, source=api.source)
    if not api.caches:
        return option(ctx, "prompt_caching", name, why_not=f"{api.name} has no prompt-caching price in the price "
                                                           "data", **common)
    if not static:
        return option(ctx, "prompt_caching", name, why_not="give workload.static_prompt_tokens (the input every "
                                                           "request starts with) to price it", **common)
    bill = cached_api_cost(api, w, static)
    if bill is None:
        return option(ctx, "prompt_caching", name, why_not=f"the static prefix ({static:,} tokens) is shorter than "
                                                           f"{api.name}'s minimum cacheable prompt "
                                                           f"({api.cache_min_tokens:,} tokens)", **common)
    return option(ctx, "prompt_caching", name, monthly_usd=bill.usd_per_month,
                  why_not=ctx.retiring(api.retires), assumptions=bill.assumptions, **common)


def _batch(ctx: Context, api: ApiPrice, w: Workload) -> Option:
    name = f"{api.name} through the batch API"
    common = dict(provider=api.provider, model=api.name, price_date=api.date, source=api.source)
    usd = batch_api_cost(api, w)
    if usd is None:
        return option(ctx, "batch_api", name, why_not=f"{api.name} has no batch price in the price data", **common)
    why = ctx.retiring(api.retires) or (None if ctx.answers.workload.batch_ok else
                                        "answers come back within hours, not at once: only for work that can wait "
                                        "(workload.batch_ok)")
    return option(ctx, "batch_api", name, monthly_usd=usd, why_not=why,
                  assumptions=[f"{api.name}'s batch API at {api.batch_discount:.0%} off list price"], **common)


def _tiers(ctx: Context, api: ApiPrice, w: Workload) -> list[Option]:
    base = api_monthly_cost(api, w)
    # a model already shut down is no option at all (its row stays in the data to price a team still on it)
    rows = sorted((a for a in ctx.catalog.apis if a.provider == api.provider and a.name != api.name
                   and api_monthly_cost(a, w) < base and not (a.retires and months_until(a.retires, ctx.as_of) <= 0)),
                  key=lambda a: (api_monthly_cost(a, w), a.name))
    out = []
    for a in rows:
        why = ("closed to new users" if not a.open_to_new_users else None) or ctx.retiring(a.retires)
        out.append(option(ctx, "cheaper_tier", f"switch to {a.name}", provider=a.provider, model=a.name,
                          monthly_usd=api_monthly_cost(a, w), why_not=why, price_date=a.date, source=a.source,
                          assumptions=[f"{a.name} at list price (${a.usd_per_million_input_tokens:g} in / "
                                       f"${a.usd_per_million_output_tokens:g} out per 1M tokens); needs the eval "
                                       f"set to confirm its quality on this task"]))
    return out


def same_model_best_usd(options: Sequence[Option]) -> float | None:
    """The lowest monthly bill that keeps today's model and its answers (today, prompt caching, the batch API
    where the work can wait)."""
    same = [o.monthly_usd for o in options if o.feasible and o.monthly_usd is not None
            and o.approach in ("current", "prompt_caching", "batch_api")]
    return min(same, default=None)


# ---- fine-tuning at a provider ------------------------------------------------------------------
def _training_usd(offer: FineTuningOffer, need: TrainingNeed) -> float:
    return sum(hosted_finetuning_cost(offer, tokens, epochs).usd for _, tokens, epochs in need.stages)


def _missing_methods(offer: FineTuningOffer, need: TrainingNeed) -> str | None:
    missing = sorted(need.hosted_methods - set(offer.methods))
    return None if not missing else (f"{offer.name} does not train {', '.join(METHODS.label(m) for m in missing)} "
                                     f"(it offers {', '.join(offer.methods)})")


def vendor_offer_why_not(ctx: Context, offer: FineTuningOffer, need: TrainingNeed) -> str | None:
    """Why a vendor's hosted fine-tuning offer cannot be planned on (None if it can): closed to new users,
    retiring within the warning window, not training the plan's methods, or retiring before its training cost
    is paid back by the monthly saving."""
    why = ("closed to new users" if not offer.open_to_new_users
           else ctx.retiring(offer.retires) or _missing_methods(offer, need))
    return why or _retires_before_payback(ctx, offer, need)


def _retires_before_payback(ctx: Context, offer: FineTuningOffer, need: TrainingNeed) -> str | None:
    left = months_until(offer.retires, ctx.as_of)
    if left is None or ctx.today_usd is None or ctx.workload is None \
            or offer.inference_usd_per_million_input_tokens is None:
        return None
    monthly = api_monthly_usd(offer.inference_usd_per_million_input_tokens,
                              offer.inference_usd_per_million_output_tokens or 0.0, ctx.workload)
    be = break_even_months(_training_usd(offer, need), ctx.today_usd, monthly)
    if be is None or be <= left:
        return None  # pays back before it retires (or never pays back in money: judged on quality, not here)
    return f"retires on {offer.retires} (in {left:.1f} months), before it pays back (break-even in {be:.1f} months)"


def vendor_fine_tune_options(ctx: Context, need: TrainingNeed, chosen_offer: str | None) -> list[Option]:
    """The current vendor's own hosted fine-tuning offers (never another vendor's)."""
    api = current_api(ctx.answers, ctx.catalog)
    if api is None:
        return []
    out = []
    for o in (o for o in ctx.catalog.finetuning if o.provider == api.provider and o.base_model
              and not (o.retires and months_until(o.retires, ctx.as_of) <= 0)):  # shut down: no option at all
        why = vendor_offer_why_not(ctx, o, need)
        monthly = None
        if ctx.workload is not None and o.inference_usd_per_million_input_tokens is not None:
            monthly = api_monthly_usd(o.inference_usd_per_million_input_tokens,
                                      o.inference_usd_per_million_output_tokens or 0.0, ctx.workload)
        elif why is None:
            why = "no workload to price its inference" if ctx.workload is None else \
                "its fine-tuned inference price is not in the price data"
        out.append(option(ctx, "vendor_fine_tune", f"{o.name} ({o.base_model})", provider=o.provider,
                          model=o.base_model, one_off_usd=_training_usd(o, need), monthly_usd=monthly, why_not=why,
                          assumptions=[need.note, f"billed on {o.billed_tokens} at "
                                                  f"${o.usd_per_million_training_tokens:g} per 1M tokens",
                                       *([f"status: {o.status}"] if o.status else [])],
                          price_date=o.date, source=o.source, chosen=o.name == chosen_offer))
    return out


def serverless_base(catalog: Catalog, provider: str, base: ModelSpec,
                    offer: FineTuningOffer) -> OpenModelInference | None:
    """The provider's per-token row for ``base`` (its Hub id), else the smallest serverless-LoRA base at least as
    large (the closest it serves), else None."""
    rows = [r for r in catalog.open_inference if r.provider == provider and r.lora_serverless
            and (not offer.base_models or r.model in offer.base_models)]
    exact = [r for r in rows if base.hub_id and r.model.lower() == base.hub_id.lower()]
    if exact:
        return exact[0]
    size_b = base.anatomy.params_total / 1e9
    larger = sorted((r for r in rows if r.params_b >= size_b * 0.9), key=lambda r: (r.params_b, r.name))
    return larger[0] if larger else None


def open_model_hosted_options(ctx: Context, need: TrainingNeed, base: ModelSpec | None) -> list[Option]:
    """LoRA fine-tuning of an open base at each provider with size-band prices (each stage at the band's row for
    its method), called per token afterwards."""
    if base is None:
        return []
    size_b = base.anatomy.params_total / 1e9
    out = []
    providers = sorted({o.provider for o in ctx.catalog.finetuning if o.min_params_b is not None})
    for provider in providers:
        bands = [o for o in ctx.catalog.finetuning if o.provider == provider and o.min_params_b is not None
                 and o.max_params_b is not None and o.min_params_b <= size_b <= o.max_params_b
                 and o.technique == "lora" and o.open_to_new_users and ctx.retiring(o.retires) is None]
        name = f"{base.name} LoRA at {provider}"
        per_stage = []
        missing = []
        for method, tokens, epochs in need.stages:
            hosted = METHODS[method].hosted_method or method
            rows = [o for o in bands if hosted in o.methods]
            if not rows:
                missing.append(METHODS.label(method))
                continue
            row = min(rows, key=lambda o: (o.usd_per_million_training_tokens, o.name))
            per_stage.append((row, hosted_finetuning_cost(row, tokens, epochs).usd))
        if not bands:
            out.append(option(ctx, "open_model_hosted", name, provider=provider, model=base.hub_id or base.name,
                              one_off_usd=None, why_not=f"{provider} has no open LoRA fine-tuning price for a "
                                                        f"{size_b:.1f}B model in the price data"))
            continue
        offer = per_stage[0][0] if per_stage else bands[0]
        row = serverless_base(ctx.catalog, provider, base, offer)
        why = None if ctx.answers.model.open_weights_ok else ("the team cannot use open-weights models "
                                                              "(model.open_weights_ok: false)")
        if why is None and missing:
            why = f"{provider} has no LoRA {', '.join(missing)} price for this size in the price data"
        notes = [need.note] + [f"{r.name}: ${r.usd_per_million_training_tokens:g} per 1M tokens, billed on "
                               f"{r.billed_tokens}" for r in dict.fromkeys(r for r, _ in per_stage)]
        monthly = None
        if row is None:
            dedicated = any(r.provider == provider for r in ctx.catalog.open_inference) and not any(
                r.provider == provider and r.lora_serverless for r in ctx.catalog.open_inference)
            why = why or (f"{provider} serves fine-tuned models on dedicated endpoints only (no per-token LoRA "
                          f"price in the price data)" if dedicated else
                          f"{provider} has no per-token price for a LoRA of a model this size in the price data")
        elif ctx.workload is None:
            why = why or "no workload to price its inference"
        else:
            monthly = api_monthly_usd(row.usd_per_million_input_tokens, row.usd_per_million_output_tokens,
                                      ctx.workload)
            same = base.hub_id and row.model.lower() == base.hub_id.lower()
            notes.append(f"called per token as {row.model} (${row.usd_per_million_input_tokens:g} in / "
                         f"${row.usd_per_million_output_tokens:g} out per 1M tokens, {row.date})"
                         + ("" if same else f": the closest base {provider} serves LoRAs of; the plan's base is "
                                            f"{base.name}"))
        out.append(option(ctx, "open_model_hosted", f"{row.model if row else base.name} LoRA at {provider}",
                          provider=provider, model=row.model if row else base.hub_id or base.name,
                          one_off_usd=sum(usd for _, usd in per_stage) if not missing else None,
                          monthly_usd=monthly, why_not=why, assumptions=notes,
                          price_date=row.date if row else offer.date, source=row.source if row else offer.source))
    return out


#: the approach that recommends each API-side option kind (rules PROMPT_CACHING_FOR_COST, BATCH_API_FOR_OFFLINE_WORK,
#: CHEAPER_MODEL_SAME_VENDOR)
APPROACH_OF_OPTION = {"prompt_caching": "prompt_caching", "batch_api": "batch_api", "cheaper_tier": "cheaper_model"}


def best_beating(options: Sequence[Option], kind: str) -> Option | None:
    """The cheapest option of ``kind`` that beats today's bill."""
    return min((o for o in options if o.approach == kind and o.beats_today and o.monthly_usd is not None),
               key=lambda o: (o.monthly_usd, o.name), default=None)


def chosen_api_option(options: Sequence[Option], cost_symptom: bool, approach: str | None = None) -> int | None:
    """Index of the API-side option the plan recommends when it does not fine-tune: the option of the plan's own
    approach (prompt caching, the batch API, a cheaper model); else for a cost problem, the one that beats today
    with the least effort (then the cheapest); else today's API."""
    kind = next((k for k, a in APPROACH_OF_OPTION.items() if a == approach), None)
    best_of_kind = best_beating(options, kind) if kind else None
    if best_of_kind is not None:
        return next(i for i, o in enumerate(options) if o is best_of_kind)
    order = list(EFFORTS)
    if cost_symptom:  # the levers that keep today's model: a model switch only when a rule chose it (cheaper_model)
        best = [(i, o) for i, o in enumerate(options) if o.beats_today and not OPTION_KINDS[o.approach].trains
                and o.approach != "cheaper_tier"]
        if best:  # the least work first (caching keeps the model and its answers), then the cheapest
            return min(best, key=lambda io: (order.index(io[1].effort), io[1].monthly_usd, io[0]))[0]
    return next((i for i, o in enumerate(options) if o.approach == "current"), None)

