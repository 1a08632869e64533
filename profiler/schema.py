"""The profile file that ``advise profile`` writes, and the lookups the planner uses to read it.

A profile is one JSON document about one model on one device (``schema_version`` 1)::

    schema_version   1
    created          when the file was first written (ISO 8601, UTC); entries carry no timestamps
    device           kind (cuda | cpu), name (torch.cuda.get_device_name, or the CPU model), total_memory_bytes
                     (cudaDeviceProp.totalGlobalMem, or MemTotal), driver_version (NVML), cuda_version
                     (torch.version.cuda), compute_capability, cpu_count, catalog_gpu (the catalog GPU the name
                     maps to, or --gpu) and peak_bf16_dense_tflops (its datasheet peak, the MFU denominator)
    versions         python, torch, transformers, peft, bitsandbytes, accelerate, advise
    model            name, hub_id, model_type, num_layers, params_total, config_sha256 (of the config.json
                     fields, sorted-key JSON)
    notes            what the numbers mean on this device (e.g. CPU: indicative timings, memory = peak RSS)
    entries          one per method x shape x depth x source, sorted (technique, seq_len, micro_batch, layers,
                     source); see ``Entry``
    max_batch        one per method x seq_len x source when --find-max-batch ran; see ``MaxBatch``

An entry is ``source: measured`` (a child process built the model with ``layers`` decoder layers and ran
training steps) or ``source: extrapolated`` (full depth, linear in depth from measured K- and 2K-layer
entries; ``extrapolation_error`` holds extrapolated/measured - 1 per metric where a measured full-depth
entry with the same settings exists). ``status`` is ``ok``, ``oom`` (``fits: false``, ``oom`` says in which
phase and how many bytes were asked for) or ``error`` (the child failed for another reason; a rerun retries
it). Numbers carry their unit in the field name; floats are rounded to 6 significant digits.

Memory fields: ``peak_allocated_bytes`` / ``peak_reserved_bytes`` are the CUDA caching allocator's peaks over
the timed steps (``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``, null on CPU);
``device_peak_bytes`` is what the process held on the device at that peak, CUDA context included (NVML),
or on CPU the process's peak resident set (VmHWM) over the timed steps; ``device_peak_source`` says which
reading it is. ``state`` is the bytes of the real tensors after the last step (weights incl. NF4 data and
quantization constants, trainable weights, gradients, optimizer states: ``profiler.tensors.state_bytes``);
``saved_for_backward_bytes`` what autograd saved in one forward pass (``record_saved_tensors``).

Nothing here imports torch: ``advise plan --profile`` reads profiles through ``load_profile`` and
``measured_entry``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from advisor.contract.errors import AdviseError
from advisor.contract.vocab import DEVICES, ENTRY_SOURCES, ENTRY_STATUS, TECHNIQUES

SCHEMA_VERSION = 1
TECHNIQUE_ORDER = tuple(TECHNIQUES)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceInfo(_Strict):
    kind: Literal[tuple(DEVICES)]  # type: ignore[valid-type]
    name: str
    total_memory_bytes: int | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    compute_capability: str | None = None
    cpu_count: int | None = None
    catalog_gpu: str | None = None
    peak_bf16_dense_tflops: float | None = None


class Versions(_Strict):
    python: str
    torch: str
    transformers: str
    peft: str | None = None
    bitsandbytes: str | None = None
    accelerate: str | None = None
    advise: str


class ModelInfo(_Strict):
    name: str
    hub_id: str | None = None
    model_type: str
    num_layers: int
    params_total: int
    config_sha256: str


class StateBytes(_Strict):
    frozen_weights_bytes: int
    trainable_weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    quant_constants_bytes: int


class OOMInfo(_Strict):
    phase: str  # build | warmup | timed | saved-tensors (or "K layers: ..." for an extrapolated entry)
    requested_bytes: int | None = None  # the allocation that failed, when the message says
    message: str


class Entry(_Strict):
    technique: str
    seq_len: int
    micro_batch: int
    layers: int  # decoder layers the figures describe (built layers, or the full depth if extrapolated)
    source: Literal[tuple(ENTRY_SOURCES)]  # type: ignore[valid-type]
    extrapolated_from_layers: list[int] | None = None
    status: Literal[tuple(ENTRY_STATUS)]  # type: ignore[valid-type]
    fits: bool | None = None  # None: unknown (error)
    # settings: an entry is reused on resume only when all of these match
    setup: dict[str, Any]  # the TrainingSetup fields (estimators.setup)
    steps: int
    warmup_steps: int
    memory_limit_bytes: int | None = None
    # what was measured
    tokens_per_step: int
    trainable_params: int | None = None
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    device_peak_bytes: int | None = None
    device_peak_source: str | None = None
    device_baseline_bytes: int | None = None  # CUDA: context before the model; CPU: RSS before the model
    state: StateBytes | None = None
    saved_for_backward_bytes: int | None = None
    step_time_s: float | None = None  # median of the timed steps
    step_time_min_s: float | None = None
    step_time_max_s: float | None = None
    tokens_per_s: float | None = None
    flops_per_token: float | None = None  # estimators.throughput.flops_per_token at this depth
    achieved_tflops: float | None = None
    mfu: float | None = None  # achieved / catalog bf16 dense peak (CUDA only)
    oom: OOMInfo | None = None
    error: str | None = None
    error_log_tail: str | None = None
    extrapolation_error: dict[str, float] | None = None
    wall_s: float | None = None  # the child's whole run: build + warm-up + timed steps

    @property
    def key(self) -> tuple[str, int, int, int, str]:
        return (self.technique, self.seq_len, self.micro_batch, self.layers, self.source)

    @property
    def settings(self) -> tuple[Any, ...]:
        return (json.dumps(self.setup, sort_keys=True), self.steps, self.warmup_steps, self.memory_limit_bytes)


class MaxBatch(_Strict):
    technique: str
    seq_len: int
    layers: int
    source: Literal[tuple(ENTRY_SOURCES)]  # type: ignore[valid-type]
    max_micro_batch: int  # 0: not even the smallest probe fits
    first_failing_micro_batch: int | None = None  # None: no probe failed up to limit_micro_batch
    limit_micro_batch: int
    probes: list[int]  # micro-batches tried, in order
    error: str | None = None  # the search stopped on a failed measurement

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.technique, self.seq_len, self.source)


class Profile(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    created: str
    device: DeviceInfo
    versions: Versions
    model: ModelInfo
    notes: list[str] = []
    entries: list[Entry] = []
    max_batch: list[MaxBatch] = []

    def entry(self, key: tuple[str, int, int, int, str]) -> Entry | None:
        return next((e for e in self.entries if e.key == key), None)

    def upsert(self, entry: Entry) -> None:
        """Add ``entry``, replacing one with the same key; keep the stable order."""
        self.entries = sorted([e for e in self.entries if e.key != entry.key] + [entry], key=_entry_order)

    def upsert_max_batch(self, record: MaxBatch) -> None:
        self.max_batch = sorted([m for m in self.max_batch if m.key != record.key] + [record],
                                key=lambda m: (_technique_rank(m.technique), m.seq_len, m.source))


def _technique_rank(t: str) -> int:
    return TECHNIQUE_ORDER.index(t) if t in TECHNIQUE_ORDER else len(TECHNIQUE_ORDER)


def _entry_order(e: Entry) -> tuple[Any, ...]:
    return (_technique_rank(e.technique), e.technique, e.seq_len, e.micro_batch, e.layers, e.source)


# ---- files --------------------------------------------------------------------------------------
def profile_json(profile: Profile) -> str:
    """The file's text: fields in schema order, entries sorted, so equal profiles are equal bytes."""
    return json.dumps(profile.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"


def write_profile(profile: Profile, path: str | os.PathLike) -> None:
    """Write atomically and safely (``advisor.contract.files.write_file``): a reader, or a crash at any moment,
    sees the old file or the new one, never a partial one; only a profile advise wrote is replaced."""
    from advisor.contract.files import PROFILE_MARK, file_starts_with, write_file

    write_file(path, profile_json(profile), "--out", may_replace=file_starts_with(PROFILE_MARK))


def load_profile(path: str | os.PathLike) -> Profile:
    """Read and validate a profile; a bad or missing file is one ``AdviseError`` line naming the field."""
    from advisor.contract.files import MAX_PROFILE_BYTES, parse_json, read_text

    path = Path(path)
    text = read_text(path, "profile", MAX_PROFILE_BYTES, f"run `advise profile --out {path}` first")
    data = parse_json(text, f"profile {path}")
    if not isinstance(data, dict):
        raise AdviseError(f"profile {path}: expected a JSON object with schema_version, device, model, entries")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise AdviseError(f"profile {path}: schema_version is {version!r}; this advise reads version "
                          f"{SCHEMA_VERSION} (profile again with this version)")
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{loc}: {msg}")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise AdviseError(f"profile {path}: {problems[0]}{more}") from None


# ---- lookups for the planner --------------------------------------------------------------------
def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def profile_covers_model(profile: Profile, model_name_or_hub_id: str) -> bool:
    """Whether the profile is of the model named (catalog name, Hub id or the path it was given as)."""
    want = _norm(model_name_or_hub_id)
    return want in {_norm(n) for n in (profile.model.name, profile.model.hub_id) if n}


def measured_entry(
    profile: Profile,
    model_name_or_hub_id: str,
    technique: str,
    seq_len: int,
    micro_batch: int,
    *,
    setup: Any = None,
) -> Entry | None:
    """The profile's full-depth entry for this model, technique and shape, or None.

    A measured entry wins over an extrapolated one (check ``entry.source``). Failed measurements
    (``status: error``) are never returned; an OOM is (``fits: false``). With ``setup`` (an
    ``estimators.setup.TrainingSetup``) every other setup field (precision, optimizer, checkpointing,
    LoRA rank and targets, ...) must match too.
    """
    if not profile_covers_model(profile, model_name_or_hub_id):
        return None
    want_setup = None
    if setup is not None:
        from dataclasses import asdict

        want_setup = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(setup).items() if k != "notes"}
    found = [
        e for e in profile.entries
        if e.technique == technique and e.seq_len == seq_len and e.micro_batch == micro_batch
        and e.layers == profile.model.num_layers and e.status != "error"
        and (want_setup is None or _same_setup(e.setup, want_setup))
    ]
    found.sort(key=lambda e: e.source != "measured")
    return found[0] if found else None


def _same_setup(have: dict[str, Any], want: dict[str, Any]) -> bool:
    # gradient accumulation repeats the same micro-step: it changes neither its peak nor its tokens/s
    ignore = {"seq_len", "micro_batch", "technique", "grad_accum"}
    return {k: v for k, v in have.items() if k not in ignore} == {k: v for k, v in want.items() if k not in ignore}
