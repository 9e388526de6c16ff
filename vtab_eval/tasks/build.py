"""Prepares a task suite in a tfds data_dir and writes a sheet of sample images.

    python -m vtab_eval.tasks.build --data_dir=/tmp/tfds --suite=embedded

generates the embedded mini-VTAB suite from local sources (a few minutes on 2 cores;
nothing is downloaded), prints each task's group, classes, split sizes and build time, and
writes `<data_dir>/<suite>_samples.png`. `--config=tiny` builds a few examples per split.
`--suite=vtab1k` only checks what is prepared, unless `--download` is given.
`--task=SPEC` (repeatable) builds given tasks instead of a suite.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

from fanout import cli


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines this binary's flags on `flag_values`.

    Called only when run as a program (or by tests on their own FlagValues), so importing
    this module never claims global flag names that other binaries also define.
    """
    fv = flag_values
    flags.DEFINE_string("data_dir", None, "tfds data_dir (default: tfds' own).", flag_values=fv)
    flags.DEFINE_string("suite", "embedded", "Suite: embedded or vtab1k.", flag_values=fv)
    flags.DEFINE_multi_string(
        "task", [], "Task spec(s) to build instead of --suite.", flag_values=fv
    )
    flags.DEFINE_enum(
        "config", "full", ["full", "tiny"], "Embedded builder config.", flag_values=fv
    )
    flags.DEFINE_bool("download", False, "Allow tfds to download VTAB-1k data.", flag_values=fv)
    flags.DEFINE_bool(
        "try_gcs", False, "Allow tfds to fetch prepared data from GCS.", flag_values=fv
    )
    flags.DEFINE_string(
        "grid", None, "Sample sheet PNG (default: <data_dir>/<suite>_samples.png).", flag_values=fv
    )
    flags.DEFINE_integer("samples", 10, "Sample images per task on the sheet.", flag_values=fv)


def _with_config(spec: str, config: str) -> str:
    from vtab_eval.tasks.spec import format_spec, parse_spec

    name, kwargs = parse_spec(spec)
    if config != "full" and name.startswith("mini_"):
        kwargs["config"] = config
    return format_spec(name, kwargs)


def run(fv: flags.FlagValues) -> int:
    """Builds what the parsed flags ask for; returns the exit status."""
    import tensorflow_datasets as tfds

    from vtab_eval import tasks
    from vtab_eval.tasks.grid import task_samples, write_grid

    tfds.disable_progress_bar()  # One line per task below instead.
    specs = fv.task or [_with_config(s, fv.config) for s in tasks.suite_specs(fv.suite)]
    data_dir = fv.data_dir or tfds.core.constants.DATA_DIR
    options = {"data_dir": data_dir, "download": fv.download, "try_gcs": fv.try_gcs}
    print(f"building {len(specs)} task(s) in {data_dir}", flush=True)
    header = f"{'task':<74} {'group':<11} {'cls':>4} {'train800':>8} {'val200':>6} {'test':>6} {'secs':>6}"
    print(header, flush=True)
    rows, failures, start = [], [], time.time()
    for i, spec in enumerate(specs, 1):
        began = time.time()
        try:
            task = tasks.get_task(spec, **options)
            sizes = [task.num_examples(s) for s in ("train800", "val200", "test")]
            rows.append((task.spec, task_samples(task, "train800", fv.samples)))
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
        name = "tasks" if fv.task else fv.suite
        grid = fv.grid or os.path.join(data_dir, f"{name}_samples.png")
        print(f"sample sheet: {write_grid(rows, grid)}", flush=True)
    if failures:
        print(f"{len(failures)} task(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def execute(fv: flags.FlagValues) -> int:
    """``run``, with a user's mistake (an unknown suite, a bad spec) ending the program
    in one line naming it (fanout.cli)."""
    with cli.user_errors("vtab_eval.tasks.build"):
        return run(fv)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    return execute(flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=cli.flags_parser("vtab_eval.tasks.build"))
