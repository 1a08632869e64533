"""Count the bytes of real tensors: model states and what autograd saves for backward.

Used by the estimator tests (exactness on CPU) and by the profiler to split a measured peak into parts.
Everything counts unique storages, so views and tied weights are counted once.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def _storage_key(t: Any) -> tuple[int, str]:
    return t.untyped_storage().data_ptr(), str(t.device)


def _quant_state_tensors(p: Any) -> Iterator[Any]:
    """bitsandbytes 4-bit quantization constants hanging off a Params4bit."""
    import torch

    qs = getattr(p, "quant_state", None)
    if qs is None:
        return
    stack = [qs]
    while stack:
        s = stack.pop()
        for v in vars(s).values():
            if isinstance(v, torch.Tensor):
                yield v
            elif hasattr(v, "absmax") and hasattr(v, "code"):  # nested QuantState
                stack.append(v)


@dataclass(frozen=True)
class StateBytes:
    """Bytes of a model's training state, measured from the tensors themselves."""

    frozen_weights_bytes: int  # parameters without grad (incl. 4-bit data and quantization constants)
    trainable_weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    quant_constants_bytes: int  # part of frozen_weights_bytes


def state_bytes(model: Any, optimizer: Any | None = None) -> StateBytes:
    import torch

    seen: set[tuple[int, str]] = set()
    frozen = trainable = grads = quant = 0
    for p in model.parameters():
        key = _storage_key(p)
        if key in seen:
            continue
        seen.add(key)
        nbytes = p.untyped_storage().nbytes()
        if p.requires_grad:
            trainable += nbytes
        else:
            frozen += nbytes
        for q in _quant_state_tensors(p):
            qk = _storage_key(q)
            if qk not in seen:
                seen.add(qk)
                quant += q.untyped_storage().nbytes()
        if p.grad is not None:
            gk = _storage_key(p.grad)
            if gk not in seen:
                seen.add(gk)
                grads += p.grad.untyped_storage().nbytes()
    opt = 0
    if optimizer is not None:
        for state in optimizer.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor):
                    k = _storage_key(v)
                    if k not in seen:
                        seen.add(k)
                        opt += v.untyped_storage().nbytes()
    return StateBytes(frozen + quant, trainable, grads, opt, quant)


class _Held:
    """What the pack hook hands autograd: alive exactly as long as the graph node that saved it."""

    __slots__ = ("__weakref__", "t", "where")

    def __init__(self, t: Any, where: str) -> None:
        self.t, self.where = t, where


@dataclass
class SavedTensors:
    """Saved-for-backward tensors recorded during one forward pass."""

    _held: list = field(default_factory=list)

    def alive(self) -> list[tuple[str, Any]]:
        return [(h.where, h.t) for h in (r() for r in self._held) if h is not None]

    def bytes_by_where(self) -> dict[str, int]:
        """Unique-storage bytes of tensors still saved (graph alive), keyed by who saved them."""
        out: dict[str, int] = {}
        seen: set[tuple[int, str]] = set()
        for where, t in self.alive():
            k = _storage_key(t)
            if k in seen:
                continue
            seen.add(k)
            out[where] = out.get(where, 0) + t.untyped_storage().nbytes()
        return out

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_where().values())


@contextlib.contextmanager
def record_saved_tensors(model: Any) -> Iterator[SavedTensors]:
    """Record what autograd saves during the forward passes inside the block.

    Parameters (and their storages) are excluded. Tensors saved inside the model are tagged ``"model"``;
    the rest (the loss computed after the model's last module) ``"loss"``. Read the result before
    ``backward()``: a tensor counts only while the graph node that saved it is alive.
    """
    import torch

    params = {_storage_key(p) for p in model.parameters()}
    rec = SavedTensors()
    depth = [0]
    after_head = [False]

    def enter(*_a: Any, **_k: Any) -> None:
        if depth[0] == 0:
            after_head[0] = False
        depth[0] += 1

    def leave(*_a: Any, **_k: Any) -> None:
        depth[0] -= 1

    handles = [model.register_forward_pre_hook(enter), model.register_forward_hook(leave)]
    # the causal-LM loss is computed inside the top module's forward, after its lm_head: tag it by
    # watching the lm_head's own hooks
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out_emb is not None:
        handles.append(out_emb.register_forward_hook(lambda *_: after_head.__setitem__(0, True)))

    def pack(t: Any) -> Any:
        if _storage_key(t) in params:
            return t
        where = "loss" if after_head[0] or depth[0] == 0 else "model"
        h = _Held(t, where)
        rec._held.append(weakref.ref(h))
        return h

    def unpack(h: Any) -> Any:
        return h.t if isinstance(h, _Held) else h

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield rec
    finally:
        for hd in handles:
            hd.remove()
