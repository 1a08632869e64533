"""The catalogs: models, GPUs (with hourly prices), hosted API prices and hosted fine-tuning prices.

Data lives in ``estimators/data/*.yaml`` with a source and a date per entry; users add or override entries
with their own YAML files of the same shape (``advise --catalog my.yaml ...``). Every file is validated
(pydantic); all problems are reported together, each naming the file, the entry and the field.

Lookups are case-insensitive, accept aliases (and Hub ids for models) and fail with a did-you-mean.
Nothing here imports torch: catalog models carry their anatomy precomputed in ``models_anatomy.json``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from advisor.contract.errors import AdviseError, UnknownNameError
from advisor.contract.text import PLAIN_PATTERN
from estimators.anatomy import Anatomy
from estimators.errors import CatalogError

DATA_DIR = Path(__file__).parent / "data"
ANATOMY_FILE = DATA_DIR / "models_anatomy.json"
MIB = 1 << 20
#: where CUDA's usable total is not recorded: nvidia-smi total minus the largest driver reserve seen
#: across the catalog's recorded cards (354-762 MiB; gpus.yaml cuda_total_memory_bytes)
DEFAULT_DRIVER_RESERVE_BYTES = 768 * MIB


# ---- schema -------------------------------------------------------------------------------------
def _date_to_str(v: Any) -> Any:
    return v.isoformat() if isinstance(v, _dt.date) else v


#: a catalog name, alias or Hub id: these reach configs, shell lines in the READMEs and the terminal
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+@:/-]{0,159}$"
CatalogName = Annotated[str, Field(strict=True, pattern=ID_PATTERN)]
#: free text (descriptions, sources, notes): no control characters or bidi overrides
Text = Annotated[str, Field(strict=True, max_length=2000, pattern=PLAIN_PATTERN)]


class _Entry(BaseModel):
    # strict: a number is not a name, `true` is not a count; nan and inf are no price or size
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


#: an ISO date (YYYY-MM-DD); YAML's date values are accepted and kept as text
IsoDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class PriceIn(_Entry):
    provider: Text
    usd_per_hour: float = Field(gt=0, le=10_000)
    offer: Text = ""
    #: hourly (the default) or per_second; usd_per_hour is the per-hour equivalent either way
    billing: Literal["hourly", "per_second"] = "hourly"
    #: a serverless offer that costs nothing while idle (it serves bursts; always-on serving and training use the
    #: other rows)
    scale_to_zero: bool = False
    source: Text
    date: IsoDate
    date_note: Text | None = None

    _d = field_validator("date", mode="before")(_date_to_str)


class GPUIn(_Entry):
    name: CatalogName
    aliases: list[CatalogName] = []
    description: Text = ""
    nvidia_smi_name: Text | None = None
    architecture: Text = "unknown"
    compute_capability: Text | None = Field(default=None, pattern=r"^[0-9]{1,2}\.[0-9]{1,2}$")
    # sizes: > 0 and below 16 TiB (no card comes near; a typo in a unit does)
    memory_gb: float | None = Field(default=None, gt=0, le=16_384)
    memory_mib: int | None = Field(default=None, gt=0, le=16 * 1024 * 1024)
    memory_bytes: int | None = Field(default=None, gt=0, le=1 << 44)
    memory_mib_source: Text | None = None
    cuda_total_memory_bytes: int | None = Field(default=None, gt=0, le=1 << 44)
    cuda_total_memory_source: Text | None = None
    bf16_dense_tflops: float = Field(gt=0, le=1e6)
    bf16_sparse_tflops: float | None = Field(default=None, gt=0, le=1e6)
    bf16_fp16acc_dense_tflops: float | None = Field(default=None, gt=0, le=1e6)
    memory_bandwidth_tb_s: float = Field(gt=0, le=1e4)
    #: GPU-to-GPU link; a card without one is taken as PCIe Gen4 x16 (32 GB/s per direction)
    interconnect: Text | None = None
    interconnect_gb_s: float | None = Field(default=None, gt=0, le=1e5)
    interconnect_source: Text | None = None
    spec_source: Text
    spec_notes: Text | None = None
    prices: list[PriceIn] = []

    @model_validator(mode="after")
    def _memory(self) -> GPUIn:
        if self.memory_bytes is None and self.memory_mib is None and self.memory_gb is None:
            raise ValueError("give memory_bytes, memory_mib or memory_gb")
        return self


TokenPrice = Annotated[float, Field(ge=0, le=1e6)]


class ApiIn(_Entry):
    name: CatalogName
    aliases: list[CatalogName] = []
    provider: Text
    tier: Text | None = None
    usd_per_million_input_tokens: TokenPrice
    usd_per_million_output_tokens: TokenPrice
    #: prompt caching: writing a cached prefix and reading it back (null: the vendor offers no caching)
    usd_per_million_cache_write_tokens: TokenPrice | None = None
    usd_per_million_cache_read_tokens: TokenPrice | None = None
    cache_min_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    cache_ttl_minutes: float | None = Field(default=None, gt=0, le=100_000)
    #: the Batch API's share off list price (0.5: half price); null: no batch API
    batch_discount: float | None = Field(default=None, ge=0, lt=1)
    open_to_new_users: bool = True
    retires: IsoDate | None = None
    source: Text
    date: IsoDate
    date_note: Text | None = None
    status: Text | None = None

    _d = field_validator("date", "retires", mode="before")(_date_to_str)


class OpenModelInferenceIn(_Entry):
    """Serverless per-token inference of an open model at a hosted provider."""

    name: CatalogName
    provider: Text
    model: CatalogName  # the Hugging Face hub id served
    params_b: float = Field(gt=0, le=1e5)
    usd_per_million_input_tokens: TokenPrice
    usd_per_million_output_tokens: TokenPrice
    #: the provider serves a customer's LoRA adapter of this base at these per-token prices
    lora_serverless: bool = False
    source: Text
    date: IsoDate
    date_note: Text | None = None

    _d = field_validator("date", mode="before")(_date_to_str)


class InferencePriceIn(_Entry):
    usd_per_million_input_tokens: float | None = Field(default=None, ge=0, le=1e6)
    usd_per_million_output_tokens: float | None = Field(default=None, ge=0, le=1e6)


class FineTuningIn(_Entry):
    name: CatalogName
    provider: Text
    base_model: CatalogName | None = None
    min_params_b: float | None = Field(default=None, ge=0, le=1e5)
    max_params_b: float | None = Field(default=None, ge=0, le=1e5)
    technique: Text | None = None
    methods: list[Text]
    usd_per_million_training_tokens: float = Field(gt=0, le=1e6)
    billed_tokens: Text
    inference: InferencePriceIn | None = None
    inference_note: Text | None = None
    column_mapping_verified: bool | None = None
    #: the open base models (hub ids) the provider fine-tunes under this offer
    base_models: list[CatalogName] = []
    open_to_new_users: bool = True
    retires: IsoDate | None = None
    source: Text
    date: IsoDate
    date_note: Text | None = None
    status: Text | None = None

    _d = field_validator("date", "retires", mode="before")(_date_to_str)


#: config.json keys an instruct checkpoint may change from its base's without changing a parameter's shape:
#: token ids, the stored dtype and the context limits (the anatomy of the base is its anatomy)
CHECKPOINT_CONFIG_KEYS = frozenset({"eos_token_id", "bos_token_id", "pad_token_id", "torch_dtype",
                                    "max_position_embeddings", "max_window_layers", "rms_norm_eps"})
#: ISO 639-1 language code
LanguageCode = Annotated[str, Field(strict=True, pattern=r"^[a-z]{2}$")]


class CheckpointIn(_Entry):
    """The publisher's instruct (chat-tuned) checkpoint of a catalog base: the same architecture and weights'
    shapes, trained further to follow instructions in the family's chat format."""

    name: CatalogName
    hub_id: CatalogName
    aliases: list[CatalogName] = []
    source: Text
    #: the instruct file's config.json differs from the base's only in these keys (CHECKPOINT_CONFIG_KEYS)
    config_changes: dict[str, Any] = {}

    @field_validator("config_changes")
    @classmethod
    def _shape_neutral(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(set(v) - CHECKPOINT_CONFIG_KEYS)
        if bad:
            raise ValueError(f"{', '.join(bad)} would change the architecture: an instruct checkpoint may change "
                             f"only {', '.join(sorted(CHECKPOINT_CONFIG_KEYS))}; add it as a model of its own")
        return v


class ModelIn(_Entry):
    name: CatalogName
    hub_id: CatalogName | None = None
    family: CatalogName | None = None
    aliases: list[CatalogName] = []
    source: Text
    retrieved: str | None = None
    published_params: int | None = Field(default=None, gt=0, le=10**14)
    published_params_source: Text | None = None
    config: dict[str, Any]
    #: what these weights are: a pretrained base, or an instruct (chat-tuned) checkpoint
    checkpoint: Literal["base", "instruct"] = "base"
    #: the publisher's instruct checkpoint of this base (listed as a model of its own, named with the family's
    #: suffix: -instruct, -it)
    instruct: CheckpointIn | None = None
    #: the languages the publisher says the model was trained for / supports (ISO 639-1), and where it says so
    languages: list[LanguageCode] = []
    languages_source: Text | None = None
    #: set on the instruct entries the catalog derives from ``instruct``: the base they were tuned from
    base_checkpoint: CatalogName | None = None
    #: the Hub repo is gated: its licence must be accepted on the model page, and downloads need a token
    gated: bool = False

    _d = field_validator("retrieved", mode="before")(_date_to_str)

    @model_validator(mode="after")
    def _checkpoints(self) -> ModelIn:
        if self.instruct is not None and self.checkpoint != "base":
            raise ValueError("instruct: only a base checkpoint has an instruct sibling")
        if self.languages and not self.languages_source:
            raise ValueError("languages needs languages_source (where the publisher lists them)")
        return self

    def instruct_entry(self) -> ModelIn:
        """The instruct sibling as a model entry of its own (same family, parameters and languages)."""
        i = self.instruct
        assert i is not None
        changed = ", ".join(f"{k}" for k in sorted(i.config_changes))
        return ModelIn(
            name=i.name, hub_id=i.hub_id, family=self.family, aliases=list(i.aliases),
            source=f"{i.source} Instruct checkpoint of {self.name}: its config" +
                   (f" with {changed} as the instruct file has them" if changed else "") + ".",
            retrieved=self.retrieved, published_params=self.published_params,
            published_params_source=self.published_params_source,
            config={**self.config, **i.config_changes}, checkpoint="instruct", languages=list(self.languages),
            languages_source=self.languages_source, base_checkpoint=self.name, gated=self.gated)

    @field_validator("config")
    @classmethod
    def _has_type(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "model_type" not in v:
            raise ValueError("config needs a model_type (copy the model's config.json)")
        return v


_SECTIONS: dict[str, type[_Entry]] = {
    "models": ModelIn,
    "gpus": GPUIn,
    "apis": ApiIn,
    "hosted_finetuning": FineTuningIn,
    "open_model_inference": OpenModelInferenceIn,
}


# ---- public records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Price:
    provider: str
    usd_per_hour: float
    offer: str
    source: str
    date: str
    billing: str = "hourly"
    scale_to_zero: bool = False


@dataclass(frozen=True)
class GPU:
    name: str
    aliases: tuple[str, ...]
    description: str
    architecture: str
    memory_bytes: int  # nvidia-smi total
    usable_memory_bytes: int  # what CUDA lets a process use (cudaDeviceProp.totalGlobalMem)
    usable_memory_measured: bool  # False: memory_bytes minus DEFAULT_DRIVER_RESERVE_BYTES
    bf16_dense_tflops: float
    memory_bandwidth_tb_s: float
    prices: tuple[Price, ...]
    spec_source: str
    spec_notes: str | None
    compute_capability: str | None = None
    interconnect: str = "PCIe Gen4 x16"
    interconnect_gb_s: float = 32.0  # per GPU and direction (gpus.yaml)

    @property
    def trains_bf16(self) -> bool:
        """bf16 tensor cores (compute capability 8.0, Ampere, and later): what torch.cuda.is_bf16_supported()
        checks and what transformers' ``bf16=True`` needs (TrainingArguments refuses it on a T4). Unknown: True."""
        if not self.compute_capability:
            return True
        major, _, minor = self.compute_capability.partition(".")
        return (int(major), int(minor or 0)) >= (8, 0)

    @property
    def cheapest_price(self) -> Price | None:
        """The cheapest offer a training run or an always-on server can hold (serverless rows excluded)."""
        return min((p for p in self.prices if not p.scale_to_zero),
                   key=lambda p: (p.usd_per_hour, p.provider, p.offer), default=None)

    @property
    def cheapest_serverless_price(self) -> Price | None:
        """The cheapest scale-to-zero offer (billed only while it serves), if any."""
        return min((p for p in self.prices if p.scale_to_zero),
                   key=lambda p: (p.usd_per_hour, p.provider, p.offer), default=None)


@dataclass(frozen=True)
class ApiPrice:
    name: str
    aliases: tuple[str, ...]
    provider: str
    usd_per_million_input_tokens: float
    usd_per_million_output_tokens: float
    source: str
    date: str
    status: str | None
    tier: str | None = None
    usd_per_million_cache_write_tokens: float | None = None
    usd_per_million_cache_read_tokens: float | None = None
    cache_min_tokens: int | None = None
    cache_ttl_minutes: float | None = None
    batch_discount: float | None = None
    open_to_new_users: bool = True
    retires: str | None = None

    @property
    def caches(self) -> bool:
        return self.usd_per_million_cache_read_tokens is not None


@dataclass(frozen=True)
class OpenModelInference:
    name: str
    provider: str
    model: str
    params_b: float
    usd_per_million_input_tokens: float
    usd_per_million_output_tokens: float
    lora_serverless: bool
    source: str
    date: str


@dataclass(frozen=True)
class FineTuningOffer:
    name: str
    provider: str
    base_model: str | None
    min_params_b: float | None
    max_params_b: float | None
    technique: str | None
    methods: tuple[str, ...]
    usd_per_million_training_tokens: float
    billed_tokens: str
    inference_usd_per_million_input_tokens: float | None
    inference_usd_per_million_output_tokens: float | None
    source: str
    date: str
    status: str | None
    base_models: tuple[str, ...] = ()
    open_to_new_users: bool = True
    retires: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model to plan for: catalog entry, local config, or Hub config."""

    name: str
    hub_id: str | None
    family: str
    config: Mapping[str, Any]
    anatomy: Anatomy
    source: str
    published_params: int | None = None
    #: "base" (pretrained), "instruct" (chat-tuned), or None (a local or Hub config: not known)
    checkpoint: str | None = None
    #: the catalog's instruct sibling of a base / the base an instruct checkpoint was tuned from
    instruct_name: str | None = None
    base_name: str | None = None
    languages: tuple[str, ...] = ()
    languages_source: str | None = None
    gated: bool = False


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _format_errors(path: str, section: str, idx: int, name: str, err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(entry)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        out.append(f"{path}: {section}[{idx}] '{name}': {loc}: {msg}")
    return out


def load_yaml(path: Path) -> Any:
    """A catalog file, bounded and strict (``advisor.contract.files``: size cap, no duplicate keys, no nan)."""
    from advisor.contract.files import (
        MAX_CATALOG_BYTES,
        InputFileError,
        parse_yaml,
        read_text,
    )

    try:
        return parse_yaml(read_text(path, "catalog file", MAX_CATALOG_BYTES), str(path))
    except InputFileError as e:
        raise CatalogError(str(e)) from None


def _merge_gpu(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **{k: v for k, v in new.items() if k != "prices"}}
    prices = {(p.get("provider"), p.get("offer", "")): p for p in base.get("prices", [])}
    for p in new.get("prices", []) or []:
        prices[(p.get("provider"), p.get("offer", ""))] = p
    merged["prices"] = list(prices.values())
    return merged


class Catalog:
    """All catalog data, validated; build with ``Catalog.load()``."""

    def __init__(self, raw: Mapping[str, list[dict[str, Any]]], anatomies: Mapping[str, Any], files: Sequence[str]):
        self.files = tuple(files)
        errors: list[str] = []
        parsed: dict[str, list[Any]] = {k: [] for k in _SECTIONS}
        for section, schema in _SECTIONS.items():
            for i, (origin, entry) in enumerate(raw.get(section, [])):
                name = entry.get("name", "?") if isinstance(entry, dict) else "?"
                if not isinstance(entry, dict):
                    errors.append(f"{origin}: {section}[{i}]: expected a mapping of fields")
                    continue
                try:
                    parsed[section].append(schema.model_validate(entry))
                except ValidationError as e:
                    errors.extend(_format_errors(origin, section, i, name, e))
        if errors:
            raise CatalogError("; ".join(errors))

        self.gpus = tuple(self._gpu(g) for g in parsed["gpus"])
        self.apis = tuple(
            ApiPrice(a.name, tuple(a.aliases), a.provider, a.usd_per_million_input_tokens,
                     a.usd_per_million_output_tokens, a.source, a.date, a.status, a.tier,
                     a.usd_per_million_cache_write_tokens, a.usd_per_million_cache_read_tokens, a.cache_min_tokens,
                     a.cache_ttl_minutes, a.batch_discount, a.open_to_new_users, a.retires)
            for a in parsed["apis"]
        )
        self.open_inference = tuple(
            OpenModelInference(o.name, o.provider, o.model, o.params_b, o.usd_per_million_input_tokens,
                               o.usd_per_million_output_tokens, o.lora_serverless, o.source, o.date)
            for o in parsed["open_model_inference"]
        )
        self.finetuning = tuple(
            FineTuningOffer(
                f.name, f.provider, f.base_model, f.min_params_b, f.max_params_b, f.technique, tuple(f.methods),
                f.usd_per_million_training_tokens, f.billed_tokens,
                f.inference.usd_per_million_input_tokens if f.inference else None,
                f.inference.usd_per_million_output_tokens if f.inference else None,
                f.source, f.date, f.status, tuple(f.base_models), f.open_to_new_users, f.retires,
            )
            for f in parsed["hosted_finetuning"]
        )
        models: list[ModelIn] = []
        for m in parsed["models"]:
            models.append(m)
            if m.instruct is not None:
                models.append(m.instruct_entry())
        self._model_entries = tuple(models)
        self._anatomies = dict(anatomies)
        self._gpu_index = self._index((g.name, g.aliases) for g in self.gpus)
        self._api_index = self._index((a.name, a.aliases) for a in self.apis)
        self._model_index = self._index(
            (m.name, tuple(m.aliases) + ((m.hub_id,) if m.hub_id else ())) for m in self._model_entries
        )

    @staticmethod
    def _index(items: Iterable[tuple[str, Sequence[str]]]) -> dict[str, str]:
        index: dict[str, str] = {}
        for name, aliases in items:
            for key in (name, *aliases):
                k = _norm(key)
                if k in index and index[k] != name:
                    raise CatalogError(f"'{key}' names both '{index[k]}' and '{name}'; aliases must be unique")
                index[k] = name
        return index

    @staticmethod
    def _gpu(g: GPUIn) -> GPU:
        mem = g.memory_bytes or (g.memory_mib * MIB if g.memory_mib else int(g.memory_gb * 1e9))
        usable = g.cuda_total_memory_bytes or mem - DEFAULT_DRIVER_RESERVE_BYTES
        return GPU(
            name=g.name, aliases=tuple(g.aliases), description=g.description, architecture=g.architecture,
            memory_bytes=int(mem), usable_memory_bytes=int(usable),
            usable_memory_measured=g.cuda_total_memory_bytes is not None,
            bf16_dense_tflops=g.bf16_dense_tflops, memory_bandwidth_tb_s=g.memory_bandwidth_tb_s,
            prices=tuple(Price(p.provider, p.usd_per_hour, p.offer, p.source, p.date, p.billing, p.scale_to_zero)
                         for p in g.prices),
            spec_source=g.spec_source, spec_notes=g.spec_notes, compute_capability=g.compute_capability,
            interconnect=g.interconnect or "PCIe Gen4 x16 (assumed)", interconnect_gb_s=g.interconnect_gb_s or 32.0,
        )

    # ---- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, extra_files: Sequence[str | os.PathLike] = ()) -> Catalog:
        if not extra_files:
            return _default_catalog()
        return cls._load(tuple(str(p) for p in extra_files))

    @classmethod
    def _load(cls, extra_files: tuple[str, ...]) -> Catalog:
        raw: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {k: {} for k in _SECTIONS}
        builtin = [DATA_DIR / "models.yaml", DATA_DIR / "gpus.yaml", DATA_DIR / "prices.yaml"]
        for path in [*builtin, *map(Path, extra_files)]:
            doc = load_yaml(path) or {}
            if not isinstance(doc, dict):
                raise CatalogError(f"{path}: expected a mapping with some of: {', '.join(_SECTIONS)}")
            unknown = sorted(set(doc) - set(_SECTIONS))
            if unknown:
                raise CatalogError(f"{path}: unknown section(s) {', '.join(unknown)}; use {', '.join(_SECTIONS)}")
            for section, entries in doc.items():
                if not isinstance(entries, list):
                    raise CatalogError(f"{path}: {section} must be a list of entries")
                for entry in entries:
                    if not isinstance(entry, dict) or "name" not in entry:
                        raise CatalogError(f"{path}: every {section} entry needs a name")
                    if not isinstance(entry["name"], str):
                        raise CatalogError(f"{path}: {section} entry name {str(entry['name'])[:60]!r} must be text "
                                           f"(quote it: name: \"{str(entry['name'])[:60]}\")")
                    aliases = entry.get("aliases", [])
                    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                        raise CatalogError(f"{path}: {section} '{entry['name']}': aliases must be a list of text "
                                           "names (quote numbers)")
                    key = _norm(entry["name"])
                    # an override may name an entry by one of its aliases
                    for k, (_, existing) in raw[section].items():
                        if key in {_norm(a) for a in existing.get("aliases", [])}:
                            key = k
                            break
                    if key in raw[section] and section == "gpus":
                        entry = _merge_gpu(raw[section][key][1], entry)
                    elif key in raw[section]:
                        entry = {**raw[section][key][1], **entry}
                    raw[section][key] = (str(path), entry)
        anatomies = json.loads(ANATOMY_FILE.read_text()) if ANATOMY_FILE.exists() else {}
        return cls({k: list(v.values()) for k, v in raw.items()}, anatomies, [str(p) for p in extra_files])

    # ---- lookups ------------------------------------------------------------------------------
    def gpu(self, name: str) -> GPU:
        key = self._gpu_index.get(_norm(name))
        if key is None:
            raise UnknownNameError("gpu", name, [_norm(g.name) for g in self.gpus] + list(self._gpu_index))
        return next(g for g in self.gpus if g.name == key)

    def api(self, name: str) -> ApiPrice:
        key = self._api_index.get(_norm(name))
        if key is None:
            raise UnknownNameError("api model", name, list(self._api_index))
        return next(a for a in self.apis if a.name == key)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self._model_entries)

    def model(self, name: str) -> ModelSpec:
        """A catalog model by name, alias or Hub id (case-insensitive)."""
        key = self._model_index.get(_norm(name))
        if key is None:
            raise UnknownNameError("model", name, list(self._model_index))
        entry = next(m for m in self._model_entries if m.name == key)
        # an instruct sibling shares its base's anatomy (CheckpointIn.config_changes cannot change a shape)
        shaped = next((m for m in self._model_entries if m.name == entry.base_checkpoint), entry)
        anatomy_dict = self._anatomies.get(shaped.name)
        if anatomy_dict is not None and anatomy_dict.get("config") == shaped.config:
            anatomy = Anatomy.from_dict(anatomy_dict["anatomy"])
        else:  # a user-added model (or a stale precompute): count it on the meta device
            from estimators.anatomy import compute_anatomy

            anatomy = compute_anatomy(shaped.config)
        return ModelSpec(
            name=entry.name, hub_id=entry.hub_id, family=entry.family or entry.config["model_type"],
            config=entry.config, anatomy=anatomy, source=entry.source, published_params=entry.published_params,
            checkpoint=entry.checkpoint, instruct_name=entry.instruct.name if entry.instruct else None,
            base_name=entry.base_checkpoint, languages=tuple(entry.languages),
            languages_source=entry.languages_source, gated=entry.gated,
        )

    def resolve_model(self, name_or_path: str) -> ModelSpec:
        """A catalog name/Hub id, a local config.json or model directory, or (online) a Hub id."""
        key = self._model_index.get(_norm(name_or_path))
        if key is not None:
            return self.model(key)
        try:
            path = Path(name_or_path).expanduser()
            is_path = path.exists() or path.is_symlink()
        except (OSError, ValueError, RuntimeError):  # a name too long, a NUL byte, an unknown ~user
            is_path = False
        if is_path:
            return _local_model(path)
        if "/" in name_or_path and not name_or_path.startswith((".", "/", "~")) and name_or_path.count("/") == 1:
            return _hub_model(name_or_path)
        raise UnknownNameError("model", name_or_path, list(self._model_index),
                               hint="(or pass a local config.json / model directory)")


@functools.lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    return Catalog._load(())


def _local_model(path: Path) -> ModelSpec:
    from advisor.contract.files import MAX_CONFIG_BYTES, parse_json, read_text
    from estimators.anatomy import compute_anatomy

    cfg_path = path / "config.json" if path.is_dir() else path
    if path.is_dir() and not cfg_path.exists():
        raise AdviseError(f"{path}: no config.json there; pass a model directory or its config.json")
    config = parse_json(read_text(cfg_path, "model config", MAX_CONFIG_BYTES), str(cfg_path))
    if not isinstance(config, dict) or "model_type" not in config:
        raise AdviseError(f"{cfg_path}: no model_type; is it a transformers config.json?")
    # the trainers load a model from its folder (weights and tokenizer beside config.json), and the exported
    # configs run from the export folder: name the folder, absolute (a config.json path exported as
    # `base_model: config.json` loads nothing)
    folder = (path if path.is_dir() else path.parent).resolve()
    return ModelSpec(
        name=str(folder), hub_id=None, family=config["model_type"], config=config,
        anatomy=compute_anatomy(config), source=f"local file {cfg_path}",
    )


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick connect to the Hub, so that an offline machine fails at once instead of after retries."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _hub_model(hub_id: str) -> ModelSpec:
    from estimators.anatomy import compute_anatomy

    if not _hub_reachable():
        raise AdviseError(
            f"'{hub_id}' is not in the catalog and the Hugging Face Hub cannot be reached (offline?); "
            "pass a local config.json or model directory instead"
        )
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(hub_id)
    except Exception:  # offline, gated, or no such repo: transformers raises several kinds
        raise AdviseError(
            f"'{hub_id}' is not in the catalog and its config could not be fetched from the Hub "
            "(offline, gated or unknown); pass a local config.json or model directory instead"
        ) from None
    config = cfg.to_dict()
    return ModelSpec(
        name=hub_id, hub_id=hub_id, family=cfg.model_type, config=config,
        anatomy=compute_anatomy(cfg), source=f"Hugging Face Hub config of {hub_id}",
    )
