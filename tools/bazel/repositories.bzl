"""Repositories for building this project with Bazel, online or offline.

Loaded from //:WORKSPACE. Two things live here:

* `offline_repositories()`: Debian's `bazel-bootstrap` (4.2.3) would download
  `rules_cc`, `rules_java` and `remote_coverage_tools` while resolving any
  target, and has no network to do it with. This declares local stand-ins
  under the same names, which win over Bazel's built-in defaults: a stub
  `rules_cc` forwarding to the native C++ rules (Debian's bazel-rules-cc is
  too new for 4.2.3), Debian's bazel-rules-java, and coverage tools that
  refuse to run (`bazel coverage` is unsupported offline). A released Bazel
  (one that reports a version) skips this and fetches the upstream rules.

* `venv_python`: a Python toolchain whose interpreter is the project's
  virtual environment (`.venv/bin/python` by default, made by `make setup`),
  so py_binary and py_test see tensorflow and friends. Override it with
  `--repo_env=PYTHON_BIN_PATH=/path/to/python`.
"""

# Where Debian's bazel-rules-java package puts the rules.
DEBIAN_RULES_JAVA = "/usr/share/bazel/rules/java"

def _is_debian_bootstrap_bazel():
    # Debian builds Bazel from source without stamping: it reports no version.
    version = getattr(native, "bazel_version", "")
    return version in ("", "no_version") or not version[0].isdigit()

def _rules_cc_stub_impl(rctx):
    rctx.file("WORKSPACE", 'workspace(name = "rules_cc")\n')
    rctx.file("BUILD", "")
    rctx.symlink(rctx.attr._defs, "cc/defs.bzl")
    rctx.file("cc/BUILD", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        "",
        'exports_files(["defs.bzl"])',
        "",
        "alias(",
        '    name = "toolchain_type",',
        '    actual = "@bazel_tools//tools/cpp:toolchain_type",',
        ")",
        "",
    ]))

_rules_cc_stub = repository_rule(
    implementation = _rules_cc_stub_impl,
    attrs = {"_defs": attr.label(default = "//tools/bazel:rules_cc_defs.bzl")},
    doc = "A rules_cc whose macros are Bazel's native C++ rules.",
)

def _debian_rules_java_impl(rctx):
    source = rctx.path(rctx.attr.path)
    if not source.exists:
        fail("%s is missing: install Debian's bazel-rules-java " % rctx.attr.path +
             "(apt-get install bazel-rules-java, or `make setup`).")
    for child in source.readdir():
        rctx.symlink(child, child.basename)

_debian_rules_java = repository_rule(
    implementation = _debian_rules_java_impl,
    attrs = {"path": attr.string(default = DEBIAN_RULES_JAVA)},
    local = True,
    doc = "rules_java from Debian's bazel-rules-java package.",
)

def _no_coverage_tools_impl(rctx):
    rctx.file("WORKSPACE", 'workspace(name = "remote_coverage_tools")\n')
    rctx.file("no_coverage.sh", "\n".join([
        "#!/bin/sh",
        'echo "bazel coverage needs the upstream remote_coverage_tools;' +
        ' they are not available offline" >&2',
        "exit 1",
        "",
    ]), executable = True)
    rctx.file("BUILD", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        "",
        'sh_binary(name = "lcov_merger", srcs = ["no_coverage.sh"])',
        "",
        'sh_binary(name = "coverage_report_generator", srcs = ["no_coverage.sh"])',
        "",
    ]))

_no_coverage_tools = repository_rule(
    implementation = _no_coverage_tools_impl,
    doc = "Stand-ins for the coverage tools Bazel downloads; they fail if run.",
)

def offline_repositories(enabled = None):
    """Local stand-ins for the rules Bazel downloads by default.

    Args:
      enabled: True or False to force; None (default) enables them only on a
        Bazel that reports no release version, such as Debian's bazel-bootstrap.
    """
    if enabled == None:
        enabled = _is_debian_bootstrap_bazel()
    if not enabled:
        return
    _rules_cc_stub(name = "rules_cc")
    _debian_rules_java(name = "rules_java")
    _no_coverage_tools(name = "remote_coverage_tools")

def _venv_python_impl(rctx):
    python = rctx.os.environ.get("PYTHON_BIN_PATH", "")
    if not python:
        workspace = rctx.path(Label("@//:WORKSPACE")).dirname
        python = "%s/%s/bin/python" % (workspace, rctx.attr.venv)
    if not rctx.path(python).exists:
        fail("no Python at %s: run `make setup` to create the virtual environment, " % python +
             "or pass --repo_env=PYTHON_BIN_PATH=/path/to/python.")

    # The interpreter path is kept as given (not resolved): a venv's python is a
    # symlink, and resolving it would lose the venv's site-packages.
    rctx.file("BUILD", "\n".join([
        'load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")',
        "",
        "py_runtime(",
        '    name = "python3",',
        '    interpreter_path = "%s",' % python,
        '    python_version = "PY3",',
        '    stub_shebang = "#!%s",' % python,
        ")",
        "",
        "py_runtime_pair(",
        '    name = "runtime_pair",',
        '    py3_runtime = ":python3",',
        ")",
        "",
        "toolchain(",
        '    name = "toolchain",',
        '    toolchain = ":runtime_pair",',
        '    toolchain_type = "@bazel_tools//tools/python:toolchain_type",',
        ")",
        "",
    ]))

venv_python = repository_rule(
    implementation = _venv_python_impl,
    attrs = {"venv": attr.string(default = ".venv", doc = "The venv, relative to the workspace.")},
    environ = ["PYTHON_BIN_PATH"],
    local = True,
    doc = "A py_runtime toolchain for the project's virtual environment.",
)
