"""Report generation time for a month with ≥ 100 k violation findings (target: each < 60 s).

Builds the month with make_month.py, scores it with ``qa-engine score`` (not timed), then
times each report format from the results file, side by side with a baseline: the same
violation rows written by openpyxl's default (non-streaming) writer.

    python benchmarks/bench_reports.py                  # ~78 k conversations → ~100 k violations
    python benchmarks/bench_reports.py --conversations 3000 --keep /tmp/bench-reports
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch.reports.build import build_report
from batch.reports.results import load_results
from batch.reports.violations import COLUMNS, Masking, violation_rows

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("qa-engine"))


def openpyxl_baseline(rows: list[dict], path: Path) -> None:
    """What a first version would do: openpyxl's in-memory workbook, one append per row."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([c.title for c in COLUMNS])
    for row in rows:
        sheet.append([row[c.key] for c in COLUMNS])
    book.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=78_000)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-reports-"))
    work.mkdir(parents=True, exist_ok=True)
    month, results = work / "month.jsonl", work / "results.parquet"
    if not results.exists():
        subprocess.run([sys.executable, str(HERE / "make_month.py"), "-n", str(args.conversations), "-o", str(month)],
                       check=True)
        subprocess.run([EXE, "score", str(month), "-o", str(results), "--no-progress"], check=True,
                       stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    loaded = load_results(results)
    rows = violation_rows(loaded, Masking())
    prepare = time.perf_counter() - started
    print(f"{len(loaded.conversations):,} conversations, {len(rows):,} violation findings "
          f"(read + mask + mark: {prepare:.1f} s)")
    print(f"{'format':<10}{'qa-engine report':>18}   {'baseline':<40}{'< 60 s':<10}size")
    for fmt in ("xlsx", "csv", "html"):
        summary = build_report(results, work / f"report.{fmt}")
        baseline = ""
        if fmt == "xlsx":
            started = time.perf_counter()
            openpyxl_baseline(rows, work / "baseline.xlsx")
            baseline = f"{prepare + time.perf_counter() - started:.1f} s (openpyxl default writer)"
        verdict = "ok" if summary.seconds < 60 else "OVER 60 s"
        print(f"{fmt:<10}{summary.seconds:>16.1f} s   {baseline:<40}{verdict:<10}"
              f"{(work / f'report.{fmt}').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
