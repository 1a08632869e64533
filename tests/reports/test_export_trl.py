"""TRL reads every exported TRL config with its own parser.

The parser check closes TrlParser's blind spot (YAML values are not type-converted: `learning_rate: [1, 2]`
passes) by checking each value against the config class's annotation. Training on the configs, through the
README's steps in TRL's own install, is tests/realrun/test_real_runs.py.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import re
import types
import typing
from pathlib import Path

import pytest
import yaml

from reports.export import export_configs
from reports.export.trl import COMMANDS as TRL_COMMANDS
from tests.reports.export_cases import plans


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
            # one entry reaches peft as a string: all-linear, or a multimodal wrapper's text-decoder regex
            assert peft.target_modules == cfg["lora_target_modules"][0] and peft.use_dora == cfg.get("use_dora", False)
            assert cfg["lora_target_modules"][0] == "all-linear" or cfg["lora_target_modules"][0].startswith("^(?!")
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


