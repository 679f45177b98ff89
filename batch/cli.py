"""``qa-engine batch``: score a month of transcripts with Ray (plugged in by entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batch.job import BatchError, run_job
from batch.shards import input_files
from qa_engine.tables import FCR_WINDOW_DAYS

console = Console()


def batch(
    inputs: Annotated[list[str], typer.Argument(help="Folders, globs or files (JSONL / Parquet / CSV), one shard each.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")],
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS, else local).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Scoring actors.")] = 1,
    gpus_per_worker: Annotated[Optional[float], typer.Option(
        min=0, help="GPUs each actor asks for (0: none). Default: one (or an even share) when the config has "
                    "model detectors and the cluster has GPUs, else none.")] = None,
    resume: Annotated[bool, typer.Option(help="Skip shards already committed in OUTPUT.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config YAML.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    fcr_days: Annotated[int, typer.Option(min=1, help="First-contact resolution: a resolved conversation counts "
                                                      "when its customer does not contact again within these days.")]
    = FCR_WINDOW_DAYS,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Ray's own log lines.")] = False,
) -> None:
    """Score a month of transcripts with a Ray actor pool; resumable, exactly once per conversation."""
    try:
        total = len(input_files(inputs))
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[scored]} conversations"), console=Console(stderr=True),
                   disable=not progress, transient=True)
    with bar:
        task = bar.add_task("shards", total=total, scored=0)

        def advance(summary: dict) -> None:
            bar.update(task, advance=1, scored=bar.tasks[0].fields["scored"] + summary["scored"])

        try:
            summary = run_job(inputs, output, address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                              resume=resume, config=config, on_shard=advance, fcr_window_days=fcr_days,
                              verbose=verbose)
        except BatchError as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
    table = Table(title="qa-engine batch", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [("shards", f"{summary.shards} ({summary.shards_skipped} already committed)"),
            ("records in", summary.records_in), ("scored", summary.scored), ("quarantined", summary.quarantined),
            ("findings", summary.findings),
            *((f"violations: {c}", n) for c, n in sorted(summary.violations_by_category.items())),
            ("elapsed", f"{summary.elapsed_s:.1f} s"), ("conv/s", f"{summary.conversations_per_s:.0f}"),
            ("output", str(output))]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    console.print(f"records in = scored + quarantined: {summary.records_in} = "  # in records, as `score` prints
                  f"{summary.records_scored} + {summary.records_quarantined}")
    if not summary.balanced:
        console.print("[red]error[/red] records were lost: the records read do not add up — please report this")
        raise typer.Exit(3)
