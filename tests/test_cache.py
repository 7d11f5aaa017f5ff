"""The process-wide bounded cache: byte budget, LRU order, one computation per key."""

from __future__ import annotations

import threading
import time

import pytest

from sam_demo.cache import BoundedCache


def test_evicts_least_recently_used_to_stay_within_budget():
    cache = BoundedCache(100, sizeof=len)
    cache.put("a", b"x" * 40)
    cache.put("b", b"x" * 40)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"x" * 40)
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert cache.stats().bytes == 80 <= cache.stats().max_bytes


def test_oversized_values_are_returned_but_not_kept():
    cache = BoundedCache(10, sizeof=len)
    assert cache.put("big", b"x" * 11) == b"x" * 11
    assert cache.get("big") is None and cache.stats().bytes == 0


def test_replacing_a_key_updates_the_size():
    cache = BoundedCache(100, sizeof=len)
    cache.put("a", b"x" * 60)
    cache.put("a", b"x" * 10)
    assert cache.stats().bytes == 10 and cache.stats().entries == 1


def test_get_or_create_computes_once_for_concurrent_callers():
    cache = BoundedCache(1000, sizeof=len)
    calls = []

    def factory():
        calls.append(1)
        time.sleep(0.2)
        return b"value"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_create("k", factory))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True]


def test_factory_errors_propagate_and_nothing_is_stored():
    cache = BoundedCache(1000, sizeof=len)
    with pytest.raises(RuntimeError):
        cache.get_or_create("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert cache.get("k") is None
    assert cache.get_or_create("k", lambda: b"ok") == (b"ok", False)
