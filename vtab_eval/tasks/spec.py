"""VTAB-style task specs: `name` or `name(key=literal, ...)`.

Specs are strings so that flags, configs and result files can name a task in one token,
exactly as google-research/task_adaptation does, e.g.
`dsprites(predicted_attribute="label_orientation",num_classes=16)`.
"""

from __future__ import annotations

import ast
from typing import Any

Literal = str | int | float | bool | None
# The longest spec accepted: a path as long as Linux allows (PATH_MAX, 4096 bytes) and
# room for the other arguments. Python's parser needs memory and recursion in
# proportion to a spec's nesting, so a spec of many thousand characters could end in
# MemoryError rather than in an error naming it.
MAX_SPEC_LENGTH = 5000


def parse_spec(spec: str) -> tuple[str, dict[str, Literal]]:
    """Splits a spec into its task name and keyword arguments (literals only)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"bad task spec {spec!r}: expected a non-empty string")
    if len(spec) > MAX_SPEC_LENGTH:
        raise ValueError(
            f"bad task spec {spec[:60]!r}...: {len(spec)} characters, more than the "
            f"{MAX_SPEC_LENGTH} a spec may have"
        )
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except (SyntaxError, MemoryError, RecursionError) as e:  # the last two: deep nesting
        raise ValueError(f"bad task spec {spec!r}: not of the form name(key=value,...)") from e
    if isinstance(tree, ast.Name):
        return tree.id, {}
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise ValueError(f"bad task spec {spec!r}: not of the form name(key=value,...)")
    if tree.args:
        raise ValueError(f"bad task spec {spec!r}: arguments must be named (key=value)")
    kwargs: dict[str, Literal] = {}
    for kw in tree.keywords:
        if kw.arg is None:
            raise ValueError(f"bad task spec {spec!r}: **kwargs are not allowed")
        try:
            value = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
            raise ValueError(f"bad task spec {spec!r}: value of {kw.arg!r} is not a literal") from e
        if not isinstance(value, str | int | float | bool | type(None)):
            raise ValueError(
                f"bad task spec {spec!r}: value of {kw.arg!r} must be a string, number or bool"
            )
        kwargs[kw.arg] = value
    return tree.func.id, kwargs


def format_spec(name: str, kwargs: dict[str, Any] | None = None) -> str:
    """The canonical spec: arguments in the given order, no spaces, double-quoted strings."""
    if not kwargs:
        return name
    parts = []
    for key, value in kwargs.items():
        if isinstance(value, str):
            rendered = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            rendered = repr(value)
        parts.append(f"{key}={rendered}")
    return f"{name}({','.join(parts)})"


def split_specs(text: str) -> list[str]:
    """``spec; spec; ...`` split on the semicolons outside quoted strings, so that a
    task path may contain one (``image_folder(path="a;b")``)."""
    specs, current, quote, escaped = [], [], None, False
    for char in text:
        if quote is not None:
            if char == quote and not escaped:
                quote = None
            escaped = char == "\\" and not escaped
        elif char in "\"'":
            quote = char
        elif char == ";":
            specs.append("".join(current))
            current = []
            continue
        current.append(char)
    specs.append("".join(current))
    return [spec.strip() for spec in specs if spec.strip()]
