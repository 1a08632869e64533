"""Precompute the anatomy of every catalog model into ``estimators/data/models_anatomy.json``.

    python -m estimators.build_catalog          # rewrite the file
    python -m estimators.build_catalog --check  # exit 1 if the file is stale

Each model is instantiated on the meta device from its config.json fields (``models.yaml``) and its
parameters counted (``estimators.anatomy.compute_anatomy``). The config is stored beside the anatomy so
that a stale entry (config edited, file not rebuilt) is detected and recomputed at lookup.
"""

from __future__ import annotations

import json
import sys

from estimators.anatomy import compute_anatomy
from estimators.catalog import ANATOMY_FILE, DATA_DIR, load_yaml


def build() -> str:
    models = load_yaml(DATA_DIR / "models.yaml")["models"]
    out = {}
    for m in models:
        anatomy = compute_anatomy(m["config"])
        out[m["name"]] = {"config": m["config"], "anatomy": anatomy.to_dict()}
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = build()
    if "--check" in argv:
        current = ANATOMY_FILE.read_text() if ANATOMY_FILE.exists() else ""
        if current != text:
            print(f"{ANATOMY_FILE} is stale: run python -m estimators.build_catalog", file=sys.stderr)
            return 1
        return 0
    ANATOMY_FILE.write_text(text)
    print(f"wrote {ANATOMY_FILE} ({len(json.loads(text))} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
