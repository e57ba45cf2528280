"""Background work on RQ: the queue, the worker, and the late-reply job.

Jobs are plain importable functions with JSON arguments (RQ's JSON serializer), idempotent, and
need no Flask app: a worker builds what they use once per process (:func:`worker_context`),
before RQ forks a work horse for each job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from functools import cache

import redis
from rq import Queue, Retry, Worker
from rq.serializers import JSONSerializer

from bot import delivery, state
from bot.config import load_config
from bot.handlers import Context
from bot.message import Inbound, News, Text
from bot.push import throttle
from bot.settings import Settings
from bot.state import Keys

log = logging.getLogger(__name__)

QUEUES = ("default", "push")
"""Queues a worker listens to, in priority order: late replies first, then digest work."""

LATE_RETRY = Retry(max=3, interval=[10, 30, 60])
"""Back-off for a late reply whose API call failed in a way worth retrying."""

WORKER_TTL = 30
"""Seconds a worker's heartbeat lives: a dead host's jobs are found abandoned within ~a minute."""

JOB_MONITORING_INTERVAL = 10
"""Seconds between a busy worker's heartbeats (RQ's default: 30)."""

MAINTENANCE_INTERVAL = 30
"""Seconds between a worker's sweeps for abandoned jobs (RQ's default: 600)."""

SENT_TTL = 2 * 86400


def queue(client: redis.Redis, name: str = "default") -> Queue:
    """The RQ queue ``name`` on the server ``client`` talks to."""
    return Queue(name, connection=state.bytes_client(client), serializer=JSONSerializer)


def late_sender(client: redis.Redis) -> delivery.LateSender:
    """What the webhook calls when an answer misses the deadline: enqueue :func:`deliver_late`."""
    late_queue = queue(client)

    def enqueue(message: Inbound) -> None:
        late_queue.enqueue(
            "bot.jobs.deliver_late",
            message_fields(message),
            retry=LATE_RETRY,
            job_id=f"late-{message.openid}-{message.delivery_id}".replace(":", "-"),
        )

    return enqueue


def message_fields(message: Inbound) -> dict:
    """An inbound message as JSON-friendly job arguments."""
    return {**asdict(message), "fields": dict(message.fields)}


@cache
def worker_context() -> tuple[Settings, Context]:
    """Settings and handler context of this worker process, built once."""
    from bot.search.service import open_library

    settings = Settings.from_env()
    config = load_config(settings.config_dir)
    client = state.connect(state.resolve_url(settings.redis_url, settings.data_dir))
    library = open_library(settings, client)
    return settings, Context(config=config, redis=client, library=library)


def deliver_late(fields: dict, wait_seconds: float = delivery.LATE_GRACE_SECONDS) -> str:
    """Send an answer that missed the webhook's deadline through the customer-service API, once.

    At most once: the send is marked in ``Keys.late_sent`` before the API call; a crash between
    the mark and the call loses that one answer rather than risking a duplicate.
    """
    from bot.wechat_api import ApiError, ApiUnreachable, WeChatApi

    settings, context = worker_context()
    message = Inbound(**fields)
    r = context.redis
    sent_key = Keys.late_sent(message.openid, message.delivery_id)
    if r.exists(sent_key):
        return "already sent"
    deadline = time.monotonic() + wait_seconds
    ready, reply = delivery.late_answer(r, message, context)
    while not ready:
        if time.monotonic() > deadline:
            ready, reply = True, delivery.compute(message, context)
            break
        time.sleep(0.2)
        ready, reply = delivery.late_answer(r, message, context)
    if reply is None:
        return "nothing to send"
    if not r.set(sent_key, "sending", nx=True, ex=SENT_TTL):
        return "already sent"
    text = reply.content if isinstance(reply, Text) else _news_text(reply)
    try:
        WeChatApi.from_settings(settings, r).send_text(message.openid, text)
    except ApiUnreachable as exc:
        if exc.maybe_delivered:
            r.set(sent_key, "unknown", ex=SENT_TTL)  # it may have gone out: never send it again
            log.warning("late answer to %s: outcome unknown (%s)", message.delivery_id, exc)
            return "unknown"
        r.delete(sent_key)  # nothing went out: a retry may send it
        raise
    except ApiError as exc:
        if exc.retry_later:
            r.delete(sent_key)
            raise
        log.warning("late answer to %s dropped: %s", message.delivery_id, exc)
        return f"dropped: {exc.code}"
    r.set(sent_key, "sent", ex=SENT_TTL)
    throttle.record_cs_send(r, message.openid)  # it used a slot of the 48 h quota
    return "sent"


def _news_text(news: News) -> str:
    return "\n".join(part for part in (news.title, news.description, news.url) if part)


def run_worker(settings: Settings, burst: bool = False, logging_level: str = "INFO") -> None:
    """Work the queues with RQ's scheduler on, until stopped (or empty, with ``burst``).

    Content and the digest catalog are loaded before RQ forks a work horse per job; heartbeats
    and maintenance run often enough that a job abandoned by a dead host is retried within about
    a minute and a half (RQ's defaults take ten).
    """
    from bot.push import jobs as push_jobs

    worker_context()
    push_jobs.setup().catalog()
    client = state.bytes_client(
        state.connect(state.resolve_url(settings.redis_url, settings.data_dir))
    )
    worker = Worker(
        [Queue(name, connection=client, serializer=JSONSerializer) for name in QUEUES],
        connection=client,
        serializer=JSONSerializer,
        worker_ttl=WORKER_TTL,
        job_monitoring_interval=JOB_MONITORING_INTERVAL,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    worker.work(with_scheduler=True, burst=burst, logging_level=logging_level)
