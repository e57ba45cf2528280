"""Background work on RQ: the queues, and the worker that runs every job of the bot.

Jobs are plain importable functions with JSON arguments (RQ's JSON serializer), idempotent, and
need no Flask app: a job takes what it uses from :func:`bot.services.current`, built once per
worker process before RQ forks a work horse for each job. The jobs live with what they do: late
replies in :mod:`bot.inbound.late`, digests in :mod:`bot.push.jobs`.

Before each job the worker follows the shared virtual time of a simulation
(:func:`bot.state.timebase.follow`), so no job has to remember to.
"""

from __future__ import annotations

import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job
from rq.serializers import JSONSerializer

from bot import services, state
from bot.state import timebase

QUEUES = ("default", "push")
"""Queues a worker listens to, in priority order: late replies first, then digest work."""

WORKER_TTL = 30
"""Seconds a worker's heartbeat lives: a dead host's jobs are found abandoned within ~a minute."""

JOB_MONITORING_INTERVAL = 10
"""Seconds between a busy worker's heartbeats (RQ's default: 30)."""

MAINTENANCE_INTERVAL = 30
"""Seconds between a worker's sweeps for abandoned jobs (RQ's default: 600)."""


def queue(client: redis.Redis, name: str = "default") -> Queue:
    """The RQ queue ``name`` on the server ``client`` talks to."""
    return Queue(name, connection=state.bytes_client(client), serializer=JSONSerializer)


class BotWorker(Worker):
    """RQ's forking worker, on the bot's clock: each job first follows the shared virtual time."""

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """Follow the shared time, then run ``job`` as RQ does."""
        timebase.follow(self.connection)
        return super().perform_job(job, queue, execution)


def run_worker(burst: bool = False, logging_level: str = "INFO") -> None:
    """Work the queues with RQ's scheduler on, until stopped (or empty, with ``burst``).

    Content and the digest catalog are loaded before RQ forks a work horse per job; heartbeats
    and maintenance run often enough that a job abandoned by a dead host is retried within about
    a minute and a half (RQ's defaults take ten).
    """
    from bot.push import runs

    bot = services.current()
    bot.library  # noqa: B018 - loaded once here, not in every work horse
    runs.catalog(bot)
    client = state.bytes_client(bot.redis)
    worker = BotWorker(
        [Queue(name, connection=client, serializer=JSONSerializer) for name in QUEUES],
        connection=client,
        serializer=JSONSerializer,
        worker_ttl=WORKER_TTL,
        job_monitoring_interval=JOB_MONITORING_INTERVAL,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    worker.work(with_scheduler=True, burst=burst, logging_level=logging_level)
