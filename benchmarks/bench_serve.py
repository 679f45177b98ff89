"""Live service against a bare-ASGI anchor, each server and the load generator a process of its own.

Two servers are started in turn with the same uvicorn settings (one process, ``log_level
"warning"``, uvicorn's default loop and HTTP parser): ``qa-engine serve`` and the *anchor*, a
plain async callable (no framework) that does what ``POST /v1/check`` must do at least — the same
bearer-token check, read the JSON body, ``Pipeline.check`` the same drafts, answer the same JSON
(warnings and versions). Against each it measures

- closed loop: ``--clients`` connections each sending the next request as soon as the last is
  answered, for ``--seconds`` — the throughput;
- open loop: requests leave on schedule at each ``--rates`` offered rate whether or not earlier
  ones returned — p50/p95/p99 latency;
- before both, each app's CPU per request called in this process (no sockets, no server): the
  steadiest comparison on a shared machine;

and prints the ratios against issue #13's targets (anchor throughput ≤ 1.4× ours, our p99 at 300
req/s ≤ 1.5× the anchor's). Then ``--sessions`` concurrent WebSocket sessions sending drafts to
``qa-engine serve``, and the in-process cost of the check. The load generator writes pre-built
HTTP/1.1 requests on keep-alive connections (asyncio streams on uvloop) so that the client costs
little of the CPU the servers share. The machine's other load moves the closed-loop figures from
round to round; the servers' CPU time per request (from ``/proc``) moves far less.

    python benchmarks/bench_serve.py [--seconds 5] [--clients 32] [--rates 100 300] [--sessions 200]
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
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import websockets

from qa_engine.pipeline import Pipeline
from serve.app import create_app, freeze_start_up
from serve.settings import ServeSettings

try:  # the load generator on uvloop (a dependency of uvicorn[standard]) leaves the servers more of the CPU
    from uvloop import run
except ImportError:
    from asyncio import run

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
THROUGHPUT_TARGET, P99_TARGET, P99_RATE = 1.4, 1.5, 300


def drafts() -> list[str]:
    texts = []
    with open(ROOT / "qa_engine" / "samples" / "sample_month.jsonl", encoding="utf-8") as handle:
        for line in handle:
            texts += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "agent"]
    random.Random(3).shuffle(texts)
    return texts


def anchor_app(pipeline: Pipeline, tokens: set[str]) -> Callable[..., Awaitable[None]]:
    """The anchor: ``POST /v1/check`` as a bare ASGI callable — token, JSON in, check, JSON out."""
    from serve.models import Warning  # the response's fields, so both servers answer the same JSON

    versions = pipeline.versions.model_dump()  # the anchor never reloads its rules

    async def respond(send: Callable[..., Awaitable[None]], status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict, receive: Callable[..., Awaitable[dict]], send: Callable[..., Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        if not authorization.lower().startswith("bearer ") or authorization[7:].strip() not in tokens:
            await respond(send, 401, {"error": "E401", "message": "missing or unknown bearer token"})
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        draft = json.loads(b"".join(chunks))["draft"]
        findings = pipeline.check(draft)
        await respond(send, 200, {"warnings": [Warning.of(f).model_dump() for f in findings], "versions": versions})

    return app


def run_anchor(port: int) -> None:
    import uvicorn

    app = anchor_app(Pipeline.from_config(), {TOKEN})
    freeze_start_up()  # as `qa-engine serve` does: the same garbage-collector set-up
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-built requests (a response needs Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


def requests(texts: list[str], port: int) -> list[bytes]:
    built = []
    for text in texts:
        body = json.dumps({"draft": text}, ensure_ascii=False).encode()
        built.append(f"POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return built


async def closed_loop(port: int, clients: int, seconds: float, built: list[bytes]) -> tuple[int, int, float]:
    """(answered, errors, elapsed): each client sends its next request as soon as the last is answered."""
    connections = [await Connection.open(port) for _ in range(clients)]
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def client(number: int, connection: Connection) -> None:
        nonlocal done, errors
        index = number
        while time.perf_counter() < stop:
            if await connection.send(built[index % len(built)]) == 200:
                done += 1
            else:
                errors += 1
            index += clients

    start = time.perf_counter()
    await asyncio.gather(*(client(n, c) for n, c in enumerate(connections)))
    elapsed = time.perf_counter() - start
    for connection in connections:
        connection.close()
    return done, errors, elapsed


async def open_loop(port: int, rate: int, seconds: float, built: list[bytes]) -> tuple[list[float], int, float]:
    """(latencies ms, errors, elapsed): requests leave on schedule; an idle connection is reused, else one opened."""
    latencies: list[float] = []
    errors = 0
    idle: list[Connection] = []

    async def one(request: bytes, scheduled: float) -> None:
        nonlocal errors
        connection = idle.pop() if idle else await Connection.open(port)
        if await connection.send(request) == 200:
            latencies.append((time.perf_counter() - scheduled) * 1000)
        else:
            errors += 1
        idle.append(connection)

    tasks = []
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(built[index % len(built)], scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for connection in idle:
        connection.close()
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


def quantiles(latencies_ms: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(latencies_ms, n=100)
    return q[49], q[94], q[98]


def summary(latencies_ms: list[float]) -> str:
    if len(latencies_ms) < 2:
        return "n/a"
    p50, p95, p99 = quantiles(latencies_ms)
    return f"p50 {p50:7.2f}  p95 {p95:7.2f}  p99 {p99:7.2f} ms"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def asgi_cost(apps: dict[str, Any], bodies: list[bytes], blocks: int = 8, per_block: int = 1000) -> dict[str, float]:
    """CPU µs a ``POST /v1/check`` costs each ASGI app called in this process — no sockets, no
    server — the fewest over ``blocks`` blocks taken in turn: the steadiest comparison of the apps."""
    async def one(app: Any, body: bytes) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/v1/check", "raw_path": b"/v1/check",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
                 "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {TOKEN}".encode()),
                             (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                 "state": {}}
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        statuses = []

        async def receive() -> dict:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [200]:
            raise RuntimeError(f"in-process check answered {statuses}")

    best = {name: float("inf") for name in apps}
    for _ in range(blocks):
        for name, app in apps.items():
            started = time.process_time()
            for index in range(per_block):
                await one(app, bodies[index % len(bodies)])
            best[name] = min(best[name], (time.process_time() - started) / per_block * 1e6)
    return best


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (all its threads) has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(command: list[str], port: int, env: dict[str, str]) -> Iterator[int]:
    """Start a server, wait until it answers a check; yields its pid."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.post(f"http://127.0.0.1:{port}/v1/check", json={"draft": ""}, timeout=1,
                              headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"server {command} did not start") from None
                time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="anchor and ours measured in turn, this many times")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop connections")
    parser.add_argument("--rates", type=int, nargs="+", default=[100, P99_RATE])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--drafts-per-session", type=int, default=5)
    parser.add_argument("--anchor", type=int, metavar="PORT", help=argparse.SUPPRESS)  # run the anchor server
    args = parser.parse_args()
    if args.anchor:
        run_anchor(args.anchor)
        return
    texts = drafts()

    pipeline = Pipeline.from_config()
    in_process = []
    for text in texts[:2000]:
        started = time.perf_counter()
        pipeline.check(text)
        in_process.append((time.perf_counter() - started) * 1000)
    print(f"{'in-process pipeline.check':44}{summary(in_process)}")
    log_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"qa-bench-{os.getpid()}.sqlite3"
    try:
        compare_in_process(pipeline, texts, log_file)
        compare_servers(args, texts, log_file)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{log_file}{suffix}").unlink(missing_ok=True)


def compare_in_process(pipeline: Pipeline, texts: list[str], log_file: Path) -> None:
    ours = create_app(ServeSettings(tokens=[TOKEN], rate_limit_per_minute=10**8, warning_log=str(log_file),
                                    reload_interval_s=0), pipeline)
    apps = {"anchor": anchor_app(pipeline, {TOKEN}), "ours": ours}
    freeze_start_up()
    cost = run(asgi_cost(apps, [json.dumps({"draft": t}, ensure_ascii=False).encode() for t in texts]))
    ours.state.service.warning_log.close()
    print(f"ASGI app called in process, CPU a request: anchor {cost['anchor']:.0f} µs, ours {cost['ours']:.0f} µs "
          f"= {cost['ours'] / cost['anchor']:.2f}×")


def compare_servers(args: argparse.Namespace, texts: list[str], log_file: Path) -> None:
    ports = {"anchor": free_port(), "ours": free_port()}
    env = {**os.environ, "QA_ENGINE_TOKENS": TOKEN, "QA_ENGINE_RATE_LIMIT_PER_MINUTE": "100000000",
           "QA_ENGINE_WARNING_LOG": str(log_file)}
    commands = {"anchor": [sys.executable, str(Path(__file__).resolve()), "--anchor", str(ports["anchor"])],
                "ours": [str(Path(sys.executable).with_name("qa-engine")), "serve", "--port", str(ports["ours"])]}
    built = {name: requests(texts, port) for name, port in ports.items()}
    print(f"servers: uvicorn, 1 process each, both up, measured in turn ({args.rounds} rounds, the order "
          f"alternating); load generator: this process")
    answered = {name: [0, 0.0, 0.0] for name in ports}  # closed loop: requests answered, seconds, server CPU s
    latencies: dict[tuple[str, int], list[float]] = {(name, rate): [] for name in ports for rate in args.rates}
    with server(commands["anchor"], ports["anchor"], env) as anchor, \
            server(commands["ours"], ports["ours"], env) as ours:
        pids = {"anchor": anchor, "ours": ours}
        for name, port in ports.items():
            run(closed_loop(port, args.clients, 1.0, built[name]))  # warm-up, not measured
        for round_ in range(args.rounds):
            for name in (ports if round_ % 2 == 0 else reversed(ports)):
                cpu = cpu_seconds(pids[name])
                done, errors, elapsed = run(closed_loop(ports[name], args.clients, args.seconds, built[name]))
                cpu = cpu_seconds(pids[name]) - cpu
                answered[name] = [a + b for a, b in zip(answered[name], (done, elapsed, cpu))]
                print(f"round {round_ + 1} {name:7} closed loop, {args.clients} clients{'':7}"
                      f"{done / elapsed:8.0f} req/s, server CPU {cpu / done * 1e6:4.0f} µs a request, "
                      f"{errors} errors")
                for rate in args.rates:
                    measured, errors, elapsed = run(open_loop(ports[name], rate, args.seconds, built[name]))
                    latencies[name, rate] += measured
                    print(f"round {round_ + 1} {name:7} open loop @ {rate:4} req/s{'':3}{summary(measured)}   "
                          f"{len(measured) / elapsed:6.0f} req/s done, {errors} errors")
        sessions, errors, elapsed = run(websocket_sessions(
            f"ws://127.0.0.1:{ports['ours']}", args.sessions, args.drafts_per_session, texts))
    print("all rounds:")
    throughput = {name: done / seconds for name, (done, seconds, _) in answered.items()}
    cpu_each = {name: cpu / done * 1e6 for name, (done, _, cpu) in answered.items()}
    for name in ports:
        print(f"  {name:7} closed loop {throughput[name]:8.0f} req/s, server CPU {cpu_each[name]:4.0f} µs a request")
        for rate in args.rates:
            print(f"  {name:7} open loop @ {rate:4} req/s  {summary(latencies[name, rate])}")
    print(f"  ours    WebSocket, {args.sessions} sessions × {args.drafts_per_session} drafts  {summary(sessions)}   "
          f"{len(sessions) / elapsed:6.0f} drafts/s, {errors} errors")
    print(f"server CPU a request: ours / anchor = {cpu_each['ours'] / cpu_each['anchor']:.2f}× "
          "(about the throughput ratio were each server given a core of its own)")
    ratio = throughput["anchor"] / throughput["ours"]
    print(f"throughput: anchor / ours = {ratio:.2f}× (target ≤ {THROUGHPUT_TARGET}×: "
          f"{'met' if ratio <= THROUGHPUT_TARGET else 'NOT met'})")
    if P99_RATE in args.rates:
        p99 = quantiles(latencies["ours", P99_RATE])[2] / quantiles(latencies["anchor", P99_RATE])[2]
        print(f"p99 @ {P99_RATE} req/s: ours / anchor = {p99:.2f}× (target ≤ {P99_TARGET}×: "
              f"{'met' if p99 <= P99_TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
