"""Estimators: pure functions from (model, method, hardware, shape) to frozen breakdowns.

Catalog data (models, GPUs, prices) lives in ``estimators/data`` as YAML/JSON with sources and dates.
Nothing here imports torch at module load; the few functions that build models on the meta device
(``estimators.anatomy.compute_anatomy``) import it inside the call.
"""
