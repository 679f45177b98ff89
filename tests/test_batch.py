"""The Ray batch job: same results as the CLI, on one node and two, resumable after SIGKILL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from batch.job import BatchError, actor_gpus, run_job, uses_models  # noqa: E402
from batch.shards import Manifest, read_table  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from conftest import ROOT, SAMPLES  # noqa: E402
from qa_engine.config import load_pipeline  # noqa: E402
from qa_engine.io import read_results  # noqa: E402

pytestmark = pytest.mark.ray
EXE = str(Path(sys.executable).with_name("qa-engine"))
MODELS_CONFIG = ROOT / "qa_engine" / "conf" / "models.yaml"


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
def _shutdown_ray_after_module():
    yield
    ray.shutdown()


@pytest.fixture
def local_ray(_shutdown_ray_after_module):
    """A Ray started by the caller, which the job joins as it is (a cluster's behaviour, not the embedded
    node's); started again when a test before shut it down (the two-node test does)."""
    if not ray.is_initialized():
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)


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


# --- issue #12: trustworthy results --------------------------------------------------------------

def test_resume_from_a_moved_input_folder_scores_nothing_twice(tmp_path, local_ray):
    ids = split_sample(tmp_path / "month", shards=3)
    run_job([str(tmp_path / "month")], tmp_path / "out")
    shutil.move(tmp_path / "month", tmp_path / "moved")  # same files, another absolute path
    again = run_job([str(tmp_path / "moved")], tmp_path / "out", resume=True)
    assert again.shards_skipped == 3 and again.scored == 300
    got = read_table(tmp_path / "out", "conversations")["conversation_id"].to_pylist()
    assert sorted(got) == sorted(ids)


def test_resume_refuses_inputs_that_changed_since_they_were_committed(tmp_path, local_ray):
    split_sample(tmp_path / "month", shards=2)
    run_job([str(tmp_path / "month")], tmp_path / "out")
    day = tmp_path / "month" / "day00.jsonl"
    day.write_text("\n".join(day.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(BatchError, match="day00.jsonl"):  # its old rows would stay beside the new ones
        run_job([str(tmp_path / "month")], tmp_path / "out", resume=True)


def test_identical_input_files_are_refused_not_scored_twice(tmp_path, local_ray):
    split_sample(tmp_path / "month", shards=2)
    shutil.copy(tmp_path / "month" / "day01.jsonl", tmp_path / "month" / "copy.jsonl")
    with pytest.raises(BatchError, match="copy.jsonl.*day01.jsonl|day01.jsonl.*copy.jsonl"):
        run_job([str(tmp_path / "month")], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_output_table_reads_as_one_dataset(tmp_path, local_ray):
    import pyarrow.dataset as ds

    split_sample(tmp_path / "month", shards=2)
    untimed = {"conversation_id": "untimed-1", "agent_id": "a1", "team": "售后一组",
               "turns": [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "亲，您好，在的"}]}
    (tmp_path / "month" / "untimed.jsonl").write_text(json.dumps(untimed, ensure_ascii=False) + "\n", encoding="utf-8")
    run_job([str(tmp_path / "month")], tmp_path / "out")
    for table in ("conversations", "findings", "quarantine"):
        files = sorted((tmp_path / "out" / table).glob("*.parquet"))
        assert len(files) == 3 and len({pq.read_schema(f) for f in files}) == 1, table
        assert ds.dataset(tmp_path / "out" / table).to_table().num_rows == read_table(tmp_path / "out", table).num_rows
    conversations = ds.dataset(tmp_path / "out" / "conversations")
    row = conversations.to_table(filter=ds.field("conversation_id") == "untimed-1").to_pylist()[0]
    assert row["metric_first_response_s"] is None and conversations.schema.field("metric_first_response_s").type == "double"
    for name in ("by_agent", "by_team", "by_day"):
        schema = pq.read_schema(tmp_path / "out" / "aggregates" / f"{name}.parquet")
        assert schema.field("conversations").type == "int64" and schema.field("fcr_rate").type == "double"


def test_batch_quarantines_what_score_quarantines(tmp_path, local_ray):
    split_sample(tmp_path / "month", shards=2, bad_lines=True)
    (tmp_path / "month" / "notes.txt").write_text("not a transcript\n", encoding="utf-8")
    summary = run_job([str(tmp_path / "month" / "*")], tmp_path / "out")  # a glob that catches notes.txt
    # records are counted as read: 304 lines; notes.txt holds no record but is quarantined whole
    assert summary.scored == 300 and summary.quarantined == 5 and summary.balanced
    assert (summary.records_in, summary.records_scored, summary.records_quarantined) == (304, 300, 4)
    batch = {(Path(q["source"]).name, q["row"], q["code"]) for q in read_table(tmp_path / "out", "quarantine").to_pylist()}
    assert ("notes.txt", None, "E040") in batch
    for day in ("day00.jsonl", "day01.jsonl"):
        out = tmp_path / f"score-{day[:5]}.jsonl"
        subprocess.run([EXE, "score", str(tmp_path / "month" / day), "-o", str(out), "--no-progress"],
                       check=True, capture_output=True)
        quarantine = next(tmp_path.glob(f"score-{day[:5]}*quarantine.jsonl"))
        score = {(Path(q["source"]).name, q["row"], q["code"])
                 for q in map(json.loads, quarantine.read_text(encoding="utf-8").splitlines())}
        assert score and score == {q for q in batch if q[0] == day}
    for entry in Manifest(tmp_path / "out").shards.values():
        assert entry["records_in"] == entry["records_scored"] + entry["records_quarantined"]


def test_first_contact_resolution_needs_the_customer_not_to_come_back(tmp_path, local_ray):
    def conversation(cid, customer, day, resolved, team="售后一组"):
        closing = "已经给您处理好了，还有其他问题吗？" if resolved else "这个我也没办法"
        record = {"conversation_id": cid, "agent_id": "a1", "team": team,
                  "start_time": f"2026-10-{day:02d}T10:00:00+08:00",
                  "turns": [{"role": "customer", "text": "我的快递还没到", "timestamp": f"2026-10-{day:02d}T10:00:00+08:00"},
                            {"role": "agent", "text": closing, "timestamp": f"2026-10-{day:02d}T10:00:05+08:00"},
                            {"role": "customer", "text": "好的谢谢" if resolved else "算了",
                             "timestamp": f"2026-10-{day:02d}T10:00:20+08:00"}],
                  "metadata": {"customer_id": customer} if customer else {}}
        return json.dumps(record, ensure_ascii=False)

    month = tmp_path / "month"
    month.mkdir()
    (month / "a.jsonl").write_text("\n".join([
        conversation("back-soon", "c1", 1, True), conversation("came-back", "c1", 4, True),
        conversation("for-good", "c2", 2, True), conversation("anonymous", None, 2, True),
        conversation("unresolved", "c4", 3, False), conversation("last", "c3", 30, True, team="售前一组")]) + "\n",
        encoding="utf-8")
    (month / "b.jsonl").write_text(conversation("other-shard", "c2", 20, True) + "\n", encoding="utf-8")
    run_job([str(month)], tmp_path / "out")
    rows = {r["conversation_id"]: r for r in read_table(tmp_path / "out", "conversations").to_pylist()}
    assert rows["back-soon"]["customer_id"] == "c1" and rows["anonymous"]["customer_id"] is None
    assert {k for k, r in rows.items() if r["resolution"] == "resolved"} == set(rows) - {"unresolved"}
    teams = {t["team"]: t for t in pq.read_table(tmp_path / "out" / "aggregates" / "by_team.parquet").to_pylist()}
    # back-soon: c1 back 3 days later -> no; came-back: 26 days left in the data, no return -> yes;
    # for-good: next contact 18 days later -> yes; other-shard: 10 days left, no return -> yes; unresolved -> no;
    # anonymous: unknown (no customer id)
    assert teams["售后一组"]["fcr_measured"] == 5 and teams["售后一组"]["fcr_rate"] == 0.6
    # last: its 7 days reach past the end of the data, a return could not have been seen yet
    assert teams["售前一组"]["fcr_measured"] == 0 and teams["售前一组"]["fcr_rate"] is None
    assert "not measured" in teams["售前一组"]["fcr_note"]


def test_aggregates_equal_a_direct_count_of_the_conversations(tmp_path, local_ray):
    import pyarrow.compute as pc

    split_sample(tmp_path / "month", shards=3)
    run_job([str(tmp_path / "month")], tmp_path / "out")
    conversations = read_table(tmp_path / "out", "conversations")
    findings = read_table(tmp_path / "out", "findings").to_pylist()
    agents = pq.read_table(tmp_path / "out" / "aggregates" / "by_agent.parquet").to_pylist()
    for agent in agents:
        mine = conversations.filter(pc.and_(pc.equal(conversations["agent_id"], agent["agent_id"]),
                                            pc.equal(conversations["team"], agent["team"]))).to_pylist()
        assert agent["conversations"] == len(mine)
        assert agent["mean_score"] == pytest.approx(sum(c["score"] for c in mine) / len(mine))
        assert agent["pass_rate"] == pytest.approx(sum(c["passed"] for c in mine) / len(mine))
        ids = {c["conversation_id"] for c in mine}
        ad_law = sum(1 for f in findings if f["conversation_id"] in ids and f["kind"] == "violation"
                     and f["category"] == "ad_law")
        assert agent["violations_ad_law"] == ad_law
        assert agent["fcr_rate"] is None and "not measured" in agent["fcr_note"]  # the sample has no customer ids


def test_an_actor_not_the_driver_rolls_up_the_aggregates(tmp_path, local_ray, monkeypatch):
    import batch.job

    split_sample(tmp_path / "month", shards=2)
    in_driver = []
    monkeypatch.setattr(batch.job, "build_aggregates", lambda *args: in_driver.append(args))
    run_job([str(tmp_path / "month")], tmp_path / "out")
    teams = pq.read_table(tmp_path / "out" / "aggregates" / "by_team.parquet").to_pylist()
    assert not in_driver and sum(t["conversations"] for t in teams) == 300
    run_job([str(tmp_path / "month")], tmp_path / "out", resume=True)  # nothing left to score: no actor
    assert len(in_driver) == 1


def test_a_batch_run_prints_no_ray_log_lines_unless_verbose(tmp_path):
    split_sample(tmp_path / "month", shards=1)
    quiet = subprocess.run([EXE, "batch", str(tmp_path / "month"), "-o", str(tmp_path / "quiet"), "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    alarming = re.compile(r"WARNING|ERROR|\] E |core_worker|[Tt]oken authentication|[Pp]rogress bar")
    assert not alarming.search(quiet.stderr + quiet.stdout), quiet.stderr
    verbose = subprocess.run([EXE, "batch", str(tmp_path / "month"), "-o", str(tmp_path / "loud"), "--no-progress",
                              "--verbose"], capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 0 and "Connected to Ray cluster" in verbose.stderr  # Ray's own lines are back


def cluster(gpus: float):
    """A stand-in for ``ray.cluster_resources`` reporting ``gpus`` GPUs (none: no GPU key, as Ray reports it)."""
    return lambda: {"CPU": 16.0, **({"GPU": gpus} if gpus else {})}


def test_actors_ask_for_gpus_when_model_detectors_meet_a_gpu_cluster():
    assert actor_gpus(True, 2, None, cluster(4)) == 1.0       # one GPU an actor
    assert actor_gpus(True, 3, None, cluster(1)) == 0.3333    # more actors than GPUs: an even share that fits
    assert actor_gpus(True, 2, None, cluster(0)) == 0.0       # no GPU in the cluster
    assert actor_gpus(False, 2, None, cluster(4)) == 0.0      # rules only: no GPU whatever the cluster has
    assert actor_gpus(True, 2, 0.0, cluster(4)) == 0.0        # --gpus-per-worker 0: CPUs only
    assert actor_gpus(False, 2, 0.25, cluster(0)) == 0.25     # an explicit share is passed as asked


def test_only_a_pipeline_running_a_model_counts_as_using_models():
    pytest.importorskip("onnxruntime")
    assert not uses_models(load_pipeline(None))
    assert uses_models(load_pipeline(MODELS_CONFIG))


class Planned(Exception):
    """Raised instead of launching the actors: the test only reads the options they would get."""


def test_the_job_gives_the_actors_the_gpus_it_decided(tmp_path, local_ray, monkeypatch):
    pytest.importorskip("onnxruntime")
    split_sample(tmp_path / "month", 4)
    asked = []

    def plan(self, **options):
        asked.append(options)
        raise Planned

    monkeypatch.setattr(ray.actor.ActorClass, "options", plan)
    for gpus, config, workers in ((0, MODELS_CONFIG, 2), (2, MODELS_CONFIG, 2), (2, None, 2), (1, MODELS_CONFIG, 4)):
        monkeypatch.setattr(ray, "cluster_resources", cluster(gpus))
        with pytest.raises(Planned):
            run_job([str(tmp_path / "month")], tmp_path / f"out-{len(asked)}", workers=workers, config=config)
    assert [options["num_gpus"] for options in asked] == [None, 1.0, None, 0.25]
    assert all(options["num_cpus"] == 1 for options in asked)


def test_never_more_actors_than_shards(tmp_path, local_ray, monkeypatch):
    from ray.util import ActorPool

    split_sample(tmp_path / "month", 2)
    pools = []

    def pool(actors):
        pools.append(len(actors))
        return ActorPool(actors)

    monkeypatch.setattr(ray.util, "ActorPool", pool)
    summary = run_job([str(tmp_path / "month")], tmp_path / "out", workers=3)
    assert pools == [2] and summary.scored == 300  # a third actor would only have started and idled
    run_job([str(tmp_path / "month")], tmp_path / "out", workers=3, resume=True)
    assert pools == [2]  # everything committed: no actor at all
