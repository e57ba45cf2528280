"""A bounded, thread-safe memo of recent results: what the library keeps of repeated questions.

Subscribers ask the same few questions again and again; ranking one costs analysis (jieba),
BM25 and maybe the embeddings, and gives the same passages until the content changes. The
library keys its entries by its own generation (bumped when content or search config change),
so an entry from before a change is never read again; it also empties the memo then.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

MISSING = object()
"""What :meth:`Memo.get` returns for a key it does not hold."""


class Memo:
    """The ``size`` most recently used key -> value pairs."""

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"a memo needs a positive size, not {size}")
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value kept for ``key`` (now the most recent), else :data:`MISSING`."""
        with self._lock:
            value = self._entries.get(key, MISSING)
            if value is not MISSING:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` for ``key``, forgetting the least recently used beyond ``size``."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
