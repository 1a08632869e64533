"""The estimators' own errors (the base, ``AdviseError``, is the project's: ``advisor.contract.errors``)."""

from __future__ import annotations

from advisor.contract.errors import AdviseError


class CatalogError(AdviseError):
    """A catalog data file (built-in or the user's) is malformed."""


class EstimateError(AdviseError, ValueError):
    """Inputs to an estimator are invalid (names the field and what is allowed)."""
