"""Library modules never import a binary: a binary is a program's entry point, with its
flags and start-up, and a library that reached into one would tie the packages' one-way
data flow to a command line (tests/test_flags.py checks that flags never clash). Imports
between the modules of a package, and between its folders, run one way: no cycles."""

import ast
import graphlib
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


def _import_graph(modules) -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any depth of its code, under
    ``TYPE_CHECKING`` too), each the most specific module that exists: ``from a.b import
    c`` is ``a.b.c`` when that is a module, else ``a.b``. A module's own packages are left
    out (Python runs a package's ``__init__`` before any module inside it)."""
    graph = {}
    for name, tree in modules.items():
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                inner = {f"{node.module}.{a.name}" for a in node.names}
                imported |= {m if m in modules else node.module for m in inner}
        targets = set()
        for module in imported:
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and not (name + ".").startswith(module + "."):
                targets.add(module)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph``, or [] when it has none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        return e.args[1]
    return []


def test_the_cycle_check_sees_imports_and_cycles():
    graph = _import_graph(dict(_modules()))
    assert "hub_export.kinds" in graph["hub_export.exporter"]
    assert "vtab_eval.finetune.tuner" in graph["vtab_eval.finetune.protocol"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    assert not _cycle({"a": {"b"}, "b": {"c"}, "c": set()})


def test_no_import_cycle_between_the_modules_of_a_package():
    graph = _import_graph(dict(_modules()))
    for package in ("vtab_eval", "experts", "hub_export", "fanout"):
        inside = {
            name: {t for t in targets if t.split(".")[0] == package}
            for name, targets in graph.items()
            if name.split(".")[0] == package
        }
        cycle = _cycle(inside)
        assert not cycle, f"{package}: import cycle {' -> '.join(cycle)}"


def _folder(name: str, modules) -> str:
    """The unit of the folder-level graph: a package's subfolder (``vtab_eval.finetune``)
    for the modules inside it, the module itself for a package's top-level modules."""
    parts = name.split(".")
    folder = ".".join(parts[:2])
    return folder if any(m.startswith(folder + ".") for m in modules) else name


def test_no_arrow_runs_back_up_between_the_folders_of_a_package():
    """A package's subfolders and top-level modules import one another one way only:
    a folder that imports a module which imports the folder back is a cycle between
    stages. Binaries are left out: they sit on top, and no library imports them."""
    modules = dict(_modules())
    binaries = {name for name, tree in modules.items() if _is_binary(tree)}
    folders: dict[str, set[str]] = {}
    for name, targets in _import_graph(modules).items():
        if name in binaries:
            continue
        unit = _folder(name, modules)
        folders.setdefault(unit, set()).update(
            _folder(t, modules)
            for t in targets
            if t.split(".")[0] == name.split(".")[0] and _folder(t, modules) != unit
        )
    assert {"vtab_eval.finetune", "vtab_eval.report", "vtab_eval.pool"} <= set(folders)
    assert "vtab_eval.pool" in folders["vtab_eval.finetune"]
    cycle = _cycle(folders)
    assert not cycle, f"folders import each other: {' -> '.join(cycle)}"
