"""Speed and peak memory of ``advise data check`` on a large chat JSONL.

    python benchmarks/datacheck_speed.py                  # ~1 GB (1024 MiB), ASCII text
    python benchmarks/datacheck_speed.py 100 --non-ascii  # ~100 MiB, every conversation holds non-ASCII text

Writes a synthetic chat JSONL of about SIZE_MIB MiB to a temp folder (varied multi-turn conversations,
0.5% exact duplicates, 0.1% broken lines), checks it in a child process (no tokenizer: the ~4
characters/token estimate), prints lines/s, MB/s and the child's peak RSS, and deletes the file. The peak
RSS includes the interpreter and numpy; the baseline of a child that only imports the checker is printed
next to it, so the difference is what the check itself holds. Normalising ASCII text (for near duplicates)
takes a fast path; ``--non-ascii`` measures the slower regular-expression path.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
WORDS_TEXT = ("the model learns format tone and task from examples so every answer should be the one you want "
         "in production including refusals edge cases long documents short replies and structured output "
         "like json tables or code blocks with comments")
WORDS = WORDS_TEXT.split()
NON_ASCII = ("café", "naïve", "Grüße", "日本語", "données", "—")

CHILD = """
import json, resource, sys, time
from advisor.datacheck import check_data
t0 = time.perf_counter()
r = check_data(sys.argv[1], max_length=2048)
s = time.perf_counter() - t0
print(json.dumps({"seconds": s, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "lines": r.lines_total, "valid": r.valid_examples, "invalid": r.invalid_lines,
                  "exact_duplicates": r.exact_duplicates, "p95_tokens": r.p95_tokens,
                  "total_tokens": r.total_tokens}))
"""
BASELINE = """
import resource, numpy, advisor.datacheck
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_file(path: Path, size_bytes: int, seed: int = 0, non_ascii: bool = False) -> int:
    """A chat JSONL of about ``size_bytes``; returns the number of lines."""
    rng = random.Random(seed)
    pool = [sentence(rng, rng.randint(5, 60)) for _ in range(2000)]
    if non_ascii:
        pool = [f"{p} {rng.choice(NON_ASCII)}" for p in pool]
    written = lines = 0
    last = ""
    with open(path, "w", encoding="utf-8") as f:
        while written < size_bytes:
            lines += 1
            if lines % 1000 == 0:
                line = '{"messages": [broken'
            elif lines % 200 == 0 and last:
                line = last
            else:
                msgs = [{"role": "system", "content": pool[lines % 97]}] if lines % 3 == 0 else []
                for turn in range(rng.randint(1, 3)):
                    msgs.append({"role": "user", "content": f"Case {lines}.{turn}: " + rng.choice(pool)})
                    msgs.append({"role": "assistant", "content": " ".join(rng.sample(pool, rng.randint(1, 6)))})
                line = json.dumps({"messages": msgs}, ensure_ascii=False)
                last = line
            f.write(line + "\n")
            written += len(line) + 1
    return lines


def main(size_mib: float = 1024.0, non_ascii: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="datacheck-speed-") as d:
        path = Path(d) / "train.jsonl"
        t0 = time.perf_counter()
        write_file(path, int(size_mib * MIB), non_ascii=non_ascii)
        size = path.stat().st_size
        text = "every conversation holds non-ASCII text" if non_ascii else "ASCII text"
        print(f"wrote {size / MIB:,.0f} MiB ({size:,} bytes, {text}) in {time.perf_counter() - t0:.0f} s: {path}")
        base = subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True)
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        s = r["seconds"]
        print(f"checked {r['lines']:,} lines ({r['valid']:,} valid, {r['invalid']:,} invalid, "
              f"{r['exact_duplicates']:,} exact duplicates; p95 {r['p95_tokens']:,} tokens, "
              f"{r['total_tokens']:,} tokens in all, estimated) in {s:.1f} s")
        print(f"lines_per_s: {r['lines'] / s:,.0f}")
        print(f"mb_per_s: {size / 1e6 / s:,.1f} (MiB/s: {size / MIB / s:,.1f})")
        print(f"peak_rss_mib: {r['peak_rss_kib'] / 1024:,.0f} (a child that only imports the checker and numpy: "
              f"{int(base.stdout) / 1024:,.0f})")
        print(f"python {sys.version.split()[0]}, resource.getrusage ru_maxrss; temp file deleted")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("size_mib", nargs="?", type=float, default=1024.0, help="file size in MiB (default 1024)")
    ap.add_argument("--non-ascii", action="store_true", help="put non-ASCII text in every conversation")
    a = ap.parse_args()
    main(a.size_mib, a.non_ascii)
