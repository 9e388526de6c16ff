"""Library modules never import a binary: a binary is a program's entry point, with its
flags and start-up, and a library that reached into one would tie the packages' one-way
data flow to a command line (tests/test_flags.py checks that flags never clash)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules():
    for package in ("vtab_eval", "experts", "hub_export", "fanout"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield name.removesuffix(".__init__"), ast.parse(path.read_text())


def _is_binary(tree) -> bool:
    """Whether the module runs as a program (a top-level ``if __name__ == "__main__"``)."""
    for statement in tree.body:
        if isinstance(statement, ast.If) and isinstance(statement.test, ast.Compare):
            left = statement.test.left
            if isinstance(left, ast.Name) and left.id == "__name__":
                return True
    return False


def _imports(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_no_library_imports_a_binary():
    modules = dict(_modules())
    binaries = {name for name, tree in modules.items() if _is_binary(tree)}
    assert {"vtab_eval.main", "vtab_eval.bench.probes", "vtab_eval.bench.readme"} <= binaries
    assert {"experts.bench.accelerator", "vtab_eval.bench.accelerator"} <= binaries
    wrong = {
        (name, imported)
        for name, tree in modules.items()
        if name not in binaries
        for imported in _imports(tree) & binaries
    }
    assert not wrong, f"library modules import binaries (absl flags): {sorted(wrong)}"


def test_vtab_eval_never_imports_the_upstream_packages():
    """Downstream sees experts as hub handles only. Checked statically, and in a fresh
    interpreter (this test process has imported ``experts`` through tests/conftest.py,
    which would hide an accidental import)."""
    modules = dict(_modules())
    downstream = sorted(name for name in modules if name.split(".")[0] == "vtab_eval")
    upstream = ("experts", "hub_export")
    static = {
        (name, imported)
        for name in downstream
        for imported in _imports(modules[name])
        if imported.split(".")[0] in upstream
    }
    assert not static, f"vtab_eval imports an upstream package: {sorted(static)}"
    script = (
        "import importlib, sys\n"
        f"for name in {downstream!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {upstream!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_fanout_imports_no_other_package_and_experts_no_downstream_code():
    """``fanout`` (executors, locks, the strategy factory) is shared by every package, so
    it imports none of them; ``experts`` reaches downstream code nowhere: the data flow
    is one-way, through ``hub_export``."""
    modules = dict(_modules())
    project = {"experts", "hub_export", "vtab_eval"}
    wrong = {
        (name, imported)
        for name, tree in modules.items()
        if name.split(".")[0] == "fanout"
        for imported in _imports(tree)
        if imported.split(".")[0] in project
    }
    assert not wrong, f"fanout imports project packages: {sorted(wrong)}"
    upstream = {
        (name, imported)
        for name, tree in modules.items()
        if name.split(".")[0] == "experts"
        for imported in _imports(tree)
        if imported.split(".")[0] in ("vtab_eval", "hub_export")
    }
    assert not upstream, f"experts imports a package downstream of it: {sorted(upstream)}"


def test_hub_export_imports_nothing_of_vtab_eval():
    """The bridge writes modules for any consumer: what it shares with the evaluation
    (the precision rewrite, the accelerator table's format) lives in ``fanout``."""
    modules = dict(_modules())
    wrong = {
        (name, imported)
        for name, tree in modules.items()
        if name.split(".")[0] == "hub_export"
        for imported in _imports(tree)
        if imported.split(".")[0] == "vtab_eval"
    }
    assert not wrong, f"hub_export imports vtab_eval: {sorted(wrong)}"


def _in_bench(name: str) -> bool:
    return "bench" in name.split(".")[1:]


def test_no_library_module_imports_a_benchmark():
    """Benchmarks live in each package's ``bench/`` folder and may import one another
    (``experts.bench.accelerator`` reuses ``trainer_overhead``'s batches); no module
    outside a ``bench/`` folder imports one."""
    modules = dict(_modules())
    assert {"experts.bench", "fanout.bench", "hub_export.bench", "vtab_eval.bench"} <= set(modules)
    wrong = {
        (name, imported)
        for name, tree in modules.items()
        if not _in_bench(name)
        for imported in _imports(tree)
        if _in_bench(imported)
    }
    assert not wrong, f"library modules import benchmarks: {sorted(wrong)}"
