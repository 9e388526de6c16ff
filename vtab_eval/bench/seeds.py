r"""Merges a multi-seed bench's finished seeds into its headline (report/seed_headline.py).

    python -m vtab_eval.bench.seeds --config=vtab_eval/configs/bench_seeds.py:cpu \
        --workdir=runs/bench/seeds

Reads ``<workdir>/seed-<s>/transfer/report/results.json`` of every seed (``make
bench-seeds`` runs them, one seed at a time) and writes ``<workdir>/headline.md`` and
``headline.json``: each method's relative gain over B averaged over seeds, per seed,
with hierarchical-bootstrap intervals and paired tests, per group and relation, and
against the random-expert control. Seeds still running are named; while none has
finished, the headline is over the partial ones and says so. Any field of the config
(vtab_eval/configs/bench_seeds.py) is set with ``--config.<field>=...``.
"""

from __future__ import annotations

from absl import app, flags

from fanout import cli, config_rules
from vtab_eval.configs import bench_seeds
from vtab_eval.report import seed_headline

PROGRAM = "vtab_eval.bench.seeds"


def define_flags() -> None:
    cli.define_config(PROGRAM, "vtab_eval/configs/bench_seeds.py:cpu")
    flags.DEFINE_string("workdir", None, "The bench's directory of seed-<s>/ folders.")


def main(argv):
    del argv
    config = flags.FLAGS.config
    if flags.FLAGS.workdir is not None:
        config.workdir = flags.FLAGS.workdir
    execute(config)


def execute(config) -> dict[str, str]:
    with cli.user_errors(PROGRAM):
        config_rules.check(config, bench_seeds.RULES)
        paths = seed_headline.write(config.workdir, config)
    print(open(paths["markdown"], encoding="utf-8").read(), flush=True)
    print(f"headline: {paths['markdown']}", flush=True)
    return paths


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser(PROGRAM))
