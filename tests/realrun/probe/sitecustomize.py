"""A probe for tests/realrun: records what the trainer really trains on, without touching the trainer.

Python imports ``sitecustomize`` at start-up from the path; the real-run test puts this folder on PYTHONPATH and
sets ADVISE_PROBE_DIR. Every process (accelerate and torchrun start several) then wraps
``transformers.Trainer.training_step`` once transformers' trainer module is imported, and on the first step
writes ``<ADVISE_PROBE_DIR>/step-<rank>-<pid>.json``: the trainer class, the world size, the distributed layout
(FSDP version, DeepSpeed ZeRO stage and offload), the trainable parameters and the first row of every integer tensor of the batch, as ids
and as tokens. Axolotl, LLaMA-Factory and TRL all train through subclasses of that Trainer.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys

_DIR = os.environ.get("ADVISE_PROBE_DIR")
_TARGET = "transformers.trainer"


def _layout(trainer) -> dict:
    acc = getattr(trainer, "accelerator", None)
    state = getattr(acc, "state", None)
    out = {"distributed_type": str(getattr(acc, "distributed_type", None)),
           "fsdp_version": None, "zero_stage": None, "offload_param": None, "offload_optimizer": None}
    fsdp = getattr(state, "fsdp_plugin", None)
    if fsdp is not None:
        out["fsdp_version"] = getattr(fsdp, "fsdp_version", None)
    ds = getattr(state, "deepspeed_plugin", None)
    if ds is not None:
        zero = ds.deepspeed_config.get("zero_optimization", {})
        out["zero_stage"] = zero.get("stage")
        out["offload_param"] = (zero.get("offload_param") or {}).get("device")
        out["offload_optimizer"] = (zero.get("offload_optimizer") or {}).get("device")
    return out


def _record(trainer, model, inputs) -> None:
    import torch

    tok = getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
    tok = getattr(tok, "tokenizer", tok)
    rows = {}
    for key, value in (inputs or {}).items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and not value.is_floating_point():
            ids = value[0].reshape(-1).tolist() if value.dim() >= 2 else value.tolist()
            tokens = None
            if tok is not None and "input_ids" in key:
                tokens = tok.convert_ids_to_tokens([i for i in ids if i >= 0])
            rows[key] = {"ids": ids, "tokens": tokens}
    rank = int(os.environ.get("RANK", "0"))
    record = {"trainer": type(trainer).__name__, "world_size": int(trainer.args.world_size), "rank": rank,
              "layout": _layout(trainer), "batch": rows,
              # what the optimizer trains: name -> elements (ZeRO-3 partitions a parameter: ds_numel is its size)
              "trainable": {n: int(getattr(q, "ds_numel", q.numel())) for n, q in model.named_parameters()
                            if q.requires_grad},
              "special": dict(tok.get_added_vocab()) if tok is not None else {}}
    path = os.path.join(_DIR, f"step-{rank}-{os.getpid()}.json")
    with open(path + ".part", "w") as f:
        json.dump(record, f)
    os.replace(path + ".part", path)


def _patch(module) -> None:
    cls = module.Trainer
    original = cls.training_step

    def training_step(self, model, inputs, *args, **kwargs):
        if not getattr(self, "_advise_probed", False):
            self._advise_probed = True
            try:
                _record(self, model, inputs)
            except Exception as e:  # the probe must never change the run; say what failed instead
                with open(os.path.join(_DIR, f"probe-error-{os.getpid()}.txt"), "w") as f:
                    f.write(repr(e))
        return original(self, model, inputs, *args, **kwargs)

    cls.training_step = training_step


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch
        return spec


if _DIR:
    import importlib.util  # noqa: F401  (find_spec above)

    sys.meta_path.insert(0, _Finder())
