"""Plans that cover every exported method, technique and launch: built from answers with the real planner.

Shared by tests/reports/test_export*.py. ``plans()`` builds them once per session (about a second).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from tests.helpers import ACME_CATALOG, ROOT

FT = {"symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}}
PREF = {"symptoms": ["format", "preference"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"}}

#: name -> answers (None: a built-in example). What each must plan is asserted in test_export.py.
ANSWERS: dict[str, dict[str, Any] | str] = {
    "sft_dpo_lora": "brand-voice",                                       # SFT -> DPO, LoRA, llama
    "distill_lora": "ticket-triage",                                     # distillation (SFT), qwen2
    "no_finetune": "policy-qa",                                          # RAG: nothing to train
    "qlora_70b": {**FT, "data": {"labeled_examples": 2000}, "model": {"base": "llama-3.1-70b"},
                  "hardware": {"gpus": ["A100-80GB"]}},
    "full_sft": {**FT, "data": {"labeled_examples": 200_000}, "model": {"base": "qwen2.5-0.5b"},
                 "hardware": {"gpus": ["H100-80GB"]}},
    "multi_lora": {**FT, "data": {"labeled_examples": 200_000}, "model": {"base": "qwen2.5-0.5b"},
                   "hardware": {"gpus": ["H100-80GB"]}, "deployment": {"adapters": 6}},
    "dora": {**FT, "data": {"labeled_examples": 200_000}, "model": {"base": "qwen2.5-14b"},
             "hardware": {"gpus": ["A100-80GB"]}},
    "cpt_sft_8gpu": {"symptoms": ["domain_language"], "hardware": {"gpus": ["H100-80GB"], "gpu_count": 8},
                     "data": {"domain_corpus_tokens": 500_000_000, "labeled_examples": 5000}},
    "sharded_4gpu": {**FT, "data": {"labeled_examples": 2000}, "model": {"base": "llama-3.1-70b"},
                   "hardware": {"gpus": ["H100-80GB"], "gpu_count": 4}},
    # an MoE: peft adapts the fused experts as parameters (no dropout, no DoRA)
    "moe_lora": {**FT, "data": {"labeled_examples": 2000}, "model": {"base": "qwen3-30b-a3b"},
                 "hardware": {"gpus": ["B200"]}},
    "orpo": {**PREF, "data": {"preference_pairs": 2000}},
    "kto": {"symptoms": ["preference"], "data": {"binary_feedback": 5000}},
    "kto_mistral": {"symptoms": ["preference"], "data": {"binary_feedback": 5000},
                    "model": {"base": "mistral-7b-v0.3"}},
    "gemma_sft": {**FT, "data": {"labeled_examples": 3000}, "model": {"base": "gemma-2-9b"}},
    # a multimodal wrapper (Gemma 3 4B+): LoRA on the text decoder, the vision tower frozen
    "gemma3_lora": {**FT, "data": {"labeled_examples": 3000}, "model": {"base": "gemma-3-4b"},
                    "hardware": {"gpus": ["H100-80GB"]}},
    "gemma3_full": {**FT, "data": {"labeled_examples": 200_000}, "model": {"base": "gemma-3-4b"},
                    "hardware": {"gpus": ["H100-80GB"]}},
    "phi4_sft": {**FT, "data": {"labeled_examples": 3000}, "model": {"base": "phi-4"},   # Phi-4's own chat variant
                 "hardware": {"gpus": ["H100-80GB"]}},
    "phi_orpo": {**PREF, "data": {"preference_pairs": 2000}, "model": {"base": "phi-3.5-mini"}},
    "hosted": {**FT, "data": {"labeled_examples": 2000},                 # with ACME_CATALOG (an open offer)
               "model": {"open_weights_ok": False, "current_api": "acme-chat"}},
    "nothing_fits": {**FT, "data": {"labeled_examples": 2000}, "model": {"base": "llama-3.1-70b"},
                     "hardware": {"gpus": ["RTX-4090"]}},
    # data files (from the repository root): the eval file is wired into the chat stages
    "sft_with_eval": {**FT, "data": {"train_file": "tests/advisor/data_fixtures/sft_clean.jsonl",
                                     "eval_file": "tests/advisor/data_fixtures/sft_eval.jsonl"},
                      "model": {"base": "qwen2.5-0.5b"}, "hardware": {"gpus": ["L4"]}},
}


def _variant(plan: dict[str, Any], **training: Any) -> dict[str, Any]:
    """A plan with some training fields changed: launch settings no answers reach today (FSDP, CPU offload)."""
    out = copy.deepcopy(plan)
    out["estimates"]["training"].update(training)
    return out


@functools.lru_cache(maxsize=1)
def _built() -> dict[str, dict[str, Any]]:
    from advisor.contract.answers import load_answers, validate_answers
    from advisor.planner import build_plan, example_path
    from estimators.catalog import Catalog

    builtin, acme = Catalog.load(), Catalog.load([ACME_CATALOG])
    plans = {}
    for name, answers in ANSWERS.items():
        catalog = acme if name == "hosted" else builtin
        if isinstance(answers, str):
            plans[name] = build_plan(load_answers(example_path(answers), catalog), catalog).to_dict()
        else:
            plans[name] = build_plan(validate_answers({"project": name, **answers}, name, catalog), catalog,
                                     base_dir=ROOT).to_dict()
    # the planner shards the 70B over 4 GPUs with FSDP2; the other layouts the exporter renders, on the same plan
    plans["zero3_4gpu"] = _variant(plans["sharded_4gpu"], sharding="zero3")
    plans["fsdp_offload"] = _variant(plans["sharded_4gpu"], sharding="fsdp", offload="optimizer")
    plans["zero3_offload"] = _variant(plans["sharded_4gpu"], sharding="zero3", offload="params")
    return plans


def plans() -> dict[str, dict[str, Any]]:
    """Every case's plan (deep copies: tests may change them)."""
    return copy.deepcopy(_built())
