"""``advise plan``: the questionnaire (interactive, a file, or a built-in example) -> the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from advisor.clitools import AdviseUsageError, domain_errors, dump_json, load_catalog


def _click_prompt(catalog: Any):
    """A questionnaire prompt on the terminal: the explanation, the question, re-asked until valid."""
    from advisor.questionnaire import parse
    from estimators.errors import AdviseError

    def check_names(q, value):
        if value is None:
            return
        if q.key == "model.current_api":
            catalog.api(value)
        elif q.key == "hardware.gpus":
            for g in value:
                catalog.gpu(g)
        elif q.key == "model.base":
            catalog.resolve_model(value)

    def prompt(q, default):
        shown = "" if default is None else ("yes" if default is True else "no" if default is False else str(default))
        click.secho(f"  {q.help}", dim=True, err=True)
        while True:
            text = click.prompt(q.text, default=shown, show_default=bool(shown), err=True)
            try:
                value = parse(q, text)
                check_names(q, value)
                return value
            except (ValueError, AdviseError) as e:
                click.echo(f"  {e}", err=True)

    return prompt


def _write_out(out: Path, plan: dict[str, Any], answers_yaml: str, force: bool) -> list[Path]:
    import json

    if out.exists() and not out.is_dir():
        raise AdviseUsageError(f"--out {out}: exists and is not a directory; give a directory path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise AdviseUsageError(f"--out {out}: directory is not empty; pass --force to overwrite, or pick a new one")
    out.mkdir(parents=True, exist_ok=True)
    files = {"plan.json": json.dumps(plan, indent=2) + "\n", "answers.yaml": answers_yaml}
    written = []
    for name, text in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        written.append(out / name)
    return written


@click.command()
@click.option("--answers", "answers_file", type=click.Path(dir_okay=False),
              help="Answers file (YAML or JSON). Without it (and without --example) the questions are asked.")
@click.option("--example", help="Run a built-in example (e.g. ticket-triage).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write plan.json and answers.yaml here.")
@click.option("--force", is_flag=True, help="Overwrite a non-empty --out directory.")
@click.option("--save-answers", type=click.Path(dir_okay=False), help="Save the answers given to this YAML file.")
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False),
              help="A profile from `advise profile`: measured memory and speed replace the estimates it covers.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON instead of a summary.")
@click.pass_context
@domain_errors
def plan(ctx: click.Context, answers_file: str | None, example: str | None, out_dir: str | None, force: bool,
         save_answers: str | None, profile_file: str | None, as_json: bool) -> None:
    """Should you fine-tune, how, on what and for how much: a plan with every reason shown."""
    from advisor.answers import dump_answers, load_answers, validate_answers
    from advisor.plan import build_plan, example_path

    if answers_file and example:
        raise AdviseUsageError("give --answers or --example, not both")
    catalog = load_catalog(ctx)
    if example:
        answers = load_answers(example_path(example), catalog)
    elif answers_file:
        answers = load_answers(answers_file, catalog)
    else:
        from advisor.questionnaire import ask

        click.echo("Answer a few questions (Enter keeps the default; Ctrl-C stops).", err=True)
        raw = ask(_click_prompt(catalog))
        answers = validate_answers(raw, "your answers", catalog)
    answers_yaml = dump_answers(answers)
    if save_answers:
        Path(save_answers).write_text(answers_yaml, encoding="utf-8")
    profile = None
    if profile_file:
        from profiler.schema import load_profile

        profile = load_profile(profile_file)
    base_dir = Path(answers_file).parent if answers_file else None
    result = build_plan(answers, catalog, base_dir, profile)
    if out_dir:
        _write_out(Path(out_dir), result, answers_yaml, force)
    if as_json:
        return dump_json(result)
    _print_plan(result)
    if out_dir:
        click.echo(f"\nWrote {Path(out_dir) / 'plan.json'} and {Path(out_dir) / 'answers.yaml'}")
    elif save_answers:
        click.echo(f"\nSaved the answers to {save_answers}")


def _rule_list(title: str, rules: list[dict[str, Any]]) -> None:
    click.echo("")
    click.echo(title)
    for r in rules:
        click.echo(f"  {r['id']}: {r['name']}")


def _print_plan(p: dict[str, Any]) -> None:
    from advisor.clitools import duration, gib

    echo = click.echo
    rec, est = p["recommendation"], p["estimates"]
    echo(f"{p['project']}")
    echo("")
    echo(p["summary"])
    echo("")
    steps = [rec["method"], *rec["then"]] if rec["method"] else []
    echo(f"  approach:   {rec['approach']}" + (f" (also: {', '.join(rec['also'])})" if rec["also"] else ""))
    if steps:
        echo(f"  method:     {' -> '.join(steps)}")
        echo(f"  technique:  {rec['technique'] or '-'}")
        echo(f"  base model: {rec['base_model'] or '-'}")
    if rec["gpus"]:
        echo(f"  GPUs:       {rec['gpu_count']} x {', '.join(rec['gpus'])}")
    echo(f"  serving:    {p['serving']['strategy']}")
    if p["prerequisite_steps"]:
        echo("")
        echo("First:")
        for s in p["prerequisite_steps"]:
            echo(f"  - {s}")
    _rule_list("Why:", p["why"])
    t = est.get("training")
    if t:
        echo("")
        echo(f"Training on {t['gpu_count']} x {t['gpu']}: {gib(t['memory_bytes'])} of {gib(t['usable_memory_bytes'])} "
             f"per GPU, micro-batch {t['micro_batch']}, {t['tokens_per_s']:,.0f} tokens/s, "
             f"{duration(t['hours'] * 3600)}, " + (f"${t['usd']:,.2f} ({t['provider']})" if t["usd"] is not None
                                                    else "no price listed"))
        for s in t["stages"]:
            echo(f"  {s['method']}: {s['examples']:,} examples x {s['epochs']:g} epoch(s), seq {s['seq_len']}, "
                 f"lr {s['learning_rate']:g}, batch {s['global_batch_sequences']}")
    h = est.get("hosted_fine_tuning")
    if h:
        echo("")
        echo(f"Hosted fine-tuning: {h['offer']} at ${h['usd_per_million_training_tokens']:g}/1M training tokens: "
             f"${h['training_usd']:,.2f}" + (f" ({h['status']})" if h["status"] else ""))
    inf = est.get("inference")
    if inf and inf["today_usd_per_month"] is not None and inf["after_usd_per_month"] is not None:
        from advisor.plan import months_text

        saving = inf["monthly_saving_usd"]
        change = f"saving ${saving:,.0f}/month" if saving >= 0 else f"${-saving:,.0f}/month more"
        echo(f"Monthly: ${inf['today_usd_per_month']:,.0f} today -> ${inf['after_usd_per_month']:,.0f} after "
             f"({change}; break-even {months_text(inf['break_even_months'])})")
    if est.get("fit_matrix"):
        echo("")
        echo("Fit per GPU (memory at the largest micro-batch that fits, else at micro-batch 1):")
        for r in est["fit_matrix"]:
            usd = f"${r['usd']:,.2f}" if r["usd"] is not None else "-"
            echo(f"  {r['technique']:6} {r['gpu']:10} {gib(r['memory_bytes']):>11}  micro-batch {r['micro_batch']:>2}  "
                 f"{'fits' if r['fits'] else 'no  '}  {usd:>10}")
    if p["warnings"]:
        _rule_list("Watch out:", p["warnings"])
    echo("")
    echo("Next steps:")
    for i, s in enumerate(p["next_steps"], 1):
        echo(f"  {i}. {s['what']}")
    fired = sum(r["fired"] for r in p["rules"])
    echo("")
    echo(f"{len(p['rules'])} rules evaluated, {fired} fired; every reason is in the plan (--json or --out).")
