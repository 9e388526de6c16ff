r"""Prepares a task suite in a tfds data_dir and writes a sheet of sample images.

    python -m vtab_eval.tasks.build --config.data_dir=/tmp/tfds --config.suite=embedded

generates the embedded mini-VTAB suite from local sources (a few minutes on 2 cores;
nothing is downloaded), prints each task's group, classes, split sizes and build time, and
writes `<data_dir>/<suite>_samples.png`. `--config=vtab_eval/configs/tasks.py:smoke`
builds a few examples per split. `--config.suite=vtab1k` only checks what is prepared, unless
`--config.download=true` is given. `--config.suite='SPEC;SPEC'` builds given tasks.
"""

from __future__ import annotations

import os
import sys
import time

import fanout.flags
from fanout import cli
from vtab_eval.configs import tasks as tasks_config


def _with_config(spec: str, config: str) -> str:
    from vtab_eval.tasks.spec import format_spec, parse_spec

    name, kwargs = parse_spec(spec)
    if config != "full" and name.startswith("mini_"):
        kwargs["config"] = config
    return format_spec(name, kwargs)


def task_specs(config) -> list[str]:
    """The suite's specs (the embedded ones at the preset's size), or the ';'-separated
    specs ``suite`` gives."""
    from vtab_eval import tasks
    from vtab_eval.tasks.spec import parse_spec

    suite = config.suite.strip()
    if suite in tasks.suite_names():
        return [_with_config(s, config.builder_config) for s in tasks.suite_specs(suite)]
    specs = tasks.split_specs(suite)
    if len(specs) == 1 and parse_spec(specs[0])[0] not in tasks.task_names():
        raise ValueError(
            f"--config.suite: unknown suite {suite!r}; known suites: "
            f"{', '.join(tasks.suite_names())} (or ';'-separated task specs)"
        )
    return specs


def run(config) -> int:
    """Builds what the config asks for; returns the exit status."""
    import tensorflow_datasets as tfds

    from vtab_eval import tasks
    from vtab_eval.tasks.grid import task_samples, write_grid

    tfds.disable_progress_bar()  # One line per task below instead.
    specs = task_specs(config)
    data_dir = config.data_dir or tfds.core.constants.DATA_DIR
    options = {"data_dir": data_dir, "download": config.download, "try_gcs": config.try_gcs}
    print(f"building {len(specs)} task(s) in {data_dir}", flush=True)
    header = f"{'task':<74} {'group':<11} {'cls':>4} {'train800':>8} {'val200':>6} {'test':>6} {'secs':>6}"
    print(header, flush=True)
    rows, failures, start = [], [], time.time()
    for i, spec in enumerate(specs, 1):
        began = time.time()
        try:
            task = tasks.get_task(spec, **options)
            sizes = [task.num_examples(s) for s in ("train800", "val200", "test")]
            rows.append((task.spec, task_samples(task, "train800", config.samples)))
        except Exception as e:  # Report every task; fail at the end.
            failures.append(spec)
            print(f"[{i}/{len(specs)}] {spec}: FAILED: {e}", flush=True)
            continue
        print(
            f"{task.spec:<74} {task.group:<11} {task.num_classes:>4} "
            f"{sizes[0]:>8} {sizes[1]:>6} {sizes[2]:>6} {time.time() - began:>6.1f}",
            flush=True,
        )
    print(f"total build time: {time.time() - start:.1f}s", flush=True)
    if rows:
        name = config.suite if config.suite in tasks.suite_names() else "tasks"
        grid = config.grid or os.path.join(data_dir, f"{name}_samples.png")
        print(f"sample sheet: {write_grid(rows, grid)}", flush=True)
    if failures:
        print(f"{len(failures)} task(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def execute(config) -> int:
    """``run``, with a user's mistake (an unknown suite, a bad spec) ending the program
    in one line naming it (fanout.cli)."""
    with cli.user_errors("vtab_eval.tasks.build"):
        return run(config)


# Old spellings, each refused in one line naming the new one.
RENAMED = {
    "data_dir": "--config.data_dir",
    "suite": "--config.suite",
    "task": "--config.suite='SPEC;SPEC'",
    "download": "--config.download=true",
    "try_gcs": "--config.try_gcs=true",
    "grid": "--config.grid",
    "samples": "--config.samples",
}

if __name__ == "__main__":
    fanout.flags.launch(
        execute, "vtab_eval.tasks.build", "vtab_eval/configs/tasks.py:cpu", workdir=False,
        renamed=RENAMED, rules=tasks_config.RULES,
    )  # fmt: skip
