"""Peak memory of ``advise data check`` on a single huge line and on a normal file of the same size.

    python benchmarks/datacheck_memory.py          # a ~200 MiB single-line file and a ~200 MiB normal file
    python benchmarks/datacheck_memory.py 50       # ~50 MiB each

Writes both files to a temp folder, runs ``advise data check FILE`` (``python -m advisor.cli``) on each in a
child process and prints the child's peak RSS. Each check runs under its own small wrapper process that reads
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after its one child exits, so one measurement cannot leak into
the next (``RUSAGE_CHILDREN`` reports the largest child waited for). A wrapper that runs ``python -c pass``
gives the interpreter's baseline. The temp folder is deleted at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
WRAPPER = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
s = time.perf_counter() - t0
err = p.stderr.strip().splitlines()
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, f"{s:.2f}", (err or [""])[-1][:200],
      sep="\\t")
"""


def write_single_line(path: Path, size: int) -> None:
    """One ``{"text": "..."}`` object of about ``size`` bytes, written in 1 MiB pieces."""
    chunk = ("all work and no play " * (MIB // 21 + 1))[:MIB]
    with open(path, "w", encoding="ascii") as f:
        f.write('{"text": "')
        f.writelines(chunk for _ in range(max(1, size // MIB)))
        f.write('"}\n')


def write_normal(path: Path, size: int) -> int:
    """Chat lines of a few hundred bytes each, about ``size`` bytes in all; returns the number of lines."""
    n = written = 0
    with open(path, "w", encoding="ascii") as f:
        while written < size:
            n += 1
            line = json.dumps({"messages": [
                {"role": "user", "content": f"Question {n}: how do I reset the password of account {n * 7919}?"},
                {"role": "assistant", "content": f"Open settings, choose security, then reset ({n % 97} steps)."
                                                 " " + "Details follow. " * (n % 13)}]}) + "\n"
            f.write(line)
            written += len(line)
    return n


def measure(cmd: list[str]) -> tuple[int, int, float, str]:
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True)
    rc, kib, s, err = out.stdout.rstrip("\n").split("\t")
    return int(rc), int(kib), float(s), err


def main(size_mib: float) -> None:
    size = int(size_mib * MIB)
    advise = [sys.executable, "-m", "advisor.cli", "data", "check"]
    with tempfile.TemporaryDirectory(prefix="datacheck-memory-") as d:
        one, normal = Path(d) / "one_line.jsonl", Path(d) / "normal.jsonl"
        t0 = time.perf_counter()
        write_single_line(one, size)
        lines = write_normal(normal, size)
        print(f"wrote {one.stat().st_size / MIB:,.0f} MiB on 1 line and {normal.stat().st_size / MIB:,.0f} MiB on "
              f"{lines:,} lines in {time.perf_counter() - t0:.0f} s")
        _, base, _, _ = measure([sys.executable, "-c", "pass"])
        print(f"baseline (python -c pass): peak RSS {base / 1024:,.0f} MiB")
        for label, path in (("single line", one), ("normal file", normal)):
            rc, kib, s, err = measure([*advise, str(path)])
            print(f"{label:12} exit {rc}  peak RSS {kib / 1024:,.0f} MiB  {s:.1f} s" + (f"  stderr: {err}" if err
                                                                                         else ""))
        print(f"python {sys.version.split()[0]}, resource.getrusage(RUSAGE_CHILDREN).ru_maxrss; temp files deleted")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("size_mib", nargs="?", type=float, default=200.0, help="size of each file in MiB (default 200)")
    main(ap.parse_args().size_mib)
