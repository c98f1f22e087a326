"""A cache of values derived from an object, kept exactly as long as that object lives.

Coders and entropy models prepare data from an :class:`~neurocodec.coding.IntTables`
once (constriction models, lane tables, device copies, padded frequency arrays) and reuse
it for every later call with the same tables. Tables compare by value and are not
hashable, so entries are keyed by identity; a weak reference drops the entry when the
tables are freed, so a new object that reuses the address never sees stale data.
"""

from __future__ import annotations

import threading
import weakref
from typing import Callable, Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """``get(key, build)``: ``build(key)`` once per live ``key`` object, then the stored value.

    Safe to share between threads: two threads may both build a missing value, and one
    of the results is kept (``build`` must not have side effects that matter).
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: object, build: Callable[[object], V]) -> V:
        entry = self._entries.get(id(key))
        if entry is not None and entry[0]() is key:
            return entry[1]
        value = build(key)
        with self._lock:
            entry = self._entries.get(id(key))
            if entry is not None and entry[0]() is key:
                return entry[1]
            self._entries[id(key)] = (weakref.ref(key, self._forget_callback(id(key))), value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def _forget_callback(self, address: int) -> Callable[[weakref.ref], None]:
        # The callback holds the cache weakly too (a cache that is gone needs no cleanup),
        # and takes no lock: it may run from the garbage collector while this thread holds
        # it. A lookup and a delete are each atomic on a dict.
        cache = weakref.ref(self)

        def forget(ref: weakref.ref) -> None:
            owner = cache()
            current = None if owner is None else owner._entries.get(address)
            if current is not None and current[0] is ref:
                owner._entries.pop(address, None)

        return forget
