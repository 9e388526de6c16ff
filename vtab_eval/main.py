r"""Selects an expert per task, fine-tunes it, and reports (paper, sections 5 and 6.3-6.5).

    python -m vtab_eval.main --config=vtab_eval/configs/transfer.py:cpu \
        --pool=runs/hub --suite=embedded --selectors=knn,baseline --workdir=runs/transfer

    --pool       a hub tree root (hub_export's layout) or comma-separated handles
                 (module directories, tfhub.dev URLs, Kaggle handles)
    --suite      a suite name (embedded, vtab1k) or ';'-separated task specs
    --selectors  comma-separated: knn, domain, label, random, baseline, oracle
    --workdir    outputs; rerunning resumes, finished tasks are not redone
    --data_dir   tfds data directory (tasks are never downloaded)
    --report_dir where the report goes (default <workdir>/report)
    --report_only  only rewrite the report, reading nothing but result files (the
                 finished tasks' under --workdir, and the probe matrix when the config
                 names one): no pool, task data or fine-tuning (on --selectors' methods
                 when given, else on all)
    --executor   local (default) or ray: feature extraction per module, and
                 fine-tuning and oracle screening per (task, module), as Ray tasks
                 (fanout: --ray_address, --job_cpus, --job_gpus, --job_memory_gb)

Presets smoke | cpu | paper and every other field: vtab_eval/configs/transfer.py.
"""

from __future__ import annotations

from absl import app, flags, logging

import fanout
import fanout.flags
from fanout import cli, config_rules
from vtab_eval.configs import transfer


def define_flags() -> None:
    """Defines this binary's flags; called only when it runs as a program, so that
    importing the module never claims flag names other binaries also define."""
    cli.define_config("vtab_eval.main", "vtab_eval/configs/transfer.py:cpu")
    flags.DEFINE_string("pool", None, "Hub tree root, or comma-separated module handles.")
    flags.DEFINE_string("suite", None, "Suite name or ';'-separated task specs.")
    flags.DEFINE_string("selectors", None, "Comma-separated selector names.")
    flags.DEFINE_string("workdir", None, "Output directory (resumable).")
    flags.DEFINE_string("data_dir", None, "tfds data directory of the tasks.")
    flags.DEFINE_string("report_dir", None, "Report directory (<workdir>/report).")
    flags.DEFINE_bool("report_only", False, "Only rewrite the report, from the result files.")
    fanout.flags.define()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        # Progress goes to stdout; library INFO lines (tfds, hub) would drown it.
        logging.set_verbosity(logging.WARNING)
    config = flags.FLAGS.config
    for field in ("pool", "suite", "selectors", "workdir", "data_dir"):
        if flags.FLAGS[field].value is not None:
            config[field] = flags.FLAGS[field].value
    if flags.FLAGS.report_dir is not None:
        config.report.dir = flags.FLAGS.report_dir
    # --report_only: every method of the finished tasks, unless --selectors names some.
    selectors = flags.FLAGS.selectors
    methods = selectors and selectors.split(",")
    execute(config, flags.FLAGS.report_only, methods, fanout.flags.executor)


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


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("vtab_eval.main"))
