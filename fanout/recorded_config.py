"""A config recorded beside the results it produced, and the check that a rerun matches it.

A job or run resumed in a directory must not mix results of two settings. Its config is
recorded when it starts (atomically, as JSON: ``fanout.files``); a rerun compares its
own config with the record, field by dotted field (``model.size``), and is refused
naming the first field that differs, with both values, unless that field only changes
how fast or where the work goes. Each owner of such a directory declares its fields
in a ``Fields`` table:

- which fields decide results: every field but the ``speed_only`` ones, or only the
  ``results`` ones when the table names them (then a new config field is ignored until
  someone classifies it, which the owner's test checks);
- ``later``: fields added to the config after directories were recorded without them,
  with the value those directories ran with, so a record lacking the field reads as
  that value and older directories still match (and ``kept`` leaves a field at that
  value out of a new record, so old and new records agree byte for byte);
- ``unrecorded``: fields older records lack with no one value they ran with; a record
  without such a field matches any value (the owner decides when that is safe).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fanout import files


class ConfigChanged(ValueError):
    """A rerun's config differs from the recorded one in a field that decides results."""


@dataclasses.dataclass(frozen=True)
class Change:
    """The first result field whose value differs: as recorded, and as asked for now."""

    field: str
    recorded: Any
    wanted: Any


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; sequences become lists (JSON's view, so a
    config's tuple equals its recorded list)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, (tuple, list)) else value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    nested: dict = {}
    for field, value in flat.items():
        *sections, leaf = field.split(".")
        where = nested
        for section in sections:
            where = where.setdefault(section, {})
        where[leaf] = value
    return nested


@dataclasses.dataclass(frozen=True)
class Fields:
    """How one kind of directory classifies its config's fields (module docstring)."""

    speed_only: frozenset[str] = frozenset()
    results: frozenset[str] | None = None
    later: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    unrecorded: frozenset[str] = frozenset()

    def decides_results(self, field: str) -> bool:
        if field in self.speed_only:
            return False
        return self.results is None or field in self.results

    def kept(self, config: Mapping[str, Any]) -> dict:
        """What a record of ``config`` holds: its result fields, nested, less those
        added ``later`` that are at the value older records ran with."""
        return unflatten(
            {
                field: value
                for field, value in flatten(config).items()
                if self.decides_results(field)
                and not (field in self.later and self.later[field] == value)
            }
        )

    def first_change(self, recorded: Mapping, config: Mapping) -> Change | None:
        """The first result field, in sorted order, whose value differs, or None."""
        old, new = flatten(recorded), flatten(config)
        for field in sorted(set(old) | set(new) | set(self.later)):
            if not self.decides_results(field):
                continue
            if field not in old and field in self.unrecorded:
                continue
            was = old.get(field, self.later.get(field))
            now = new.get(field, self.later.get(field))
            if was != now:
                return Change(field, was, now)
        return None

    def check(self, recorded: Mapping, config: Mapping, message: Callable[[Change], str]) -> None:
        """Raises ``ConfigChanged`` with ``message(change)`` (one line, naming the field,
        both values and what to do) if a result field differs."""
        change = self.first_change(recorded, config)
        if change is not None:
            raise ConfigChanged(message(change))


def write(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Records ``record`` at ``path`` atomically: a crash leaves the old record or the
    new one, never a half-written file that a rerun could not compare with."""
    return files.write_json(path, dict(record))
