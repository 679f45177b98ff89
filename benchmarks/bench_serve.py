"""Live service latency: server and load generator as separate processes on loopback.

Prints p50/p95/p99 latency, throughput and errors for ``POST /v1/check`` at fixed offered
rates (open loop: requests leave on schedule whether or not earlier ones returned), for 200
concurrent WebSocket sessions sending drafts, and, next to them, the in-process cost of the
same check.

    python benchmarks/bench_serve.py [--seconds 5] [--rates 50 100 200] [--sessions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import websockets

from qa_engine.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def drafts() -> list[str]:
    texts = []
    with open(ROOT / "qa_engine" / "samples" / "sample_month.jsonl", encoding="utf-8") as handle:
        for line in handle:
            texts += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "agent"]
    return texts


def summary(latencies_ms: list[float]) -> str:
    if len(latencies_ms) < 2:
        return "n/a"
    q = statistics.quantiles(latencies_ms, n=100)
    return f"p50 {q[49]:7.2f}  p95 {q[94]:7.2f}  p99 {q[98]:7.2f} ms"


async def offered_rate(url: str, rate: int, seconds: float, texts: list[str]) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits,
                                 timeout=10) as client:
        async def one(text: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                response = await client.post("/v1/check", json={"draft": text})
                if response.status_code != 200:
                    errors += 1
                    return
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        for index in range(int(rate * seconds)):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(texts[index % len(texts)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


async def websocket_sessions(url: str, sessions: int, drafts_each: int, texts: list[str]) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0

    async def session(number: int) -> None:
        nonlocal errors
        try:
            async with websockets.connect(f"{url}/v1/live?token={TOKEN}", max_size=2**20) as live:
                for seq in range(1, drafts_each + 1):
                    started = time.perf_counter()
                    await live.send(json.dumps({"type": "draft", "seq": seq,
                                                "text": texts[(number * drafts_each + seq) % len(texts)]}))
                    while json.loads(await live.recv()).get("seq") != seq:
                        pass
                    latencies.append((time.perf_counter() - started) * 1000)
        except (OSError, websockets.WebSocketException):
            errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(session(n) for n in range(sessions)))
    return latencies, errors, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--drafts-per-session", type=int, default=5)
    args = parser.parse_args()
    texts = drafts()
    random.Random(3).shuffle(texts)

    pipeline = Pipeline.from_config()
    in_process = []
    for text in texts[:2000]:
        started = time.perf_counter()
        pipeline.check(text)
        in_process.append((time.perf_counter() - started) * 1000)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "QA_ENGINE_TOKENS": TOKEN, "QA_ENGINE_RATE_LIMIT_PER_MINUTE": "10000000",
           "QA_ENGINE_WARNING_LOG": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"qa-bench-{port}.sqlite3")}
    server = subprocess.Popen([str(Path(sys.executable).with_name("qa-engine")), "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        asyncio.run(offered_rate(url, 100, 1.0, texts))  # warm up connections and caches, not measured
        print(f"server: qa-engine serve (uvicorn, 1 process) on {url}; load generator: this process")
        print(f"{'in-process pipeline.check':34}{summary(in_process)}")
        for rate in args.rates:
            latencies, errors, elapsed = asyncio.run(offered_rate(url, rate, args.seconds, texts))
            print(f"{f'POST /v1/check @ {rate} req/s':34}{summary(latencies)}   "
                  f"{len(latencies) / elapsed:6.0f} req/s done, {errors} errors")
        latencies, errors, elapsed = asyncio.run(
            websocket_sessions(url.replace("http", "ws"), args.sessions, args.drafts_per_session, texts))
        print(f"{f'WebSocket, {args.sessions} sessions':34}{summary(latencies)}   "
              f"{len(latencies) / elapsed:6.0f} drafts/s, {errors} errors")
        print("targets (2-core machine): rules-only p99 <= 5 ms at 200 req/s, no errors")
    finally:
        server.terminate()
        server.wait(timeout=30)
        Path(env["QA_ENGINE_WARNING_LOG"]).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
