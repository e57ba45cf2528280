"""Mass-send receipts matched to the digest runs that made the sends.

A ``message/mass/send`` call answers with a ``msg_id``; later the platform posts a
MASSSENDJOBFINISH event with that ``MsgID``, the status and the counts. The sender
(:func:`record_send`) and the webhook's handler (:func:`record_receipt`) each write their half
into ``Keys.push_mass_msg(msg_id)``, read the hash back, and copy the receipt into the run's plan
hash (``Keys.push_plan(run)``) once both halves are there. Whichever half arrives second sees both,
so a receipt that comes before the sender recorded its ``msg_id`` is not lost.

Plan hash fields, per mass send: ``mass:<msg_id>:count`` (openids in the call, written by the
sender) and ``mass:<msg_id>:status``, ``:total``, ``:filtered``, ``:sent``, ``:errors`` (the
receipt's Status, TotalCount, FilterCount, SentCount, ErrorCount).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis

from bot.state import RUN_TTL, Keys

RECEIPT_FIELDS = ("status", "total", "filtered", "sent", "errors")
"""What a receipt records, copied into the run's plan hash as ``mass:<msg_id>:<field>``."""


@dataclass(frozen=True)
class Receipt:
    """One mass send of a run and, once it came, the platform's receipt of it."""

    msg_id: str
    count: int
    """Openids in the call (0 when unknown)."""
    status: str = ""
    """The receipt's Status (``send success``, ``send fail``, ``err(...)``); empty until it came."""
    total: int = 0
    filtered: int = 0
    sent: int = 0
    errors: int = 0

    def describe(self) -> str:
        """``mass msg 1000001: send success, 9998 sent of 10000, 2 errors``."""
        if not self.status:
            return f"mass msg {self.msg_id}: no receipt yet ({self.count} in the call)"
        return (f"mass msg {self.msg_id}: {self.status}, {self.sent} sent of "
                f"{self.count or self.total}, {self.errors} errors")


def record_send(r: redis.Redis, msg_id: str, run: str, count: int) -> None:
    """Remember that ``run`` made the mass send ``msg_id`` to ``count`` openids."""
    pipe = r.pipeline()
    pipe.hset(Keys.push_mass_msg(msg_id), mapping={"run": run, "count": count})
    pipe.expire(Keys.push_mass_msg(msg_id), RUN_TTL)
    pipe.hset(Keys.push_plan(run), f"mass:{msg_id}:count", count)
    pipe.hgetall(Keys.push_mass_msg(msg_id))
    _copy(r, msg_id, pipe.execute()[-1])


def record_receipt(
    r: redis.Redis, msg_id: str, status: str, total: int, filtered: int, sent: int, errors: int
) -> str | None:
    """Record the receipt of ``msg_id``; returns its run when known yet."""
    receipt = {"status": status, "total": total, "filtered": filtered, "sent": sent,
               "errors": errors}
    pipe = r.pipeline()
    pipe.hset(Keys.push_mass_msg(msg_id), mapping=receipt)
    pipe.expire(Keys.push_mass_msg(msg_id), RUN_TTL)
    pipe.hgetall(Keys.push_mass_msg(msg_id))
    return _copy(r, msg_id, pipe.execute()[-1])


def _copy(r: redis.Redis, msg_id: str, fields: Mapping[str, str]) -> str | None:
    """Copy the receipt into its run's plan once both the run and the receipt are known."""
    run = fields.get("run")
    if run and "status" in fields:
        r.hset(Keys.push_plan(run), mapping={
            f"mass:{msg_id}:{name}": fields[name] for name in RECEIPT_FIELDS if name in fields
        })
    return run


def of_run(plan: Mapping[str, str]) -> list[Receipt]:
    """The mass sends recorded in a run's plan hash, by ``msg_id``."""
    found: dict[str, dict[str, str]] = {}
    for name, value in plan.items():
        prefix, _, rest = name.partition(":")
        msg_id, _, field = rest.partition(":")
        if prefix == "mass" and msg_id.isdigit() and field:
            found.setdefault(msg_id, {})[field] = value
    return [
        Receipt(msg_id, _int(f.get("count")), f.get("status", ""), _int(f.get("total")),
                _int(f.get("filtered")), _int(f.get("sent")), _int(f.get("errors")))
        for msg_id, f in sorted(found.items(), key=lambda item: int(item[0]))
    ]


def _int(value: str | None) -> int:
    return int(value) if value and value.lstrip("-").isdigit() else 0
