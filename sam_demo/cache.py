"""A thread-safe LRU cache bounded by bytes, for embeddings and decoder results shared by all users."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int


class BoundedCache(Generic[V]):
    """Least-recently-used cache whose entries' sizes sum to at most ``max_bytes``.

    ``sizeof(value)`` gives an entry's size; an entry larger than the whole
    budget is returned to the caller but not kept. :meth:`get_or_create` runs
    the factory at most once per key at a time, so two users uploading the same
    photo cause one encode, not two.
    """

    def __init__(self, max_bytes: int, sizeof: Callable[[V], int]) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self._max = int(max_bytes)
        self._sizeof = sizeof
        self._data: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self._misses += 1
                return None
            self._data.move_to_end(key)
            self._hits += 1
            return item[0]

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is cached now (neither a use for the LRU order nor a hit or miss in the stats)."""
        with self._lock:
            return key in self._data

    def pop(self, key: Hashable) -> V | None:
        """Remove and return the entry of ``key`` (``None`` when there is none)."""
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return None
            self._bytes -= item[1]
            return item[0]

    def put(self, key: Hashable, value: V) -> V:
        size = int(self._sizeof(value))
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size <= self._max:
                self._data[key] = (value, size)
                self._bytes += size
                while self._bytes > self._max:
                    _, (_, evicted) = self._data.popitem(last=False)
                    self._bytes -= evicted
        return value

    def get_or_create(self, key: Hashable, factory: Callable[[], V]) -> tuple[V, bool]:
        """The cached value, or ``factory()`` stored under ``key``; returns ``(value, was_cached)``."""
        value = self.get(key)
        if value is not None:
            return value, True
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            try:
                value = self.get(key)
                if value is not None:
                    return value, True
                return self.put(key, factory()), False
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._data), self._bytes, self._max, self._hits, self._misses)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
