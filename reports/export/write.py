"""Writing an export: every path is a plain relative name inside the output folder, nothing follows a link out
of it, and a non-empty folder is only written into with ``force``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from reports.export.yamltext import SAFE_NAME, ExportError


def relative_parts(rel: str) -> tuple[str, ...]:
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or any(not SAFE_NAME.fullmatch(part) and part != "README.md"
                                              for part in p.parts):
        raise ExportError(f"refusing to write {rel!r}: not a plain relative path inside the export folder")
    return p.parts


def check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a directory; give a directory path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir}: directory is not empty; pass --force to overwrite, or pick a new one")


def write_files(files: Mapping[str, str], out_dir: Path, force: bool) -> list[Path]:
    """Write ``files`` (relative path -> text) under ``out_dir``; returns the paths written, in order."""
    check_out_dir(out_dir, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    written = []
    for rel, text in files.items():
        parts = relative_parts(rel)
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        parent = target.parent.resolve()
        if parent != root and root not in parent.parents:
            raise ExportError(f"refusing to write {rel}: {target.parent} leads outside {out_dir}")
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise ExportError(f"refusing to write {rel}: {target} is a link or not a file; remove it first")
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8", newline="\n")
        tmp.replace(target)
        written.append(out_dir.joinpath(*parts))
    return written
