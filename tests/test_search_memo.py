"""The bounded memo of recent rankings."""

from __future__ import annotations

import threading

import pytest

from bot.search.memo import MISSING, Memo


def test_keeps_the_most_recently_used() -> None:
    memo = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # now the most recent
    memo.put("c", 3)
    assert memo.get("b") is MISSING
    assert (memo.get("a"), memo.get("c"), len(memo)) == (1, 3, 2)


def test_clear_forgets_everything_and_none_is_a_value() -> None:
    memo = Memo(4)
    memo.put("nothing", None)
    assert memo.get("nothing") is None
    memo.clear()
    assert memo.get("nothing") is MISSING and len(memo) == 0


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Memo(0)


def test_threads_never_grow_it_past_its_size() -> None:
    memo = Memo(50)

    def churn(offset: int) -> None:
        for n in range(2000):
            memo.put((offset, n % 80), n)
            memo.get((offset, (n * 7) % 80))

    threads = [threading.Thread(target=churn, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(memo) == 50
