"""The ``qa-engine`` command line (an edge: files and terminal output live here).

Sub-commands of sibling packages (``rules``, later ``batch``/``serve``) come in through the
``qa_engine.commands`` entry-point group, so this module imports none of them.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qa_engine.config import load_limits, load_pipeline
from qa_engine.errors import ErrorCode, QAEngineError, RecordError
from qa_engine.findings import Finding, FindingKind, ScoreReport, Severity
from qa_engine.io import FileReader, Quarantined, QuarantineWriter, ResultWriter, detect_format
from qa_engine.pipeline import SCORE_BATCH, Pipeline
from qa_engine.schema import Conversation, Role, Turn

app = typer.Typer(help="QA and compliance scoring for Chinese e-commerce customer-service conversations.",
                  no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config YAML (detectors, scorecard, "
                                                                          "limits).")]

EXIT_FAIL_ON = 1    # --fail-on: a violation at or above the severity
EXIT_USAGE = 2      # a usage or configuration error
EXIT_MISMATCH = 3   # records read != records scored + records quarantined (records were lost)


class FailOn(str, Enum):
    """The least severity that fails a run (exit code 1)."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"


_RANK = {Severity.INFO: 0, Severity.MINOR: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}
FailOnOption = Annotated[Optional[FailOn], typer.Option(
    "--fail-on", help="Exit with code 1 when a violation has this severity or a higher one.")]


def _fails(findings: list[Finding], fail_on: FailOn | None) -> bool:
    return fail_on is not None and any(
        f.kind is FindingKind.VIOLATION and f.suppressed_by is None
        and _RANK[f.severity] >= _RANK[Severity(fail_on.value)] for f in findings)


@app.command()
def check(
    text: Annotated[str, typer.Argument(help="A draft reply to check, e.g. 亲，这款是全网最好的")],
    role: Annotated[Role, typer.Option(help="Who says it.")] = Role.AGENT,
    as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
    explain: Annotated[bool, typer.Option(help="Also show hits that context excused, with the reason.")] = False,
    config: ConfigOption = None,
    fail_on: FailOnOption = None,
) -> None:
    """Check one utterance and show its violations with evidence, citation and rewrite."""
    pipeline = load_pipeline(config)
    if explain:
        conversation = Conversation(conversation_id="check", turns=(Turn(role=role, text=text),))
        findings = [f for f in pipeline.findings(conversation, explain=True)
                    if f.kind is FindingKind.VIOLATION and f.category != "empathy"]
    else:
        findings = pipeline.check(text, role=role)
    _show_findings(pipeline, findings, as_json, explain, text)
    if _fails(findings, fail_on):
        raise typer.Exit(EXIT_FAIL_ON)


def _show_findings(pipeline: Pipeline, findings: list[Finding], as_json: bool, explain: bool, text: str) -> None:
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


LimitOption = Annotated[Optional[int], typer.Option(min=1, help="Overrides the config's limits (see README).")]


@app.command()
def score(
    inputs: Annotated[list[Path], typer.Argument(help="JSONL, Parquet or CSV transcript files.", exists=True,
                                                 dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Results file: .jsonl or .parquet.")],
    quarantine: Annotated[Optional[Path], typer.Option(
        help="Where bad records go (default: OUTPUT + .quarantine.jsonl, e.g. out.parquet.quarantine.jsonl).")] = None,
    config: ConfigOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    strict: Annotated[bool, typer.Option(help="Quarantine records with fields outside the schema (E044) instead "
                                              "of keeping those fields under metadata.")] = False,
    fail_on: FailOnOption = None,
    max_turn_bytes: LimitOption = None,
    max_turns: LimitOption = None,
    max_conversation_chars: LimitOption = None,
    max_record_bytes: LimitOption = None,
) -> None:
    """Score transcript files; bad records go to the quarantine file; print a summary.

    Exit codes: 0 done; 1 --fail-on met; 2 usage error; 3 records read do not add up to
    records scored + quarantined (records were lost: report it)."""
    for path in inputs:
        detect_format(path)  # refuse an unknown format before any output is written
    quarantine = quarantine or output.with_name(output.name + ".quarantine.jsonl")
    _refuse_overwriting(inputs, output, quarantine)
    limits = load_limits(config, max_turn_bytes=max_turn_bytes, max_turns=max_turns,
                         max_conversation_chars=max_conversation_chars, max_record_bytes=max_record_bytes)
    pipeline = load_pipeline(config)
    tally = _Tally()
    seen: dict[str, str] = {}  # conversation ids scored in this run: later duplicates are quarantined (E041)
    started = time.perf_counter()
    with ResultWriter(output) as writer, QuarantineWriter(quarantine) as bad, _progress(progress) as bar:
        task = bar.add_task("scoring", total=None)
        pending: list = []  # conversations scored SCORE_BATCH at a time (batching detectors match them together)

        def score_pending() -> None:
            for entry, report in zip(pending, pipeline.score_many(waiting.item for waiting in pending), strict=True):
                writer.write(report, entry.item)
                tally.score(report, entry.records, fail_on)
                bar.advance(task)
            pending.clear()

        for path in inputs:
            reader = FileReader(path, limits, strict, seen)
            for entry in reader:
                if isinstance(entry.item, Quarantined):
                    bad.write(entry.item)
                    tally.quarantine(entry.item)
                    where = f"{entry.item.source}:{entry.item.row} {entry.item.reason}"
                    err_console.print(f"[yellow]quarantined[/yellow] {escape(where)}")
                    bar.advance(task)
                else:
                    pending.append(entry)
                    if len(pending) >= SCORE_BATCH:
                        score_pending()
            score_pending()
            tally.records_read += reader.records_read
            if reader.records_read == 0:
                err_console.print(f"[yellow]warning[/yellow] {escape(str(path))} holds no records")
    tally.elapsed = time.perf_counter() - started
    _summary(tally, output, quarantine)
    if tally.records_read == 0:
        err_console.print("[yellow]warning[/yellow] no records in any input: nothing was scored")
    if not tally.balanced:
        err_console.print(f"[red]error[/red] records read ({tally.records_read}) != records scored "
                          f"({tally.records_scored}) + records quarantined ({tally.records_quarantined}): "
                          "records were lost — please report this with the input")
        raise typer.Exit(EXIT_MISMATCH)
    if tally.failed:
        err_console.print(f"[red]failed[/red] {tally.failed} conversation(s) with a violation of severity "
                          f"{fail_on.value if fail_on else ''} or higher")
        raise typer.Exit(EXIT_FAIL_ON)


def _refuse_overwriting(inputs: list[Path], output: Path, quarantine: Path) -> None:
    """Never write results over an input or the quarantine over the results."""
    sources = {path.resolve() for path in inputs}
    for target, name in ((output, "the output"), (quarantine, "the quarantine file")):
        if target.resolve() in sources:
            raise RecordError(ErrorCode.E040, source=str(target), detail=f"{name} would overwrite an input")
    if output.resolve() == quarantine.resolve():
        raise RecordError(ErrorCode.E040, source=str(output), detail="the output and the quarantine file are one file")


@dataclass
class _Tally:
    """A run's counts; records are input records (JSONL lines, CSV / Parquet rows)."""

    records_read: int = 0
    records_scored: int = 0
    records_quarantined: int = 0
    scored: int = 0
    quarantined: int = 0
    passed: int = 0
    failed: int = 0
    total_score: float = 0.0
    out_of_order: int = 0
    elapsed: float = 0.0
    categories: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    def score(self, report: ScoreReport, records: int, fail_on: FailOn | None) -> None:
        self.scored += 1
        self.records_scored += records
        self.passed += report.passed
        self.failed += _fails(report.findings, fail_on)
        self.total_score += report.score
        self.out_of_order += report.metrics.timestamps_out_of_order
        self.categories.update(f.category for f in report.violations)

    def quarantine(self, record: Quarantined) -> None:
        self.quarantined += 1
        self.records_quarantined += record.records
        self.codes[record.code] += 1

    @property
    def balanced(self) -> bool:
        return self.records_read == self.records_scored + self.records_quarantined


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, disable=not enabled, transient=True)


def _summary(tally: _Tally, output: Path, quarantine: Path) -> None:
    table = Table(title="qa-engine score", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("records read (lines, rows)", str(tally.records_read))
    table.add_row("conversations scored", f"{tally.scored} ({tally.records_scored} records)")
    table.add_row("quarantined", f"{tally.quarantined} ({tally.records_quarantined} records)")
    for code, count in sorted(tally.codes.items()):
        table.add_row(f"quarantined: {code}", str(count))
    scored = tally.scored
    table.add_row("passed", f"{tally.passed} ({tally.passed / scored:.1%})" if scored else "0")
    table.add_row("mean score", f"{tally.total_score / scored:.1f}" if scored else "-")
    for category, count in sorted(tally.categories.items()):
        table.add_row(f"violations: {category}", str(count))
    if tally.out_of_order:
        table.add_row("timestamps out of order (time metrics unknown)", str(tally.out_of_order))
    elapsed = tally.elapsed
    table.add_row("elapsed", f"{elapsed:.2f} s ({scored / elapsed:.0f} conv/s)" if elapsed else "-")
    table.add_row("results", str(output))
    table.add_row("quarantine", str(quarantine))
    console.print(table)
    check = "" if tally.balanced else "  [red]MISMATCH[/red]"
    console.print(f"records in = scored + quarantined: {tally.records_read} = {tally.records_scored} + "
                  f"{tally.records_quarantined}{check}")


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


