"""Writing an export: every path is a plain relative name inside the output folder, checked here; the writing
itself is ``advisor.contract.files.write_tree`` (exclusive temp files, nothing followed out of the folder, a
manifest so that ``force`` replaces only what advise wrote and keeps the user's files)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from advisor.contract.files import write_tree
from reports.export.yamltext import SAFE_NAME, ExportError


def relative_parts(rel: str) -> tuple[str, ...]:
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or any(not SAFE_NAME.fullmatch(part) and part != "README.md"
                                              for part in p.parts):
        raise ExportError(f"refusing to write {rel!r}: not a plain relative path inside the export folder")
    return p.parts


def write_files(files: Mapping[str, str], out_dir: Path, force: bool,
                inputs: Iterable[str | os.PathLike[str] | None] = ()) -> list[Path]:
    """Write ``files`` (relative path -> text) under ``out_dir``; returns the paths written, in order."""
    for rel in files:
        relative_parts(rel)
    return write_tree(out_dir, files, force, what="--out", inputs=inputs)
