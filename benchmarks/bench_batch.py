"""Batch scoring throughput: the single-process CLI against the Ray job, side by side.

Builds one generated month (``make_month.py``, resampled: for speed only, never accuracy),
then times, each as a user runs it (process start-up included):
``qa-engine score`` on one core, and ``qa-engine batch`` with 1 and 2 workers.

    python benchmarks/bench_batch.py [-n 20000] [--shards 16] [--gpus-per-worker 1]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("qa-engine"))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--size", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    try:
        month = work / "month"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_month.py"), "-n", str(args.size),
                        "--shards", str(args.shards), "-o", str(month)], check=True, stdout=subprocess.DEVNULL)
        files = sorted(str(p) for p in month.glob("*.jsonl"))
        results = {"CLI, 1 process": timed([EXE, "score", *files, "-o", str(work / "cli.parquet"), "--no-progress"])}
        for workers in (1, 2):
            out = work / f"ray{workers}"
            results[f"Ray job, {workers} worker{'s' if workers > 1 else ''}"] = timed(
                [EXE, "batch", str(month), "-o", str(out), "--workers", str(workers), "--no-progress",
                 "--gpus-per-worker", str(args.gpus_per_worker)])
        cli = results["CLI, 1 process"]
        print(f"month: {args.size} conversations in {args.shards} shards (generated; speed only)")
        print(f"{'':22}{'seconds':>10}{'conv/s':>10}{'vs CLI':>10}")
        for name, seconds in results.items():
            print(f"{name:22}{seconds:>10.1f}{args.size / seconds:>10.0f}{seconds / cli - 1:>+10.0%}")
        one, two = results["Ray job, 1 worker"], results["Ray job, 2 workers"]
        print(f"scaling 1 → 2 workers: x{one / two:.2f}   (this machine has 2 cores)")
        print("targets: Ray overhead <= 15 % against the CLI at equal cores; rules-only >= 1,000 conv/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
