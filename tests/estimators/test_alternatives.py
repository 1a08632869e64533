"""API-side alternatives and serving variants, against figures computed by hand in each test's comment."""

from __future__ import annotations

import dataclasses

import pytest

from estimators.anatomy import lora_trainable_params
from estimators.catalog import ApiPrice, Price
from estimators.cost import (
    MAX_LORAS,
    MINUTES_PER_MONTH,
    MULTI_LORA_STEP_OVERHEAD_S,
    SCALE_TO_ZERO_IDLE_S,
    Workload,
    api_monthly_cost,
    batch_api_cost,
    cached_api_cost,
    serving_estimate,
)

#: a vendor row with Anthropic-shaped caching (write 1.25x, read 0.1x input) and a half-price batch API
API = ApiPrice("test-api", (), "testvendor", 1.0, 5.0, "test", "2026-11-01", None, "small",
               usd_per_million_cache_write_tokens=1.25, usd_per_million_cache_read_tokens=0.10,
               cache_min_tokens=1024, cache_ttl_minutes=5, batch_discount=0.5)
#: 100,000 requests of 12,000 input tokens (10,000 of them the same prefix) and 200 output tokens
WORKLOAD = Workload(100_000, 12_000, 200)


def test_list_price_bill():
    # 100,000 x 12,000 x $1/1M = $1,200 input + 100,000 x 200 x $5/1M = $100 output
    assert api_monthly_cost(API, WORKLOAD) == pytest.approx(1300.0)


def test_prompt_caching_writes_once_per_cache_lifetime_and_reads_the_rest():
    bill = cached_api_cost(API, WORKLOAD, 10_000)
    # 730 h x 60 / 5 min = 8,760 lifetimes a month: 8,760 writes, 91,240 reads
    assert MINUTES_PER_MONTH / 5 == 8760
    assert (bill.cache_writes_per_month, bill.cache_reads_per_month) == (8760, 91_240)
    # prefix: 10,000 x (8,760 x 1.25 + 91,240 x 0.10) / 1e6 = $200.74; the other 2,000 input tokens at list:
    # 100,000 x 2,000 x 1.0 / 1e6 = $200; output $100 -> $500.74
    assert bill.usd_per_month == pytest.approx(500.74)
    assert "8,760 writes" in bill.assumptions[0]


def test_caching_at_low_volume_writes_every_request():
    # 1,000 requests a month: never more writes than requests, no reads
    bill = cached_api_cost(API, Workload(1000, 12_000, 200), 10_000)
    assert (bill.cache_writes_per_month, bill.cache_reads_per_month) == (1000, 0)
    # every prefix written at 1.25: 1,000 x 10,000 x 1.25 / 1e6 = $12.5; rest 1,000 x 2,000 / 1e6 = $2; out $1
    assert bill.usd_per_month == pytest.approx(15.5)


def test_no_caching_below_the_minimum_prefix_or_without_a_price():
    assert cached_api_cost(API, WORKLOAD, 1023) is None
    assert cached_api_cost(API, WORKLOAD, 1024) is not None
    assert cached_api_cost(dataclasses.replace(API, usd_per_million_cache_read_tokens=None), WORKLOAD, 10_000) is None


def test_batch_api_takes_its_discount_off_list_price():
    assert batch_api_cost(API, WORKLOAD) == pytest.approx(650.0)
    assert batch_api_cost(dataclasses.replace(API, batch_discount=None), WORKLOAD) is None


def test_catalog_rows_price_caching_from_their_own_fields(catalog):
    """Every catalog API with caching prices is billed by the same arithmetic as above."""
    assert any(a.caches for a in catalog.apis), "the price data has caching prices"
    for api in (a for a in catalog.apis if a.caches):
        static = max(api.cache_min_tokens or 0, 10_000)
        w = Workload(100_000, static + 2000, 200)
        ttl = api.cache_ttl_minutes or 5
        writes = min(100_000, MINUTES_PER_MONTH / ttl)
        write_price = (api.usd_per_million_cache_write_tokens if api.usd_per_million_cache_write_tokens is not None
                       else api.usd_per_million_input_tokens)
        want = (static * (writes * write_price + (100_000 - writes) * api.usd_per_million_cache_read_tokens)
                + 100_000 * 2000 * api.usd_per_million_input_tokens
                + 100_000 * 200 * api.usd_per_million_output_tokens) / 1e6
        assert cached_api_cost(api, w, static).usd_per_month == pytest.approx(want), api.name
        assert cached_api_cost(api, w, static).usd_per_month < api_monthly_cost(api, w), api.name


def test_multi_lora_serving_takes_adapter_slots_and_a_step_overhead(catalog):
    m = catalog.model("qwen2.5-1.5b")
    gpu = catalog.gpu("L4")
    w = Workload(1_000_000, 500, 50)
    one = serving_estimate(m.anatomy, gpu, w, 1)
    many = serving_estimate(m.anatomy, gpu, w, 300, lora_rank=16)
    assert (one.max_loras, one.lora_bytes) == (0, 0)
    # 300 tenants: 32 slots of rank 16 (vLLM --max-loras 32 --max-lora-rank 16), bf16
    assert many.max_loras == MAX_LORAS == 32
    assert many.lora_bytes == 32 * lora_trainable_params(m.anatomy, 16) * 2
    # each decode step pays 2 ms more (Punica): fewer tokens/s at the same or a smaller batch
    assert many.max_batch <= one.max_batch
    assert many.decode_tokens_per_s < one.decode_tokens_per_s
    step_one, step_many = one.max_batch / one.decode_tokens_per_s, many.max_batch / many.decode_tokens_per_s
    assert step_many >= step_one + MULTI_LORA_STEP_OVERHEAD_S - 1e-12
    assert any("--max-loras 32" in a for a in many.assumptions)


def test_scale_to_zero_bills_only_busy_time_at_low_volume(catalog):
    m = catalog.model("qwen2.5-1.5b")
    l4 = catalog.gpu("L4")
    serverless = Price("testcloud", 2.0, "serverless L4", "test", "2026-11-01", "per_second", True)
    gpu = dataclasses.replace(l4, prices=(*[p for p in l4.prices if not p.scale_to_zero], serverless))
    w = Workload(1000, 500, 50)
    s = serving_estimate(m.anatomy, gpu, w)
    assert s.scale_to_zero and s.replicas == 0 and s.provider == "testcloud"
    always_on = serving_estimate(m.anatomy, l4 if l4.cheapest_serverless_price is None else
                                 dataclasses.replace(l4, prices=tuple(p for p in l4.prices if not p.scale_to_zero)), w)
    # billed: 1,000 requests x (one request alone + the 60 s idle window) at $2/h, below 730 h always on
    per_request_s = s.gpu_hours_per_month * 3600 / 1000 - SCALE_TO_ZERO_IDLE_S
    assert 0 < per_request_s < 30
    assert s.usd_per_month == pytest.approx(s.gpu_hours_per_month * 2.0)
    assert s.usd_per_month < always_on.usd_per_month
    # a latency target (cold starts) or a replica floor keeps it always on
    assert not serving_estimate(m.anatomy, gpu, w, latency_p95_s=60).scale_to_zero
    assert not serving_estimate(m.anatomy, gpu, w, replicas_min=2).scale_to_zero
    # at high volume always-on is cheaper than $2/h while busy
    assert not serving_estimate(m.anatomy, gpu, Workload(50_000_000, 500, 50)).scale_to_zero


def test_training_and_always_on_serving_never_use_a_scale_to_zero_row(catalog):
    for g in catalog.gpus:
        p = g.cheapest_price
        assert p is None or not p.scale_to_zero, g.name
