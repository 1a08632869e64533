"""Rewrite the golden files from the current code: ``python -m tests.golden.regenerate`` (then read the diff)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.golden import EXAMPLES, GOLDEN_DIR, golden_name, tree, write_plan_out  # noqa: E402


def main() -> int:
    for example in EXAMPLES:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / example
            write_plan_out(example, out)
            files = tree(out)
        target = GOLDEN_DIR / example
        shutil.rmtree(target, ignore_errors=True)
        for rel, text in files.items():
            path = target / golden_name(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
        print(f"{target.relative_to(GOLDEN_DIR.parents[1])}: {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
