"""Library modules never import a binary: a binary defines absl flags at import, and two
binaries' flags clash in one process (main.py imports the runner inside main(), so the
clash would surface only after an upstream's worth of work)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules():
    for package in ("vtab_eval", "experts", "hub_export"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield name.removesuffix(".__init__"), ast.parse(path.read_text())


def _is_binary(tree) -> bool:
    """Whether the module defines absl flags when imported (a top-level DEFINE_*)."""
    for statement in tree.body:
        call = getattr(statement, "value", None)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            if call.func.attr.startswith("DEFINE"):
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
    wrong = {
        (name, imported)
        for name, tree in modules.items()
        if name not in binaries
        for imported in _imports(tree) & binaries
    }
    assert not wrong, f"library modules import binaries (absl flags): {sorted(wrong)}"
