"""Batch scoring throughput: the single-process CLI against the Ray job, side by side.

Builds one generated month (``make_month.py``, resampled: for speed only, never accuracy),
then times, each as a user runs it (process start-up included):
``qa-engine score`` on one core, and ``qa-engine batch`` with 1 and 2 workers, with the peak resident
memory of each command's own process (the Ray *driver*; workers are separate processes). A 50-conversation
month run the same ways gives the fixed start-up cost (issue #13: ≤ 5 s, driver ≤ 300 MB); ``--repeat K``
runs those K times in turn and reports the median (min–max), and ``--fixed-only`` runs only those. The load
average is printed before and after: on a shared machine the figures follow it.

    python benchmarks/bench_batch.py [-n 20000] [--shards 16] [--gpus-per-worker 1] [--repeat 5] [--fixed-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("qa-engine"))


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory in MB of the command's own process (``VmHWM``, polled)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status, peak_kb = Path(f"/proc/{process.pid}/status"), 0
    while process.poll() is None:
        try:
            peak_kb = max(peak_kb, next(int(line.split()[1]) for line in status.read_text().splitlines()
                                        if line.startswith("VmHWM:")))
        except (OSError, StopIteration):
            pass  # not started yet, or just exited
        time.sleep(0.05)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return time.perf_counter() - started, peak_kb / 1024


def run_all(month: Path, work: Path, gpus_per_worker: float) -> dict[str, tuple[float, float]]:
    files = sorted(str(p) for p in month.glob("*.jsonl"))
    results = {"CLI, 1 process": timed([EXE, "score", *files, "-o", str(work / "cli.parquet"), "--no-progress"])}
    for workers in (1, 2):
        out = work / f"ray{workers}"
        shutil.rmtree(out, ignore_errors=True)
        results[f"Ray job, {workers} worker{'s' if workers > 1 else ''}"] = timed(
            [EXE, "batch", str(month), "-o", str(out), "--workers", str(workers), "--no-progress",
             "--gpus-per-worker", str(gpus_per_worker)])
    return results


def fixed_cost(tiny: Path, work: Path, gpus_per_worker: float, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """The 50-conversation runs, ``repeat`` rounds of each command in turn."""
    rounds = [run_all(tiny, work, gpus_per_worker) for _ in range(repeat)]
    return {name: [r[name] for r in rounds] for name in rounds[0]}


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median:.1f}" if len(values) == 1 else f"{median:.1f} ({min(values):.1f}-{max(values):.1f})"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--size", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the 50-conversation runs (median shown)")
    parser.add_argument("--fixed-only", action="store_true", help="only the 50-conversation runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    try:
        print(f"before: {load()}")
        tiny = work / "tiny"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_month.py"), "-n", "50", "--shards", "2",
                        "-o", str(tiny)], check=True, stdout=subprocess.DEVNULL)
        fixed = fixed_cost(tiny, work, args.gpus_per_worker, args.repeat)
        if args.fixed_only:
            print(f"50 conversations in 2 shards, {args.repeat} round(s): seconds median (min-max), driver peak MB")
            for name, runs in fixed.items():
                print(f"{name:22}{spread([s for s, _ in runs]):>20}{max(m for _, m in runs):>10.0f}")
        else:
            month = work / "month"
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_month.py"), "-n", str(args.size),
                            "--shards", str(args.shards), "-o", str(month)], check=True, stdout=subprocess.DEVNULL)
            results = run_all(month, work, args.gpus_per_worker)
            cli = results["CLI, 1 process"][0]
            print(f"month: {args.size} conversations in {args.shards} shards (generated; speed only)")
            print(f"{'':22}{'seconds':>10}{'conv/s':>10}{'vs CLI':>10}{'peak MB':>10}"
                  f"{'50-conv s':>20}{'50-conv MB':>12}")
            for name, (seconds, peak) in results.items():
                print(f"{name:22}{seconds:>10.1f}{args.size / seconds:>10.0f}{seconds / cli - 1:>+10.0%}{peak:>10.0f}"
                      f"{spread([s for s, _ in fixed[name]]):>20}{max(m for _, m in fixed[name]):>12.0f}")
            one, two = results["Ray job, 1 worker"][0], results["Ray job, 2 workers"][0]
            print(f"scaling 1 → 2 workers: x{one / two:.2f}   (this machine has 2 cores); 2 workers vs the CLI: "
                  f"x{cli / two:.2f}")
        print("targets (issue #13): 2 workers >= 1.3x the CLI; fixed start-up (50-conversation run) <= 5 s; "
              "driver peak <= 300 MB")
        print(f"after: {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
