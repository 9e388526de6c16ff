"""Bazel launcher: runs `@MODULE@` as `python -m @MODULE@` would (see tools/bazel/defs.bzl)."""

import os
import runpy
import sys

# sys.path[0] is this launcher's folder inside the runfiles tree: a package
# folder, whose modules must not shadow top-level ones. The runfiles root is on
# PYTHONPATH already.
del sys.path[0]
# `bazel run` starts binaries inside their runfiles tree; relative paths on the
# command line are meant from where the user typed it.
os.chdir(os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd())
runpy.run_module("@MODULE@", run_name="__main__", alter_sys=True)
