"""Golden files: what ``advise plan --example NAME --out DIR`` writes for the three built-in examples.

Every later change of advice, estimates, configs or report text shows as a diff of these files in review.
Regenerate after an intended change, read the diff, and say in the commit which outputs changed and why::

    python -m tests.golden.regenerate

The report is stored without the inlined plotly.js bundle and the charts' JSON (both depend on the installed
plotly's version; the charts are tested in tests/reports/); each is replaced by a one-line marker. Python and HTML
files are kept as ``*.golden`` (``merge.py.golden``, ``report.html.golden``) so that tools reading the source tree do
not take them for code.
"""

from __future__ import annotations

import re
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent
EXAMPLES = ("ticket-triage", "brand-voice", "policy-qa")
#: the date the golden plans are priced as of (``--as-of``): retirement warnings do not move with the calendar
AS_OF = "2026-12-01"
_CHARTS = re.compile(r'(<script type="application/json" id="advise-charts">).*?(</script>)', re.DOTALL)


def normalise(rel: str, text: str) -> str:
    """A file's text as the golden copy holds it (the report without plotly.js and the chart data)."""
    if rel.endswith("report.html"):
        from reports.html import plotly_js

        text = text.replace(plotly_js(), "/* plotly.js inlined here by advise (not kept in the golden file) */")
        text = _CHARTS.sub(r"\1/* the charts' JSON (not kept in the golden file) */\2", text)
    return text


SUFFIX = ".golden"  # added to Python files in the golden copy


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative POSIX path -> normalised text), sorted; a golden ``x.py.golden`` is
    ``x.py``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix().removesuffix(SUFFIX)
            out[rel] = normalise(rel, p.read_text(encoding="utf-8"))
    return dict(sorted(out.items()))


def golden_name(rel: str) -> str:
    return rel + SUFFIX if rel.endswith((".py", ".html")) else rel


def write_plan_out(example: str, out: Path) -> None:
    """Run ``advise plan --example EXAMPLE --out OUT --as-of AS_OF`` as a user would."""
    from click.testing import CliRunner

    from advisor.cli import main

    r = CliRunner().invoke(main, ["plan", "--example", example, "--out", str(out), "--as-of", AS_OF])
    if r.exit_code != 0:
        raise RuntimeError(f"advise plan --example {example} failed: {r.output}")
