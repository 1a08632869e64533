"""``advise report``: the plan's JSON (and optionally a profile) as one self-contained HTML page.

A thin layer over ``reports.html.render_report``: read the files, render, write. plotly and jinja2 are
imported inside the command only, so ``advise --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from advisor.clitools import AdviseUsageError, domain_errors


def _read_json(path: str, what: str, hint: str) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdviseUsageError(f"{what} {path} does not exist; {hint}") from None
    except IsADirectoryError:
        raise AdviseUsageError(f"{what} {path} is a directory; give the JSON file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AdviseUsageError(f"{what} {path} cannot be read ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AdviseUsageError(f"{what} {path}: not valid JSON (line {e.lineno}: {e.msg})") from None


@click.command()
@click.argument("plan_file", metavar="PLAN.json", type=click.Path(dir_okay=False))
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False),
              help="A profile from `advise profile`: adds measured against estimated memory and speed.")
@click.option("-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write.")
@click.option("--cdn", is_flag=True,
              help="Load plotly.js from cdn.plot.ly (a small file that needs the network) instead of inlining it.")
@domain_errors
def report(plan_file: str, profile_file: str | None, out_file: str, cdn: bool) -> None:
    """Write the plan as one HTML page: summary, decision path, charts, data, risks, serving, assumptions."""
    from reports.html import render_report

    plan = _read_json(plan_file, "plan", "make one with `advise plan --json > plan.json` or `advise plan --out DIR`")
    profile = None
    if profile_file:
        from profiler.schema import load_profile

        profile = load_profile(profile_file).model_dump(mode="json")
    try:
        html = render_report(plan, profile=profile, cdn=cdn)
    except (KeyError, TypeError, AttributeError, IndexError) as e:  # a hand-edited or foreign plan
        raise AdviseUsageError(f"plan {plan_file}: unexpected content ({type(e).__name__}: {e}); render a plan "
                               f"written by `advise plan`") from None
    out = Path(out_file)
    if out.parent and not out.parent.is_dir():
        raise AdviseUsageError(f"-o {out_file}: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    click.echo(f"Wrote {out} ({len(html.encode('utf-8')) / 1e6:.1f} MB{', plotly.js from the CDN' if cdn else ''})")
