"""The boundary between the upstream binaries (experts, hub_export) and their users:
a user's mistake (a bad flag value, a missing or corrupt input, a busy work directory)
ends the program with one line naming the culprit and exit status 1, never a traceback. Set
``EXPERTS_TRACEBACK=1`` to see the traceback anyway. ``vtab_eval/cli.py`` is the same
for the downstream side, which never imports this one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from absl import flags
from ml_collections import config_flags

TRACEBACK_ENV = "EXPERTS_TRACEBACK"
# What user input raises: bad values, missing or unreadable files, a busy directory.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)


def one_line(error: BaseException) -> str:
    """The error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def user_errors(program: str, extra: tuple[type[BaseException], ...] = ()) -> Iterator:
    """Turns ``USER_ERRORS`` and ``extra`` raised inside into
    ``SystemExit("<program>: error: <one line>")``."""
    try:
        yield
    except USER_ERRORS + extra as error:
        if os.environ.get(TRACEBACK_ENV):
            raise
        sys.exit(f"{program}: error: {one_line(error)}")


def define_config(program: str, default: str, name: str = "config") -> None:
    """``config_flags.DEFINE_config_file``, which may apply ``--config.<field>=...``
    overrides as it is defined: an override of a field the config does not have is one
    line naming that flag."""
    try:
        config_flags.DEFINE_config_file(name, default)
    except (AttributeError, KeyError, ValueError) as error:
        _config_error(program, error, name)


def flags_parser(program: str, config_name: str = "config"):
    """A parser for ``app.run(main, flags_parser=...)``: a flag value absl refuses (a
    config file that fails to load, a malformed number, an override of a field the
    config does not have) is one line naming the flag and the cause, where absl would
    print a traceback."""

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except (AttributeError, KeyError) as error:
            _config_error(program, error, config_name)
        except flags.Error as error:
            if os.environ.get(TRACEBACK_ENV):
                raise
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            where = lines[0].split(": ")[0].removeprefix("flag ") if lines else ""
            cause = lines[-1] if len(lines) > 1 else ""
            sys.exit(
                f"{program}: error: {where}: {cause}" if cause else f"{program}: error: {where}"
            )

    return parse


def _config_error(program: str, error: BaseException, name: str):
    if os.environ.get(TRACEBACK_ENV):
        raise error
    message = one_line(error).strip("\"'")
    overrides = [a for a in sys.argv[1:] if a.startswith(f"--{name}.")]
    culprit = next((a for a in overrides if message in a.split("=")[0].split(".")), None)
    if culprit is not None:
        sys.exit(f"{program}: error: {culprit}: the config has no field {message!r}")
    sys.exit(f"{program}: error: --{name}: {message}")
