"""``qa-engine report`` and ``qa-engine review`` (plugged in by entry point)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from batch.reports.build import FORMATS, build_report
from batch.reports.results import Filters
from batch.reports.reviews import import_verdicts
from qa_engine.errors import ResultsError
from qa_engine.findings import Severity
from qa_engine.tables import FCR_WINDOW_DAYS

console = Console(soft_wrap=True)  # paths and counts stay on one line for scripts
err_console = Console(stderr=True, soft_wrap=True)

ResultsArgument = Annotated[Path, typer.Argument(help="A batch output folder or a `qa-engine score` .jsonl/.parquet file.")]


def _date(value: Optional[str], name: str):
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-01", param_hint=name) from None


def report(
    results: ResultsArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="Report file (.xlsx, .csv or .html).")],
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help=f"{'|'.join(FORMATS)} (default: the output's suffix).")] = None,
    date_from: Annotated[Optional[str], typer.Option("--from", help="First day covered (YYYY-MM-DD).")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="Last day covered (YYYY-MM-DD).")] = None,
    team: Annotated[Optional[list[str]], typer.Option(help="Only these teams (repeatable).")] = None,
    agent: Annotated[Optional[list[str]], typer.Option(help="Only these agents (repeatable).")] = None,
    rule: Annotated[Optional[list[str]], typer.Option(help="Only rules matching these globs, e.g. 'privacy.*'.")] = None,
    severity: Annotated[Optional[Severity], typer.Option(help="Minimum severity (major keeps critical and major).")] = None,
    unmask: Annotated[bool, typer.Option(help="Show personal data in full. Recorded in the report header.")] = False,
    fcr_days: Annotated[int, typer.Option(min=1, help="First-contact resolution: a resolved conversation counts "
                                                      "when its customer does not contact again within these days.")]
    = FCR_WINDOW_DAYS,
) -> None:
    """Auditor violation report (XLSX / CSV) or QA dashboard (HTML) from scored results."""
    filters = Filters(_date(date_from, "--from"), _date(date_to, "--to"), tuple(team or ()), tuple(agent or ()),
                      tuple(rule or ()), severity)
    try:
        summary = build_report(results, output, fmt, filters, unmask, fcr_days)
    except (ResultsError, ValueError) as exc:
        err_console.print(f"[red]error[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if summary.conversations == 0:
        err_console.print(f"[yellow]warning[/yellow] no conversation matches the filters ({escape(filters.describe())}): "
                          "the report is empty — check the team / agent names and the dates")
    masking = "personal data masked" if summary.masked else "[bold red]personal data UNMASKED[/bold red]"
    console.print(f"{summary.format} report: {summary.violations} violations in {summary.conversations} conversations, "
                  f"{masking}, {summary.seconds:.1f} s → {escape(str(summary.path))}")


review = typer.Typer(help="Reviewers' verdicts on findings (the calibration loop).", no_args_is_help=True)


@review.command("import")
def review_import(
    verdicts: Annotated[Path, typer.Argument(help="CSV with finding_id, verdict (confirm|overturn), reviewer, reason; "
                                                  "or the report's CSV export with review, reviewer, review_reason filled in.")],
    results: Annotated[Path, typer.Option("--results", "-r", help="The results the verdicts judge.")],
) -> None:
    """Store verdicts beside the results; bad rows are quarantined with row and reason."""
    try:
        summary = import_verdicts(verdicts, results)
    except ResultsError as exc:
        err_console.print(f"[red]error[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(f"verdict rows in = imported + unchanged + unreviewed + quarantined: {summary.rows_in} = "
                  f"{summary.imported} + {summary.unchanged} + {summary.unreviewed} + {summary.quarantined}; "
                  f"stored in {escape(str(summary.verdicts_file))}")
    if summary.quarantine_file is not None:
        err_console.print(f"[yellow]quarantined[/yellow] {summary.quarantined} row(s): "
                          f"{escape(str(summary.quarantine_file))}")
