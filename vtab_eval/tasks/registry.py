"""Registry: VTAB-style string specs -> tasks, and named suites of specs."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from fanout.registry import Registry
from vtab_eval.tasks.base import Task
from vtab_eval.tasks.spec import format_spec, parse_spec

# A factory takes the spec's keyword arguments plus `canonical` (the normalised spec) and
# the loading options (data_dir, download, try_gcs), and returns a Task.
Factory = Callable[..., Task]

_FACTORIES = Registry("task")  # name -> Factory, each registered in its family's file
# Task names whose key is more than the canonical spec -> a function of the canonical
# spec and the spec's arguments that computes it without building the task.
_KEYS: dict[str, Callable[..., str]] = {}
_SUITES = Registry("suite")  # name -> its specs
# Set by get_task itself, never by a spec.
_LOADING_OPTIONS = ("canonical", "data_dir", "download", "try_gcs")


def register(name: str, key: Callable[..., str] | None = None) -> Callable[[Factory], Factory]:
    """Decorator registering a task factory under a spec name; ``key`` computes a built
    task's ``key`` cheaply (``task_key``) when it is more than its canonical spec."""

    def decorator(factory: Factory) -> Factory:
        _FACTORIES.add(name, factory)  # refuses a name registered twice
        if key is not None:
            _KEYS[name] = key
        return factory

    return decorator


def register_suite(name: str, specs: tuple[str, ...]) -> None:
    _SUITES.add(name, tuple(specs))


def task_names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def suite_names() -> tuple[str, ...]:
    return tuple(sorted(_SUITES))


def suite_specs(suite: str) -> tuple[str, ...]:
    """The task specs of a named suite (`vtab1k`, `embedded`)."""
    if suite not in _SUITES:
        raise ValueError(f"unknown suite {suite!r}; known suites: {', '.join(suite_names())}")
    return _SUITES[suite]


def _checked_spec(spec: str) -> tuple[str, dict]:
    """A spec's task name and arguments, checked against its factory's parameters."""
    name, kwargs = parse_spec(spec)
    if name not in _FACTORIES:
        raise ValueError(
            f"unknown task {name!r} in spec {spec!r}; known tasks: {', '.join(task_names())}"
        )
    signature = inspect.signature(_FACTORIES[name])
    params = [
        p.name
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    for key in kwargs:
        if key not in params or key in _LOADING_OPTIONS:
            allowed = [p for p in params if p not in _LOADING_OPTIONS]
            raise ValueError(
                f"task spec {spec!r}: unknown argument {key!r} for {name!r}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty
        and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        and p.name not in _LOADING_OPTIONS
        and p.name not in kwargs
    ]
    if required:
        raise ValueError(f"task spec {spec!r}: missing argument {required[0]!r}")
    return name, kwargs


def task_key(spec: str) -> str:
    """The ``key`` the task of ``spec`` has (what names its results), without building
    it: the canonical spec, or for a task read from the user's files (``image_folder``)
    its resolved spec with a fingerprint of those files."""
    name, kwargs = _checked_spec(spec)
    canonical = format_spec(name, kwargs)
    return _KEYS[name](canonical, **kwargs) if name in _KEYS else canonical


def get_task(
    spec: str,
    *,
    data_dir: str | None = None,
    download: bool = False,
    try_gcs: bool = False,
) -> Task:
    """Builds the task named by `spec`. Nothing is downloaded unless `download=True`."""
    name, kwargs = _checked_spec(spec)
    return _FACTORIES[name](
        canonical=format_spec(name, kwargs),
        data_dir=data_dir,
        download=download,
        try_gcs=try_gcs,
        **kwargs,
    )


def get_suite(suite: str, **options) -> list[Task]:
    """All tasks of a named suite, with the same loading options."""
    return [get_task(spec, **options) for spec in suite_specs(suite)]
