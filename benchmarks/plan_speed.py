"""How long ``advise plan`` takes: the planning itself (in process) and the whole command (a fresh process).

    python benchmarks/plan_speed.py            # 7 runs of each case
    python benchmarks/plan_speed.py --runs 15

Cases: the three built-in examples plus cases that price every option (a static prompt with caching, a
closed-weights team, a multi-tenant SaaS with many adapters, a team that does not fine-tune, whose self-hosted
option is estimated all the same). For each it prints the median and the slowest in-process ``build_plan``
time (the catalog already loaded, as in a long-running process) and the median wall time of
``advise plan --answers FILE`` as a new process (imports, catalog loading and the terminal summary included).
The target is planning under 1 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

AS_OF = datetime.date(2026, 12, 1)
CASES = {
    "static prompt": {"project": "static prompt", "symptoms": ["cost"], "tried": {"prompting": "fixed"},
                      "data": {"labeled_examples": 5000}, "model": {"current_api": "claude-haiku-4.5"},
                      "workload": {"requests_per_month": 200_000, "input_tokens_per_request": 13_000,
                                   "output_tokens_per_request": 150, "static_prompt_tokens": 12_000}},
    "closed weights": {"project": "closed weights", "symptoms": ["format"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                       "data": {"labeled_examples": 2000},
                       "model": {"current_api": "gpt-4.1-mini", "open_weights_ok": False},
                       "workload": {"requests_per_month": 10_000, "input_tokens_per_request": 800,
                                    "output_tokens_per_request": 200}},
    "multi-tenant": {"project": "multi-tenant", "symptoms": ["style"], "tried": {"prompting": "partly", "few_shot": "failed", "structured_output": "partly"},
                     "data": {"labeled_examples": 150_000}, "model": {"current_api": "gpt-4.1-mini"},
                     "deployment": {"adapters": 300},
                     "workload": {"requests_per_month": 3_000_000, "input_tokens_per_request": 1500,
                                  "output_tokens_per_request": 300}},
}


def _median_s(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    from advisor.contract.answers import load_answers, validate_answers
    from advisor.planner import build_plan, example_names, example_path
    from estimators.catalog import Catalog

    catalog = Catalog.load()
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: example_path(name) for name in example_names()}
        for name, raw in CASES.items():
            path = Path(tmp) / f"{name.replace(' ', '-')}.yaml"
            path.write_text(yaml.safe_dump(raw), encoding="utf-8")
            files[name] = path
        print(f"{'case':16} {'build_plan median':>18} {'slowest':>9} {'advise plan (process)':>22}")
        for name, path in files.items():
            answers = load_answers(path, catalog) if name in example_names() else \
                validate_answers(yaml.safe_load(path.read_text()), name, catalog)
            build_plan(answers, catalog, as_of=AS_OF)  # warm the caches a long-running process keeps
            med, worst = _median_s(lambda a=answers: build_plan(a, catalog, as_of=AS_OF), args.runs)
            cmd = [sys.executable, "-m", "advisor.cli", "plan", "--answers", str(path), "--as-of", AS_OF.isoformat()]
            proc, _ = _median_s(lambda c=cmd: subprocess.run(c, check=True, capture_output=True), max(3, args.runs // 2))
            print(f"{name:16} {med * 1000:>15.0f} ms {worst * 1000:>6.0f} ms {proc * 1000:>19.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
