"""Money: training runs per GPU and provider, hosted fine-tuning, monthly inference, break-even.

Self-hosted serving is a roofline model of a vLLM-style server: weights in bf16, split over the fewest
GPUs (tensor parallel 1/2/4/8) that leave room for the KV cache; decode is bound by memory bandwidth
(weights + KV cache read once per step for the whole batch) or by compute, whichever is slower; prefill
by compute. Every constant is listed in the estimate's assumptions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.contract.units import hourly
from estimators.anatomy import Anatomy, lora_trainable_params
from estimators.catalog import GPU, ApiPrice, Catalog, FineTuningOffer
from estimators.errors import EstimateError
from estimators.throughput import Throughput

HOURS_PER_MONTH = 730.0  # 8,760 h / 12
#: vLLM's default gpu_memory_utilization and max_num_seqs
SERVING_MEMORY_FRACTION = 0.90
SERVING_MAX_BATCH = 256
#: per-GPU memory a serving engine keeps outside weights and KV cache (activations, CUDA graphs)
SERVING_OVERHEAD_BYTES = 2 << 30
#: share of datasheet memory bandwidth decode kernels reach, and MFU of prefill / decode matmuls
SERVING_BANDWIDTH_EFFICIENCY = 0.70
SERVING_PREFILL_MFU = 0.50
SERVING_DECODE_MFU = 0.40
#: traffic is not flat: capacity is bought for the peak hour, ``peak_to_average`` times the monthly average rate
#: (a stated default where the answers give none: a business-hours workload runs at about 2x its 24/7 average)
DEFAULT_PEAK_TO_AVERAGE = 2.0
#: bytes per weight when serving: bf16; FP8 on cards with FP8 tensor cores (Ada, Hopper, Blackwell: vLLM's fp8
#: quantization); otherwise INT4 weight-only (AWQ/GPTQ with Marlin kernels, Ampere and newer)
SERVING_WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "int4": 0.5}
FP8_ARCHITECTURES = ("ada", "hopper", "blackwell")
#: multi-LoRA serving (vLLM --enable-lora): one batch mixes at most ``max_loras`` adapters, each slot preallocated
#: on the GPU at ``max_lora_rank`` (vLLM engine args); the rest wait in CPU memory (max_cpu_loras). We set
#: max_loras = min(adapters, this), a batch-sized pool of distinct tenants
MAX_LORAS = 32
#: extra time per decode step when a batch mixes adapters (unmerged LoRA, SGMV kernels): Punica (Chen et al. 2023,
#: arXiv:2310.18547, abstract: "only adding 2ms latency per token")
MULTI_LORA_STEP_OVERHEAD_S = 0.002
#: a scale-to-zero server stays up this long after a request before it stops billing (Modal's default scaledown
#: window is 60 s; RunPod Serverless' default idle timeout is 5 s: the longer one, to stay on the safe side)
SCALE_TO_ZERO_IDLE_S = 60.0


def serving_precision(gpu: GPU, quantized_ok: bool) -> str:
    """The serving weights' precision on ``gpu``: bf16 unless quantized serving is allowed (then FP8 where the
    card has FP8 tensor cores, else INT4 weight-only)."""
    if not quantized_ok:
        return "bf16"
    return "fp8" if gpu.architecture in FP8_ARCHITECTURES else "int4"


@dataclass(frozen=True)
class Workload:
    requests_per_month: float
    input_tokens_per_request: float
    output_tokens_per_request: float

    def __post_init__(self) -> None:
        for name in ("requests_per_month", "input_tokens_per_request", "output_tokens_per_request"):
            if getattr(self, name) < 0:
                raise EstimateError(f"{name} must be >= 0; got {getattr(self, name)}")

    @property
    def input_tokens_per_month(self) -> float:
        return self.requests_per_month * self.input_tokens_per_request

    @property
    def output_tokens_per_month(self) -> float:
        return self.requests_per_month * self.output_tokens_per_request


@dataclass(frozen=True)
class TrainingCost:
    gpu: str
    gpu_count: int
    provider: str
    offer: str
    usd_per_gpu_hour: float
    hours: float
    usd: float
    price_source: str
    price_date: str | None


def training_costs(throughput: Throughput, gpu: GPU, tokens: float, epochs: float = 1.0) -> tuple[TrainingCost, ...]:
    """Cost of training ``tokens`` x ``epochs`` on every priced offer of ``gpu``, cheapest first."""
    hours = throughput.hours_for(tokens, epochs)
    out = [
        TrainingCost(gpu.name, throughput.gpu_count, p.provider, p.offer, p.usd_per_hour, hours,
                     hours * throughput.gpu_count * p.usd_per_hour, p.source, p.date)
        for p in gpu.prices
    ]
    return tuple(sorted(out, key=lambda c: (c.usd, c.provider, c.offer)))


@dataclass(frozen=True)
class HostedFineTuningCost:
    offer: str
    provider: str
    billed_tokens: float
    usd: float
    source: str
    date: str | None
    status: str | None


def hosted_finetuning_cost(offer: FineTuningOffer, tokens: float, epochs: float = 1.0) -> HostedFineTuningCost:
    """Hosted fine-tuning bills training tokens x epochs (OpenAI, Together) at the offer's rate."""
    billed = tokens * epochs
    return HostedFineTuningCost(offer.name, offer.provider, billed, billed / 1e6 * offer.usd_per_million_training_tokens,
                                offer.source, offer.date, offer.status)


def open_model_offers(catalog: Catalog, params: int, technique: str, method: str) -> tuple[FineTuningOffer, ...]:
    """Hosted offers that fine-tune an open model of ``params`` parameters (Together-style size bands)."""
    size_b = params / 1e9
    tech = "full" if technique == "full" else "lora"
    return tuple(
        o for o in catalog.finetuning
        if o.min_params_b is not None and o.max_params_b is not None
        and o.min_params_b <= size_b <= o.max_params_b and o.technique == tech and method in o.methods
    )


def api_monthly_usd(usd_per_million_input: float, usd_per_million_output: float, workload: Workload) -> float:
    return (workload.input_tokens_per_month * usd_per_million_input
            + workload.output_tokens_per_month * usd_per_million_output) / 1e6


def api_monthly_cost(api: ApiPrice, workload: Workload) -> float:
    """Monthly bill of ``workload`` on a hosted API at list prices (no caching or batch discounts)."""
    return api_monthly_usd(api.usd_per_million_input_tokens, api.usd_per_million_output_tokens, workload)


#: minutes in a month (HOURS_PER_MONTH x 60): the most cache lifetimes a month holds
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60
#: a cache lifetime where the price data gives none: Anthropic's default 5-minute cache, refreshed by every hit
#: (docs.anthropic.com prompt caching); OpenAI keeps prefixes "typically 5-10 minutes" after the last use
DEFAULT_CACHE_TTL_MINUTES = 5.0


@dataclass(frozen=True)
class CachedBill:
    usd_per_month: float
    cache_writes_per_month: float
    cache_reads_per_month: float
    assumptions: tuple[str, ...]


def cached_api_cost(api: ApiPrice, workload: Workload, static_prompt_tokens: int) -> CachedBill | None:
    """Monthly bill with the first ``static_prompt_tokens`` of every request served from the vendor's prompt
    cache; None where the vendor has no caching price or the prefix is shorter than its minimum.

    The prefix is written once per cache lifetime in which traffic arrives and read by every other request:
    at most one write per ``ttl`` minutes of the month (a hit refreshes the lifetime), and never more writes
    than requests. The rest of the input, and the output, are billed at list price."""
    if not api.caches or static_prompt_tokens <= 0:
        return None
    if api.cache_min_tokens is not None and static_prompt_tokens < api.cache_min_tokens:
        return None
    static = min(static_prompt_tokens, workload.input_tokens_per_request)
    ttl = api.cache_ttl_minutes or DEFAULT_CACHE_TTL_MINUTES
    requests = workload.requests_per_month
    writes = min(requests, MINUTES_PER_MONTH / ttl)
    reads = requests - writes
    write_price = (api.usd_per_million_cache_write_tokens if api.usd_per_million_cache_write_tokens is not None
                   else api.usd_per_million_input_tokens)
    usd = (static * (writes * write_price + reads * api.usd_per_million_cache_read_tokens)
           + requests * (workload.input_tokens_per_request - static) * api.usd_per_million_input_tokens
           + workload.output_tokens_per_month * api.usd_per_million_output_tokens) / 1e6
    assumptions = (
        f"{api.name}: the first {static:,} input tokens of every request are the same and cached: written at "
        f"${write_price:g} and read at ${api.usd_per_million_cache_read_tokens:g} per 1M tokens "
        f"(list input ${api.usd_per_million_input_tokens:g}); at most one write per {ttl:g}-minute cache lifetime "
        f"({writes:,.0f} writes, {reads:,.0f} reads a month)",
    )
    return CachedBill(usd, writes, reads, assumptions)


def batch_api_cost(api: ApiPrice, workload: Workload) -> float | None:
    """Monthly bill through the vendor's Batch API (answers within the vendor's batch window, usually 24 h);
    None where the vendor has none."""
    if api.batch_discount is None:
        return None
    return api_monthly_cost(api, workload) * (1 - api.batch_discount)


@dataclass(frozen=True)
class ServingEstimate:
    gpu: str
    tensor_parallel: int
    max_batch: int
    decode_tokens_per_s: float  # per replica at max_batch
    gpu_seconds_per_request: float
    gpu_hours_per_month: float
    replicas: int
    usd_per_gpu_hour: float
    provider: str
    usd_per_month: float
    assumptions: tuple[str, ...]
    scale_to_zero: bool = False
    max_loras: int = 0
    lora_bytes: int = 0


def kv_cache_bytes(anatomy: Anatomy, tokens: float) -> float:
    """K and V in bf16 for one request of ``tokens``: every token on full-attention layers, at most the window on
    sliding-window layers (vLLM's hybrid KV cache manager frees the blocks that left the window: Gemma 3, gpt-oss,
    Mistral v0.1)."""
    per_token_layer = 2 * anatomy.kv_dim * 2
    full = anatomy.num_layers - anatomy.sliding_layers
    window = tokens if anatomy.sliding_window is None else min(tokens, anatomy.sliding_window)
    return per_token_layer * (full * tokens + anatomy.sliding_layers * window)


def decode_weight_share(anatomy: Anatomy, batch: int) -> float:
    """Share of the weights one decode step reads: all of a dense model; for a MoE, everything but the experts
    plus the experts the batch's tokens reach, 1 - (1 - k/E)^batch of them assuming tokens route uniformly and
    independently (a trained router is less even, so this errs low at small batches)."""
    if not anatomy.is_moe:
        return 1.0
    k, E = anatomy.experts_per_token, anatomy.num_experts
    experts = sum((g.weight_params + g.bias_params) * g.count for g in anatomy.params if g.routed)
    hit = 1.0 - (1.0 - k / E) ** batch
    return (anatomy.params_total - experts + experts * hit) / anatomy.params_total


def serving_estimate(anatomy: Anatomy, gpu: GPU, workload: Workload, adapters: int = 1, *,
                     peak_to_average: float = DEFAULT_PEAK_TO_AVERAGE, replicas_min: int = 1,
                     precision: str = "bf16", latency_p95_s: float | None = None,
                     lora_rank: int = 16) -> ServingEstimate | None:
    """Self-hosted monthly cost of ``workload`` on ``gpu`` (cheapest listed price); None if it cannot serve it
    (the weights and one request's KV cache do not fit on 8 cards, or no batch meets ``latency_p95_s``).

    Capacity is bought for the peak: ``peak_to_average`` x the average rate, at least ``replicas_min`` replicas,
    always on. A latency target caps the batch: a request's time is its prefill plus one decode step per output
    token, and a decode step grows with the batch (the KV cache read). Several adapters are served unmerged on
    one base (vLLM multi-LoRA): their slots take memory and every decode step pays the mixed-adapter overhead.
    Where the card has a scale-to-zero offer, no replica floor above one and no latency target (cold starts),
    the cheaper of always-on and billed-while-busy is taken."""
    price = gpu.cheapest_price
    if price is None:
        return None
    weights = anatomy.params_total * SERVING_WEIGHT_BYTES[precision]
    ctx = workload.input_tokens_per_request + workload.output_tokens_per_request
    kv_request = kv_cache_bytes(anatomy, ctx)
    # a decode step reads each request's cache at its average length (input + half the output)
    kv_read_request = kv_cache_bytes(anatomy, workload.input_tokens_per_request + workload.output_tokens_per_request / 2)
    max_loras = min(adapters, MAX_LORAS) if adapters > 1 else 0
    # vLLM preallocates every slot at max_lora_rank in the model's dtype (bf16), on each tensor-parallel rank
    # (A matrices are not sharded by default: counted whole, on the safe side)
    lora_bytes = max_loras * lora_trainable_params(anatomy, lora_rank) * 2 if max_loras else 0
    step_overhead_s = MULTI_LORA_STEP_OVERHEAD_S if max_loras else 0.0
    budget_per_gpu = gpu.usable_memory_bytes * SERVING_MEMORY_FRACTION - SERVING_OVERHEAD_BYTES - lora_bytes
    for tp in (1, 2, 4, 8):
        kv_budget = budget_per_gpu * tp - weights
        if kv_budget > 0 and kv_request <= kv_budget:
            break
    else:
        return None
    n_mm = anatomy.matmul_params_per_token + anatomy.vocab_size * anatomy.hidden_size  # a MoE's top-k experts
    peak = gpu.bf16_dense_tflops * 1e12 * tp
    bandwidth = gpu.memory_bandwidth_tb_s * 1e12 * tp * SERVING_BANDWIDTH_EFFICIENCY
    prefill_s = 2 * n_mm * workload.input_tokens_per_request / (peak * SERVING_PREFILL_MFU)

    def step_s(b: int) -> float:
        kv_read = b * kv_read_request
        read = weights * decode_weight_share(anatomy, b)
        return max((read + kv_read) / bandwidth, 2 * n_mm * b / (peak * SERVING_DECODE_MFU)) + step_overhead_s

    def latency_s(b: int) -> float:
        return prefill_s + workload.output_tokens_per_request * step_s(b)

    batch = int(max(1, min(SERVING_MAX_BATCH, kv_budget // max(1.0, kv_request))))
    if latency_p95_s is not None:
        if latency_s(1) > latency_p95_s:
            return None
        lo, hi = 1, batch  # the largest batch within the target (latency grows with the batch)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if latency_s(mid) <= latency_p95_s else (lo, mid - 1)
        batch = lo
    decode_tps = batch / step_s(batch)
    per_request_s = prefill_s + workload.output_tokens_per_request / decode_tps
    busy_hours = workload.requests_per_month * per_request_s / 3600
    replicas = max(replicas_min, math.ceil(busy_hours * peak_to_average / HOURS_PER_MONTH))
    gpu_hours = replicas * tp * HOURS_PER_MONTH
    usd = gpu_hours * price.usd_per_hour
    serverless = gpu.cheapest_serverless_price
    if serverless is not None and replicas_min == 1 and latency_p95_s is None:
        # billed while busy: each request alone (no batching to count on at low volume) plus the idle window
        # before the server stops, never more than the always-on replicas' hours
        billed_hours = min(workload.requests_per_month * (latency_s(1) + SCALE_TO_ZERO_IDLE_S) / 3600,
                           replicas * HOURS_PER_MONTH) * tp
        if billed_hours * serverless.usd_per_hour < usd:
            return ServingEstimate(
                gpu.name, tp, batch, decode_tps, per_request_s * tp, billed_hours, 0, serverless.usd_per_hour,
                serverless.provider, billed_hours * serverless.usd_per_hour, (
                    f"serve in {precision} on {tp} x {gpu.name}, scale-to-zero ({serverless.provider}: billed "
                    f"{serverless.billing.replace('_', ' ')} only while up)",
                    f"billed {billed_hours:,.1f} GPU-hours a month: each request about "
                    f"{latency_s(1) * 1000:,.0f} ms alone plus {SCALE_TO_ZERO_IDLE_S:g} s before the server "
                    f"stops (its idle window); the first request after an idle spell waits for a cold start "
                    f"(the model load, tens of seconds)",
                    f"cheapest scale-to-zero price {hourly(serverless.usd_per_hour)} ({serverless.provider}, "
                    f"{serverless.date or 'undated'}); always on would cost "
                    f"${usd:,.0f}/month",
                ) + _lora_assumptions(max_loras, adapters, lora_rank, lora_bytes),
                scale_to_zero=True, max_loras=max_loras, lora_bytes=lora_bytes)
    assumptions = (
        f"serve in {precision} on {tp} x {gpu.name} (tensor parallel), {replicas} replica(s) always on, sized for "
        f"a peak of {peak_to_average:g}x the average rate" + (f" and at least {replicas_min} replicas"
                                                                if replicas_min > 1 else ""),
        f"batch up to {batch} sequences of {ctx:g} tokens (vLLM: {SERVING_MEMORY_FRACTION:.0%} of memory, "
        f"max {SERVING_MAX_BATCH} sequences" + (f"; capped to keep a request under {latency_p95_s * 1000:g} ms"
                                                 if latency_p95_s is not None else "") + ")",
        f"a request takes about {latency_s(batch) * 1000:,.0f} ms at that batch (prefill + one decode step per "
        f"output token)",
        f"decode reads weights + KV cache each step at {SERVING_BANDWIDTH_EFFICIENCY:.0%} of "
        f"{gpu.memory_bandwidth_tb_s:g} TB/s; prefill at {SERVING_PREFILL_MFU:.0%} MFU",
        f"cheapest listed price {hourly(price.usd_per_hour)} ({price.provider}, {price.date or 'undated'})",
    ) + _lora_assumptions(max_loras, adapters, lora_rank, lora_bytes)
    return ServingEstimate(gpu.name, tp, batch, decode_tps, per_request_s * tp, gpu_hours, replicas,
                           price.usd_per_hour, price.provider, usd, assumptions,
                           max_loras=max_loras, lora_bytes=lora_bytes)


def _lora_assumptions(max_loras: int, adapters: int, rank: int, lora_bytes: int) -> tuple[str, ...]:
    if not max_loras:
        return ()
    return (f"{adapters:,} LoRA adapters on one base (vLLM --enable-lora --max-loras {max_loras} --max-lora-rank "
            f"{rank}): {lora_bytes / 2**30:.2f} GiB of adapter slots per GPU, and "
            f"{MULTI_LORA_STEP_OVERHEAD_S * 1000:g} ms more per decode step for mixed-adapter batches (Punica, "
            f"Chen et al. 2023)",)


def break_even_months(one_off_usd: float, monthly_before_usd: float, monthly_after_usd: float) -> float | None:
    """Months until a one-off cost is paid back by a lower monthly bill; None if it never is."""
    saving = monthly_before_usd - monthly_after_usd
    if saving <= 0:
        return None
    return one_off_usd / saving
