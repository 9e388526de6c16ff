"""The one launch convention of every pipeline binary:

    python -m <binary> --config=<file>:<preset> --workdir=<dir> --config.<field>=<value> ...
        [--executor=local|ray --ray_address=<host:port or ''>
         --job_cpus=1 --job_gpus=0 --job_memory_gb=0]

``--config`` is an ml_collections config file with its presets; every setting is one
of its fields (``data_dir`` always at its top level); ``--workdir`` sets the field
``workdir`` (binaries without a work directory leave it out). A binary's ``__main__``
block is one call:

    if __name__ == "__main__":
        fanout.flags.launch(main, "vtab_eval.main", "vtab_eval/configs/transfer.py:cpu",
                            executor=True, renamed={"pool": "--config.pool"})

and ``main(config)`` gets the parsed config. The flags are defined only there, so that
importing a binary's module never claims flag names. ``renamed`` maps a flag the binary
no longer has (``pool``, or a config field path such as ``config.data.data_dir``) to its
new spelling: given, it ends the program with ``<program>: error: --pool is now
--config.pool``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from absl import app, flags
from ml_collections import config_flags

from fanout import cli, executors


def launch(
    main: Callable,
    program: str,
    config: str,
    *,
    workdir: bool = True,
    executor: bool = False,
    renamed: Mapping[str, str] | None = None,
    rules=None,
) -> None:
    """Defines the binary's flags and runs ``main(config)`` on the parsed config.
    ``config``: the default ``<file>:<preset>``, relative to the project's source
    folder; ``workdir``: whether the binary has a work directory (``--workdir``);
    ``executor``: whether it fans out jobs (the executor flags); ``rules``: the
    config's ``fanout.config_rules``, checked once the flags are parsed."""
    # Before the config flag: ml_collections reads --config.<field> as it is defined.
    refuse_renamed(program, sys.argv, renamed or {})
    cli.define_config(program, config)
    if workdir:
        flags.DEFINE_string("workdir", None, "The work directory (the config's workdir field).")
    if executor:
        define()
    parse = cli.flags_parser(program, rules=rules)

    def parse_and_set_workdir(argv):
        rest = parse(argv)
        if workdir and flags.FLAGS.workdir is not None:
            flags.FLAGS.config.workdir = flags.FLAGS.workdir
        return rest

    app.run(lambda argv: main(flags.FLAGS.config), flags_parser=parse_and_set_workdir)


def overrides() -> dict:
    """The ``--config.<field>=<value>`` given on the command line, by dotted field."""
    return dict(config_flags.get_override_values(flags.FLAGS["config"]))


def refuse_renamed(program: str, argv, renamed: Mapping[str, str]) -> None:
    """Ends the program in one line when ``argv`` (``sys.argv``: the program, then its
    flags) gives a flag ``renamed`` names, e.g. ``--pool is now --config.pool``."""
    for arg in argv[1:]:
        if not arg.startswith("--"):
            continue
        name = arg[2:].split("=", 1)[0]
        old = name if name in renamed else name.removeprefix("no")
        if old in renamed:
            cli.fail(program, f"--{old} is now {renamed[old]}")


def define() -> None:
    """The executor flags (``launch(..., executor=True)`` defines them)."""
    flags.DEFINE_enum(
        "executor",
        "local",
        list(executors.EXECUTORS),
        "Where independent jobs run: in this process, or as Ray tasks.",
    )
    flags.DEFINE_string(
        "ray_address", "", "An existing Ray cluster's address; empty starts one on this machine."
    )
    flags.DEFINE_float("job_cpus", 1.0, "CPUs per job (Ray).", lower_bound=0)
    flags.DEFINE_float("job_gpus", 0.0, "GPUs per job (Ray).", lower_bound=0)
    flags.DEFINE_float(
        "job_memory_gb", 0.0, "Memory reserved per job in GiB (Ray; 0: none).", lower_bound=0
    )


def executor(log: Callable[[str], None] = print) -> executors.Executor:
    """The executor the flags name."""
    f = flags.FLAGS
    resources = executors.Resources(f.job_cpus, f.job_gpus, f.job_memory_gb)
    return executors.make_executor(f.executor, f.ray_address, resources, log)
