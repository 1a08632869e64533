"""The README keeps its promises: its test command is what CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_first_screen_has_the_two_setup_commands():
    main_job, tests = _readme_commands()
    assert main_job.startswith("pip install . && advise ")
    assert "pytest" in tests


def test_readme_main_job_runs():
    import shlex

    from click.testing import CliRunner

    from advisor.cli import main

    main_job, _ = _readme_commands()
    args = shlex.split(main_job.split("&& advise ", 1)[1])
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in [line.strip() for line in ci]


def test_published_comparison_doc_is_current():
    import runpy

    render = runpy.run_path(str(ROOT / "benchmarks" / "published_comparison.py"))["render"]
    assert (ROOT / "docs" / "published-comparison.md").read_text() == render(), (
        "run: python benchmarks/published_comparison.py > docs/published-comparison.md"
    )


def test_the_torch_the_configs_readme_names_is_the_one_ci_installs():
    """The export README says which torch its configs were checked with; .ci/run installs exactly that, in the
    project's venv and in every trainer's venv (tests/realrun/venvs.py, which .ci/run runs)."""
    from reports.export.registry import TESTED_TORCH
    from tests.realrun import venvs

    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"pip install -q torch=={TESTED_TORCH}\n" in ci and "python tests/realrun/venvs.py build\n" in ci
    assert venvs.TORCH_PIN == f"torch=={TESTED_TORCH}"
