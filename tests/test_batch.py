"""The Ray batch job: same results as the CLI, on one node and two, resumable after SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from batch.job import BatchError, run_job  # noqa: E402
from batch.shards import Manifest, read_table  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from conftest import SAMPLES  # noqa: E402
from qa_engine.io import read_results  # noqa: E402

pytestmark = pytest.mark.ray
EXE = str(Path(sys.executable).with_name("qa-engine"))


def split_sample(folder: Path, shards: int, bad_lines: bool = False) -> list[str]:
    """The sample month split into ``shards`` JSONL files (plus bad records when asked)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (SAMPLES / "sample_month.jsonl").read_text(encoding="utf-8").splitlines()
    ids = []
    for index in range(shards):
        part = lines[index::shards]
        if bad_lines:
            part = [*part, "{not json", '{"conversation_id": "empty", "turns": []}']
        (folder / f"day{index:02d}.jsonl").write_text("\n".join(part) + "\n", encoding="utf-8")
        ids += [json.loads(line)["conversation_id"] for line in lines[index::shards]]
    return ids


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "results.jsonl"
    subprocess.run([EXE, "score", str(SAMPLES / "sample_month.jsonl"), "-o", str(out), "--no-progress"],
                   check=True, capture_output=True)
    return {row["conversation_id"]: row for row in read_results(out)}


def assert_same_as_cli(out: Path, cli_results: dict) -> None:
    rows = read_table(out, "conversations").to_pylist()
    assert sorted(r["conversation_id"] for r in rows) == sorted(cli_results)
    for row in rows:
        expected = cli_results[row["conversation_id"]]
        assert (row["score"], row["passed"], row["resolution"], row["empathy"]) == \
               (expected["score"], expected["passed"], expected["resolution"], expected["empathy"])
        assert {k[len("section_"):]: v for k, v in row.items() if k.startswith("section_")} == expected["sections"]
        assert json.loads(row["versions"]) == expected["versions"]
    findings = read_table(out, "findings")
    assert findings.num_rows == sum(len(r["findings"]) for r in cli_results.values())


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    yield
    ray.shutdown()


def test_batch_job_gives_the_cli_results(tmp_path, cli_results, local_ray):
    ids = split_sample(tmp_path / "month", shards=4, bad_lines=True)
    summary = run_job([str(tmp_path / "month")], tmp_path / "out", workers=2)
    assert summary.shards == 4 and summary.scored == len(ids) == 300
    assert summary.quarantined == 8 and summary.records_in == summary.scored + summary.quarantined
    assert_same_as_cli(tmp_path / "out", cli_results)
    quarantine = read_table(tmp_path / "out", "quarantine").to_pylist()
    assert sorted(q["code"] for q in quarantine) == ["E001"] * 4 + ["E005"] * 4
    teams = pq.read_table(tmp_path / "out" / "aggregates" / "by_team.parquet").to_pylist()
    assert sum(t["conversations"] for t in teams) == 300
    days = pq.read_table(tmp_path / "out" / "aggregates" / "by_day.parquet").to_pylist()
    assert all(d["day"].startswith("2026-10-") for d in days)
    agents = pq.read_table(tmp_path / "out" / "aggregates" / "by_agent.parquet").to_pylist()
    assert all(0 <= a["pass_rate"] <= 1 and a["violations"] >= a.get("violations_ad_law", 0) for a in agents)
    assert sum(a["conversations"] for a in agents) == 300


def test_existing_output_needs_resume_and_same_versions(tmp_path, local_ray):
    split_sample(tmp_path / "month", shards=2)
    run_job([str(tmp_path / "month")], tmp_path / "out")
    with pytest.raises(BatchError, match="--resume"):
        run_job([str(tmp_path / "month")], tmp_path / "out")
    again = run_job([str(tmp_path / "month")], tmp_path / "out", resume=True)
    assert again.shards_skipped == 2 and again.scored == 300
    manifest = Manifest(tmp_path / "out")
    manifest.versions = {**manifest.versions, "scorecard": "other@0"}
    manifest.save()
    with pytest.raises(BatchError, match="other versions"):
        run_job([str(tmp_path / "month")], tmp_path / "out", resume=True)


def test_malformed_shards_are_quarantined_not_fatal(tmp_path, local_ray):
    split_sample(tmp_path / "month", shards=2)
    (tmp_path / "month" / "corrupt.parquet").write_bytes(b"PAR1 truncated")
    (tmp_path / "month" / "undecodable.jsonl").write_bytes("全网最好".encode("gbk") + b"\n")
    summary = run_job([str(tmp_path / "month")], tmp_path / "out")
    assert summary.scored == 300 and summary.quarantined == 2
    codes = sorted(q["code"] for q in read_table(tmp_path / "out", "quarantine").to_pylist())
    assert codes == ["E007", "E040"]


def test_two_node_cluster_gives_the_same_output(tmp_path, cli_results):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=2)  # three actors of one CPU each cannot fit on one node
    try:
        split_sample(tmp_path / "month", shards=6)
        alive: list[int] = []  # nodes the driver saw while shards were being committed
        summary = run_job([str(tmp_path / "month")], tmp_path / "out", address=cluster.address, workers=3,
                          on_shard=lambda _: alive.append(sum(node["Alive"] for node in ray.nodes())))
        assert summary.scored == 300 and set(alive) == {2}
        assert all(entry["node"] for entry in Manifest(tmp_path / "out").shards.values())
        assert_same_as_cli(tmp_path / "out", cli_results)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_sigkill_then_resume_is_exactly_once(tmp_path, cli_results):
    ids = split_sample(tmp_path / "month", shards=10, bad_lines=True)
    out = tmp_path / "out"
    command = [EXE, "batch", str(tmp_path / "month"), "-o", str(out), "--workers", "1", "--no-progress"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill mid-run: some shards committed, others not
        if (out / "_manifest.json").exists() and 2 <= len(Manifest(out).shards) < 10:
            break
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    committed = len(Manifest(out).shards)
    assert committed < 10, "the job finished before it could be killed"

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({committed} already committed)" in resumed.stdout.replace("\n", "")
    rows = read_table(out, "conversations").to_pylist()
    got = [r["conversation_id"] for r in rows]
    assert len(got) == len(set(got)) == len(ids) and set(got) == set(ids)  # no loss, no duplicates
    quarantined = read_table(out, "quarantine").num_rows
    assert quarantined == 20 and "records in = scored + quarantined: 320 = 300 + 20" in resumed.stdout
    assert not list(out.rglob(".*.tmp-*"))
    shutil.rmtree(tmp_path / "month")
