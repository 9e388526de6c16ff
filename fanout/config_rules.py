"""One rule per config field, checked once when a binary has resolved its config.

Each config states its rules in a table beside it (``RULES``: a dotted field name ->
a rule, e.g. ``{"train.total_steps": integer(min=1), "workdir": path()}``); a binary
calls ``check(config, RULES)`` where it resolves the config, so that a bad value is one
line naming the field before any work starts, not a traceback (or a finished job of
nonsense) later. Every field must have a rule or be explicitly ``exempt``: a field
added without one is refused here and by tests/configs/test_rules.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class ConfigError(ValueError):
    """A config field whose value breaks its rule (or that has none)."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """``accepts(value)``: whether ``value`` is allowed; ``says``: what is allowed, as
    it reads after "must be"; ``refuses``: values it must refuse, which
    tests/configs/test_rules.py sets each field to (empty for an exemption)."""

    accepts: Callable[[Any], bool]
    says: str
    refuses: tuple = ()


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def _within(value, low, high, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value < low or (low_open and value == low)):
        return False
    return high is None or (value < high or (not high_open and value == high))


def _outside(low, high, low_open: bool, high_open: bool) -> tuple:
    """Numbers just outside the bounds."""
    below = () if low is None else (low if low_open else low - 1,)
    return below + (() if high is None else (high if high_open else high + 1,))


def integer(min: int | None = None, max: int | None = None) -> Rule:  # noqa: A002
    """A whole number (not a bool, not a float) in ``[min, max]``."""
    return Rule(
        lambda v: (
            isinstance(v, int) and not isinstance(v, bool) and _within(v, min, max, False, False)
        ),
        f"an integer {_bounds(min, max, False, False)}".strip(),
        _outside(min, max, False, False) + (None,),
    )


def number(
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    min_open: bool = False,
    max_open: bool = False,
) -> Rule:
    """A finite number (NaN and infinities never pass) within the bounds."""
    return Rule(
        lambda v: _is_number(v) and math.isfinite(v) and _within(v, min, max, min_open, max_open),
        f"a finite number {_bounds(min, max, min_open, max_open)}".strip(),
        _outside(min, max, min_open, max_open) + (math.nan, math.inf, None),
    )


def positive() -> Rule:
    return number(0, min_open=True)


def fraction(min_open: bool = False, max_open: bool = False) -> Rule:
    """A number in [0, 1], either end open if asked."""
    return number(0, 1, min_open, max_open)


def boolean() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "true or false", (None,))


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, f"one of {', '.join(map(str, choices))}", ("nope", None))


def text(empty: bool = True) -> Rule:
    """A string; non-empty unless ``empty``."""
    if empty:
        return Rule(lambda v: isinstance(v, str), "a string", (None,))
    return Rule(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string", ("", " "))


def path(empty: bool = False, meaning: str = "") -> Rule:
    """A file or directory path; empty only if ``empty`` (``meaning`` says what an
    empty one stands for). An empty path would otherwise mean the working directory."""
    if empty:
        return Rule(lambda v: isinstance(v, str), f"a path (or empty: {meaning})", (None,))
    return Rule(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty path", ("", None))


def name() -> Rule:
    """One path component: non-empty, no '/', not '.' or '..'."""
    return Rule(
        lambda v: (
            isinstance(v, str) and v.strip() == v and "/" not in v and v not in ("", ".", "..")
        ),
        "a name without '/' or surrounding spaces",
        ("", "a/b", "..", None),
    )


def sequence(of: Rule, min_len: int = 0, length: int | None = None, ordered=False) -> Rule:
    """A tuple or list whose items all follow ``of``: at least ``min_len`` of them (or
    exactly ``length``), in non-decreasing order if ``ordered``."""

    def accepts(v) -> bool:
        if not isinstance(v, tuple | list) or not all(of.accepts(item) for item in v):
            return False
        if (length is not None and len(v) != length) or len(v) < min_len:
            return False
        return not ordered or all(a <= b for a, b in itertools.pairwise(v))

    size = (
        f"{length}" if length is not None else f"{min_len} or more" if min_len else "any number of"
    )
    order = ", in increasing order" if ordered else ""
    refuses = tuple((bad,) * max(1, length or 1) for bad in of.refuses) + (None,)
    if length or min_len:
        refuses += ((),)
    return Rule(accepts, f"a sequence of {size} items, each {of.says}{order}", refuses)


def satisfies(predicate: Callable[[Any], bool], says: str, refuses: tuple) -> Rule:
    """A rule of the config's own (``predicate`` must not raise)."""
    return Rule(predicate, says, refuses)


def exempt(why: str) -> Rule:
    """No rule here, on purpose: ``why`` says who checks the field instead."""
    return Rule(lambda v: True, f"anything ({why})")


def fields(config) -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every leaf field of ``config``; nested configs are walked."""
    for key, value in config.items():
        # ConfigDicts are not Mappings; they are the configs that can be locked.
        if isinstance(value, Mapping) or (hasattr(value, "items") and hasattr(value, "lock")):
            for sub, leaf in fields(value):
                yield f"{key}.{sub}", leaf
        else:
            yield key, value


def check(config, rules: Mapping[str, Rule], prefix: str = "config") -> None:
    """Raises ``ConfigError`` naming the first field of ``config`` that breaks its rule
    or has none: ``config.train.total_steps=-3: must be an integer >= 1``."""
    for field, value in fields(config):
        rule = rules.get(field)
        if rule is None:
            raise ConfigError(
                f"{prefix}.{field}: the field has no rule; add one to its config's RULES "
                "(fanout/config_rules.py) or exempt it"
            )
        if not rule.accepts(value):
            raise ConfigError(f"{prefix}.{field}={value!r}: must be {rule.says}")


def unmatched(config, rules: Mapping[str, Rule]) -> tuple[list[str], list[str]]:
    """(fields without a rule, rules without a field): both empty for a complete table."""
    names = {field for field, _ in fields(config)}
    return sorted(names - set(rules)), sorted(set(rules) - names)
