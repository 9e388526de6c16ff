"""The boundary between every binary and its user: a user's mistake (a bad flag value, a
missing or corrupt input, a busy work directory, a stray argument) ends the program with
one line ``<program>: error: ...`` naming the culprit and exit status 1, never a
traceback. Set ``EXPERTS_TRACEBACK=1`` to see the traceback anyway.

It lives here, in the package every other imports, so that the upstream binaries and
the downstream ones (which never import the upstream side) share one implementation.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from fanout import config_rules

TRACEBACK_ENV = "EXPERTS_TRACEBACK"
# What user input raises: bad values, missing or unreadable files, a busy directory.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)
# The folder holding the project's packages: a binary's default config file
# (``experts/configs/baseline.py:cpu``) is found there from any working directory.
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def one_line(error: BaseException) -> str:
    """The error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def fail(program: str, message: str, cause: BaseException | None = None):
    """Ends the program with ``<program>: error: <message>`` (or raises ``cause`` when
    ``EXPERTS_TRACEBACK`` is set)."""
    if cause is not None and os.environ.get(TRACEBACK_ENV):
        raise cause
    sys.exit(f"{program}: error: {' '.join(message.split())}")


@contextlib.contextmanager
def user_errors(program: str, extra: tuple[type[BaseException], ...] = ()) -> Iterator:
    """Turns ``USER_ERRORS`` and ``extra`` raised inside into
    ``SystemExit("<program>: error: <one line>")``."""
    try:
        yield
    except USER_ERRORS + extra as error:
        fail(program, one_line(error), error)


def define_config(program: str, default: str, name: str = "config") -> None:
    """``config_flags.DEFINE_config_file``, which may apply ``--config.<field>=...``
    overrides as it is defined: an override of a field the config does not have is one
    line naming that flag. ``default``, relative to the project's source folder, is
    found from any working directory."""
    path, colon, preset = default.partition(":")
    default = f"{SOURCE_ROOT / path}{colon}{preset}"
    try:
        config_flags.DEFINE_config_file(name, default)
    except (AttributeError, KeyError, ValueError) as error:
        _config_error(program, error, name)
    except OSError as error:  # the file named by --config, with overrides, fails to load
        fail(program, _unloadable(name, _given_config(name) or default, error), error)


def flags_parser(program: str, config_name: str = "config", rules=None):
    """A parser for ``app.run(main, flags_parser=...)``: a flag value absl refuses (a
    config file that fails to load, a malformed number, an override of a field the
    config does not have) and a positional argument (the binaries take none) are one
    line naming the flag and the cause, where absl would print a traceback or its
    usage text. ``rules``: the config's (``fanout.config_rules``), for a binary whose
    config is resolved once its flags are parsed; the others check it where they
    resolve it."""

    def parse(argv):
        try:
            rest = flags.FLAGS(argv)
        except (AttributeError, KeyError) as error:
            _config_error(program, error, config_name)
        except OSError as error:
            fail(program, _unloadable(config_name, _given_config(config_name), error), error)
        except flags.Error as error:
            if os.environ.get(TRACEBACK_ENV):
                raise
            lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
            where, _, cause = lines[0].removeprefix("flag ").partition(": ")
            cause = lines[-1] if len(lines) > 1 else cause
            fail(program, f"{where}: {cause}" if cause else where)
        _check_config_loaded(program, config_name)
        if rules is not None:
            with user_errors(program):
                config_rules.check(flags.FLAGS[config_name].value, rules)
        if len(rest) > 1:
            fail(
                program,
                f"unexpected argument {' '.join(rest[1:])!r}: this program takes flags only",
            )
        return rest

    return parse


def _check_config_loaded(program: str, name: str) -> None:
    """ml_collections defers a config file's load error until the config is first used
    (deep in a program, as a traceback): check it right after parsing."""
    if name not in flags.FLAGS:
        return
    flag = flags.FLAGS[name]
    try:
        argument = config_flags.get_config_filename(flag)
    except TypeError:  # not a config file flag
        return
    try:
        flag.value.keys()
    except OSError as error:
        fail(program, _unloadable(name, argument, error), error)


def _given_config(name: str) -> str:
    """The value of ``--<name>`` on the command line ('' when absent)."""
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return ""


def _unloadable(name: str, argument: str, error: BaseException) -> str:
    path = argument.partition(":")[0]
    if not path:
        return f"--{name} is empty: give a config file, e.g. --{name}=<file>.py:<preset>"
    if not os.path.isfile(path):
        return (
            f"--{name}={argument}: no config file {os.path.abspath(path)} (a relative path "
            f"is taken from the working directory, {os.getcwd()})"
        )
    return f"--{name}={argument}: {one_line(error)}"


def _config_error(program: str, error: BaseException, name: str):
    if os.environ.get(TRACEBACK_ENV):
        raise error
    message = one_line(error).strip("\"'")
    overrides = [a for a in sys.argv[1:] if a.startswith(f"--{name}.")]
    culprit = next((a for a in overrides if message in a.split("=")[0].split(".")), None)
    if culprit is not None:
        fail(program, f"{culprit}: the config has no field {message!r}")
    fail(program, f"--{name}: {message}")
