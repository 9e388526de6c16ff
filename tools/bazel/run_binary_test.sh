#!/bin/sh
# Bazel sh_test body (see absl_binaries in defs.bzl): runs a binary with its
# arguments from the runfiles root and passes if the binary exits with 0.
set -e
echo "running: $*"
exec "$@"
