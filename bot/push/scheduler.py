"""The digest schedule: which runs are due, enqueued once per slot, by a small loop process.

Why not ``rq cron``: rq 3.0.0's cron scheduler enqueues with the pickle serializer (its
``CronJob.enqueue`` builds a ``Queue`` without one) while the bot's workers read JSON jobs, and a
cron entry per digest would fire on wall-clock time, which simulations replace. So
``python -m bot push scheduler`` ticks every :data:`TICK_SECONDS` and, for each digest in
``config/push.yaml``, computes the latest slot of its cron expression in the account's time
zone; RQ's own scheduler (``worker --with-scheduler``) then runs the delayed retries. Like
``rq cron`` it holds no leader lock and runs at start-up, so :func:`tick` is idempotent per slot
(``HSETNX`` on the run's plan): two schedulers, or a restart, enqueue each run once. A slot
missed by more than an hour (the scheduler was down) is skipped rather than sent late. Each
tick also prunes a slice of the subscribers' sliding logs (:func:`throttle.prune_logs`) and, when a
tag digest exists, has who said stop untagged (:func:`bot.push.tags.sync`). Visit digests get no
run: they are decided on replies (:mod:`bot.push.visits`).
"""

from __future__ import annotations

import logging
import time

import redis

from bot import clock
from bot.config import Config
from bot.push import jobs, runs, throttle
from bot.state import Keys, timebase

log = logging.getLogger(__name__)

TICK_SECONDS = 30
"""How often the loop looks for due runs and deferred sends."""

RESCHEDULE_AFTER = 300
"""A run scheduled this long ago and still not planned lost its planning job: queue it again."""

RECONCILE_AFTER = 900
"""A run is reconciled this long after its slot (its chunk jobs have finished or died)."""


def tick(r: redis.Redis, config: Config) -> list[str]:
    """Enqueue what is due now (new runs, lost plans, deferred sends, reconciliations); prune."""
    now = clock.now()
    enqueued = []
    for digest in config.push.digests:
        if digest.channel == "visit":  # sent on replies, one subscriber at a time: no run
            continue
        slot = runs.last_slot(digest, config.account.timezone, now)
        if now - slot > runs.CATCH_UP:
            continue
        run = runs.run_id(digest.name, slot)
        if runs.start_run(r, run, now):
            jobs.enqueue_plan(r, run)
            enqueued.append(run)
    q = jobs.queue(r)
    for run, slot in r.zrangebyscore(Keys.push_runs(), now - 2 * 86400, now, withscores=True):
        plan = r.hgetall(Keys.push_plan(run))
        if "reconciled" in plan:
            continue
        if plan.get("state") != "planned":
            if plan.get("not_before"):  # a broadcast waiting for the previous one to age
                if now >= float(plan["not_before"]):
                    r.hdel(Keys.push_plan(run), "not_before")
                    r.hset(Keys.push_plan(run), "scheduled", repr(now))
                    jobs.enqueue_plan(r, run)
                    enqueued.append(f"plan {run} (waited)")
            elif now - float(plan.get("scheduled") or now) > RESCHEDULE_AFTER:
                r.hset(Keys.push_plan(run), "scheduled", repr(now))
                jobs.enqueue_plan(r, run)
                enqueued.append(f"replan {run}")
        elif now - slot >= RECONCILE_AFTER and (
            now - float(plan.get("reconciling") or 0) > RESCHEDULE_AFTER
        ):
            r.hset(Keys.push_plan(run), "reconciling", repr(now))
            q.enqueue("bot.push.jobs.reconcile_job", run,
                      job_id=jobs.job_name("push-reconcile", run), job_timeout=jobs.JOB_TIMEOUT)
            enqueued.append(f"reconcile {run}")
    if r.zcount(Keys.push_due(), "-inf", now):
        q.enqueue("bot.push.jobs.sweep_job", job_id="push-sweep", job_timeout=jobs.JOB_TIMEOUT)
        enqueued.append("sweep")
    if r.exists(Keys.push_tag_changes()):
        if any(d.channel == "tag" for d in config.push.digests):
            q.enqueue("bot.push.jobs.tag_sync_job", job_id="push-tag-sync",
                      job_timeout=jobs.JOB_TIMEOUT)
            enqueued.append("tag sync")
        else:
            r.delete(Keys.push_tag_changes())  # no tag to keep in step
    throttle.prune_logs(r)  # a slice of the sliding logs per tick, all of them every few hours
    return enqueued


def run_scheduler(r: redis.Redis, config: Config, once: bool = False) -> None:
    """Tick until stopped (what the Procfile's ``scheduler`` line runs)."""
    while True:
        timebase.follow(r)
        for what in tick(r, config):
            log.info("enqueued %s", what)
        if once:
            return
        time.sleep(TICK_SECONDS)
