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


def pytest_collection_modifyitems(config, items):
    """GPU tests (``-m gpu``) run where torch sees a CUDA GPU and are skipped elsewhere, whatever -m says."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")
    for item in gpu:
        item.add_marker(skip)
