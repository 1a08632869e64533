"""Reading what a user gives and writing what advise makes: one layer for every file of every command.

**Reading** is bounded and strict. ``read_text`` opens a regular file (or a pipe) only, reads at most a stated
number of bytes, and decodes strict UTF-8; a device (``/dev/zero``), a folder, a symlink loop, a binary file or
an unreadable one is one ``InputFileError`` line. ``parse_yaml`` is PyYAML's safe loader with limits: nesting
depth, aliases (the "billion laughs" expansion) and scalar count are capped, a duplicate key is an error naming
its line, and ``.nan``/``.inf`` are refused. ``parse_json`` does the same for JSON (duplicate keys, ``NaN`` and
``Infinity`` refused, deep nesting reported instead of a ``RecursionError``). ``to_json`` writes strict JSON.

**Writing** never loses a file the user made. ``write_file`` creates its temporary file exclusively
(``O_EXCL | O_NOFOLLOW``, a random name, in the target's own folder), flushes it to disk and renames it over the
target; it refuses a target that is a link or not a regular file (``/dev/null`` stays a device), a target that is
one of the command's inputs, and, unless told it may, a file advise did not write. ``write_tree`` writes a folder
of outputs and records what it wrote, with each file's digest, in a manifest (``.advise-manifest.json``):
``--force`` replaces or removes only files the manifest lists and that still hold what advise wrote; anything else
under the folder (the training data, a hand-edited config) is kept, and a clash is an error before anything is
written. Every ``OSError`` (no space, permission denied, a missing folder) becomes one ``OutputError`` line and
leaves no temporary file behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from advisor.contract.errors import AdviseError

KIB, MIB = 1024, 1024 * 1024

# ---- size caps on what is read (each is far above any real file of its kind) ---------------------------------
#: an answers file is a few KB (the built-in examples are under 2 KB)
MAX_ANSWERS_BYTES = 1 * MIB
#: a catalog file: the built-in one is ~60 KB; a team's own with hundreds of entries stays well under this
MAX_CATALOG_BYTES = 8 * MIB
#: a plan.json is ~30-60 KB (its rules, estimates and fit matrix)
MAX_PLAN_BYTES = 16 * MIB
#: a transformers config.json is a few KB (the largest multimodal ones ~20 KB)
MAX_CONFIG_BYTES = 1 * MIB
#: a profile holds a few hundred entries of ~2 KB
MAX_PROFILE_BYTES = 64 * MIB

# ---- structure caps of the YAML/JSON loaders ----------------------------------------------------------------
MAX_DEPTH = 64  # nesting of mappings/lists (the deepest real file here nests 5)
MAX_ALIASES = 100  # YAML aliases (*name) per document: each may expand to a whole subtree
MAX_NODES = 200_000  # scalars + collections per document after alias expansion

#: the manifest ``write_tree`` keeps in each output folder
MANIFEST = ".advise-manifest.json"
#: the first line of an answers file advise wrote (``--save-answers`` replaces only such a file)
ANSWERS_MARK = b"# advise answers"
#: in the head of the HTML report advise wrote (``advise report -o`` replaces only such a file)
REPORT_MARK = b'<meta name="generator" content="advise'
#: in the head of a profile advise wrote
PROFILE_MARK = b'"schema_version"'


class InputFileError(AdviseError):
    """A file the user gave cannot be read or parsed; one line naming the file (and the line)."""


class OutputError(AdviseError):
    """An output cannot be written (refused to protect a file, or the system said no); one line."""


# ---- reading ------------------------------------------------------------------------------------------------
def _size_text(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n / KIB:g} KiB"


def os_reason(e: OSError) -> str:
    """A few words for an OSError, for one error line."""
    reasons = {
        errno.ENOENT: "does not exist",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ELOOP: "is a symlink loop",
        errno.EISDIR: "is a folder, not a file",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "is on a read-only file system",
        errno.ENAMETOOLONG: "the name is too long",
        errno.EIO: "input/output error",
        errno.EXDEV: "crosses file systems",
    }
    return reasons.get(e.errno, (e.strerror or type(e).__name__).lower())


def read_bytes(path: str | os.PathLike[str], what: str, max_bytes: int, hint: str = "") -> bytes:
    """The bytes of a regular file (or a pipe), at most ``max_bytes``; anything else is one error line."""
    p = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise InputFileError(f"{what} {p}: {os_reason(e)}{tail}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputFileError(f"{what} {p}: is a folder, not a file{tail}")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise InputFileError(f"{what} {p}: is a device or socket, not a file{tail}")
        if stat.S_ISFIFO(mode):
            os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 * MIB, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise InputFileError(f"{what} {p}: cannot be read ({os_reason(e)}){tail}") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise InputFileError(f"{what} {p}: larger than {_size_text(max_bytes)}; is it the right file?")
    return b"".join(chunks)


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int, hint: str = "") -> str:
    """A UTF-8 text file, bounded (``read_bytes``); binary content and invalid UTF-8 are one error line."""
    data = read_bytes(path, what, max_bytes, hint)
    if b"\x00" in data:
        raise InputFileError(f"{what} {path}: a binary file (it holds NUL bytes), not text; give a UTF-8 text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputFileError(f"{what} {path}: line {line}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None


# ---- YAML and JSON with limits ------------------------------------------------------------------------------
class StructureError(ValueError):
    """A document breaks a loader limit or a strictness rule; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _line(node: Any) -> int | None:
    mark = getattr(node, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _check_expanded_size(root: Any) -> None:
    """Count the values the document holds once every alias is expanded (memoised on the node graph, so a
    "billion laughs" document is measured in microseconds, not expanded)."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        sizes[key] = 1  # a cycle (a recursive alias) counts once here and is refused below by the cap
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        sizes[key] = total
        if total > MAX_NODES:
            raise StructureError(f"more than {MAX_NODES:,} values once its aliases (*name) are expanded",
                                 _line(node))
        return total

    size(root)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (no tags beyond the core schema) with depth, alias and size limits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise StructureError(f"more than {MAX_ALIASES} aliases (*name); write the values out",
                                     _line(self.peek_event()))
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise StructureError(f"nested deeper than {MAX_DEPTH} levels", _line(self.peek_event()))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return self.construct_document(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, int | None] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise StructureError("a mapping key must be a plain value", _line(key_node)) from None
                if key in seen:
                    first = seen[key]
                    raise StructureError(f"duplicate key {json.dumps(key, default=str)}"
                                         + (f" (first on line {first})" if first else "")
                                         + "; keep one", _line(key_node))
                seen[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node: Any) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise StructureError(f"{node.value!r} is not a finite number", _line(node))
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_yaml_float)


def parse_yaml(text: str, source: str) -> Any:
    """One YAML (or JSON) document, under the loader's limits; errors are one ``InputFileError`` line."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except StructureError as e:
        where = f"line {e.line}: " if e.line else ""
        raise InputFileError(f"{source}: {where}{e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputFileError(f"{source}: {where}not valid YAML/JSON ({problem})") from None
    except RecursionError:
        raise InputFileError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise StructureError(f"duplicate key {json.dumps(k)}; keep one")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise StructureError(f"{name} is not a JSON number; give a finite number")


def _depth_ok(text: str) -> bool:
    """Whether brackets nest at most ``MAX_DEPTH`` deep (strings skipped), before json recurses into them."""
    depth, in_str, esc = 0, False, False
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def parse_json(text: str, source: str) -> Any:
    """Strict JSON: duplicate keys, ``NaN``/``Infinity`` and deep nesting are one ``InputFileError`` line."""
    if not _depth_ok(text):
        raise InputFileError(f"{source}: nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except StructureError as e:
        raise InputFileError(f"{source}: {e}") from None
    except json.JSONDecodeError as e:
        raise InputFileError(f"{source}: line {e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise InputFileError(f"{source}: nested too deeply") from None


def to_json(data: Any, indent: int | None = 2) -> str:
    """Strict, standard JSON text (``NaN``/``Infinity`` are a bug here, not an output)."""
    return json.dumps(data, indent=indent, allow_nan=False) + "\n"


# ---- writing ------------------------------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_input(target: Path, inputs: Iterable[str | os.PathLike[str] | None]) -> Path | None:
    for i in inputs:
        if i is not None and _same_file(target, Path(i)):
            return Path(i)
    return None


def check_target(path: Path, what: str, inputs: Iterable[str | os.PathLike[str] | None] = (),
                 may_replace: Callable[[Path], bool] | None = None) -> None:
    """Refuse, before anything is written, a target that is a link, not a regular file, one of the inputs, or
    (with ``may_replace``) a file advise did not write. The folder must exist."""
    parent = path.parent
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{what} {path}: {os_reason(e)}") from None
    if st is None:
        if not parent.is_dir():
            reason = "is a file, not a folder" if parent.exists() else "does not exist"
            raise OutputError(f"{what} {path}: the folder {parent} {reason}; create it or pick another path")
        return
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"{what} {path}: is a symbolic link; advise does not write through links (remove it "
                          "or pick another path)")
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, pipe or socket"
        raise OutputError(f"{what} {path}: is {kind}, not a regular file; pick a file path")
    hit = _is_input(path, inputs)
    if hit is not None:
        raise OutputError(f"{what} {path}: is the input {hit}; write to another path")
    if may_replace is not None and not may_replace(path):
        raise OutputError(f"{what} {path}: exists and was not written by advise; move it away or pick another "
                          "path (advise never overwrites your files)")


def probe_writable(folder: Path, what: str, shown: Path | None = None) -> None:
    """Check, before the work starts, that files can be created in ``folder`` (or, when it does not exist yet,
    in the nearest folder above it, where it will be made)."""
    shown = shown or folder
    cur = folder
    while not cur.exists():
        if cur.is_symlink():
            raise OutputError(f"{what} {shown}: {cur} is a dangling symbolic link")
        if cur.parent == cur:
            break
        cur = cur.parent
    if not cur.is_dir():
        raise OutputError(f"{what} {shown}: {cur} is a file, not a folder; pick another path")
    probe = cur / f".advise-probe.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise OutputError(f"{what} {shown}: cannot write in {cur} ({os_reason(e)}); pick another path") from None
    os.close(fd)
    os.unlink(probe)


def write_file(path: str | os.PathLike[str], text: str, what: str = "output",
               inputs: Iterable[str | os.PathLike[str] | None] = (),
               may_replace: Callable[[Path], bool] | None = None) -> Path:
    """Write ``text`` to ``path`` atomically and safely (see the module docstring); returns the path."""
    path = Path(path)
    inputs = tuple(inputs)
    check_target(path, what, inputs, may_replace)
    data = text.encode("utf-8")
    tmp = path.parent / f".{path.name[:80]}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write ({os_reason(e)})") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        check_target(path, what, inputs, may_replace)  # nothing was swapped in meanwhile
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        raise OutputError(f"{what} {path}: cannot write ({os_reason(e)}); nothing was changed") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_starts_with(marker: bytes, within: int = 4096) -> Callable[[Path], bool]:
    """A ``may_replace`` test: the file holds ``marker`` in its first ``within`` bytes (advise's own header)."""

    def test(p: Path) -> bool:
        try:
            with open(p, "rb") as f:
                return marker in f.read(within)
        except OSError:
            return False

    return test


def _plain_parts(rel: str) -> tuple[str, ...]:
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") or "\\" in part or part.startswith(".")
                                             for part in p.parts):
        raise OutputError(f"refusing to write {rel!r}: not a plain relative path inside the output folder")
    return p.parts


def _read_manifest(out_dir: Path) -> dict[str, list[str]]:
    path = out_dir / MANIFEST
    if not path.exists() and not path.is_symlink():
        return {}
    text = read_text(path, "manifest", MAX_PLAN_BYTES, "remove it if advise did not write it")
    data = parse_json(text, str(path))
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, list) and all(isinstance(d, str) for d in v)
                                              for v in files.values()):
        raise OutputError(f"{path}: not a manifest advise wrote; move it away or pick another folder")
    return files


def _write_manifest(out_dir: Path, files: Mapping[str, list[str]]) -> None:
    body = {"about": "the files advise wrote here, with their sha256; `--force` replaces only these",
            "files": dict(sorted(files.items()))}
    write_file(out_dir / MANIFEST, to_json(body), "manifest",
               may_replace=file_starts_with(b'"about": "the files advise wrote here'))


def _no_link_inside(root: Path, parts: tuple[str, ...], rel: str) -> None:
    cur = root
    for part in parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            raise OutputError(f"refusing to write {rel}: {cur} is a symbolic link out of the output folder; "
                              "remove it")
        if cur.exists() and not cur.is_dir():
            raise OutputError(f"refusing to write {rel}: {cur} is a file, not a folder; move it away")


def check_out_folder(out: Path, force: bool, what: str = "--out") -> None:
    """An output folder is new (and can be made) or, without ``force``, empty; anything else is one error line."""
    if out.is_symlink() and not out.exists():
        raise OutputError(f"{what} {out}: is a dangling symbolic link")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out}: exists and is not a folder; give a folder path")
    if out.is_dir():
        try:
            entries = [e.name for e in os.scandir(out)]
        except OSError as e:
            raise OutputError(f"{what} {out}: {os_reason(e)}") from None
        if entries and not force:
            raise OutputError(f"{what} {out}: folder is not empty; pass --force to replace what advise wrote there "
                              "(your own files are kept), or pick a new folder")
    probe_writable(out, what)


def write_tree(out_dir: str | os.PathLike[str], files: Mapping[str, str], force: bool, what: str = "--out",
               inputs: Iterable[str | os.PathLike[str] | None] = ()) -> list[Path]:
    """Write ``files`` (relative POSIX path -> text) under ``out_dir``; returns the paths written, in order.

    Without ``force`` the folder must be new or empty. With it, files listed in the folder's manifest that
    still hold what advise wrote are replaced, and those no longer produced are removed; every other file is
    kept, and one of them in the way of an output is an error before anything is written.
    """
    out = Path(out_dir)
    inputs = tuple(inputs)
    plan = {rel: _plain_parts(rel) for rel in files}
    check_out_folder(out, force, what)
    manifest = _read_manifest(out) if out.is_dir() else {}
    # every check before the first write: a refusal changes nothing
    for rel, parts in plan.items():
        target = out.joinpath(*parts)
        _no_link_inside(out, parts, rel)
        if target.is_symlink() or target.exists():
            known = manifest.get(rel)
            check_target(target, what, inputs)
            if known is None:
                raise OutputError(f"{what} {out}: {rel} exists and was not written by advise; move it away or pick "
                                  "another folder (advise never overwrites your files)")
            if digest(target.read_bytes()) not in known:
                raise OutputError(f"{what} {out}: {rel} was changed since advise wrote it; move it away (or back up "
                                  "your edits) and run again")
    stale = []
    for rel, known in manifest.items():
        if rel in plan:
            continue
        try:
            parts = _plain_parts(rel)
        except OutputError:
            continue
        target = out.joinpath(*parts)
        try:
            _no_link_inside(out, parts, rel)
        except OutputError:
            continue
        if target.is_file() and not target.is_symlink() and digest(target.read_bytes()) in known:
            stale.append(target)
    data = {rel: text.encode("utf-8") for rel, text in files.items()}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{what} {out}: cannot create the folder ({os_reason(e)})") from None
    # the manifest first lists both the old and the new digest: a run cut short leaves nothing unaccounted for
    pending = {rel: sorted(set(manifest.get(rel, [])) | {digest(b)}) for rel, b in data.items()}
    _write_manifest(out, {**manifest, **pending})
    written = []
    for rel, text in files.items():
        target = out.joinpath(*plan[rel])
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{what} {out}: cannot create {target.parent} ({os_reason(e)})") from None
        _no_link_inside(out, plan[rel], rel)
        write_file(target, text, what, inputs)
        written.append(target)
    for target in stale:
        _unlink_quietly(target)
        folder = target.parent
        while folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    _write_manifest(out, {rel: [digest(b)] for rel, b in data.items()})
    return written


class FileLock:
    """An exclusive, non-blocking lock (``flock``) on ``.<name>.lock`` beside ``path``, held while in use."""

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        self.path, self.what = Path(path), what
        self.lock_path = self.path.parent / f".{self.path.name}.lock"
        self.fd: int | None = None

    def __enter__(self) -> FileLock:
        import fcntl

        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise OutputError(f"{self.what} {self.path}: cannot create its lock file ({os_reason(e)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(f"{self.what} {self.path}: another advise run is writing it; wait for it to finish or "
                              "pick another path") from None
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock; the empty lock file stays (removing it would race)
            self.fd = None
