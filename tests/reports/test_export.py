"""``advise export``: what each format emits per plan, values from the plan, headers, determinism, safety, CLI.

The trainers' own validators run in test_export_trl.py (TRL, in this environment) and test_export_validation.py
(Axolotl, LLaMA-Factory, DeepSpeed, in the validation venv).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from advisor.contract.errors import AdviseError
from advisor.contract.files import MANIFEST
from advisor.contract.plan import PlanError
from advisor.contract.vocab import METHODS, OPTIMIZERS
from reports import export as ex
from reports.export import (
    ExportError,
    ExportFormat,
    export_configs,
    llamafactory,
    register_format,
    render_all,
    trl,
)
from reports.export.write import relative_parts
from tests.helpers import assert_imports_none_of, cli_code
from tests.reports.export_cases import plans

ALL_CASES = sorted(plans())


@pytest.fixture
def cases():
    return plans()  # fresh copies: tests may change them


@pytest.fixture(scope="module")
def rendered():
    return {name: render_all(plan) for name, plan in plans().items()}


def _yaml(text: str) -> dict:
    return yaml.safe_load(text)


# ---- what is emitted ------------------------------------------------------------------------------------------
EXPECTED_FILES = {
    "sft_dpo_lora": ["README.md", "axolotl/1-sft.yml", "axolotl/2-dpo.yml", "data/dataset_info.json", "eval/compare.py",
                     "llamafactory/1-sft.yaml", "llamafactory/2-dpo.yaml", "llamafactory/merge-1-sft.yaml",
                     "llamafactory/merge-2-dpo.yaml", "trl/1-sft.yaml", "trl/2-dpo.yaml", "trl/merge.py",
                     "trl/to_conversational.py"],
    "multi_lora": ["README.md", "axolotl/sft.yml", "data/dataset_info.json", "eval/compare.py", "llamafactory/sft.yaml", "trl/sft.yaml"],
    "cpt_sft_8gpu": ["README.md", "accelerate/multi_gpu.yaml", "axolotl/1-cpt.yml", "axolotl/2-sft.yml",
                     "data/dataset_info.json", "eval/compare.py", "llamafactory/1-cpt.yaml", "llamafactory/2-sft.yaml",
                     "trl/1-cpt.yaml", "trl/2-sft.yaml"],
    "zero3_4gpu": ["README.md", "accelerate/deepspeed_zero3.yaml", "axolotl/sft.yml", "data/dataset_info.json",
                   "deepspeed/zero3.json", "eval/compare.py", "llamafactory/merge-sft.yaml", "llamafactory/sft.yaml", "trl/merge.py",
                   "trl/sft.yaml"],
    "sharded_4gpu": ["README.md", "accelerate/fsdp2.yaml", "axolotl/sft.yml", "data/dataset_info.json", "eval/compare.py",
                     "llamafactory/merge-sft.yaml", "llamafactory/sft.yaml", "trl/merge.py", "trl/sft.yaml"],
    "fsdp_offload": ["README.md", "accelerate/fsdp2.yaml", "axolotl/sft.yml", "data/dataset_info.json", "eval/compare.py",
                     "llamafactory/merge-sft.yaml", "llamafactory/sft.yaml", "trl/merge.py", "trl/sft.yaml"],
    "orpo": ["README.md", "axolotl/orpo.yml", "data/dataset_info.json", "eval/compare.py", "llamafactory/merge-orpo.yaml",
             "llamafactory/orpo.yaml"],
    "kto_mistral": ["README.md", "data/dataset_info.json", "eval/compare.py", "llamafactory/kto.yaml", "llamafactory/merge-kto.yaml",
                    "trl/kto.yaml", "trl/merge.py", "trl/to_conversational.py"],
    "no_finetune": ["README.md"],
    "hosted": ["README.md"],
    "nothing_fits": ["README.md"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_each_plan_exports_the_files_its_methods_need(rendered, name):
    assert list(rendered[name]) == EXPECTED_FILES[name]


def test_the_cases_cover_every_method_technique_and_launch(cases):
    seen = {(s["method"], t["technique"]) for p in cases.values() if (t := p["estimates"]["training"])
            for s in t["stages"]}
    methods = {m for m, _ in seen}
    techniques = {t for _, t in seen}
    assert methods == {"sft", "distillation", "continued_pretraining", "dpo", "orpo", "kto"}
    assert techniques == {"full", "lora", "qlora", "dora"}
    launches = {(t["gpu_count"] > 1, t["sharding"], t.get("offload", "none"))
                for p in cases.values() if (t := p["estimates"]["training"])}
    assert {(False, "none", "none"), (True, "none", "none"), (True, "zero3", "none"), (True, "zero3", "params"),
            (True, "fsdp", "optimizer")} <= launches
    assert {p["recommendation"]["approach"] for p in cases.values()} >= {"fine_tune", "hosted_fine_tune", "rag"}


def test_a_format_without_a_method_says_so_and_emits_nothing_for_it(rendered):
    readme = rendered["orpo"]["README.md"]
    assert not any(p.startswith("trl/") for p in rendered["orpo"])
    assert "## Not exported" in readme and "TRL's command line has no ORPO command" in readme
    readme = rendered["kto_mistral"]["README.md"]
    assert not any(p.startswith("axolotl/") for p in rendered["kto_mistral"])
    assert "Axolotl's KTO prompt formats are written for the llama3 and ChatML templates only" in readme
    assert "## Not exported" not in rendered["sft_dpo_lora"]["README.md"]


def test_no_fine_tune_hosted_and_blocked_plans_get_a_readme_saying_there_is_nothing_to_train(rendered, cases):
    assert "## Nothing to train\n" in rendered["no_finetune"]["README.md"]
    for step in cases["no_finetune"]["next_steps"]:
        assert step["what"] in rendered["no_finetune"]["README.md"]
    hosted = rendered["hosted"]["README.md"]
    h = cases["hosted"]["estimates"]["hosted_fine_tuning"]
    assert "## Hosted fine-tuning: nothing to run here" in hosted
    assert h["base_model"] in hosted and h["offer"] in hosted and h["status"] in hosted
    blocked = rendered["nothing_fits"]["README.md"]
    assert "## Nothing to train yet" in blocked
    assert all(s in blocked for s in cases["nothing_fits"]["prerequisite_steps"])
    for text in (hosted, blocked, rendered["no_finetune"]["README.md"]):
        assert "outputs/" not in text and "--config" not in text


# ---- values come from the plan ----------------------------------------------------------------------------------
KEYS = {  # the plan's value -> each trainer's key (the trainers' docs; trainer-formats.md)
    "axolotl": {"lr": "learning_rate", "epochs": "num_epochs", "micro": "micro_batch_size",
                "accum": "gradient_accumulation_steps", "seq": "sequence_len", "model": "base_model"},
    "llamafactory": {"lr": "learning_rate", "epochs": "num_train_epochs", "micro": "per_device_train_batch_size",
                     "accum": "gradient_accumulation_steps", "seq": "cutoff_len", "model": "model_name_or_path"},
    "trl": {"lr": "learning_rate", "epochs": "num_train_epochs", "micro": "per_device_train_batch_size",
            "accum": "gradient_accumulation_steps", "seq": "max_length", "model": "model_name_or_path"},
}
EXT = {"axolotl": "yml", "llamafactory": "yaml", "trl": "yaml"}


@pytest.mark.parametrize("name", [n for n in ALL_CASES if n not in ("no_finetune", "hosted", "nothing_fits")])
def test_every_config_value_is_the_plans(rendered, cases, name):
    plan = cases[name]
    t = plan["estimates"]["training"]
    stages = t["stages"]
    checked = 0
    # every trainer's install line brings what its run loads: bitsandbytes for QLoRA (llamafactory does not
    # require it; axolotl does; the TRL line names it), deepspeed for ZeRO-3
    readme = rendered[name]["README.md"]
    lf_install = next(line for line in readme.splitlines() if "pip install 'llamafactory==" in line)
    assert ("bitsandbytes" in lf_install) is (t["technique"] == "qlora"), lf_install
    assert ("deepspeed" in lf_install) is (t["sharding"] == "zero3"), lf_install
    for fmt, keys in KEYS.items():
        for i, s in enumerate(stages):
            stem = METHODS[s["method"]].file_stem
            path = f"{fmt}/{i + 1}-{stem}.{EXT[fmt]}" if len(stages) > 1 else f"{fmt}/{stem}.{EXT[fmt]}"
            if path not in rendered[name]:
                continue
            cfg = _yaml(rendered[name][path])
            assert cfg[keys["lr"]] == s["learning_rate"]
            assert cfg[keys["epochs"]] == s["epochs"]
            assert cfg[keys["micro"]] == t["micro_batch"]
            assert cfg[keys["accum"]] == s["grad_accum"]
            assert cfg[keys["seq"]] == s["seq_len"]
            assert (cfg[keys["model"]] == plan["estimates"]["base_model"]["hub_id"]) == (i == 0)
            assert t["micro_batch"] * s["grad_accum"] * t["gpu_count"] >= s["global_batch_sequences"]
            lora = t["lora"]
            if fmt == "trl":
                assert cfg["use_peft"] is True if lora else "use_peft" not in cfg
                assert cfg["optim"] == OPTIMIZERS[t["optimizer"]].transformers_name
                assert cfg["attn_implementation"] == t["attn_implementation"]
                assert cfg["bf16"] is (t["precision"] == "bf16")
                if lora:
                    assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"]) == \
                        (lora["r"], lora["alpha"], lora["dropout"])
                    # a multimodal wrapper: the same linears as one regex on the text decoder only
                    assert cfg["lora_target_modules"] == ([lora["target_regex"]] if lora["target_regex"]
                                                          else lora["targets"])
                    assert cfg.get("use_dora", False) is (t["technique"] == "dora")
                q = t["quantization"]
                assert cfg.get("load_in_4bit", False) is (q is not None)
                if q:
                    assert cfg["bnb_4bit_quant_type"] == q["bnb_4bit_quant_type"]
                    assert cfg["use_bnb_nested_quant"] is q["bnb_4bit_use_double_quant"]
                if s["beta"] is not None:
                    assert cfg["beta"] == s["beta"]
            elif fmt == "axolotl":
                assert cfg["optimizer"] == OPTIMIZERS[t["optimizer"]].transformers_name
                assert cfg.get("adapter") == ({"qlora": "qlora", "full": None}.get(t["technique"], "lora"))
                assert cfg["gradient_checkpointing"] is (t["gradient_checkpointing"] and t["sharding"] != "fsdp")
                if lora:
                    assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"]) == \
                        (lora["r"], lora["alpha"], lora["dropout"])
                    assert cfg.get("peft_use_dora", False) is (t["technique"] == "dora")
                if s["method"] in ("dpo", "kto"):
                    assert cfg["rl"] == s["method"] and cfg["rl_beta"] == s["beta"]
                if s["method"] == "orpo":
                    assert cfg["rl"] == "orpo" and cfg["orpo_alpha"] == s["beta"]
            else:
                assert cfg["optim"] == OPTIMIZERS[t["optimizer"]].transformers_name
                assert cfg["finetuning_type"] == ("full" if lora is None else "lora")
                assert cfg["stage"] == llamafactory.STAGES[s["objective"]]
                if lora:
                    assert (cfg["lora_rank"], cfg["lora_alpha"], cfg["lora_dropout"]) == \
                        (lora["r"], lora["alpha"], lora["dropout"])
                if s["beta"] is not None:
                    assert cfg["pref_beta"] == s["beta"]
                assert cfg.get("quantization_bit") == (4 if t["quantization"] else None)
            checked += 1
    assert checked


def test_a_later_stage_starts_from_the_previous_stages_model(rendered, cases):
    files = rendered["sft_dpo_lora"]  # LoRA: the SFT adapter is merged, DPO trains a new adapter on it
    assert _yaml(files["trl/2-dpo.yaml"])["model_name_or_path"] == "outputs/trl/1-sft/merged"
    assert _yaml(files["axolotl/2-dpo.yml"])["base_model"] == "outputs/axolotl/1-sft/merged"
    assert _yaml(files["llamafactory/2-dpo.yaml"])["model_name_or_path"] == "outputs/llamafactory/1-sft/merged"
    assert _yaml(files["llamafactory/merge-1-sft.yaml"])["export_dir"] == "outputs/llamafactory/1-sft/merged"
    files = rendered["cpt_sft_8gpu"]  # full fine-tuning: the CPT model itself
    assert _yaml(files["trl/2-sft.yaml"])["model_name_or_path"] == "outputs/trl/1-cpt"
    # the CPT stage reads raw text; the SFT stage after it reads chats, so it is the one that gets the template
    # (a base checkpoint has none: TRL stops with "tokenizer.chat_template is not set")
    assert "chat_template_path" not in _yaml(files["trl/1-cpt.yaml"])
    sft = _yaml(files["trl/2-sft.yaml"])
    # a .jinja file the README's first TRL step writes from the instruct tokenizer: TRL sets it without
    # clone_chat_template's resize (which crashed tied-embedding bases); the template's turn end is the eos
    assert (sft["chat_template_path"], sft["eos_token"]) == ("trl/chat_template.jinja", "<|im_end|>")
    trl_steps = files["README.md"].split("### TRL\n", 1)[1]
    assert trl_steps.index('AutoTokenizer.from_pretrained("Qwen/Qwen3-8B")') < \
        trl_steps.index("trl sft --config trl/1-cpt.yaml")
    # an instruct start brings its own template (and trained special tokens): nothing is cloned at any stage
    dpo = rendered["sft_dpo_lora"]
    plan = cases["sft_dpo_lora"]["estimates"]["base_model"]
    assert plan["checkpoint"] == "instruct" and _yaml(dpo["trl/1-sft.yaml"])["model_name_or_path"] == plan["hub_id"] \
        == "Qwen/Qwen3-8B"  # Qwen3's post-trained checkpoint (the base is Qwen/Qwen3-8B-Base)
    assert not any("chat_template_path" in _yaml(dpo[f]) for f in ("trl/1-sft.yaml", "trl/2-dpo.yaml"))


def test_llamafactory_datasets_are_registered_with_the_columns_of_each_shape(rendered):
    info = json.loads(rendered["sft_dpo_lora"]["data/dataset_info.json"])
    assert set(info) == {"advise_train", "advise_preference"}
    assert info["advise_train"]["formatting"] == "sharegpt" and info["advise_preference"]["ranking"] is True
    for path in ("llamafactory/1-sft.yaml", "llamafactory/2-dpo.yaml"):
        cfg = _yaml(rendered["sft_dpo_lora"][path])
        assert cfg["dataset"] in info and cfg["dataset_dir"] == "data"
    kto = json.loads(rendered["kto"]["data/dataset_info.json"])["advise_feedback"]
    assert kto["columns"]["kto_tag"] == "label"


def test_chat_templates_follow_the_family(rendered):
    for name, axo, lf in (("sft_dpo_lora", "qwen3", "qwen3"), ("qlora_70b", "llama3", "llama3"),
                          ("full_sft", "qwen_25", "qwen"), ("gemma_sft", "gemma", "gemma2")):
        files = rendered[name]
        a = next(v for k, v in files.items() if k.startswith("axolotl/"))
        la = next(v for k, v in files.items() if k.startswith("llamafactory/") and "merge" not in k)
        assert _yaml(a)["chat_template"] == axo and _yaml(la)["template"] == lf
    assert "no system role" in rendered["gemma_sft"]["README.md"]


def test_multi_gpu_launch_files_match_the_plan(rendered, cases):
    ds = json.loads(rendered["zero3_4gpu"]["deepspeed/zero3.json"])
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_param"]["device"] == "none"
    off = json.loads(render_all(cases["zero3_offload"])["deepspeed/zero3.json"])["zero_optimization"]
    assert off["offload_param"]["device"] == "cpu" and off["offload_optimizer"]["device"] == "cpu"
    acc = _yaml(rendered["zero3_4gpu"]["accelerate/deepspeed_zero3.yaml"])
    assert acc["distributed_type"] == "DEEPSPEED" and acc["num_processes"] == 4
    assert acc["deepspeed_config"]["deepspeed_config_file"] == "deepspeed/zero3.json"
    for path in ("axolotl/sft.yml", "llamafactory/sft.yaml"):
        assert _yaml(rendered["zero3_4gpu"][path])["deepspeed"] == "deepspeed/zero3.json"
    fsdp = _yaml(rendered["fsdp_offload"]["accelerate/fsdp2.yaml"])
    assert fsdp["fsdp_config"]["fsdp_version"] == 2 and fsdp["fsdp_config"]["fsdp_offload_params"] is True
    assert fsdp["fsdp_config"]["fsdp_activation_checkpointing"] is True
    assert _yaml(rendered["fsdp_offload"]["trl/sft.yaml"])["gradient_checkpointing"] is False
    ddp = _yaml(rendered["cpt_sft_8gpu"]["accelerate/multi_gpu.yaml"])
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_processes"] == 8
    readme = rendered["cpt_sft_8gpu"]["README.md"]
    assert "FORCE_TORCHRUN=1 NNODES=1 NPROC_PER_NODE=8 llamafactory-cli train llamafactory/1-cpt.yaml" in readme
    assert "trl sft --config trl/1-cpt.yaml --accelerate_config accelerate/multi_gpu.yaml" in readme


def test_accelerate_configs_load_with_accelerates_own_config_class(tmp_path, cases):
    from accelerate.commands.config.config_args import ClusterConfig

    for name in ("zero3_4gpu", "fsdp_offload", "cpt_sft_8gpu"):
        out = tmp_path / name
        export_configs(cases[name], out)
        (path,) = (out / "accelerate").iterdir()
        cfg = ClusterConfig.from_yaml_file(path)  # unknown keys raise
        assert cfg.num_processes == cases[name]["estimates"]["training"]["gpu_count"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text() + "num_proceses: 3\n")
    with pytest.raises(ValueError, match="num_proceses"):
        ClusterConfig.from_yaml_file(bad)


def test_axolotl_sft_trains_the_templates_own_turn_end(rendered, cases):
    """<|eot_id|> / <|im_end|> close a turn in the llama3 / ChatML templates, not eos: Axolotl's SFT configs name
    them as eot_tokens (its default trains eos only, so the model would not learn to stop); DPO configs do not
    use the SFT chat strategy and carry none; a family whose template ends turns with eos needs none."""
    from estimators.families import family as family_of

    for name in ("sft_dpo_lora", "gemma_sft"):
        plan = cases[name]
        fam = family_of(plan["estimates"]["base_model"]["model_type"])
        first = next(p for p in rendered[name] if p.startswith("axolotl/") and "sft" in p)
        assert _yaml(rendered[name][first])["eot_tokens"] == [fam.end_of_turn], name
    assert "eot_tokens" not in _yaml(rendered["sft_dpo_lora"]["axolotl/2-dpo.yml"])
    assert family_of("mistral").end_of_turn is None


def test_an_moe_plan_adapts_the_experts_where_the_trainer_can_and_says_where_it_cannot(rendered, cases):
    """qwen3-30b-a3b: peft's all-linear adapts the fused experts and the router as parameters (ParamWrapper: no
    dropout). Axolotl gets peft's all-linear itself (its lora_target_linear finds nn.Linear names only), TRL passes
    it through; LLaMA-Factory cannot, and its config and the README say which parameters stay frozen."""
    lora = cases["moe_lora"]["estimates"]["training"]["lora"]
    assert lora["adapted_parameters"] == ["mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"]
    files = rendered["moe_lora"]
    ax, lf, trl = (_yaml(files[k]) for k in ("axolotl/sft.yml", "llamafactory/sft.yaml", "trl/sft.yaml"))
    assert ax["lora_target_modules"] == "all-linear" and "lora_target_linear" not in ax
    assert trl["lora_target_modules"] == ["all-linear"]
    assert ax["lora_dropout"] == lf["lora_dropout"] == trl["lora_dropout"] == 0.0
    assert "mlp.experts.gate_up_proj" in files["llamafactory/sft.yaml"].split("lora_target:")[0]
    assert "cannot adapt this model's fused experts" in files["README.md"]
    dense = _yaml(rendered["distill_lora"]["axolotl/distillation.yml"])
    assert dense["lora_target_linear"] is True and "cannot adapt" not in rendered["distill_lora"]["README.md"]


def test_a_multimodal_base_adapts_its_text_decoder_only_in_every_trainer(rendered, cases):
    """Gemma 3 (4B and up) is an image-text wrapper: peft's all-linear would adapt the vision tower's linears too,
    which the estimate keeps frozen. The TRL and Axolotl configs name the text decoder's linears as one regular
    expression; applied with real peft (and TRL's own config conversion) to a tiny Gemma 3 they train exactly the
    adapter parameters the estimate counts. LLaMA-Factory freezes the vision tower itself (freeze_vision_tower)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM
    from trl import ModelConfig, get_peft_config

    from estimators.anatomy import compute_anatomy, lora_trainable_params
    from estimators.families import tiny_config

    lora = cases["gemma3_lora"]["estimates"]["training"]["lora"]
    files = rendered["gemma3_lora"]
    ax, trl_cfg, lf = (_yaml(files[k]) for k in ("axolotl/sft.yml", "trl/sft.yaml", "llamafactory/sft.yaml"))
    cfg = tiny_config("gemma3")
    model_type = cfg.pop("model_type")
    want = lora_trainable_params(compute_anatomy({"model_type": model_type, **cfg}), lora["r"], lora["targets"])

    def trained(config) -> int:
        model = get_peft_model(AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg)), config)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    trl_peft = get_peft_config(ModelConfig(use_peft=True, lora_r=lora["r"], lora_alpha=lora["alpha"],
                                           lora_target_modules=trl_cfg["lora_target_modules"]))
    assert trained(trl_peft) == want
    assert "lora_target_linear" not in ax  # Axolotl hands lora_target_modules to LoraConfig as it is
    assert trained(LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], target_modules=ax["lora_target_modules"])) == want
    assert lf["lora_target"] == "all"
    assert trained(LoraConfig(r=lora["r"], target_modules="all-linear")) > want  # what all-linear would have trained
    assert lora["target_regex"] is not None and cases["distill_lora"]["estimates"]["training"]["lora"]["target_regex"] is None


def test_phi4_trains_in_its_own_chat_template_not_phi35s(rendered, cases):
    """Phi-4 has the phi3 architecture and ChatML-style turns (<|im_sep|>, <|im_end|>), not Phi-3.5's <|user|>/<|end|>:
    Axolotl takes the instruct tokenizer's own template and trains <|im_end|>, LLaMA-Factory names its phi4."""
    files = rendered["phi4_sft"]
    assert cases["phi4_sft"]["estimates"]["base_model"]["model_type"] == "phi3"
    ax = _yaml(files["axolotl/sft.yml"])
    assert ax["chat_template"] == "tokenizer_default" and ax["eot_tokens"] == ["<|im_end|>"]
    assert _yaml(files["llamafactory/sft.yaml"])["template"] == "phi4"
    assert _yaml(rendered["phi_orpo"]["llamafactory/orpo.yaml"])["template"] == "phi"  # Phi-3.5 keeps its own


def test_llamafactory_full_fine_tunes_stay_in_bf16_as_the_plan_counts_them(rendered, cases):
    """Without pure_bf16 LLaMA-Factory upcasts trainable weights to fp32 (~16 bytes a parameter against the plan's
    bf16): full runs set it, adapters (whose fp32 upcast the plan counts) and ZeRO-3 (which refuses it) do not."""
    for name in ("full_sft", "cpt_sft_8gpu"):
        t = cases[name]["estimates"]["training"]
        assert t["technique"] == "full" and t["sharding"] != "zero3"
        for path, text in rendered[name].items():
            if path.startswith("llamafactory/") and not path.startswith("llamafactory/merge"):
                assert _yaml(text)["pure_bf16"] is True, (name, path)
    assert "pure_bf16" not in _yaml(rendered["sft_dpo_lora"]["llamafactory/1-sft.yaml"])
    assert "pure_bf16" not in _yaml(rendered["zero3_4gpu"]["llamafactory/sft.yaml"])


def test_the_answers_eval_file_is_scored_by_every_chat_stage_and_never_trained_on(rendered, cases):
    """data.eval_file: copied to data/eval.jsonl (the README says from where), Axolotl's test_datasets and
    LLaMA-Factory's eval_dataset (registered in dataset_info.json) score it each epoch; plans without one carry
    no eval keys."""
    files = rendered["sft_with_eval"]
    axo, lf = _yaml(files["axolotl/sft.yml"]), _yaml(files["llamafactory/sft.yaml"])
    assert axo["test_datasets"][0]["path"] == "data/eval.jsonl" and axo["evals_per_epoch"] == 1
    assert axo["test_datasets"][0]["type"] == axo["datasets"][0]["type"] == "chat_template"
    assert axo["datasets"][0]["path"] == "data/train.jsonl"
    assert (lf["eval_dataset"], lf["eval_strategy"]) == ("advise_eval", "epoch")
    info = json.loads(files["data/dataset_info.json"])
    assert info["advise_eval"]["file_name"] == "eval.jsonl" and info["advise_eval"] == {**info["advise_train"],
                                                                                       "file_name": "eval.jsonl"}
    assert "`data/eval.jsonl`" in files["README.md"] and "sft_eval.jsonl" in files["README.md"]
    assert "so its configs leave `data/eval.jsonl` out" in files["README.md"]  # TRL: said, not silently dropped
    trl = _yaml(files["trl/sft.yaml"])
    assert "eval.jsonl" not in files["trl/sft.yaml"] and trl["test_split_size"] > 0  # TRL holds out a split
    assert axo["val_set_size"] == 0 and "val_size" not in lf  # the eval file replaces the held-out split


@pytest.mark.parametrize("examples, fraction", [(None, 0.05), (100, 0.1), (2000, 0.1), (4000, 0.05),
                                                (20_000, 0.01), (200_000, 0.01)])
def test_without_an_eval_file_each_stage_holds_out_about_200_examples_within_1_to_10_percent(examples, fraction):
    from reports.export.context import holdout_fraction

    assert holdout_fraction(examples) == fraction


def test_stages_without_an_eval_file_score_a_held_out_split_in_every_trainer(rendered, cases):
    plain = rendered["sft_dpo_lora"]
    for stage in cases["sft_dpo_lora"]["estimates"]["training"]["stages"]:
        name = f"{1 + cases['sft_dpo_lora']['estimates']['training']['stages'].index(stage)}-{stage['method']}"
        want = holdout_fraction_of(stage)
        axo, lf, trl = (_yaml(plain[f"{t}/{name}.{ext}"]) for t, ext in
                        (("axolotl", "yml"), ("llamafactory", "yaml"), ("trl", "yaml")))
        assert (axo["val_set_size"], axo["evals_per_epoch"]) == (want, 1) and "test_datasets" not in axo
        assert (lf["val_size"], lf["eval_strategy"]) == (want, "epoch") and "eval_dataset" not in lf
        assert (trl["test_split_size"], trl["eval_strategy"]) == (want, "epoch")


def holdout_fraction_of(stage) -> float:
    from reports.export.context import holdout_fraction

    return holdout_fraction(stage["examples"])


def test_a_gated_base_says_how_to_get_it(rendered, cases):
    """Llama and Gemma repos are gated on the Hub: the README says to accept the licence and log in; Qwen's are
    not, and the README says nothing of it."""
    for name, gated in (("qlora_70b", True), ("gemma_sft", True), ("multi_lora", False), ("sft_dpo_lora", False)):
        hub = cases[name]["estimates"]["base_model"]["hub_id"]
        assert (f"`{hub}` is gated on the Hugging Face Hub" in rendered[name]["README.md"]) is gated, name
        assert cases[name]["estimates"]["base_model"]["gated"] is gated


def test_a_zero3_launch_passes_accelerates_own_deepspeed_checks(tmp_path, cases, monkeypatch):
    """accelerate refuses mixed_precision in the launch config beside a deepspeed_config_file (every ZeRO-3 run used
    to die at start-up): the exported config is read by `accelerate launch`'s own parser and validation, and the
    DeepSpeed fields it would hand the plugin pass the plugin's own check."""
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )
    from accelerate.utils.dataclasses import DeepSpeedPlugin

    out = tmp_path / "zero3"
    export_configs(cases["zero3_offload"], out)
    args = launch_command_parser().parse_args(["--config_file", str(out / "accelerate/deepspeed_zero3.yaml"), "t.py"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    assert args.use_deepspeed and not mp_from_config
    fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
    monkeypatch.setenv("ACCELERATE_CONFIG_DS_FIELDS", ",".join(fields))
    DeepSpeedPlugin._deepspeed_config_checks(None)  # raises ValueError on an ignored field (mixed_precision)
    ds = json.loads((out / "deepspeed/zero3.json").read_text())
    assert ds["bf16"] == {"enabled": "auto"}  # the precision lives in the DeepSpeed file
    monkeypatch.setenv("ACCELERATE_CONFIG_DS_FIELDS", ",".join([*fields, "mixed_precision"]))
    with pytest.raises(ValueError, match="will be ignored"):
        DeepSpeedPlugin._deepspeed_config_checks(None)


def test_serving_follows_the_plan(rendered, cases):
    readme = rendered["multi_lora"]["README.md"]
    lora = cases["multi_lora"]["estimates"]["training"]["lora"]
    assert f"--enable-lora --max-lora-rank {lora['r']} --max-loras 6 --lora-modules multi_lora=outputs/trl/sft" in readme
    assert "merge" not in "".join(rendered["multi_lora"]).lower()
    assert "vllm serve outputs/trl/2-dpo/merged" in rendered["sft_dpo_lora"]["README.md"]
    assert "- TRL: `vllm serve outputs/trl/sft`\n" in rendered["full_sft"]["README.md"]


# ---- headers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_CASES)
def test_every_file_opens_with_its_command_version_and_rules(rendered, cases, name):
    plan = cases[name]
    rules = ", ".join(w["id"] for w in plan["why"])
    readme = rendered[name]["README.md"]
    for path, text in rendered[name].items():
        if path.endswith(".json"):
            json.loads(text)  # JSON has no comments: the README lists these files
            assert f"`{path}`" in readme
            continue
        lines = text.splitlines()
        if path == "README.md":
            assert lines[0] == "<!--"
            lines = lines[1:]
        prefix = "" if path == "README.md" else "# "
        assert lines[0].startswith(prefix + "Run from the export folder: ")
        assert lines[1] == f"{prefix}Generated by advise {plan['advise_version']} from the plan for: {plan['project']}"
        assert lines[2] == f"{prefix}Rules behind it: {rules}"
        command = lines[0].removeprefix(prefix + "Run from the export folder: ")
        if path.endswith((".yml", ".yaml")) and not path.startswith("accelerate/"):
            assert f"`{command}`" in readme  # the README runs it the same way
            assert path in command


# ---- determinism, overwrite, paths -------------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_same_plan_gives_byte_identical_files(tmp_path, cases):
    for name, plan in cases.items():
        a, b = tmp_path / name / "a", tmp_path / name / "b"
        written = export_configs(plan, a)
        export_configs(json.loads(json.dumps(plan)), b)
        assert _tree(a) == _tree(b) and _tree(a)
        assert [p.relative_to(a).as_posix() for p in written] == sorted(set(_tree(a)) - {MANIFEST})


def test_a_non_empty_folder_is_not_overwritten_without_force(tmp_path, cases):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(AdviseError, match=r"folder is not empty; pass --force") as e:
        export_configs(cases["sft_dpo_lora"], out)
    assert "\n" not in str(e.value) and isinstance(e.value, AdviseError)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    export_configs(cases["sft_dpo_lora"], out, force=True)
    assert (out / "mine.txt").read_text() == "keep" and (out / "trl" / "1-sft.yaml").is_file()
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(AdviseError, match="exists and is not a folder"):
        export_configs(cases["sft_dpo_lora"], afile, force=True)


def test_names_are_sanitised_and_nothing_lands_outside_the_folder(tmp_path, cases):
    plan = cases["multi_lora"]
    plan["project"] = "../../etc/passwd # evil: true"
    out = tmp_path / "deep" / "out"
    written = export_configs(plan, out)
    root = out.resolve()
    assert all(root in p.resolve().parents for p in written)
    assert {p.parent.name for p in written} <= {"out", "trl", "axolotl", "llamafactory", "data", "eval"}
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]
    trl = next(p for p in written if p.parent.name == "trl")
    assert trl.name == "sft.yaml"  # file names come from the vocabulary, never from the plan's text
    header = trl.read_text().splitlines()[1]
    assert header == "# Generated by advise 0.1.0 from the plan for: ../../etc/passwd # evil: true"
    assert "evil" not in _yaml(trl.read_text())  # the project name stays inside the comment
    readme = (out / "README.md").read_text()
    assert "--lora-modules etc-passwd-evil-true=outputs/trl/sft" in readme


@pytest.mark.parametrize("text,name", [("../../x", "x"), ("A B/C", "a-b-c"), ("", "run"), ("...", "run"),
                                       ("Ünïcode ✓", "n-code"), ("a..b", "a.b"), ("x" * 100, "x" * 64)])
def test_sanitize_name(text, name):
    assert ex.sanitize_name(text) == name


@pytest.mark.parametrize("rel", ["../x.yaml", "/etc/x", "a/../b", "trl/../../x", "A.yaml", "", "trl/x y.yaml"])
def test_unsafe_relative_paths_are_refused(rel):
    with pytest.raises(ExportError, match="not a plain relative path"):
        relative_parts(rel)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_a_link_inside_the_folder_cannot_lead_outside(tmp_path, cases):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "trl").symlink_to(outside, target_is_directory=True)
    with pytest.raises(AdviseError, match="trl is a symbolic link out of the output folder"):
        export_configs(cases["sft_dpo_lora"], out, force=True)
    assert list(outside.iterdir()) == []


# ---- the plan contract -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.pop("recommendation"), "^plan: recommendation: Field required"),
    (lambda p: p["estimates"]["training"].pop("stages"), "^plan: estimates.training.stages: Field required"),
    (lambda p: p["estimates"]["training"].update(technique="magic"),
     "^plan: estimates.training.technique: Input should be 'full', 'lora', 'qlora' or 'dora'"),
    (lambda p: p["estimates"]["training"].update(optimizer="sgd"), "^plan: estimates.training.optimizer: Input should be"),
    (lambda p: p["estimates"]["training"]["stages"][0].update(learning_rate=-1),
     r"^plan: estimates.training.stages.0.learning_rate: Input should be greater than 0"),
    (lambda p: p["estimates"]["training"]["stages"][0].update(objective="rlhf"),
     r"^plan: estimates.training.stages.0.objective: Input should be 'sft', 'cpt'"),
    (lambda p: p["estimates"]["training"]["stages"][0].update(method="../../../escape"),
     r"^plan: estimates.training.stages.0.method: Input should be 'sft'"),
    (lambda p: p["estimates"]["training"].update(lora=None), r"^plan: estimates.training: Value error, lora is missing|"
                                                             r"^plan: estimates.training: lora is missing"),
    (lambda p: p.update(advise_version="0.1.0\nimport os"), r"^plan: advise_version: String should match pattern"),
    (lambda p: p.update(project="x\n# trust_remote_code: true"),
     r"^plan: project: holds control characters, line breaks or bidi marks"),
    (lambda p: p["estimates"]["training"].update(micro_batch=-3), r"^plan: estimates.training.micro_batch: Input should "
                                                                  r"be greater than or equal to 1"),
    (lambda p: p["estimates"]["training"]["lora"].update(r=-16), r"^plan: estimates.training.lora.r: Input should be "
                                                                 r"greater than or equal to 1"),
    (lambda p: p["estimates"]["training"].update(gpu_count=0), r"^plan: estimates.training.gpu_count: Input should be "
                                                               r"greater than or equal to 1"),
    (lambda p: p["estimates"]["training"].update(hours=float("inf")), r"^plan: estimates.training.hours: Input should "
                                                                      r"be a finite number"),
    (lambda p: p["answers"]["deployment"].update(adapters="many"), r"^plan: answers.deployment.adapters: Input should "
                                                                   r"be a valid integer"),
    (lambda p: p.update(push_to_hub=True), r"^plan: push_to_hub: unknown field"),
])
def test_a_bad_plan_is_one_line_naming_the_field(cases, mutate, message):
    plan = cases["sft_dpo_lora"]
    mutate(plan)
    with pytest.raises(PlanError, match=message) as e:
        render_all(plan)
    assert "\n" not in str(e.value)


def test_formats_are_registered_once_and_unknown_ones_are_refused(cases):
    assert list(ex.FORMATS) == ["axolotl", "llamafactory", "trl"]
    with pytest.raises(ValueError, match="already registered"):
        register_format(ExportFormat("trl", "TRL again", "1", trl.context, trl.render, "trl/README.md.j2", "x"))
    with pytest.raises(ValueError, match="format name"):
        register_format(ExportFormat("../x", "x", "1", trl.context, trl.render, "trl/README.md.j2", "x"))
    with pytest.raises(AdviseError, match="'trll' is not a known format; did you mean 'trl'"):
        render_all(cases["sft_dpo_lora"], ["trll"])
    only = render_all(cases["sft_dpo_lora"], ["trl"])
    assert sorted(only) == ["README.md", "eval/compare.py", "trl/1-sft.yaml", "trl/2-dpo.yaml", "trl/merge.py",
                            "trl/to_conversational.py"]
    assert "### TRL" in only["README.md"] and "### Axolotl" not in only["README.md"]


# ---- YAML scalars ------------------------------------------------------------------------------------------------
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_as_the_same_float(x):
    assert yaml.safe_load(ex.yaml_float(x)) == x


@given(st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), st.integers(), st.booleans(),
                 st.none(), st.lists(st.sampled_from(["q_proj", "all-linear", "1e5", "yes", "a: b"]))))
def test_scalars_read_back_as_the_same_value(value):
    assert yaml.safe_load("k: " + ex.yaml_scalar(value))["k"] == value


# ---- the command line ----------------------------------------------------------------------------------------------
def _cli(*args: str):
    from advisor.cli import main

    return CliRunner().invoke(main, list(args))


def test_cli_exports_a_plan_file(tmp_path, cases):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(cases["sft_dpo_lora"]))
    r = _cli("export", "--plan", str(plan), "--format", "trl", "--format", "llamafactory", "--out",
             str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "trl" / "1-sft.yaml").is_file() and not (tmp_path / "out" / "axolotl").exists()
    assert "start with" in r.output


@pytest.mark.parametrize("content,message", [
    (None, r"^Error: --plan .* does not exist; make one with `advise plan --json > plan.json`"),
    ("{not json", r"^Error: --plan .*: line 1: not valid JSON"),
    ("[1, 2]", r"^Error: --plan .*: must be a JSON object"),
    ('{"advise_version": "0.1.0"}', r"^Error: --plan .*: project: Field required \(and \d+ more\)"),
])
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, content, message):
    plan = tmp_path / "plan.json"
    if content is not None:
        plan.write_text(content)
    r = _cli("export", "--plan", str(plan), "--out", str(tmp_path / "out"))
    assert r.exit_code == 2
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    import re

    assert re.match(message, r.output.strip()), r.output


def test_cli_refuses_a_non_empty_folder_without_force(tmp_path, cases):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(cases["kto"]))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    r = _cli("export", "--plan", str(plan), "--out", str(tmp_path / "out"))
    assert r.exit_code == 2 and "folder is not empty; pass --force" in r.output
    assert _cli("export", "--plan", str(plan), "--out", str(tmp_path / "out"), "--force").exit_code == 0


def test_help_does_not_import_jinja_or_torch():
    assert_imports_none_of(cli_code(["export", "--help"]), ("torch", "transformers", "trl", "jinja2"))


def _openai_server(answer_for, seen: list):
    """A local OpenAI-compatible chat completions server answering ``answer_for(messages)``; each request lands in
    ``seen`` as (port, path, Authorization header, body). Call ``shutdown()`` when done."""
    import http.server
    import threading

    class Model(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.server.server_port, self.path, self.headers.get("Authorization"), body))
            out = json.dumps({"choices": [{"message": {"role": "assistant",
                                                       "content": answer_for(body["messages"])}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_distillation_export_labels_prompts_with_the_teacher_through_an_openai_compatible_api(tmp_path, cases):
    """The exported data/label_with_teacher.py, run as the README says against a local OpenAI-compatible server:
    each prompt gets the teacher's answer as its assistant turn, a final assistant turn is replaced, the output
    appears only when complete, an existing output is never overwritten, and the README prices the labelling."""
    import subprocess
    import sys

    seen = []
    server = _openai_server(lambda m: "billing" if "invoice" in m[-1]["content"] else "other", seen)
    try:
        export = tmp_path / "triage"
        export_configs(cases["distill_lora"], export)
        readme = (export / "README.md").read_text()
        assert "About $5.00 for 10,000 prompts, at today's cost per request" in readme  # $2,500 / 5M x 10,000
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "my invoice is wrong"}]}) + "\n\n" +
                           json.dumps({"messages": [{"role": "user", "content": "hello"},
                                                    {"role": "assistant", "content": "old answer"}]}) + "\n")
        cmd = next(line.strip() for line in readme.splitlines() if line.strip().startswith("python data/label_with"))
        args = cmd.split()[1:]
        args[1] = str(prompts)  # PROMPTS.jsonl
        env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1", "OPENAI_API_KEY": "k"}
        run = subprocess.run([sys.executable, *args], cwd=export, env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        rows = [json.loads(line) for line in (export / "data/train.jsonl").read_text().splitlines()]
        assert [r["messages"][-1] for r in rows] == [{"role": "assistant", "content": "billing"},
                                                    {"role": "assistant", "content": "other"}]
        assert len(rows[1]["messages"]) == 2  # the old answer was replaced, not kept
        assert all(p == "/v1/chat/completions" and a == "Bearer k" and b["model"] == "claude-haiku-4.5"
                   and b["temperature"] == 0 for _, p, a, b in seen)
        again = subprocess.run([sys.executable, *args], cwd=export, env=env, capture_output=True, text=True,
                               timeout=60)
        assert again.returncode != 0 and "exists" in again.stderr and len(seen) == 2  # nothing overwritten
    finally:
        server.shutdown()


def test_the_evaluation_step_scores_the_tuned_model_against_todays_model_side_by_side(tmp_path, cases):
    """eval/compare.py, run as the README's step 6 says, against two local OpenAI-compatible servers (the served
    tuned model and today's API): both are asked each eval prompt at temperature 0, exact match and token F1
    are printed per model, answers land side by side, and an existing output is never overwritten."""
    import subprocess
    import sys

    seen = []

    def server_answering(answer_for):
        return _openai_server(answer_for, seen)

    tuned = server_answering(lambda m: "Billing" if "invoice" in m[-1]["content"] else "other")
    today = server_answering(lambda m: "It is about billing, I think")
    try:
        export = tmp_path / "triage"
        export_configs(cases["distill_lora"], export, formats=["trl"])
        readme = (export / "README.md").read_text()
        assert "## 6. Evaluate against today's model" in readme and "100-200 chat rows" in readme  # no eval file
        cmd = re.search(r"- TRL: `(python eval/compare\.py [^`]+)`", readme).group(1)
        assert cmd.endswith("--tuned outputs/trl/distillation/merged --baseline claude-haiku-4.5")
        (export / "data").mkdir(exist_ok=True)
        (export / "data/eval.jsonl").write_text("".join(json.dumps({"messages": [
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
            for q, a in (("my invoice is wrong", "billing"), ("hello", "other"), ("refund please", "refund"))))
        env = {**os.environ, "TUNED_BASE_URL": f"http://127.0.0.1:{tuned.server_port}/v1",
               "OPENAI_BASE_URL": f"http://127.0.0.1:{today.server_port}/v1", "OPENAI_API_KEY": "k"}
        run = subprocess.run([sys.executable, *cmd.split()[1:]], cwd=export, env=env, capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "tuned    outputs/trl/distillation/merged: exact match 66.7%, token F1 0.667 (3 rows)" in run.stdout
        # "It is about billing, I think" against "billing": precision 1/6, recall 1, F1 2/7; the other rows 0
        assert "baseline claude-haiku-4.5: exact match 0.0%, token F1 0.095 (3 rows)" in run.stdout
        rows = [json.loads(line) for line in (export / "eval/side_by_side.jsonl").read_text().splitlines()]
        assert [(r["expected"], r["tuned"]["answer"], r["tuned"]["exact"]) for r in rows] == [
            ("billing", "Billing", True), ("other", "other", True), ("refund", "other", False)]
        assert len(seen) == 6 and all(b["temperature"] == 0 and b["messages"][-1]["role"] == "user"
                                      for _, _, _, b in seen)
        again = subprocess.run([sys.executable, *cmd.split()[1:]], cwd=export, env=env, capture_output=True,
                               text=True, timeout=60)
        assert again.returncode != 0 and "exists" in again.stderr and len(seen) == 6
    finally:
        tuned.shutdown()
        today.shutdown()


def test_commands_outside_tables_copy_as_they_run_and_table_cells_stay_cells(rendered):
    """A backslash inside a Markdown code span is printed: only table cells escape `|` (GitHub splits cells on it
    even in code); a README step holding `<|im_end|>` must paste into a shell unchanged."""
    readme = rendered["distill_lora"]["README.md"]
    step = next(line for line in readme.splitlines() if "GenerationConfig" in line and line[0].isdigit())
    run = step.split("` -> `")[0]
    assert 'convert_tokens_to_ids("<|im_end|>")' in run and "\\|" not in run
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    assert rows and all(cell.count("`") % 2 == 0 for row in rows for cell in re.split(r"(?<!\\)\|", row))


def test_an_adapter_served_on_a_base_checkpoint_is_told_to_stop_on_the_turn_end(rendered, cases):
    """vLLM stops on the served base's end-of-text; an adapter trained from a base checkpoint ends its turns on the
    template's turn end, so the README says to pass it as a stop sequence. Merged models and instruct bases need
    nothing (the merged folder lists the turn end; an instruct base stops on it already)."""
    multi = rendered["multi_lora"]["README.md"]
    assert cases["multi_lora"]["estimates"]["base_model"]["checkpoint"] == "base"
    assert 'send "stop": \\["&lt;\\|im_end\\|&gt;"\\] with each request' in multi  # renders as "stop": ["<|im_end|>"]
    for name in ("distill_lora", "sft_dpo_lora"):  # merged serving; an instruct base
        assert "Served as an adapter on" not in rendered[name]["README.md"]


def test_the_axolotl_readme_says_how_to_turn_its_telemetry_off(cases):
    note = "Axolotl sends usage telemetry unless `AXOLOTL_DO_NOT_TRACK=1` is set"
    assert note in render_all(cases["distill_lora"], ["axolotl"])["README.md"]
    assert note not in render_all(cases["distill_lora"], ["trl"])["README.md"]
