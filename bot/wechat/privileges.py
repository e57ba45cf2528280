"""What each kind of official account may call: the platform's interface-privileges table.

WeChat grants its outbound APIs by account kind (subscription or service) and by whether the
account is verified (微信认证); individuals cannot verify, so every personal account is an
unverified subscription account. The table below is the official one (PLATFORM.md section 5,
"What each kind of account may call"); a call the account may not make answers
``{"errcode":48001,"errmsg":"api unauthorized"}``.

The bot reads it to refuse, at start-up, a digest channel the account cannot use
(:func:`channels_for`) and to know whether late answers can go through the customer-service API
(:func:`allowed`); the simulator enforces it as the platform does.
"""

from __future__ import annotations

from typing import Literal

Kind = tuple[str, bool]
"""``(type, verified)``: ``("subscription", False)`` is a personal account."""

Capability = Literal["custom", "mass_all", "mass_list", "tags", "menu", "template"]

KINDS: tuple[Kind, ...] = (
    ("subscription", False),
    ("subscription", True),
    ("service", False),
    ("service", True),
)

TABLE: dict[Capability, frozenset[Kind]] = {
    # message/custom/send: customer-service messages
    "custom": frozenset({("subscription", True), ("service", True)}),
    # message/mass/sendall: to all or to a tag (subscription 1 a day, service 4 a month each)
    "mass_all": frozenset({("subscription", True), ("service", True)}),
    # message/mass/send: to a list of openids
    "mass_list": frozenset({("service", True)}),
    # tags/*, tags/members/*, user/tag/get, user info, follower list
    "tags": frozenset({("subscription", True), ("service", True)}),
    # menu/create, menu/get, menu/delete
    "menu": frozenset({("subscription", True), ("service", False), ("service", True)}),
    # message/template/send
    "template": frozenset({("service", True)}),
}

CHANNELS: dict[str, tuple[Capability, ...]] = {
    "visit": (),  # rides on the passive reply: no API call at all
    "tag": ("tags", "mass_all"),
    "custom": ("custom",),
    "mass": ("mass_list",),
}
"""Digest channels (``config/push.yaml``) and the capabilities each needs."""


def allowed(capability: Capability, account_type: str, verified: bool) -> bool:
    """Whether an account of this kind may call the APIs of ``capability``."""
    return (account_type, verified) in TABLE[capability]


def channels_for(account_type: str, verified: bool) -> tuple[str, ...]:
    """The digest channels an account of this kind can use, in the order of :data:`CHANNELS`."""
    return tuple(
        name for name, needs in CHANNELS.items()
        if all(allowed(need, account_type, verified) for need in needs)
    )


def describe(account_type: str, verified: bool) -> str:
    """``verified subscription account`` and the like (no article)."""
    return f"{'verified' if verified else 'unverified'} {account_type} account"
