"""Axolotl's, LLaMA-Factory's and DeepSpeed's own validators accept every exported file and reject broken ones.

They cannot share the project's environment (their pins clash with ours), so they run in each trainer's own venv,
installed from its export README's line (tests/realrun/venvs.py; .ci/run builds them), through
tests/reports/export_validators.py: Axolotl's validator in Axolotl's venv, LLaMA-Factory's and DeepSpeed's in
LLaMA-Factory's. Without the venvs the tests skip with the command that builds them; under CI (``CI`` set) they
fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from reports.export import export_configs, render_all
from tests.realrun import venvs
from tests.reports.export_cases import plans
from tests.reports.export_validators import VENV_OF

pytestmark = pytest.mark.slow  # one run of the validators per trainer venv (~15 s)

HARNESS = Path(__file__).with_name("export_validators.py")
#: what a validator may say about a valid config: Axolotl switches its fused LoRA kernels on by itself
ALLOWED_WARNINGS = ("Auto-enabling LoRA kernel optimizations",)


def _validation_python(trainer: str) -> str:
    python = venvs.python(trainer)
    if python.exists():
        return str(python)
    message = f"the {trainer} venv is missing; build it with: python tests/realrun/venvs.py build {trainer}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _validator(rel: str) -> str | None:
    if rel.startswith("axolotl/"):
        return "axolotl"
    if rel.startswith("llamafactory/merge-"):
        return "llamafactory-export"
    if rel.startswith("llamafactory/"):
        return "llamafactory"
    if rel.startswith("deepspeed/"):
        return "deepspeed"
    return None


def _edit_yaml(path: Path, change) -> None:
    cfg = yaml.safe_load(path.read_text())
    change(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _set(**kv):
    return lambda cfg: cfg.update(kv)


def _dataset(**kv):
    return lambda cfg: cfg["datasets"][0].update(kv)


#: id -> (case, file, edit, the validator's complaint); each is a typo or a wrong value a template could produce
BROKEN = {
    "axolotl-unknown-key": ("sft_dpo_lora", "axolotl/1-sft.yml", _set(lora_alhpa=32), r"lora_alhpa.*Extra inputs"),
    "axolotl-bad-type": ("sft_dpo_lora", "axolotl/1-sft.yml", _set(micro_batch_size="four"),
                         r"micro_batch_size\s+Input should be a valid integer"),
    "axolotl-negative": ("sft_dpo_lora", "axolotl/1-sft.yml", _set(gradient_accumulation_steps=-4),
                         r"gradient_accumulation_steps: must be a positive number"),
    "axolotl-optimizer": ("sft_dpo_lora", "axolotl/1-sft.yml", _set(optimizer="adamw_torch_fusd"),
                          r"optimizer: 'adamw_torch_fusd' is not an optimizer"),
    "axolotl-dataset-key": ("sft_dpo_lora", "axolotl/1-sft.yml", _dataset(feild_messages="messages"),
                            r"datasets\[0\]: unknown keys \['feild_messages'\]"),
    "axolotl-dataset-type": ("sft_dpo_lora", "axolotl/2-dpo.yml", _dataset(type="chat_template.defualt"),
                             r"chat_template has no defualt\(\)"),
    "axolotl-chat-template": ("sft_dpo_lora", "axolotl/1-sft.yml", _set(chat_template="llama33"),
                              r"chat_template"),
    "axolotl-qlora-without-4bit": ("qlora_70b", "axolotl/sft.yml", lambda c: c.pop("load_in_4bit"), r"4.?bit"),
    "axolotl-rl": ("sft_dpo_lora", "axolotl/2-dpo.yml", _set(rl="dpoo"), r"rl\s+Input should be 'dpo'"),
    # a turn end the template does not have is never trained (Axolotl only warns)
    "axolotl-eot-not-in-template": ("sft_dpo_lora", "axolotl/1-sft.yml", _set(eot_tokens=["<|eot_id|>"]),
                                    r"eot_tokens: \['<\|eot_id\|>'\] not in Axolotl's 'qwen3' chat template"),
    "llamafactory-bad-type": ("sft_dpo_lora", "llamafactory/1-sft.yaml", _set(lora_rank="abc"),
                              r"lora_rank: must be a positive number"),
    "llamafactory-bad-type-argv": ("sft_dpo_lora", "llamafactory/1-sft.yaml", _set(logging_steps="ten"),
                                   r"--logging_steps/--logging-steps: invalid float value: 'ten'"),
    "llamafactory-unknown-key": ("sft_dpo_lora", "llamafactory/1-sft.yaml", _set(lora_rnak=16),
                                 r"not used by the HfArgumentParser: \['--lora_rnak'"),
    "llamafactory-template": ("sft_dpo_lora", "llamafactory/1-sft.yaml", _set(template="llama33"),
                              r"llama33"),
    "llamafactory-dataset-name": ("sft_dpo_lora", "llamafactory/1-sft.yaml", _set(dataset="advise_trian"),
                                  r"advise_trian"),
    "llamafactory-stage-vs-data": ("sft_dpo_lora", "llamafactory/1-sft.yaml", _set(stage="dpo"),
                                   r"not applicable to stage dpo"),
    "llamafactory-optimizer": ("sft_dpo_lora", "llamafactory/1-sft.yaml", _set(optim="adamw_torch_fusd"),
                               r"--optim: invalid choice: 'adamw_torch_fusd'"),
    "llamafactory-dataset-info": ("sft_dpo_lora", "data/dataset_info.json",
                                  lambda d: d["advise_train"]["columns"].update(messsages="messages"),
                                  r"advise_train.columns: unknown keys \['messsages'\]"),
    "llamafactory-export-key": ("sft_dpo_lora", "llamafactory/merge-1-sft.yaml", _set(export_dri="x"),
                                r"--export_dri"),
    "deepspeed-zero-key": ("zero3_4gpu", "deepspeed/zero3.json",
                           lambda d: d["zero_optimization"].update(stage3_gather_16bit_weights_on_model_sav=True),
                           r"stage3_gather_16bit_weights_on_model_sav.*Extra inputs"),
    "deepspeed-top-key": ("zero3_4gpu", "deepspeed/zero3.json", lambda d: d.update(train_micro_batch_size=4),
                          r"unknown top-level DeepSpeed keys \['train_micro_batch_size'\]"),
}
#: the file each broken case is validated as (the dataset_info typo is caught through the config that uses it)
BROKEN_TARGET = {"llamafactory-dataset-info": "llamafactory/1-sft.yaml"}


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """Every Axolotl, LLaMA-Factory and DeepSpeed file of every case, plus the broken ones, validated in one run."""
    pythons = {v: _validation_python(v) for v in sorted(set(VENV_OF.values()))}
    root = tmp_path_factory.mktemp("validate")
    cases = plans()
    jobs = []
    for name, plan in cases.items():
        export_configs(plan, root / name)
        gpus = (plan["estimates"]["training"] or {}).get("gpu_count", 1)
        for path in sorted((root / name).rglob("*")):
            rel = path.relative_to(root / name).as_posix()
            if path.is_file() and _validator(rel):
                jobs.append({"id": f"{name}:{rel}", "validator": _validator(rel), "path": str(path),
                             "root": str(root / name), "gpu_count": gpus})
    for bid, (case, rel, edit, _) in BROKEN.items():
        broken = root / "broken" / bid
        shutil.copytree(root / case, broken)
        (_edit_json if rel.endswith(".json") else _edit_yaml)(broken / rel, edit)
        target = BROKEN_TARGET.get(bid, rel)
        jobs.append({"id": f"broken:{bid}", "validator": _validator(target), "path": str(broken / target),
                     "root": str(broken), "gpu_count": (cases[case]["estimates"]["training"] or {})["gpu_count"]})
    results = {}
    for venv in sorted(set(VENV_OF.values())):  # each validator in its trainer's own install
        batch = [j for j in jobs if VENV_OF[j["validator"]] == venv]
        proc = subprocess.run([pythons[venv], str(HARNESS)], input=json.dumps(batch), capture_output=True,
                              text=True, timeout=600, cwd=root, check=False)
        assert proc.returncode == 0 and "@@RESULTS@@" in proc.stdout, proc.stderr[-4000:]
        results.update({r["id"]: r for r in json.loads(proc.stdout.split("@@RESULTS@@", 1)[1])})
    assert set(results) == {j["id"] for j in jobs}
    return results


def test_every_exported_file_passes_its_trainers_own_validator(validated):
    good = {k: v for k, v in validated.items() if not k.startswith("broken:")}
    failed = {k: v["error"] for k, v in good.items() if not v["ok"]}
    assert not failed, json.dumps(failed, indent=1)
    warned = {k: w for k, v in good.items() for w in v["warnings"] if not w.split(": ", 1)[-1].startswith(ALLOWED_WARNINGS)}
    assert not warned, json.dumps(warned, indent=1)
    kinds = {}
    for k in good:
        kinds[k.split(":", 1)[1].split("/")[0]] = kinds.get(k.split(":", 1)[1].split("/")[0], 0) + 1
    assert kinds["axolotl"] >= 12 and kinds["llamafactory"] >= 20 and kinds["deepspeed"] >= 2, kinds


@pytest.mark.parametrize("bid", sorted(BROKEN))
def test_each_validator_rejects_a_broken_config(validated, bid):
    import re

    result = validated[f"broken:{bid}"]
    assert not result["ok"], f"{bid} passed validation"
    assert re.search(BROKEN[bid][3], result["error"], flags=re.DOTALL), result["error"]


#: how each trainer's own install names its chat templates (Axolotl's ChatTemplate enum, LLaMA-Factory's registry)
TEMPLATE_NAMES = {
    "axolotl": "from axolotl.utils.schemas.enums import ChatTemplate; names = {c.value for c in ChatTemplate}",
    "llamafactory": "from llamafactory.data.template import TEMPLATES; names = set(TEMPLATES)",
}


@pytest.mark.parametrize("trainer", sorted(TEMPLATE_NAMES))
def test_every_familys_chat_template_is_one_its_trainer_knows(trainer):
    """families.yaml names a template per trainer for every family and chat variant, including the ones no export
    case plans (Mistral Small 3, gpt-oss, Gemma 3): each must exist in that trainer's own install."""
    from estimators.families import families

    wanted = {n: f.chat_templates.get(trainer) for n, f in families().items() if f.chat_templates.get(trainer)}
    code = TEMPLATE_NAMES[trainer] + "; import json, sys; print(json.dumps(sorted(names)))"
    proc = subprocess.run([_validation_python(trainer), "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    known = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert not {n: t for n, t in wanted.items() if t not in known}, sorted(known)


AXOLOTL_FREEZE = """
import json, sys
from transformers import AutoConfig, AutoModelForCausalLM
from axolotl.utils.freeze import freeze_layers_except
cfg, patterns = json.loads(sys.argv[1]), json.loads(sys.argv[2])
model_type = cfg.pop("model_type")
model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
freeze_layers_except(model, patterns)
print(json.dumps(sum(p.numel() for p in model.parameters() if p.requires_grad)))
"""


def test_axolotls_full_fine_tune_of_a_multimodal_base_trains_the_text_decoder_only():
    """Gemma 3's vision tower stays frozen in a full fine-tune, as the estimate counts it: Axolotl's own
    freeze_layers_except, given the exported unfrozen_parameters, leaves exactly the text decoder trainable."""
    from estimators.anatomy import compute_anatomy
    from estimators.families import tiny_config

    plan = plans()["gemma3_full"]
    assert plan["estimates"]["training"]["technique"] == "full"
    files = render_all(plan)
    patterns = yaml.safe_load(files["axolotl/sft.yml"])["unfrozen_parameters"]
    cfg = tiny_config("gemma3")
    anatomy = compute_anatomy(cfg)
    proc = subprocess.run([_validation_python("axolotl"), "-c", AXOLOTL_FREEZE, json.dumps(cfg), json.dumps(patterns)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads(proc.stdout.strip().splitlines()[-1])
    assert anatomy.frozen_vision_params > 0
    assert trained == anatomy.params_total - anatomy.frozen_vision_params
