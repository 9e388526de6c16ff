"""The boundary between the downstream binaries and their users: a user's mistake (a
bad flag value, a missing or corrupt input, a busy work directory) ends the program
with one line naming the culprit and exit status 1, never a traceback. Set
``EXPERTS_TRACEBACK=1`` to see the traceback anyway. The implementation is
``fanout.cli``, which the upstream side (``experts/cli.py``) shares; this side never
imports that one.
"""

from fanout.cli import (
    TRACEBACK_ENV,
    USER_ERRORS,
    define_config,
    fail,
    flags_parser,
    one_line,
    user_errors,
)

__all__ = [
    "TRACEBACK_ENV",
    "USER_ERRORS",
    "define_config",
    "fail",
    "flags_parser",
    "one_line",
    "user_errors",
]
