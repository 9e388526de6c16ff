r"""Wall time of the upstream, its export and a transfer run with ``--executor=ray`` on
this machine against ``--executor=local``, as ratios (prints a table; not a test).

    python -m fanout.bench.ray_vs_local --data_dir=runs/tfds --preset=smoke \
        --suite=embedded --tasks_dir=runs/tfds --out=runs/bench/fanout

Each side runs the project's binaries as a user does (``experts.train``,
``hub_export.export``, ``vtab_eval.main``), in its own fresh directories, one side
after the other (local first), so the figures include process start-up and Ray's
worker start-up. The upstream must be prepared in ``--data_dir`` (``make demo``
builds the embedded one) and the tasks in ``--tasks_dir``. Ray starts on this machine,
bound to 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

from fanout import cli, files

FLAGS = flags.FLAGS


def stages(executor: str, root: Path) -> list[tuple[str, list[str]]]:
    """(stage, command) pairs of one side."""
    f, python = FLAGS, [sys.executable, "-m"]
    common = [f"--executor={executor}", f"--job_cpus={f.job_cpus}"]
    upstream, hub = root / "upstream", root / "hub"
    data = [f"--config.data.name={f.data_name}"] if f.data_name else []
    return [
        ("upstream", python + ["experts.train",
                               f"--config=experts/configs/upstream.py:{f.preset}",
                               f"--workdir={upstream}", f"--config.data_dir={f.data_dir}",
                               *data, *common]),
        ("export", python + ["hub_export.export", f"--workdir={upstream}",
                             f"--config.hub_root={hub}", f"--config.kinds={f.kinds}", *common]),
        ("transfer", python + ["vtab_eval.main",
                               f"--config=vtab_eval/configs/transfer.py:{f.preset}",
                               f"--workdir={root / 'transfer'}", f"--config.pool={hub}",
                               f"--config.suite={f.suite}", f"--config.data_dir={f.tasks_dir}",
                               f"--config.selectors={f.selectors}", *common]),
    ]  # fmt: skip


def run_side(executor: str, root: Path, log) -> dict[str, float]:
    try:  # an earlier run's directory goes, but never one this benchmark did not make
        files.fresh_dir(root, "fanout.bench.ray_vs_local")
    except files.NotOwned as e:
        sys.exit(f"fanout.bench.ray_vs_local: error: {e}")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", TF_CPP_MIN_LOG_LEVEL="2")
    seconds = {}
    for stage, command in stages(executor, root):
        start = time.perf_counter()
        with open(root / f"{stage}.log", "w") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        seconds[stage] = time.perf_counter() - start
        if done.returncode:
            sys.exit(
                f"fanout.bench.ray_vs_local: {executor} {stage} failed; see {root / stage}.log"
            )
        log(f"{executor:5s} {stage:8s} {seconds[stage]:7.1f}s")
    return seconds


def main(argv):
    del argv
    out = Path(FLAGS.out)
    local = run_side("local", out / "local", print)
    ray = run_side("ray", out / "ray", print)
    print("\n| stage | local (s) | ray (s) | ray / local |\n|---|---:|---:|---:|")
    for stage in [*local, "total"]:
        a = sum(local.values()) if stage == "total" else local[stage]
        b = sum(ray.values()) if stage == "total" else ray[stage]
        print(f"| {stage} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    print(f"\n(preset {FLAGS.preset}, {os.cpu_count()} CPUs, --job_cpus={FLAGS.job_cpus})")


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", "runs/tfds", "tfds directory of the prepared upstream.")
    flags.DEFINE_string("data_name", None, "tfds name of the upstream (the preset's default).")
    flags.DEFINE_enum("preset", "smoke", ["smoke", "cpu"], "The pipeline's preset.")
    flags.DEFINE_string("kinds", "baseline,full,adapter", "Module kinds to export.")
    flags.DEFINE_string("suite", "embedded", "The transfer suite.")
    flags.DEFINE_string("tasks_dir", "runs/tfds", "tfds directory of the tasks.")
    flags.DEFINE_string("selectors", "knn,baseline", "The transfer run's selectors.")
    flags.DEFINE_string("out", "runs/bench/fanout", "Where both sides' runs go.")
    flags.DEFINE_float("job_cpus", 1.0, "CPUs per Ray job.")
    app.run(main, flags_parser=cli.flags_parser("fanout.bench.ray_vs_local"))
