"""What a worker process keeps between the jobs it runs.

A Ray worker often runs several jobs of one run in turn (every full expert of a
config, every module exported from one tree, every (task, module) fine-tuning of one
transfer run), and what those jobs share is costly to build: an opened dataset, a
distribution strategy, traced training steps, loaded hub modules. A ``WorkerCache``
keeps it for the next job, as the local executor's jobs share it within one process.
It holds at most ``max_entries`` values (one by default: each may hold a model or a
dataset's buffers), the least recently used going first when another key comes, so a
worker that moves on to another run drops the old run's state before building anew.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class WorkerCache(Generic[V]):
    """Values built per key, kept in this process between jobs (a module-level one per
    kind of state: it lives as long as the worker)."""

    def __init__(self, name: str, max_entries: int = 1):
        if max_entries < 1:
            raise ValueError(f"worker cache {name!r}: max_entries must be >= 1, not {max_entries}")
        self.name = name
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        """The value kept for ``key``, or ``build()``'s, kept. Older entries are dropped
        before building, so the old and the new state are never held at once; a build
        that raises keeps nothing."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        value = build()
        self._entries[key] = value
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __repr__(self) -> str:
        return f"WorkerCache({self.name!r}, {len(self)}/{self.max_entries} entries)"
