"""Registration by decorator: a kind of plug-in (a selector, a module kind, ...) is one
class in one file, named by its class attribute `name`, carrying its traits as class
attributes; the code that uses them asks a `Registry` and never branches on names.

    SELECTORS = Registry("selector")

    @SELECTORS.register
    class Knn(Selector):
        name = "knn"

    SELECTORS["knn"]      # the class; an unknown name is one line listing the known ones
    list(SELECTORS)       # the names, in registration order
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no class is registered under. Both a KeyError (what a mapping raises) and
    a ValueError (what the command-line wrappers report as one line); its text is the
    message itself, not KeyError's quoted repr."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Mapping[str, Any]):
    """Name -> registered object, in registration order; duplicate names are refused."""

    def __init__(self, kind_name: str):
        self.kind_name = kind_name
        self._entries: dict[str, Any] = {}

    def register(self, cls: T) -> T:
        """Class decorator: registers `cls` under its `name` attribute."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls!r} has no `name` to be registered as a {self.kind_name} by")
        return self.add(name, cls)

    def add(self, name: str, entry: T) -> T:
        """Registers `entry` under `name` (for entries that are not classes)."""
        if name in self._entries:
            raise ValueError(
                f"{self.kind_name} {name!r} is registered twice "
                f"({self._entries[name]!r} and {entry!r})"
            )
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Forgets `name` (for tests that register a class of their own)."""
        del self._entries[name]

    def __getitem__(self, name: str) -> Any:
        if name not in self._entries:
            known = ", ".join(self._entries) or "none registered"
            raise UnknownName(f"unknown {self.kind_name} {name!r}; choose from {known}")
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def where(self, predicate: Callable[[Any], bool]) -> list[str]:
        """The names whose entry satisfies `predicate` (a trait), in registration order."""
        return [name for name, entry in self._entries.items() if predicate(entry)]
