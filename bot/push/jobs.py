"""The RQ jobs of digest pushes: plain functions with JSON arguments, idempotent, on queue ``push``.

- :func:`plan_job` (one per run) enqueues :func:`chunk_job` for every few hundred subscribers;
- :func:`chunk_job` decides and sends for one chunk; quota or outage errors raise
  :class:`~bot.push.runs.RetryLater` and RQ retries it (:data:`CHUNK_RETRY`, spaced beyond the
  reservation lease, so a retry after a crash finds its stale reservations and marks them
  ``unknown`` rather than sending again);
- :func:`sweep_job` sends what quiet hours deferred; :func:`reconcile_job` closes a run;
- :func:`tag_sync_job` untags who said stop (tag digests, :mod:`bot.push.tags`).

A job takes the bot's services from :func:`bot.services.current` (built once per worker process);
the worker (:class:`bot.worker.BotWorker`) has it follow the shared virtual time of a simulation.

Workers: queues ``default`` then ``push``, JSON serializer, ``with_scheduler=True`` (delayed
retries), ``worker_ttl=30``, ``job_monitoring_interval=10`` and ``maintenance_interval=30``: a job
whose worker host died is found abandoned after its heartbeat lapses (10 + 60 s in RQ 3.0) at the
next maintenance pass, and retried, about a minute later instead of RQ's default ten.
(:func:`bot.worker.run_worker` makes such a worker.)

Scaling out: run several workers and schedulers on several hosts against one Redis made highly
available with Sentinel (a primary, a replica, three sentinels; clients ask the sentinels for the
primary), with ``appendonly yes`` and ``appendfsync everysec``. Not Redis Cluster: RQ does not
work against a cluster client, and the throttle scripts build per-subscriber keys from prefixes.
Idempotence per slot and the ledger make duplicate schedulers and retried chunks harmless; the
caps and windows hold across hosts because every decision runs inside Redis on its clock.
"""

from __future__ import annotations

import logging

import redis
from rq import Queue, Retry, get_current_job

from bot import clock, services, worker
from bot.push import runs, tags
from bot.state import Keys

log = logging.getLogger(__name__)

QUEUE = "push"
"""The queue of digest jobs (workers must listen to it, after ``default``)."""

CHUNK_RETRY = Retry(max=3, interval=[90, 300, 900])
"""Back-off of a chunk after 45009/45011/-1 or an outage; the first wait exceeds the lease."""

PLAN_RETRY = Retry(max=3, interval=[30, 60, 120])
"""A planning job killed half-way is planned again (chunks already enqueued are harmless)."""

JOB_TIMEOUT = 900
"""Seconds one chunk may take (500 API calls at the platform's pace, with margin)."""


def queue(r: redis.Redis) -> Queue:
    """The push queue on the server ``r`` talks to."""
    return worker.queue(r, QUEUE)


def job_name(*parts: object) -> str:
    """A job id from parts (RQ ids allow letters, digits, ``-`` and ``_``)."""
    text = "-".join(str(p) for p in parts)
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def enqueue_plan(r: redis.Redis, run: str) -> None:
    """Queue the planning of ``run``."""
    queue(r).enqueue(
        "bot.push.jobs.plan_job", run, job_id=job_name("push-plan", run), retry=PLAN_RETRY,
        job_timeout=JOB_TIMEOUT,
    )


def plan_job(run: str) -> int:
    """Split ``run`` into chunk jobs; returns how many."""
    s = services.current()
    q = queue(s.redis)

    def enqueue_chunk(index: int, openids: list[str]) -> None:
        q.enqueue(
            "bot.push.jobs.chunk_job", run, openids, job_id=job_name("push-chunk", run, index),
            retry=CHUNK_RETRY, job_timeout=JOB_TIMEOUT,
        )

    job = get_current_job()
    try:
        return runs.plan(s, run, enqueue_chunk, final_attempt=job is None or not job.retries_left)
    except tags.NotYet as wait:  # the scheduler plans it again then (Keys.push_plan not_before)
        s.redis.hset(Keys.push_plan(run), "not_before", repr(clock.now() + wait.seconds))
        log.info("%s: %s: planned again then", run, wait)
        return 0


def chunk_job(run: str, openids: list[str]) -> dict[str, int]:
    """Decide and send one chunk of ``run``; returns the decisions by reason."""
    s = services.current()
    job = get_current_job()
    final = job is None or not job.retries_left
    return dict(runs.process_chunk(s, run, openids, final_attempt=final))


def sweep_job() -> dict[str, int]:
    """Send the deferred digests that are due."""
    s = services.current()
    return dict(runs.sweep(s))


def tag_sync_job() -> int:
    """Untag who said stop since the last tick (:func:`bot.push.tags.sync`)."""
    return tags.sync(services.current())


def reconcile_job(run: str) -> dict[str, int]:
    """Close ``run``: stale reservations become unknown, undecided subscribers are decided."""
    s = services.current()
    return dict(runs.reconcile(s, run))
