"""The batch job's fixed start-up (issue #13): the embedded Ray starts only what a one-job node uses, and a
small input gets no more actors than it can use; a cluster (or a Ray the caller started) is used as asked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from batch import local_ray  # noqa: E402
from batch.job import LOCAL_BYTES_PER_ACTOR, actor_count, run_job  # noqa: E402
from batch.shards import Shard  # noqa: E402
from test_batch import split_sample  # noqa: E402

pytestmark = pytest.mark.ray
RAY_AGENT_PORT = 52365  # Ray's fixed default port for a node's dashboard agent


def shards(*sizes: int) -> list[Shard]:
    return [Shard(f"/in/{i}.jsonl", f"{i:032x}", size) for i, size in enumerate(sizes)]


def test_a_small_input_gets_one_embedded_actor_a_cluster_gets_the_workers_asked():
    mb = 1024 * 1024
    assert actor_count(2, shards(25_000, 25_000), local=True) == 1          # 50 conversations: one actor
    assert actor_count(4, shards(*[mb] * 5), local=True) == 2               # one per full 2 MiB of input
    assert actor_count(2, shards(*[6 * mb] * 16), local=True) == 2          # a month: the workers asked
    assert actor_count(8, shards(*[6 * mb] * 3), local=True) == 3           # never more than there are shards
    assert actor_count(2, shards(25_000, 25_000), local=False) == 2         # a cluster: as asked
    assert actor_count(4, shards(LOCAL_BYTES_PER_ACTOR), local=False) == 1  # ... never more than the shards


@pytest.fixture
def embedded(monkeypatch):
    """Run the job on its embedded Ray (none started before, no address) and keep the node it started."""
    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    nodes = []
    start = local_ray.start
    monkeypatch.setattr(local_ray, "start", lambda *args: nodes.append(start(*args)) or nodes[-1])
    return nodes


@pytest.mark.parametrize("verbose", [False, True])
def test_the_embedded_node_runs_only_what_the_job_uses_and_stops_it_all(tmp_path, embedded, verbose):
    split_sample(tmp_path / "month", shards=2)
    running: list[set[str]] = []
    summary = run_job([str(tmp_path / "month")], tmp_path / "out", workers=2, verbose=verbose,
                      on_shard=lambda _: running.append({kind for kind, _ in embedded[0].live_processes()}))
    assert summary.scored == 300 and summary.balanced
    assert {"gcs_server", "raylet"} <= running[0]
    assert not running[0] & {"monitor", "dashboard"}  # no autoscaler monitor, no API server
    assert ("log_monitor" in running[0]) == verbose  # worker logs reach the driver only with --verbose
    assert not ray.is_initialized() and embedded[0].live_processes() == []  # nothing left running


def test_another_ray_on_the_agent_port_does_not_hold_up_the_embedded_node(tmp_path, embedded):
    split_sample(tmp_path / "month", shards=1)
    holder = socket.socket()
    try:
        holder.bind(("", RAY_AGENT_PORT))
        holder.listen()
    except OSError:
        pass  # another Ray on this machine holds it already: the same case
    try:
        assert run_job([str(tmp_path / "month")], tmp_path / "out").scored == 300
    finally:
        holder.close()
    agent_log = Path(embedded[0].get_logs_dir_path()) / "dashboard_agent.log"
    assert "Failed to bind" not in agent_log.read_text()  # Ray's fixed port retries 6 times over 3.3 s


def test_an_empty_ray_address_is_no_address(tmp_path, embedded, monkeypatch):
    """``RAY_ADDRESS=`` left empty in a shell starts the embedded node; it used to reach ``ray.init(address="")``."""
    split_sample(tmp_path / "month", shards=1)
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert run_job([str(tmp_path / "month")], tmp_path / "out").scored == 300
    assert len(embedded) == 1
