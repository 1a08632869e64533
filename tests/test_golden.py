"""The built-in examples' outputs are the reviewed golden files (``tests/golden/``): a change of advice, estimates,
configs or report text fails here with a diff until the golden files are regenerated and the diff is read."""

from __future__ import annotations

import difflib

import pytest
from click.testing import CliRunner

from advisor.cli import main
from advisor.contract.files import MANIFEST
from tests.golden import EXAMPLES, GOLDEN_DIR, tree, write_plan_out

REGENERATE = "python -m tests.golden.regenerate"


def _diff(golden: dict[str, str], now: dict[str, str], limit: int = 60) -> str:
    out = [f"files only in the golden copy: {sorted(set(golden) - set(now))}" if set(golden) - set(now) else "",
           f"files not in the golden copy: {sorted(set(now) - set(golden))}" if set(now) - set(golden) else ""]
    for rel in sorted(set(golden) & set(now)):
        if golden[rel] != now[rel]:
            out += list(difflib.unified_diff(golden[rel].splitlines(), now[rel].splitlines(), f"golden/{rel}",
                                             f"now/{rel}", lineterm="", n=1))[:limit]
    return "\n".join(line for line in out if line)


@pytest.mark.parametrize("example", EXAMPLES)
def test_plan_out_matches_the_golden_files(example, tmp_path):
    out = tmp_path / example
    write_plan_out(example, out)
    golden, now = tree(GOLDEN_DIR / example), tree(out)
    assert golden, f"no golden files for {example}: run {REGENERATE}"
    assert now == golden, f"outputs changed; if intended run {REGENERATE} and review the diff:\n{_diff(golden, now)}"


@pytest.mark.parametrize("example", EXAMPLES)
def test_export_of_the_golden_plan_matches_its_configs(example, tmp_path):
    """``advise export --plan plan.json`` writes exactly the configs ``advise plan --out`` wrote."""
    r = CliRunner().invoke(main, ["export", "--plan", str(GOLDEN_DIR / example / "plan.json"),
                                  "--out", str(tmp_path / "configs")])
    assert r.exit_code == 0, r.output
    golden = {rel.removeprefix("configs/"): text for rel, text in tree(GOLDEN_DIR / example).items()
              if rel.startswith("configs/")}
    # the export folder's own manifest (what --force may replace) is the only file plan --out keeps one level up
    now = {rel: text for rel, text in tree(tmp_path / "configs").items() if rel != MANIFEST}
    assert now == golden, f"export changed; if intended run {REGENERATE}:\n{_diff(golden, now)}"
