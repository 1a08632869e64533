"""One virtual environment per trainer, installed the way its export README tells users, for the real-run tests.

    python tests/realrun/venvs.py build [TRAINER ...]   # .ci/run; kept between local runs while the line is unchanged
    python tests/realrun/venvs.py line TRAINER          # the pip line a venv is built from

Each venv is ``.venv-run/<trainer>``: torch first (the CPU build, pinned by a constraints file so nothing pulls
another torch), then the README's own ``pip install`` arguments for the widest plan (QLoRA with ZeRO-3, so
bitsandbytes and deepspeed are in), with the trainer's own pins. A venv is rebuilt only when its line changes
(``advise-install.txt`` inside it records the line). About 4 minutes for the three, 8 GB.

One CPU-machine fix, not part of what users install: PyPI's torchvision and torchaudio wheels are built for
PyPI's torch, not for the CPU build installed here, and fail to load beside it ("operator torchvision::nms does
not exist"). On a GPU machine, torch from PyPI brings matching ones. Here torchvision is removed (transformers then
skips it) and torchaudio, which llamafactory.data imports unconditionally and never calls for text, is replaced by
an empty module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: where the venvs live (.gitignore'd)
VENVS = ROOT / ".venv-run"
TORCH_PIN = "torch==2.13.0"
TRAINERS = ("axolotl", "llamafactory", "trl")
MARKER = "advise-install.txt"
TORCHAUDIO_SHIM = '"""Empty stand-in: the CPU torch build here cannot load PyPI\'s torchaudio (tests/realrun/venvs.py)."""\n'


def install_args(trainer: str) -> list[str]:
    """The README's install arguments for the widest plan: QLoRA (bitsandbytes) with ZeRO-3 (deepspeed)."""
    sys.path.insert(0, str(ROOT))
    import importlib

    module = importlib.import_module(f"reports.export.{trainer}")
    return [a.strip("'") for a in module.install_packages(quantized=True, launch_kind="zero3")]


def python(trainer: str) -> Path:
    return VENVS / trainer / "bin" / "python"


def _run(*args: str | os.PathLike, **env: str) -> None:
    subprocess.run([str(a) for a in args], check=True, env={**os.environ, **env})


def _purelib(py: Path) -> Path:
    out = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def _cpu_fixes(trainer: str) -> None:
    py = python(trainer)
    probe = "import torchvision" if trainer != "llamafactory" else "import torchvision, torchaudio"
    if subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return
    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "torchvision", "torchaudio"], check=False,
                   capture_output=True)
    if trainer == "llamafactory":
        shim = _purelib(py) / "torchaudio"
        shim.mkdir(exist_ok=True)
        (shim / "__init__.py").write_text(TORCHAUDIO_SHIM)


def build(trainer: str) -> None:
    venv = VENVS / trainer
    line = " ".join([TORCH_PIN, *install_args(trainer)])
    marker = venv / MARKER
    if marker.is_file() and marker.read_text().strip() == line and python(trainer).exists():
        print(f"{venv}: up to date ({line})")
        return
    if venv.exists():
        shutil.rmtree(venv)
    _run(sys.executable, "-m", "venv", venv)
    constraints = venv / "constraints.txt"
    constraints.write_text(TORCH_PIN + "\n")
    py = python(trainer)
    _run(py, "-m", "pip", "install", "-q", "--upgrade", "pip")
    _run(py, "-m", "pip", "install", "-q", TORCH_PIN)
    _run(py, "-m", "pip", "install", "-q", *install_args(trainer), PIP_CONSTRAINT=str(constraints))
    _cpu_fixes(trainer)
    marker.write_text(line + "\n")
    print(f"{venv}: built ({line})")


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "line" and len(argv) == 3:
        print(" ".join([TORCH_PIN, *install_args(argv[2])]))
        return 0
    if len(argv) >= 2 and argv[1] == "build":
        names = argv[2:] or list(TRAINERS)
        unknown = [n for n in names if n not in TRAINERS]
        if unknown:
            print(f"unknown trainer {unknown[0]!r}: use {', '.join(TRAINERS)}", file=sys.stderr)
            return 2
        for n in names:
            build(n)
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
