"""Bazel py_test main: runs pytest on the test file(s) given as arguments.

The working directory is the runfiles root, which holds the repository's
pyproject.toml ([tool.pytest.ini_options]) and conftest.py files, so pytest
behaves as `python -m pytest <file>` does in a checkout. Results go to Bazel's
XML_OUTPUT_FILE; `bazel test --test_filter=EXPR` becomes `pytest -k EXPR`.
"""

import os
import sys

# Python would write __pycache__ folders into the runfiles tree.
sys.dont_write_bytecode = True
# This runner's folder (tools/bazel inside the runfiles) is no import root.
del sys.path[0]

import pytest  # noqa: E402


def main() -> int:
    args = ["-p", "no:cacheprovider"]
    if os.environ.get("XML_OUTPUT_FILE"):
        args += ["--junitxml", os.environ["XML_OUTPUT_FILE"]]
    if os.environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", os.environ["TESTBRIDGE_TEST_ONLY"]]
    return pytest.main(args + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
