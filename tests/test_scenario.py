"""``python -m bot sim scenario``: synthetic subscribers through the real processes, with chaos.

A small replay (the issue's 1000 subscribers over 30 days is the benchmark-sized run in the README)
must end with every respect figure at zero and every due subscriber decided, on each of the four
kinds of account, through the channel each is for, without one call the platform refuses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.redis_server]

VIOLATIONS = (
    "in_quiet_hours",
    "to_opted_out",
    "to_unsubscribed",
    "to_silent_90_days",
    "outside_48h_window",
    "duplicates",
    "undecided_after_recovery",
)


@pytest.mark.parametrize(
    ("account_type", "verified", "channel", "api"),
    [
        ("subscription", "false", "visit", "reply"),
        ("service", "false", "visit", "reply"),
        ("subscription", "true", "tag", "mass"),
        ("service", "true", "custom", "custom"),
    ],
)
def test_chaos_scenario_respects_every_subscriber_on_every_kind_of_account(
    tmp_path: Path, account_type: str, verified: str, channel: str, api: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "sim",
            "scenario",
            "--subscribers",
            "40",
            "--days",
            "8",
            "--seed",
            "7",
            "--chaos",
            "--json",
            "--out",
            str(tmp_path),
            "--account-type",
            account_type,
            "--verified",
            verified,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert {name: figures[name] for name in VIOLATIONS} == dict.fromkeys(VIOLATIONS, 0)
    assert figures["most_digests_in_24h"] <= 1 and figures["most_digests_in_7d"] <= 3
    assert figures["digests_delivered"] > 0 and figures["coverage"] > 0.5
    assert figures["channel"] == channel and figures["refused_48001"] == 0
    assert set(figures["digests_by_api"]) == {api}
    timeline = Path(figures["timeline"]).read_text("utf-8").splitlines()
    assert {json.loads(line)["event"] for line in timeline} >= {"subscribe", "message"}
    deliveries = Path(figures["deliveries"]).read_text("utf-8").splitlines()
    assert len(deliveries) >= figures["digests_delivered"]
