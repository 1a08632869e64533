"""Shared fixtures. Tests never touch the network: the Hub is switched off for the whole session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def catalog():
    from estimators.catalog import Catalog

    return Catalog.load()


@pytest.fixture(scope="session")
def torch_cpu():
    """torch, single-threaded and deterministic, for tests that build real tiny models."""
    import warnings

    import torch

    warnings.filterwarnings("ignore", message=".*Paged optimizers are not supported on CPU.*")
    torch.manual_seed(0)
    return torch
