"""One entry point from results to a report file, shared by the CLI, tests and benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from batch.reports.results import Filters, load_results
from batch.reports.violations import Masking, header, summary_tables, violation_rows
from qa_engine.tables import FCR_WINDOW_DAYS

FORMATS = ("xlsx", "csv", "html")


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    format: str
    conversations: int
    violations: int
    masked: bool
    seconds: float


def report_format(output: Path, requested: str | None) -> str:
    """The format asked for, else the one the output's suffix names."""
    fmt = (requested or output.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r} (use --format {'|'.join(FORMATS)} or a .xlsx/.csv/.html output)")
    return fmt


def build_report(source: Path, output: Path, fmt: str | None = None, filters: Filters | None = None,
                 unmask: bool = False, fcr_window_days: int = FCR_WINDOW_DAYS) -> ReportSummary:
    """Read ``source`` (batch folder or score file), keep what ``filters`` cover, write ``output``.

    Raises:
        ResultsError: the results are missing or malformed (nothing is written).
        ValueError: the format is unknown.
    """
    started = time.perf_counter()
    fmt = report_format(Path(output), fmt)
    results = load_results(Path(source), filters, fcr_window_days)
    masking = Masking(unmask=unmask)
    rows = violation_rows(results, masking)
    title = "QA dashboard" if fmt == "html" else "Violation report 违规报告"
    head = header(results, rows, masking, title)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        from batch.reports.exports import write_csv

        write_csv(output, head, rows)
    elif fmt == "xlsx":
        from batch.reports.exports import write_xlsx

        write_xlsx(output, head, rows, summary_tables(results, rows))
    else:
        from batch.reports.dashboard import render_dashboard

        output.write_text(render_dashboard(results, rows, summary_tables(results, rows), masking, head),
                          encoding="utf-8")
    return ReportSummary(output, fmt, len(results.conversations), len(rows), not unmask,
                         time.perf_counter() - started)
