"""Registry: VTAB-style string specs -> tasks, and named suites of specs."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from vtab_eval.tasks.base import Task
from vtab_eval.tasks.spec import format_spec, parse_spec

# A factory takes the spec's keyword arguments plus `canonical` (the normalised spec) and
# the loading options (data_dir, download, try_gcs), and returns a Task.
Factory = Callable[..., Task]

_FACTORIES: dict[str, Factory] = {}
_SUITES: dict[str, tuple[str, ...]] = {}
# Set by get_task itself, never by a spec.
_LOADING_OPTIONS = ("canonical", "data_dir", "download", "try_gcs")


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering a task factory under a spec name."""

    def decorator(factory: Factory) -> Factory:
        if name in _FACTORIES:
            raise ValueError(f"task name {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorator


def register_suite(name: str, specs: tuple[str, ...]) -> None:
    if name in _SUITES:
        raise ValueError(f"suite {name!r} is registered twice")
    _SUITES[name] = tuple(specs)


def task_names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def suite_names() -> tuple[str, ...]:
    return tuple(sorted(_SUITES))


def suite_specs(suite: str) -> tuple[str, ...]:
    """The task specs of a named suite (`vtab1k`, `embedded`)."""
    if suite not in _SUITES:
        raise ValueError(f"unknown suite {suite!r}; known suites: {', '.join(suite_names())}")
    return _SUITES[suite]


def get_task(
    spec: str,
    *,
    data_dir: str | None = None,
    download: bool = False,
    try_gcs: bool = False,
) -> Task:
    """Builds the task named by `spec`. Nothing is downloaded unless `download=True`."""
    name, kwargs = parse_spec(spec)
    if name not in _FACTORIES:
        raise ValueError(
            f"unknown task {name!r} in spec {spec!r}; known tasks: {', '.join(task_names())}"
        )
    factory = _FACTORIES[name]
    params = [
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    for key in kwargs:
        if key not in params or key in _LOADING_OPTIONS:
            allowed = [p for p in params if p not in _LOADING_OPTIONS]
            raise ValueError(
                f"task spec {spec!r}: unknown argument {key!r} for {name!r}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )
    return factory(
        canonical=format_spec(name, kwargs),
        data_dir=data_dir,
        download=download,
        try_gcs=try_gcs,
        **kwargs,
    )


def get_suite(suite: str, **options) -> list[Task]:
    """All tasks of a named suite, with the same loading options."""
    return [get_task(spec, **options) for spec in suite_specs(suite)]
