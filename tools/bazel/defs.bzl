"""Macros for this project's BUILD files: absl binaries and pytest-style tests.

Both work from globs, so new modules and test files need no BUILD edits.
"""

def absl_binaries(binaries, deps, smoke_tests = {}, **kwargs):
    """One py_binary per entry point, run like `python -m <module>`.

    The launcher changes to the directory `bazel run` was called from
    (BUILD_WORKING_DIRECTORY), so relative flags such as
    `--config=experts/configs/baseline.py:cpu` or output directories mean what
    they mean on the command line, then runs the module as __main__.

    Args:
      binaries: {target name: module file, relative to this package}. A target
        is declared only once its file exists, so entry points that are still
        being written can be listed ahead of time.
      deps: py_library targets the modules import.
      smoke_tests: {target name: [arguments]}: a test `<name>_smoke_test` runs the
        binary with these arguments (from the runfiles root, where the package's
        files are) and passes if it exits with 0.
      **kwargs: passed to each py_binary.
    """
    package = native.package_name()
    for name, src in binaries.items():
        if not native.glob([src], allow_empty = True):
            continue
        module = (package + "/" + src[:-len(".py")]).replace("/", ".")
        launcher = name + "_launcher.py"
        native.genrule(
            name = name + "_launcher",
            srcs = ["//tools/bazel:absl_launcher.py.tpl"],
            outs = [launcher],
            cmd = "sed -e 's/@MODULE@/%s/g' $< > $@" % module,
        )
        native.py_binary(
            name = name,
            srcs = [launcher],
            main = launcher,
            python_version = "PY3",
            deps = deps,
            **kwargs
        )
        if name in smoke_tests:
            native.sh_test(
                name = name + "_smoke_test",
                size = "small",
                # A small test's minute is short for a TensorFlow start-up beside the
                # pytest suite (`make test` runs them side by side on two cores).
                timeout = "moderate",
                srcs = ["//tools/bazel:run_binary_test.sh"],
                args = ["$(rootpath :%s)" % name] + smoke_tests[name],
                data = [":" + name],
            )

def pytest_tests(srcs, deps = [], data = [], overrides = {}, size = "medium", tags = []):
    """One py_test per pytest file, named after it: `models/test_foo.py` -> `:models/test_foo`.

    Each runs `pytest <file>` in its own process (tools/bazel/pytest_runner.py)
    with the repository's pyproject.toml settings and conftest.py files.

    Args:
      srcs: the test files (test_*.py).
      deps: what the tests import, including conftest.py and helpers.
      data: files the tests read.
      overrides: {test file: {py_test attribute: value}}, e.g. a larger size
        or a "slow" tag for one file.
      size: the default Bazel test size (its timeout: small 1 min, medium 5, large 15).
      tags: tags for every test.
    """
    package = native.package_name()
    for src in srcs:
        attrs = {"size": size, "tags": tags}
        attrs.update(overrides.get(src, {}))
        native.py_test(
            name = src[:-len(".py")],
            srcs = ["//tools/bazel:pytest_runner.py", src],
            main = "//tools/bazel:pytest_runner.py",
            args = [package + "/" + src],
            python_version = "PY3",
            deps = deps,
            data = data + ["//:pyproject.toml"],
            **attrs
        )

# Files under a package folder that are not resources: sources (in srcs),
# bytecode, BUILD files, dotfiles.
_NOT_RESOURCES = [
    "**/*.py",
    "**/*.pyc",
    "**/__pycache__/**",
    "**/BUILD",
    "**/BUILD.bazel",
    "**/.*",
    "**/.*/**",
]

def package_library(name, deps = [], **kwargs):
    """A py_library of every module under this folder, with its resource files as data.

    Subfolders are included as long as they have no BUILD file of their own.
    """
    native.py_library(
        name = name,
        srcs = native.glob(["**/*.py"]),
        data = native.glob(["**/*"], exclude = _NOT_RESOURCES, allow_empty = True),
        srcs_version = "PY3",
        deps = deps,
        **kwargs
    )
