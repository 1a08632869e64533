"""TRL reads every exported TRL config with its own parser, and `trl sft|dpo --config` trains on them on CPU.

The parser check closes TrlParser's blind spot (YAML values are not type-converted: `learning_rate: [1, 2]`
passes) by checking each value against the config class's annotation. The end-to-end runs train 2 steps on a
tiny random llama and an offline-built tokenizer: SFT (LoRA) -> the README's merge command -> DPO on the merged
model, and SFT with QLoRA (bitsandbytes NF4 runs on CPU). Only what a CPU cannot do is overridden on the command
line: the model path (no Hub), bf16 -> fp32, and 2 steps.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import math
import os
import re
import subprocess
import sys
import types
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from reports.export import export_configs, render_all
from reports.export.trl import COMMANDS as TRL_COMMANDS
from tests.reports.export_cases import plans

STEPS = 2
CPU_OVERRIDES = ["--max_steps", str(STEPS), "--bf16", "false", "--dtype", "float32"]


@pytest.fixture(scope="module")
def trl_configs(tmp_path_factory):
    """Every TRL config of every case, exported: [(case, export dir, path, trl command)]."""
    root = tmp_path_factory.mktemp("trl-export")
    out = []
    for name, plan in plans().items():
        export_configs(plan, root / name, formats=["trl"])
        for path in sorted((root / name).glob("trl/*.yaml")):
            head = path.read_text().splitlines()[0]  # the header names the command: trl <cmd> --config ...
            cmd = re.match(r"# Run from the export folder: trl (\w+) --config", head).group(1)
            out.append((name, root / name, path, cmd))
    return out


@pytest.fixture
def bf16_allowed(monkeypatch):
    """The configs are for GPUs: let TrainingArguments accept bf16 on this CPU box while parsing."""
    import transformers.training_args as ta

    monkeypatch.setattr(ta, "is_torch_bf16_gpu_available", lambda *a, **k: True)


def _matches(value, annotation) -> bool:
    """Whether a YAML value fits a dataclass field's annotation (what TrlParser leaves unchecked)."""
    origin = typing.get_origin(annotation)
    if annotation is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple):
        (item, *_) = typing.get_args(annotation) or (typing.Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return value in {m.value for m in annotation}
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if dataclasses.is_dataclass(annotation):
        return isinstance(value, dict) and not _type_errors(value, annotation)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_errors(cfg: dict, *classes) -> list[str]:
    hints = {}
    for cls in classes:
        for name, hint in typing.get_type_hints(cls).items():
            if name in {f.name for f in dataclasses.fields(cls)}:
                hints.setdefault(name, hint)
    errors = [f"{k}: unknown key" for k in cfg if k not in hints]
    errors += [f"{k}: {v!r} is not {hints[k]}" for k, v in cfg.items() if k in hints and not _matches(v, hints[k])]
    return errors


def validate_trl(path: Path, command: str):
    """TRL's own parser for ``trl <command>`` (the CLI's make_parser), then the value types. Returns the parsed
    dataclasses; raises on anything TRL or the type check refuses."""
    module = importlib.import_module(f"trl.scripts.{command}")
    parser = module.make_parser()
    parsed = parser.parse_args_and_config(["--config", str(path)])  # unknown keys and bad choices raise
    from trl import DatasetMixtureConfig
    from trl.scripts.utils import DatasetConfig

    cfg = yaml.safe_load(path.read_text())
    errors = _type_errors(cfg, *(type(p) for p in parsed))
    for i, ds in enumerate(cfg.get("datasets") or []):
        errors += [f"datasets[{i}].{e}" for e in _type_errors(ds, DatasetConfig)]
    assert isinstance(parsed[-1], DatasetMixtureConfig)
    if errors:
        raise ValueError("; ".join(errors))
    return parsed


def test_every_trl_config_parses_with_trls_own_parser(trl_configs, bf16_allowed):
    from trl import get_peft_config, get_quantization_config

    seen = set()
    for name, _, path, command in trl_configs:
        _script, training, model, data = validate_trl(path, command)
        cfg = yaml.safe_load(path.read_text())
        assert training.learning_rate == cfg["learning_rate"] and training.max_length == cfg["max_length"]
        assert model.model_name_or_path == cfg["model_name_or_path"]
        assert [d.data_files for d in data.datasets] == [d["data_files"] for d in cfg["datasets"]]
        peft = get_peft_config(model)
        assert (peft is not None) == cfg.get("use_peft", False)
        if peft is not None:
            assert peft.target_modules == "all-linear" and peft.use_dora == cfg.get("use_dora", False)
        quant = get_quantization_config(model)
        if cfg.get("load_in_4bit"):
            assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
        seen.add((command, type(training).__name__, bool(peft), bool(quant)))
    assert {c for c, *_ in seen} == {"sft", "dpo", "kto"}
    assert {("sft", "SFTConfig", True, True), ("sft", "SFTConfig", False, False), ("dpo", "DPOConfig", True, False),
            ("kto", "KTOConfig", True, False)} <= seen


@pytest.mark.parametrize("edit,message", [
    ({"lora_alhpa": 32}, r"lora_alhpa"),                                 # a typo: TRL's parser refuses it
    ({"learning_rate": [1, 2]}, r"learning_rate: \[1, 2\] is not"),      # not type-converted by TRL: ours
    ({"lr_scheduler_type": "cosinus"}, r"cosinus"),                      # a bad choice
    ({"per_device_train_batch_size": "four"}, r"per-device-train-batch-size: invalid int value: 'four'"),
    ({"datasets": [{"path": "json", "data_file": "data/train.jsonl"}]}, r"data_file"),
])
def test_a_broken_trl_config_is_rejected(trl_configs, bf16_allowed, tmp_path, capsys, edit, message):
    _, _, path, command = next(c for c in trl_configs if c[0] == "sft_dpo_lora" and c[3] == "sft")
    cfg = yaml.safe_load(path.read_text())
    validate_trl(path, command)  # the original passes
    cfg.update(edit)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(cfg))
    with pytest.raises((ValueError, TypeError, SystemExit)) as e:
        validate_trl(broken, command)
    said = capsys.readouterr().err if isinstance(e.value, SystemExit) else str(e.value)  # argparse prints, exits
    assert re.search(message, said), said[-2000:]


def test_orpo_has_no_trl_config_because_trls_cli_has_no_orpo_command():
    assert TRL_COMMANDS["orpo"] is None
    from trl.cli.commands import get_commands

    assert "orpo" not in {c.name for c in get_commands()}
    assert {TRL_COMMANDS[o] for o in ("sft", "cpt", "dpo", "kto")} <= {c.name for c in get_commands()}


# ---- end to end: trl sft|dpo --config on CPU -----------------------------------------------------------------
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sleep", "in", "warm", "sun"]


def _sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))


def _bpe(special_tokens: list[str]):
    """A byte-level BPE tokenizer of a few hundred entries trained offline on WORDS, with these special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([" ".join(WORDS)] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random llama and a byte-level BPE tokenizer with a ChatML template, built offline."""
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    from estimators.families import tiny_config

    root = tmp_path_factory.mktemp("tiny")
    tok = _bpe(["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    cfg = dict(tiny_config("llama"))
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg, bos_token_id=fast.bos_token_id,
                                  eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    fast.save_pretrained(root / "chat-template")  # stands in for the instruct tokenizer chat_template_path names
    return root


def _write_data(export: Path) -> None:
    data = export / "data"
    data.mkdir(exist_ok=True)
    with open(data / "train.jsonl", "w") as f:
        f.writelines(json.dumps({"messages": [{"role": "system", "content": "Answer briefly."},
                                             {"role": "user", "content": _sentence(i, 5)},
                                             {"role": "assistant", "content": _sentence(i + 3, 4)}]}) + "\n" for i in range(48))
    with open(data / "preference.jsonl", "w") as f:
        f.writelines(json.dumps({"prompt": _sentence(i, 5), "chosen": _sentence(i + 2, 4),
                                "rejected": _sentence(i + 7, 3)}) + "\n" for i in range(80))


def _trl() -> list[str]:
    script = Path(sys.executable).with_name("trl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trl.cli.main"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_CACHE": str(cwd / ".hf-datasets")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _commands(readme: str) -> list[str]:
    """The TRL run steps of the README, in order, as written."""
    section = readme.split("### TRL\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `(.+?)` -> ", section, flags=re.MULTILINE)


def _train_loss(output: str) -> float:
    losses = re.findall(r"'train_loss': '?([-0-9.e+]+|nan)'?", output)
    assert losses, output[-3000:]
    return float(losses[-1])


def _check(proc: subprocess.CompletedProcess, what: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} failed:\n{out[-4000:]}"
    return out


def _sft_merge_dpo(export: Path, tiny: Path) -> dict:
    """The README's TRL steps verbatim; stage 1 gets the tiny model instead of the Hub id."""
    steps = _commands((export / "README.md").read_text())
    assert [s.split()[:2] for s in steps] == [["trl", "sft"], ["python", "trl/merge.py"], ["trl", "dpo"],
                                             ["python", "trl/merge.py"]]
    sft = _check(_run([*_trl(), *steps[0].split()[1:], "--model_name_or_path", str(tiny / "model"),
                       "--chat_template_path", str(tiny / "chat-template"), *CPU_OVERRIDES], export), "trl sft")
    merge = _check(_run([sys.executable, *steps[1].split()[1:]], export), "the README's merge")
    dpo = _check(_run([*_trl(), *steps[2].split()[1:], *CPU_OVERRIDES], export), "trl dpo")
    return {"sft": _train_loss(sft), "dpo": _train_loss(dpo), "merge": merge}


def _qlora(export: Path, tiny: Path) -> float:
    # a llama base: the README first writes the instruct template (a Hub download); the tiny stand-in tokenizer is
    # ChatML, so its template and turn end replace the exported llama3 ones
    template_step, step, *_ = _commands((export / "README.md").read_text())
    assert template_step.startswith("python -c ") and "trl/chat_template.jinja" in template_step
    out = _check(_run([*_trl(), *step.split()[1:], "--model_name_or_path", str(tiny / "model"),
                       "--chat_template_path", str(tiny / "chat-template"), "--eos_token", "<|im_end|>",
                       *CPU_OVERRIDES], export), "trl sft qlora")
    return _train_loss(out)


@pytest.mark.slow
def test_trl_trains_sft_lora_then_merges_then_dpo_and_sft_qlora_from_the_exported_configs(tmp_path, tiny_model):
    cases = plans()
    lora, qlora = tmp_path / "sft-dpo", tmp_path / "qlora"
    export_configs(cases["sft_dpo_lora"], lora, formats=["trl"])
    export_configs(cases["qlora_70b"], qlora, formats=["trl"])
    assert yaml.safe_load((qlora / "trl" / "sft.yaml").read_text())["load_in_4bit"] is True
    for export in (lora, qlora):
        _write_data(export)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores: the two chains side by side
        chain = pool.submit(_sft_merge_dpo, lora, tiny_model)
        q = pool.submit(_qlora, qlora, tiny_model)
        losses, q_loss = chain.result(), q.result()
    assert math.isfinite(losses["sft"]) and math.isfinite(losses["dpo"]) and math.isfinite(q_loss)
    for out in (lora / "outputs/trl/1-sft", lora / "outputs/trl/2-dpo", qlora / "outputs/trl/sft"):
        assert (out / "adapter_model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
        assert json.loads((out / "adapter_config.json").read_text())["r"] == \
            cases["sft_dpo_lora"]["estimates"]["training"]["lora"]["r"]
    merged = lora / "outputs/trl/1-sft/merged"
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    # DPO started from the merged SFT model, as the exported config says
    assert json.loads((lora / "outputs/trl/2-dpo/adapter_config.json").read_text())["base_model_name_or_path"] \
        == "outputs/trl/1-sft/merged"


def test_the_e2e_plans_render_what_the_e2e_test_expects():
    """Guards the slow test's assumptions cheaply: brand-voice is LoRA SFT -> DPO, the 70B plan is QLoRA SFT."""
    files = render_all(plans()["sft_dpo_lora"], ["trl"])
    assert sorted(files) == ["README.md", "trl/1-sft.yaml", "trl/2-dpo.yaml", "trl/merge.py",
                            "trl/to_conversational.py"]
    assert "--config trl/sft.yaml" in render_all(plans()["qlora_70b"], ["trl"])["README.md"]


@pytest.fixture(scope="module")
def tiny_tied_base(tmp_path_factory):
    """The shapes that broke TRL on the built-in example: a tied-embedding Qwen2 base whose tokenizer has ChatML's
    special tokens but no chat template, and more embedding rows than tokenizer entries."""
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    from estimators.families import tiny_config

    root = tmp_path_factory.mktemp("tied")
    tok = _bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    base_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    assert base_tok.chat_template is None
    cfg = tiny_config("qwen2")
    assert cfg["tie_word_embeddings"] and cfg["vocab_size"] > len(base_tok)  # rows != tokenizer length
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg, eos_token_id=base_tok.eos_token_id,
                                  pad_token_id=base_tok.pad_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(root / "model")
    base_tok.save_pretrained(root / "model")
    # the family's instruct template (what the README's first step fetches from Qwen/Qwen2.5-7B-Instruct)
    (root / "instruct.jinja").write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return root


@pytest.mark.slow
def test_trl_trains_a_tied_base_without_a_chat_template_from_the_readme_steps(tmp_path, tiny_tied_base):
    """The ticket-triage export (a tied Qwen base): the README's steps in order, the template step standing in
    for the Hub download. TRL trains (it crashed in clone_chat_template's resize), the saved tokenizer carries
    the template and stops on <|im_end|>, and the merged folder serves with it."""
    export = tmp_path / "triage"
    export_configs(plans()["distill_lora"], export, formats=["trl"])
    _write_data(export)
    steps = _commands((export / "README.md").read_text())
    assert steps[0].startswith("python -c ") and "Qwen/Qwen2.5-7B-Instruct" in steps[0]
    assert [s.split()[:2] for s in steps[1:]] == [["trl", "sft"], ["python", "trl/merge.py"]]
    (export / "trl" / "chat_template.jinja").write_text((tiny_tied_base / "instruct.jinja").read_text())
    out = _check(_run([*_trl(), *steps[1].split()[1:], "--model_name_or_path", str(tiny_tied_base / "model"),
                       *CPU_OVERRIDES], export), "trl sft")
    assert math.isfinite(_train_loss(out))
    adapter = export / "outputs/trl/distillation"
    tok = json.loads((adapter / "tokenizer_config.json").read_text())
    assert tok["eos_token"] == "<|im_end|>"
    assert "<|im_end|>" in (adapter / "chat_template.jinja").read_text()
    _check(_run([sys.executable, *steps[2].split()[1:]], export), "the README's merge")
    merged = adapter / "merged"
    assert (merged / "model.safetensors").is_file() and (merged / "chat_template.jinja").is_file()
