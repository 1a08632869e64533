"""``advise plan``: the questionnaire (interactive, a file, or a built-in example) -> the plan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from advisor.cli.common import (
    AdviseUsageError,
    domain_errors,
    dump_json,
    echo,
    load_catalog,
)


def _click_prompt(catalog: Any):
    """A questionnaire prompt on the terminal: the explanation, the question, re-asked until valid."""
    from advisor.contract.errors import AdviseError
    from advisor.questionnaire import parse

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
                echo(f"  {e}", err=True)

    return prompt


def _write_out(out: Path, plan: Any, answers_yaml: str, profile: Any, force: bool, catalog: Any,
               inputs: tuple[Any, ...]) -> list[Path]:
    """DIR/plan.json, DIR/answers.yaml, DIR/report.html and DIR/configs/ (the training configs, when there
    is something to train). Everything is rendered before anything is written; the writing is
    ``advisor.contract.files.write_tree`` (``--force`` replaces only what advise wrote there)."""
    from advisor.contract.files import write_tree
    from reports.export import render_all
    from reports.export.write import relative_parts
    from reports.html import render_report

    configs = render_all(plan, ("all",))
    for rel in configs:
        relative_parts(rel)
    report = render_report(plan, profile=profile, configs={f"configs/{k}": v for k, v in configs.items()},
                           catalog=catalog)
    files = {"plan.json": plan.to_json(), "answers.yaml": answers_yaml, "report.html": report,
             **{f"configs/{k}": v for k, v in configs.items()}}
    return write_tree(out, files, force, what="--out", inputs=inputs)


def _save_answers(target: Path, answers_yaml: str, inputs: tuple[Any, ...]) -> None:
    """--save-answers: written safely; if that fails at the end of a questionnaire, the answers go to stdout so
    nothing typed is lost."""
    from advisor.contract.files import (
        ANSWERS_MARK,
        OutputError,
        file_starts_with,
        write_file,
    )

    try:
        write_file(target, answers_yaml, "--save-answers", inputs, file_starts_with(ANSWERS_MARK))
    except OutputError:
        echo(answers_yaml)
        echo("(the answers above could not be saved; copy them into a file)", err=True)
        raise


def _check_outputs(out_dir: str | None, force: bool, save_answers: str | None, inputs: tuple[Any, ...]) -> None:
    """Refuse, before a single question is asked, outputs that cannot be written."""
    from advisor.contract.files import (
        ANSWERS_MARK,
        check_out_folder,
        check_target,
        file_starts_with,
        probe_writable,
    )

    if out_dir:
        check_out_folder(Path(out_dir), force, "--out")
    if save_answers:
        target = Path(save_answers)
        check_target(target, "--save-answers", inputs, file_starts_with(ANSWERS_MARK))
        probe_writable(target.parent, "--save-answers", target)


@click.command()
@click.option("--answers", "answers_file", type=click.Path(dir_okay=False),
              help="Answers file (YAML or JSON). Without it (and without --example) the questions are asked.")
@click.option("--example", help="Run a built-in example (e.g. ticket-triage).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Write plan.json, answers.yaml, report.html and the training configs (configs/) here.")
@click.option("--force", is_flag=True,
              help="Write into a non-empty --out folder: replaces only the files advise wrote there (your own "
                   "files, such as configs/data/, are kept).")
@click.option("--save-answers", type=click.Path(dir_okay=False), help="Save the answers given to this YAML file.")
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False),
              help="A profile from `advise profile`: measured memory and speed replace the estimates it covers.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON instead of a summary.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Price as of this date (YYYY-MM-DD; default today): retirement dates are compared with it.")
@click.pass_context
@domain_errors
def plan(ctx: click.Context, answers_file: str | None, example: str | None, out_dir: str | None, force: bool,
         save_answers: str | None, profile_file: str | None, as_json: bool, as_of: Any) -> None:
    """Should you fine-tune, how, on what and for how much: a plan with every reason shown."""
    from advisor.contract.answers import dump_answers, load_answers, validate_answers
    from advisor.planner import build_plan, example_path

    if answers_file and example:
        raise AdviseUsageError("give --answers or --example, not both")
    inputs = (answers_file, profile_file, *((ctx.find_root().obj or {}).get("catalog_files", ())))
    _check_outputs(out_dir, force, save_answers, inputs)
    catalog = load_catalog(ctx)
    if example:
        answers = load_answers(example_path(example), catalog)
    elif answers_file:
        answers = load_answers(answers_file, catalog)
    else:
        from advisor.questionnaire import ask

        echo("Answer a few questions (Enter keeps the default; Ctrl-C stops).", err=True)
        try:
            raw = ask(_click_prompt(catalog))
        except click.Abort:
            if sys.stdin.isatty():
                raise  # Ctrl-C at the terminal: click's "Aborted!"
            raise AdviseUsageError("the input ended before every question was answered (stdin is not a terminal); "
                                   "pass --answers FILE, or --example ticket-triage") from None
        answers = validate_answers(raw, "your answers", catalog, Path.cwd())
    answers_yaml = dump_answers(answers)
    if save_answers:
        _save_answers(Path(save_answers), answers_yaml, inputs)
    profile = None
    if profile_file:
        from profiler.schema import load_profile

        profile = load_profile(profile_file)
    base_dir = Path(answers_file).resolve().parent if answers_file else None
    result = build_plan(answers, catalog, base_dir, profile, as_of.date() if as_of else None)
    if profile is not None and (result.profile is None or not result.profile.used):
        echo(f"Note: --profile {profile_file} ({profile.model.name}) measured nothing this plan uses (another "
                   "model, setup or shape); every figure is an estimate", err=True)
    if out_dir:
        written = _write_out(Path(out_dir), result, answers_yaml, profile, force, catalog, inputs)
    if as_json:
        return dump_json(result.to_dict())
    _print_plan(result)
    if out_dir:
        configs = [p for p in written if p.parent != Path(out_dir)]
        echo(f"\nWrote {out_dir}: plan.json, answers.yaml, report.html"
                   + (f" and {len(configs)} files under configs/ (start with configs/README.md)" if configs else ""))
    elif save_answers:
        echo(f"\nSaved the answers to {save_answers}")


def _rule_list(title: str, rules: list[Any]) -> None:
    echo("")
    echo(title)
    for r in rules:
        echo(f"  {r.id}: {r.name}")


def _print_options(p: Any) -> None:
    """The priced paths, chosen first, then the rest cheapest per month first."""
    from advisor.contract.units import money, months_text
    from advisor.contract.vocab import DELIVERIES, EFFORTS

    if not p.options:
        return
    today = next((o.monthly_usd for o in p.options if o.approach == "current"), None)
    echo("")
    echo("Options" + (f" against today's {money(today)}/month" if today is not None else "")
         + " (* the plan's; one-off = training):")
    rows = sorted(p.options, key=lambda o: (not o.chosen, not o.feasible, o.monthly_usd is None,
                                            o.monthly_usd or 0.0, o.name))
    for o in rows:
        once = money(o.one_off_usd) if o.one_off_usd else "-"
        monthly = f"{money(o.monthly_usd)}/month" if o.monthly_usd is not None else "-"
        if not o.feasible:
            verdict = f"no: {o.why_not}"
        elif o.approach == "current":
            verdict = "today"
        elif o.beats_today:
            verdict = f"beats today (pays back {months_text(o.break_even_months)})" if o.one_off_usd else \
                "beats today"
        else:
            verdict = "does not beat today"
        echo(f"  {'*' if o.chosen else ' '} {DELIVERIES.title(o.delivery):18} {o.name[:46]:46} {once:>11} "
             f"{monthly:>14}  {EFFORTS.label(o.effort)}; {verdict}")


def _print_plan(p: Any) -> None:
    """The plan's summary on the terminal (``advisor.contract.plan.Plan``; ``--json`` prints all of it)."""
    from advisor.contract.units import (
        duration_hours,
        gib,
        host_ram_text,
        hourly,
        money,
        months_text,
    )

    rec, est = p.recommendation, p.estimates
    echo(p.project)
    echo("")
    echo(p.summary)
    echo("")
    echo(f"  approach:   {rec.approach}" + (f" (also: {', '.join(rec.also)})" if rec.also else ""))
    if rec.methods:
        echo(f"  method:     {' -> '.join(rec.methods)}")
        echo(f"  technique:  {rec.technique or '-'}")
        b = est.base_model
        switched = b is not None and b.chosen_by is not None and b.chosen_by.startswith("the instruct checkpoint")
        echo(f"  base model: {rec.base_model or '-'}" + (f" ({b.chosen_by})" if switched else ""))
    if rec.gpus:
        echo(f"  GPUs:       {rec.gpu_count} x {', '.join(rec.gpus)}")
    echo(f"  serving:    {p.serving.strategy}")
    if rec.fine_tune:
        echo(f"  delivery:   {rec.delivery}" + (f" (at {rec.provider})" if rec.provider else ""))
    if p.prerequisite_steps:
        echo("")
        echo("First:")
        for s in p.prerequisite_steps:
            echo(f"  - {s}")
    _rule_list("Why:", p.why)
    if p.data is not None:
        echo("")
        echo("Data files:")
        for note in p.data.notes:
            echo(f"  {note}")
        for line in p.data.errors():
            echo(f"  ERROR {line}")
    t = est.training
    if t:
        echo("")
        echo(f"Training on {t.gpu_count} x {t.gpu}: {gib(t.memory_bytes)} of {gib(t.usable_memory_bytes)} per GPU, "
             f"micro-batch {t.micro_batch}, {t.tokens_per_s:,.0f} tokens/s, {duration_hours(t.hours)}, "
             + (f"{money(t.usd)} ({t.provider} at {hourly(t.usd_per_gpu_hour)})" if t.usd is not None
                else "no price listed"))
        ram = host_ram_text(t.host_ram_bytes_per_machine, t.sharding, t.offload, t.gpu_count)
        if ram:
            echo(f"  CPU RAM:  {ram}; time and cost include the offload's slowdown")
        for s in t.stages:
            assumed = " (assumed: the answers give no count; the cost scales with the real one)" \
                if s.examples_assumed else ""
            echo(f"  {s.method}: {s.examples:,} examples{assumed} x {s.epochs:g} epoch(s), seq {s.seq_len}, "
                 f"lr {s.learning_rate:g}, batch {s.global_batch_sequences}")
    h = est.hosted_fine_tuning
    if h:
        echo("")
        echo(f"Hosted fine-tuning: {h.offer} at ${h.usd_per_million_training_tokens:g}/1M training tokens: "
             f"{money(h.training_usd)}" + (f" ({h.status})" if h.status else ""))
    inf = est.inference
    if inf and inf.today_usd_per_month is not None and inf.after_usd_per_month is not None:
        saving = inf.monthly_saving_usd or 0.0
        change = f"saving {money(saving)}/month" if saving >= 0 else f"{money(-saving)}/month more"
        echo(f"Monthly: {money(inf.today_usd_per_month)} today -> {money(inf.after_usd_per_month)} after "
             f"({change}; break-even {months_text(inf.break_even_months)})")
    _print_options(p)
    if est.fit_matrix:
        echo("")
        offloading = any(r.host_ram_bytes_per_machine for r in est.fit_matrix)
        echo(f"Fit per GPU (memory at the largest micro-batch within {p.thresholds['max_memory_fraction']:.0%} of "
             "usable memory, else at micro-batch 1; tight: over that margin but within the card"
             + ("; CPU RAM per machine where states are offloaded" if offloading else "") + "):")
        for r in est.fit_matrix:
            usd = money(r.usd) if r.usd is not None else "-"
            host = f"  CPU RAM {gib(r.host_ram_bytes_per_machine)}" if r.host_ram_bytes_per_machine else ""
            echo(f"  {r.technique:6} {r.gpu:10} {gib(r.memory_bytes):>11}  micro-batch {r.micro_batch:>2}  "
                 f"{'fits' if r.fits else 'tight' if r.tight else 'no'}".ljust(5) + f" {usd:>10}{host}")
    if p.warnings:
        _rule_list("Watch out:", p.warnings)
    echo("")
    echo("Next steps:")
    for i, s in enumerate(p.next_steps, 1):
        echo(f"  {i}. {s.what}")
    fired = sum(r.fired for r in p.rules)
    echo("")
    echo(f"{len(p.rules)} rules evaluated, {fired} fired; every reason is in the plan (--json or --out).")
