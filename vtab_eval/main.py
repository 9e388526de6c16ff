r"""Selects an expert per task, fine-tunes it, and reports (paper, sections 5 and 6.3-6.5).

    python -m vtab_eval.main --config=vtab_eval/configs/transfer.py:cpu \
        --workdir=runs/transfer --config.pool=runs/hub --config.suite=embedded \
        --config.selectors=knn,baseline --config.data_dir=runs/tfds

    --workdir              outputs; rerunning resumes, finished tasks are not redone
    --config.pool          a hub tree root (hub_export's layout) or comma-separated
                           handles (module directories, tfhub.dev URLs, Kaggle handles)
    --config.suite         a suite name (embedded, vtab1k) or ';'-separated task specs
    --config.selectors     comma-separated: knn, domain, label, random, baseline, oracle
    --config.data_dir      tfds data directory (tasks are never downloaded)
    --config.report.dir    where the report goes (default <workdir>/report)
    --config.report_only=true  only rewrite the report, reading nothing but result
                           files (the finished tasks' under --workdir, and the probe
                           matrix when the config names one): no pool, task data or
                           fine-tuning (on --config.selectors' methods when given, else
                           on all)
    --executor             local (default) or ray: feature extraction per module, and
                           fine-tuning and oracle screening per (task, module), as Ray
                           tasks (fanout: --ray_address, --job_cpus, --job_gpus,
                           --job_memory_gb)

Presets smoke | cpu | paper and every other field: vtab_eval/configs/transfer.py.
"""

from __future__ import annotations

from absl import flags, logging

import fanout
import fanout.flags
from fanout import cli, config_rules
from vtab_eval.configs import transfer


def main(config):
    if not flags.FLAGS["verbosity"].present:
        # Progress goes to stdout; library INFO lines (tfds, hub) would drown it.
        logging.set_verbosity(logging.WARNING)
    # The report of --config.report_only: every method of the finished tasks, unless
    # --config.selectors names some.
    given = fanout.flags.overrides()
    methods = config.selectors.split(",") if "selectors" in given else None
    execute(config, config.report_only, methods, fanout.flags.executor)


def execute(config, report_only: bool = False, report_methods=None, executor=None) -> None:
    """What the binary does with its resolved config; a user's mistake ends it with one
    line naming the culprit (fanout.cli). ``executor``: an executor or a function
    that makes one (``fanout.resolve``); the local one by default."""
    with cli.user_errors("vtab_eval.main"):
        config_rules.check(config, transfer.RULES)
        if report_only:
            # Reads only result files (the work directory's tasks, the probe matrix):
            # no module is loaded and no task read. TensorFlow is still imported (the report names
            # methods through the selectors' registry, whose modules import it).
            from vtab_eval import run_dir
            from vtab_eval.report import tables as report

            config = run_dir.expand_user_paths(config)

            methods = report_methods and [m.strip() for m in report_methods]
            paths = report.write_report(config.workdir, config, methods=methods)
            print(f"report: {paths['markdown']}", flush=True)
            return
        # Imported after flag parsing: TensorFlow is slow to import.
        import tensorflow as tf
        import tensorflow_datasets as tfds

        from vtab_eval import runner

        tfds.disable_progress_bar()
        # One training step is traced per fine-tuned module; TF's retracing warning
        # counts those across modules and would fire on every task.
        tf.get_logger().setLevel("ERROR")
        log = lambda message: print(message, flush=True)  # noqa: E731
        runner.run(config, log=log, executor=fanout.resolve(executor))


# The flags that mirrored config fields, each refused in one line naming the field.
RENAMED = {
    "pool": "--config.pool",
    "suite": "--config.suite",
    "selectors": "--config.selectors",
    "data_dir": "--config.data_dir",
    "report_dir": "--config.report.dir",
    "report_only": "--config.report_only=true",
}

if __name__ == "__main__":
    fanout.flags.launch(
        main, "vtab_eval.main", "vtab_eval/configs/transfer.py:cpu", executor=True,
        renamed=RENAMED,
    )  # fmt: skip
