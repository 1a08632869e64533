"""Run exported configs through Axolotl's, LLaMA-Factory's and DeepSpeed's own validators.

Not a test module: tests/reports/test_export_validation.py runs it with the Python of each trainer's own venv
(``VENV_OF``; Axolotl and LLaMA-Factory pin versions the project's environment cannot host; .ci/run builds the
venvs with tests/realrun/venvs.py). It imports nothing from the project. Reads a JSON list of jobs on stdin, prints one JSON list of results:

    job:    {"id": str, "validator": "axolotl" | "llamafactory" | "llamafactory-export" | "deepspeed",
             "path": config file, "root": the export folder (relative paths in the config start there),
             "gpu_count": int}
    result: {"id": str, "ok": bool, "error": str | null, "warnings": [str]}

Each validator's blind spots (shared/reference/trainer-validation.md) are closed here, so a typo in a template
fails: Axolotl silently drops unknown keys and does not check optimizer names, positive sizes or dataset
entries; LLaMA-Factory does not type-check a dict (so the config goes in as argv), ignores unknown
dataset_info.json keys and refuses bf16 on a CPU box (patched for validation only).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.machinery
import io
import json
import logging
import os
import sys
import tempfile
import traceback
import types
import warnings
from pathlib import Path

#: which trainer's own venv (tests/realrun/venvs.py, built from its export README's install line) runs each
#: validator: Axolotl's validator with Axolotl's pins, LLaMA-Factory's and DeepSpeed's with LLaMA-Factory's
VENV_OF = {"axolotl": "axolotl", "llamafactory": "llamafactory", "llamafactory-export": "llamafactory",
           "deepspeed": "llamafactory"}


def _setup() -> None:
    """Offline, CPU, and the two environment fixes the validators need; called before any trainer import."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    # llamafactory.data imports torchaudio, which has no working CPU build next to torch 2.13 here; the
    # validators never call it (trainer-validation.md, pitfalls)
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except (ImportError, OSError, RuntimeError):
            stub = types.ModuleType("torchaudio")
            stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
            sys.modules["torchaudio"] = stub
    # bf16 is refused on a CPU box ("Your setup doesn't support bf16/gpu"): the configs are for GPUs
    from transformers import training_args

    training_args.is_torch_bf16_gpu_available = lambda *a, **k: True
    # and LLaMA-Factory's pure_bf16 check reads its own import of the same function (hparams/parser.py)
    try:
        from llamafactory.hparams import parser as lf_parser
    except ImportError:  # a venv without LLaMA-Factory
        return
    lf_parser.is_torch_bf16_gpu_available = lambda *a, **k: True


POSITIVE = ("micro_batch_size", "gradient_accumulation_steps", "num_epochs", "sequence_len", "learning_rate",
            "lora_r", "lora_alpha", "per_device_train_batch_size", "num_train_epochs", "cutoff_len", "lora_rank")
FRACTIONS = ("lora_dropout", "warmup_ratio")


class Invalid(ValueError):
    pass


def _load_yaml(path: Path) -> dict:
    import yaml

    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(cfg, dict):
        raise Invalid(f"{path.name}: not a YAML mapping")
    return cfg


def _check_numbers(cfg: dict) -> None:
    for key in POSITIVE:
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float)) or cfg[key] <= 0):
            raise Invalid(f"{key}: must be a positive number, got {cfg[key]!r}")
    for key in FRACTIONS:
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float))
                           or not 0 <= cfg[key] < 1):
            raise Invalid(f"{key}: must be in [0, 1), got {cfg[key]!r}")


def _field_names(model) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
    return names


# ---- Axolotl -------------------------------------------------------------------------------------------------
def _strict(model):
    from pydantic import ConfigDict

    return type(f"Strict{model.__name__}", (model,), {"model_config": ConfigDict(extra="forbid"),
                                                       "__module__": model.__module__})


_AXOLOTL_STRICT: dict = {}


def validate_axolotl(cfg: dict, root: Path, gpu_count: int) -> None:
    import axolotl.utils.config as axcfg
    from axolotl.utils.dict import DictDefault
    from axolotl.utils.schemas.datasets import DPODataset, KTODataset, SFTDataset
    from axolotl.utils.schemas.enums import CustomSupportedOptimizers
    from transformers.training_args import OptimizerNames

    if not _AXOLOTL_STRICT:
        # validate_config looks these names up at call time: forbid unknown keys instead of dropping them
        _AXOLOTL_STRICT["input"] = _strict(axcfg.AxolotlInputConfigBase)
        _AXOLOTL_STRICT["caps"] = _strict(axcfg.AxolotlConfigWCapabilitiesBase)
        axcfg.AxolotlInputConfigBase = _AXOLOTL_STRICT["input"]
        axcfg.AxolotlConfigWCapabilitiesBase = _AXOLOTL_STRICT["caps"]
    # Axolotl's own check first (on a copy: it converts the dataset entries), for the planned GPUs
    capabilities = {"bf16": True, "tf32": True, "fp8": False, "n_gpu": gpu_count, "n_node": 1,
                    "compute_capability": "sm_90"}
    axcfg.validate_config(DictDefault(copy.deepcopy(cfg)), capabilities=capabilities,
                          env_capabilities={"torch_version": "2.13.0"})
    # then its blind spots
    _check_numbers(cfg)
    optimizers = {o.value for o in OptimizerNames} | {o.value for o in CustomSupportedOptimizers}
    if cfg.get("optimizer") not in optimizers:
        raise Invalid(f"optimizer: {cfg.get('optimizer')!r} is not an optimizer Axolotl or transformers knows")
    rl = cfg.get("rl")
    ds_model = DPODataset if rl in ("dpo", "ipo", "simpo") else KTODataset if rl == "kto" else SFTDataset
    for i, ds in enumerate(cfg.get("datasets") or []):
        unknown = set(ds) - _field_names(ds_model)
        if unknown:
            raise Invalid(f"datasets[{i}]: unknown keys {sorted(unknown)} for {ds_model.__name__}")
        _check_prompt_strategy(str(ds.get("type")), rl)
        path = ds.get("path")
        if not isinstance(path, str) or not path.startswith("data/"):
            raise Invalid(f"datasets[{i}].path: {path!r} is not a file under the export's data/ folder")
    if cfg.get("deepspeed") and not (root / cfg["deepspeed"]).is_file():
        raise Invalid(f"deepspeed: {cfg['deepspeed']} is not a file of the export")
    # Axolotl only warns when an end-of-turn token is not in the chat template (ChatTemplateStrategy.
    # _validate_eot_and_eos_tokens), and then that turn end is never trained: make it an error
    # (tokenizer_default: the checkpoint's own template, which only the Hub tokenizer holds: not checkable offline)
    if cfg.get("eot_tokens") and cfg["chat_template"] != "tokenizer_default":
        from axolotl.utils.chat_templates import get_chat_template

        template = get_chat_template(cfg["chat_template"])
        absent = [t for t in cfg["eot_tokens"] if t not in template]
        if absent:
            raise Invalid(f"eot_tokens: {absent} not in Axolotl's {cfg['chat_template']!r} chat template")


def _check_prompt_strategy(ds_type: str, rl: str | None) -> None:
    """The dataset ``type`` names a prompt strategy Axolotl can load (axolotl/prompt_strategies/*)."""
    base = "axolotl.prompt_strategies" + (f".{rl}" if rl in ("dpo", "orpo", "kto") else "")
    module_name, _, func = ds_type.partition(".")
    try:
        module = importlib.import_module(f"{base}.{module_name}")
    except ImportError as e:
        raise Invalid(f"dataset type {ds_type!r}: no module {base}.{module_name} ({e})") from None
    attr = func or ("load" if rl not in ("dpo", "orpo", "kto") else "default")
    if not callable(getattr(module, attr, None)):
        raise Invalid(f"dataset type {ds_type!r}: {base}.{module_name} has no {attr}()")


# ---- LLaMA-Factory -------------------------------------------------------------------------------------------
def _argv(cfg: dict) -> list[str]:
    argv = []
    for key, value in cfg.items():
        if isinstance(value, (dict, list)):
            raise Invalid(f"{key}: LLaMA-Factory takes flat scalar values, got {type(value).__name__}")
        argv += [f"--{key}", "true" if value is True else "false" if value is False else str(value)]
    return argv


def _load_llamafactory_yaml(path: Path) -> dict:
    from omegaconf import (
        OmegaConf,  # how llamafactory-cli reads a YAML config (hparams/parser.py read_args)
    )

    return OmegaConf.to_container(OmegaConf.load(path))


def validate_llamafactory(cfg: dict, root: Path, gpu_count: int) -> None:
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams.parser import get_train_args

    _check_numbers(cfg)
    cfg = dict(cfg)
    ds_path = cfg.pop("deepspeed", None)  # refused without a torchrun launch; DeepSpeed's own check covers it
    if ds_path is not None and not (root / ds_path).is_file():
        raise Invalid(f"deepspeed: {ds_path} is not a file of the export")
    with tempfile.TemporaryDirectory() as out:
        cfg["output_dir"] = out
        _model_args, data_args, _training_args, finetuning_args, _ = get_train_args(_argv(cfg))
    if "template" in cfg and cfg["template"] not in TEMPLATES:
        raise Invalid(f"template: {cfg['template']!r} is not a LLaMA-Factory template")
    attrs = get_dataset_list(data_args.dataset, str(root / data_args.dataset_dir))
    _check_dataset_info(root / data_args.dataset_dir / "dataset_info.json", data_args.dataset)
    data_stage = {"dpo": "rm", "rm": "rm"}.get(finetuning_args.stage, finetuning_args.stage)
    for name, attr in zip(data_args.dataset, attrs):
        # llamafactory/data/loader.py _get_merged_dataset: ranked data for pairwise stages only
        if (data_stage == "rm") != bool(attr.ranking):
            raise Invalid(f"dataset {name}: not applicable to stage {finetuning_args.stage} (ranking={attr.ranking})")
        if finetuning_args.stage == "kto" and not attr.kto_tag:
            raise Invalid(f"dataset {name}: KTO needs a kto_tag column")


def _check_dataset_info(path: Path, names: list[str]) -> None:
    """Keys LLaMA-Factory would ignore silently (llamafactory/data/parser.py DatasetAttr.join)."""
    info = json.loads(path.read_text(encoding="utf-8"))
    top = {"file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "formatting",
           "ranking", "subset", "split", "folder", "num_samples", "columns", "tags"}
    columns = {"prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos",
               "audios", "chosen", "rejected", "kto_tag"}
    tags = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"}
    for name in names:
        entry = info[name]
        for keys, allowed, where in ((set(entry), top, "entry"), (set(entry.get("columns", {})), columns, "columns"),
                                     (set(entry.get("tags", {})), tags, "tags")):
            unknown = keys - allowed
            if unknown:
                raise Invalid(f"dataset_info.json {name}.{where}: unknown keys {sorted(unknown)}")
        if not ({"formatting", "ranking"} & set(entry) or entry.get("columns")):
            raise Invalid(f"dataset_info.json {name}: no columns")


def validate_llamafactory_export(cfg: dict, root: Path, gpu_count: int) -> None:
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams.parser import get_infer_args

    get_infer_args(_argv(cfg))
    if "template" in cfg and cfg["template"] not in TEMPLATES:
        raise Invalid(f"template: {cfg['template']!r} is not a LLaMA-Factory template")
    if not str(cfg.get("export_dir", "")).startswith("outputs/"):
        raise Invalid(f"export_dir: {cfg.get('export_dir')!r} is not under the export's outputs/")


# ---- DeepSpeed -------------------------------------------------------------------------------------------------
def validate_deepspeed(path: Path) -> None:
    import deepspeed.runtime.constants as ds_constants
    import deepspeed.runtime.zero.config as ds_zero
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    config = json.loads(path.read_text(encoding="utf-8"))
    HfTrainerDeepSpeedConfig(dict(config))  # how the HF Trainer reads it
    DeepSpeedZeroConfig(**config["zero_optimization"])  # DeepSpeed's own model; unknown keys are an error
    known = {v for module in (ds_constants, ds_zero) for k, v in vars(module).items()
             if k.isupper() and isinstance(v, str)}
    unknown = set(config) - known
    if unknown:
        raise Invalid(f"{path.name}: unknown top-level DeepSpeed keys {sorted(unknown)}")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}"[:500])


def run(job: dict) -> dict:
    """Validate one file; the result also carries what the validator warned about (logging and warnings)."""
    path, root = Path(job["path"]), Path(job["root"])
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(job, path, root)
    logging.getLogger().removeHandler(handler)
    result["warnings"] = handler.messages + [f"{w.category.__name__}: {w.message}"[:500] for w in caught
                                             if not issubclass(w.category, (DeprecationWarning, FutureWarning))]
    return result


def _run(job: dict, path: Path, root: Path) -> dict:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):  # argparse prints its complaint, then exits
            _validate(job, path, root)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        if isinstance(e, SystemExit) and err.getvalue().strip():
            last = f"SystemExit: {err.getvalue().strip().splitlines()[-1]}"
        return {"id": job["id"], "ok": False, "error": last[:2000]}
    return {"id": job["id"], "ok": True, "error": None}


def _validate(job: dict, path: Path, root: Path) -> None:
    kind, gpus = job["validator"], int(job.get("gpu_count", 1))
    if kind == "deepspeed":
        validate_deepspeed(path)
    elif kind == "axolotl":
        validate_axolotl(_load_yaml(path), root, gpus)
    elif kind == "llamafactory":
        validate_llamafactory(_load_llamafactory_yaml(path), root, gpus)
    elif kind == "llamafactory-export":
        validate_llamafactory_export(_load_llamafactory_yaml(path), root, gpus)
    else:
        raise Invalid(f"unknown validator {kind!r}")


def main() -> None:
    _setup()
    jobs = json.load(sys.stdin)
    cwd = os.getcwd()
    results = []
    for job in jobs:
        os.chdir(job["root"])  # the trainers resolve relative paths from where they run
        try:
            results.append(run(job))
        finally:
            os.chdir(cwd)
    sys.stdout.write("\n@@RESULTS@@" + json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
