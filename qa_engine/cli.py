"""The ``qa-engine`` command line (an edge: files and terminal output live here).

Sub-commands of sibling packages (``rules``, later ``batch``/``serve``) come in through the
``qa_engine.commands`` entry-point group, so this module imports none of them.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qa_engine.config import load_pipeline
from qa_engine.errors import QAEngineError
from qa_engine.findings import FindingKind
from qa_engine.io import Quarantined, ResultWriter, detect_format, load, write_quarantine
from qa_engine.schema import Conversation, Role, Turn

app = typer.Typer(help="QA and compliance scoring for Chinese e-commerce customer-service conversations.",
                  no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config YAML (detectors, scorecard).")]


@app.command()
def check(
    text: Annotated[str, typer.Argument(help="A draft reply to check, e.g. 亲，这款是全网最好的")],
    role: Annotated[Role, typer.Option(help="Who says it.")] = Role.AGENT,
    as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
    explain: Annotated[bool, typer.Option(help="Also show hits that context excused, with the reason.")] = False,
    config: ConfigOption = None,
) -> None:
    """Check one utterance and show its violations with evidence, citation and rewrite."""
    pipeline = load_pipeline(config)
    if explain:
        conversation = Conversation(conversation_id="check", turns=(Turn(role=role, text=text),))
        findings = [f for f in pipeline.findings(conversation, explain=True)
                    if f.kind is FindingKind.VIOLATION and f.category != "empathy"]
    else:
        findings = pipeline.check(text, role=role)
    if as_json:
        payload = {"text": text, "findings": [f.model_dump(mode="json") for f in findings],
                   "versions": pipeline.versions.model_dump()}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if not findings:
        console.print("[green]No violations.[/green]")
        return
    table = Table(title=f"{sum(f.suppressed_by is None for f in findings)} violation(s)", show_lines=True)
    for column in ("span", "evidence", "rule", "severity", "citation", "suggested rewrite"):
        table.add_column(column, overflow="fold")
    if explain:
        table.add_column("decision")
    notes = [d.decision_note for d in pipeline.detectors if hasattr(d, "decision_note")]
    for f in findings:
        row = [f"{f.start}-{f.end}", f.evidence + ("" if f.match in ("literal", "regex") else f" ({f.match})"),
               f.rule_id, f.severity.value, f.citation or "", f.rewrite or ""]
        decision = f.suppressed_by or next((n for n in (note(f) for note in notes) if n), "counted")
        table.add_row(*map(escape, row), *([escape(decision)] if explain else []))
    console.print(table)


@app.command()
def score(
    inputs: Annotated[list[Path], typer.Argument(help="JSONL, Parquet or CSV transcript files.", exists=True,
                                                 dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Results file: .jsonl or .parquet.")],
    quarantine: Annotated[Optional[Path], typer.Option(help="Where bad records go (default: OUTPUT.quarantine.jsonl).")] = None,
    config: ConfigOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Score transcript files; bad records go to the quarantine file; print a summary."""
    for path in inputs:
        detect_format(path)  # refuse an unknown format before any output is written
    pipeline = load_pipeline(config)
    quarantine = quarantine or output.with_name(output.name.split(".")[0] + ".quarantine.jsonl")
    bad: list[Quarantined] = []
    categories: Counter[str] = Counter()
    scored = passed = 0
    total_score = 0.0
    started = time.perf_counter()
    with ResultWriter(output) as writer, _progress(progress) as bar:
        task = bar.add_task("scoring", total=None)
        for path in inputs:
            for record in load(path):
                if isinstance(record, Quarantined):
                    bad.append(record)
                    err_console.print(f"[yellow]quarantined[/yellow] {escape(f'{record.source}:{record.row} {record.reason}')}")
                else:
                    report = pipeline.score(record)
                    writer.write(report, record)
                    scored += 1
                    passed += report.passed
                    total_score += report.score
                    categories.update(f.category for f in report.violations)
                bar.advance(task)
    write_quarantine(quarantine, bad)
    elapsed = time.perf_counter() - started
    _summary(scored + len(bad), scored, len(bad), passed, total_score, categories, elapsed, output, quarantine)


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, disable=not enabled, transient=True)


def _summary(records: int, scored: int, quarantined: int, passed: int, total_score: float,
             categories: Counter[str], elapsed: float, output: Path, quarantine: Path) -> None:
    table = Table(title="qa-engine score", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("records in", str(records))
    table.add_row("scored", str(scored))
    table.add_row("quarantined", str(quarantined))
    table.add_row("passed", f"{passed} ({passed / scored:.1%})" if scored else "0")
    table.add_row("mean score", f"{total_score / scored:.1f}" if scored else "-")
    for category, count in sorted(categories.items()):
        table.add_row(f"violations: {category}", str(count))
    table.add_row("elapsed", f"{elapsed:.2f} s ({scored / elapsed:.0f} conv/s)" if elapsed else "-")
    table.add_row("results", str(output))
    table.add_row("quarantine", str(quarantine))
    console.print(table)
    console.print(f"records in = scored + quarantined: {records} = {scored} + {quarantined}")


def _add_plugin_commands() -> None:
    for entry in entry_points(group="qa_engine.commands"):
        try:
            command = entry.load()
        except ImportError as exc:  # a plugin whose extra is not installed: say so, keep the rest
            err_console.print(f"[yellow]note[/yellow] command '{entry.name}' unavailable: {escape(str(exc))}")
            continue
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=entry.name)
        else:
            app.command(name=entry.name)(command)


def main() -> None:
    _add_plugin_commands()
    try:
        app()
    except QAEngineError as exc:
        err_console.print(f"[red]error[/red] {escape(str(exc))}")
        sys.exit(2)


