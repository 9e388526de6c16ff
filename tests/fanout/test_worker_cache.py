"""fanout/worker_cache.py: a worker keeps what its jobs share, per key, and drops the
oldest key's value before building another's."""

import pytest

from fanout.worker_cache import WorkerCache


class Builds:
    """A build function that counts its calls and returns a fresh object each time."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return object()


def test_a_key_is_built_once_and_kept():
    cache, build = WorkerCache("test"), Builds()
    first = cache.get("a", build)
    assert cache.get("a", build) is first and build.calls == 1


def test_a_new_key_drops_the_old_value_before_building():
    cache = WorkerCache("test")
    cache.get("a", Builds())

    def build_b():
        assert "a" not in cache, "the old run's state is still held while building"
        return "b"

    assert cache.get("b", build_b) == "b"
    assert len(cache) == 1 and "a" not in cache


def test_the_least_recently_used_goes_first():
    cache = WorkerCache("test", max_entries=2)
    cache.get("a", Builds())
    cache.get("b", Builds())
    cache.get("a", Builds())  # a is now the most recent
    cache.get("c", Builds())
    assert "a" in cache and "c" in cache and "b" not in cache


def test_a_failed_build_keeps_nothing():
    cache = WorkerCache("test")
    cache.get("a", Builds())

    def fail():
        raise OSError("no such dataset")

    with pytest.raises(OSError, match="no such dataset"):
        cache.get("b", fail)
    assert len(cache) == 0
    build = Builds()
    cache.get("b", build)
    assert build.calls == 1


def test_clear_and_a_bad_size():
    cache = WorkerCache("test")
    cache.get("a", Builds())
    cache.clear()
    assert len(cache) == 0 and "'test'" in repr(cache)
    with pytest.raises(ValueError, match="max_entries"):
        WorkerCache("test", max_entries=0)
