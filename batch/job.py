"""The batch job: shards → Ray actor pool → committed Parquet shards → aggregates.

The only module that imports ``ray`` (with `batch.local_ray`, which it imports). With no address it starts
an embedded local Ray (`batch.local_ray`) with a CPU for each actor; with ``--address`` or ``RAY_ADDRESS``
it joins an existing cluster and runs the same code there (inputs and output must then be on storage every
node sees).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from batch.actors import ShardScorer
from batch.aggregates import build_aggregates
from batch.shards import Manifest, Shard, discover, remove_stale_temporaries
from qa_engine.config import load_pipeline
from qa_engine.pipeline import Pipeline
from qa_engine.tables import FCR_WINDOW_DAYS

LOCAL_BYTES_PER_ACTOR = 2 * 1024 * 1024  # input an embedded local actor must have to pay for its start (`actor_count`)


class BatchError(Exception):
    """The job cannot start as asked (and nothing was written)."""


@dataclass
class JobSummary:
    shards: int = 0
    shards_skipped: int = 0
    records_in: int = 0  # input records (lines, rows), counted as read
    records_scored: int = 0
    records_quarantined: int = 0
    scored: int = 0
    quarantined: int = 0
    findings: int = 0
    violations_by_category: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def balanced(self) -> bool:
        """Records read (counted as read) = records scored + records quarantined: a real check."""
        return self.records_in == self.records_scored + self.records_quarantined

    @property
    def conversations_per_s(self) -> float:
        return self.scored / self.elapsed_s if self.elapsed_s else 0.0


def run_job(inputs: list[str], out: Path, *, address: str | None = None, workers: int = 1,
            gpus_per_worker: float | None = None, resume: bool = False, config: Path | None = None,
            on_shard: Callable[[dict], None] | None = None, fcr_window_days: int = FCR_WINDOW_DAYS,
            verbose: bool = False) -> JobSummary:
    """Score every input shard not yet committed; return totals over all committed shards.
    ``gpus_per_worker``: what each actor asks Ray for (``None``: `actor_gpus` decides);
    ``verbose`` lets Ray's own log lines through (quiet by default)."""
    started = time.perf_counter()
    out = Path(out)
    try:
        shards = discover(inputs)
    except ValueError as exc:
        raise BatchError(str(exc)) from None
    manifest = Manifest(out)
    if manifest.exists and not resume:
        raise BatchError(f"{out} already holds a job's output ({manifest.path.name}); "
                         "pass --resume to finish it, or choose another output folder")
    keys = {s.key for s in shards}
    gone = [entry["input"]["path"] for key, entry in sorted(manifest.shards.items()) if key not in keys]
    if gone:
        raise BatchError(f"{out} holds results of input(s) no longer among the inputs or changed since they were "
                         f"scored ({', '.join(gone)}); resuming would keep their old rows: choose another output folder")
    pipeline = load_pipeline(config)
    versions = pipeline.versions.model_dump()
    if manifest.versions is not None and manifest.versions != versions:
        raise BatchError(f"{out} was scored with other versions ({json.dumps(manifest.versions, ensure_ascii=False)}); "
                         "resuming would mix results: choose another output folder")
    manifest.versions = versions
    manifest.save()
    remove_stale_temporaries(out)
    todo = [s for s in shards if not manifest.committed(s)]
    by_key = {s.key: s for s in todo}
    rollup = ([s.key for s in shards], sorted(pipeline.scorecard.scored_categories), fcr_window_days)
    if todo:  # an actor rolls up the aggregates before Ray shuts down: the rows never reach the driver
        for row in _score_with_ray(todo, out, address, workers, gpus_per_worker, uses_models(pipeline), config,
                                   verbose, rollup):
            summary = {k: v for k, v in row.items() if k != "key"}
            manifest.commit(by_key[row["key"]], summary)
            if on_shard is not None:
                on_shard(summary)
    else:
        build_aggregates(out, *rollup)
    totals = JobSummary(shards=len(shards), shards_skipped=len(shards) - len(todo),
                        elapsed_s=time.perf_counter() - started)
    for shard in shards:
        entry = manifest.shards[shard.key]
        totals.records_in += entry["records_in"]
        totals.records_scored += entry.get("records_scored", entry["scored"])  # manifests before the count
        totals.records_quarantined += entry.get("records_quarantined", entry["quarantined"])
        totals.scored += entry["scored"]
        totals.quarantined += entry["quarantined"]
        totals.findings += entry["findings"]
        totals.violations_by_category.update(entry["violations_by_category"])
    return totals


def uses_models(pipeline: Pipeline) -> bool:
    """Whether a detector runs a model (holds a backend): model detectors whose model could not load
    fall back to their baselines, which hold none."""
    return any(getattr(detector, "backend", None) is not None for detector in pipeline.detectors)


def actor_gpus(models: bool, workers: int, gpus_per_worker: float | None,
               cluster_resources: Callable[[], dict[str, float]]) -> float:
    """GPUs each scoring actor asks Ray for.

    An explicit ``gpus_per_worker`` wins (0: CPUs only). Otherwise a run with model detectors on a
    cluster with GPUs asks for one GPU an actor, or an even share when there are more actors than
    GPUs (rounded down to Ray's 1/10,000 so that every actor fits); a rules-only run, or a cluster
    without GPUs, asks for none."""
    if gpus_per_worker is not None:
        return gpus_per_worker
    gpus = float(cluster_resources().get("GPU", 0)) if models else 0.0
    return min(1.0, math.floor(gpus / workers * 10_000) / 10_000)


def _score_with_ray(todo: list[Shard], out: Path, address: str | None, workers: int,
                    gpus_per_worker: float | None, models: bool, config: Path | None,
                    verbose: bool, rollup: tuple[list[str], list[str], int]) -> Iterator[dict]:
    """Each shard's summary as soon as it is committed: `actor_count` actors, each building the pipeline
    once, are handed one shard at a time; when all are done, one of them builds the aggregates
    (``rollup``: `batch.aggregates.build_aggregates`'s arguments after ``out``).

    Plain Ray actors (`ray.util.ActorPool`), not Ray Data: a job of a few dozen shards needs none of
    its operators, and it would start three helper actors and import pandas in the driver."""
    try:
        import ray
        from ray.util import ActorPool

        from batch import local_ray
    except ImportError:
        raise BatchError("the batch job needs Ray: pip install 'qa-engine[batch]'") from None

    started_here = not ray.is_initialized()
    address = address or os.environ.get("RAY_ADDRESS") or None  # an empty RAY_ADDRESS= is no address
    local = started_here and address in (None, "local")  # "local": a new local Ray, as ray.init reads it
    actors = actor_count(workers, todo, local)
    level = logging.INFO if verbose else logging.ERROR
    node = None
    try:
        if started_here:
            logging.getLogger("ray").setLevel(level)  # before Ray's own start-up messages
            with _backend_log_level(None if verbose else "fatal"):  # Ray's C++ core reads it as it starts
                if local:
                    node = local_ray.start(actors, verbose)
                ray.init(address=node.address if node else address, log_to_driver=verbose, logging_level=level)
        gpus = actor_gpus(models, actors, gpus_per_worker, ray.cluster_resources)
        scorer = ray.remote(ShardScorer).options(num_cpus=1, num_gpus=gpus or None, max_restarts=-1,
                                                 max_task_retries=-1)  # a lost node's shards run again
        scorers = [scorer.remote(str(out.resolve()), str(config.resolve()) if config else None) for _ in range(actors)]
        yield from ActorPool(scorers).map_unordered(lambda actor, shard: actor.score_shard.remote(shard), todo)
        ray.get(scorers[0].aggregate.remote(*rollup))
    finally:
        if started_here:
            ray.shutdown()
        if node is not None:
            local_ray.stop(node)


def actor_count(workers: int, todo: list[Shard], local: bool) -> int:
    """Scoring actors for ``todo``: ``workers``, never more than there are shards, and on the embedded local
    Ray (``local``) no more than one for every full `LOCAL_BYTES_PER_ACTOR` of input (at least one): there an
    actor's start (a worker process, its imports, the pipeline, pyarrow's import of pandas at its first table:
    about a second of CPU, what scoring 2 MB takes) competes for the job's cores with the node's own processes
    and the other actors, and costs more than it saves on less input. A cluster gets ``workers`` as asked."""
    actors = min(workers, len(todo))
    if local:
        actors = min(actors, max(1, sum(shard.size for shard in todo) // LOCAL_BYTES_PER_ACTOR))
    return actors


@contextmanager
def _backend_log_level(level: str | None) -> Iterator[None]:
    """``RAY_BACKEND_LOG_LEVEL`` while Ray starts (unless the user set it), then as it was."""
    if level is None or "RAY_BACKEND_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["RAY_BACKEND_LOG_LEVEL"] = level
    try:
        yield
    finally:
        del os.environ["RAY_BACKEND_LOG_LEVEL"]
