"""A hub module is code: its graphs run with this process's rights. ``load`` is the one
way the project loads a module: it reads the module's SavedModel first and refuses it
unless every op of every graph is on the allow-list of ``fanout.allowed_ops`` (the ops
an image feature extractor and its fine-tuning compute with), then loads it as a
``hub.KerasLayer``.

Every op is read: the graph's own nodes (a TF1 module's model, its init ops, table
initialisers and ``main_op``) and every function of its library (signatures, the object
graph's functions and whatever they call, reachable or not). Checkpoint ops are the
exception, confined to the SavedModel's saver: its restore path may read the module's
variables (``RestoreV2``), and its save path, which every SavedModel holds and loading
never runs, may write (``SaveV2``, ``MergeV2Checkpoints``). A node or function is
treated as the saver's only when nothing else in the module reaches it, so an init op
or a signature that runs the save path is refused. The allow-list narrows what a module
can do; it does not make an untrusted module safe.

``EXPERTS_ALLOW_ANY_OPS`` skips the check, for a module you trust: ``1`` or ``true``
(any case) switch it off; unset or empty keeps it; any other value is an error. To
admit one op instead, see ``fanout/allowed_ops.py``.

This lives in ``fanout`` (which imports no project package) so that the upstream and
downstream binaries share it; ``vtab_eval.pool.hub_loader`` resolves handles and calls it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf
import tensorflow_hub as hub
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2

from fanout.allowed_ops import ALLOWED_OPS, FUNCTION_CALLERS, RESTORE_OPS, SAVE_OPS

ALLOW_ENV = "EXPERTS_ALLOW_ANY_OPS"
SAVED_MODEL_FILE = "saved_model.pb"
_SWITCHED_OFF = ("1", "true")


class ForbiddenOpError(ValueError):
    """A module whose graphs hold an op off the allow-list, named with the module."""


class DamagedModuleError(ValueError):
    """A module whose files cannot be read (truncated, corrupt), named."""


def check_disabled() -> bool:
    """Whether ``$EXPERTS_ALLOW_ANY_OPS`` switches the check off; a value that is neither
    ``1``/``true`` (off) nor unset/empty (on) is a ValueError naming it."""
    value = os.environ.get(ALLOW_ENV, "")
    if not value:
        return False
    if value.lower() in _SWITCHED_OFF:
        return True
    raise ValueError(
        f"{ALLOW_ENV}={value!r}: set it to 1 or true to skip the module check for a module "
        "you trust, or leave it unset or empty to keep the check"
    )


def _node_name(reference: str) -> str:
    """The node an input reference (``name``, ``name:1``, ``^name``) reads."""
    return reference.lstrip("^").split(":")[0]


def _walk(roots: Iterable[str], items: dict, neighbours) -> set[str]:
    """The names in ``roots`` (those ``items`` holds) and all reachable from them
    through ``neighbours(item)``."""
    seen, todo = set(), [r for r in roots if r in items]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [n for n in neighbours(items[name]) if n in items]
    return seen


def _closure(roots: Iterable[str], nodes: dict) -> set[str]:
    """The graph nodes that running ``roots`` runs: the roots and all they read."""
    return _walk(roots, nodes, lambda node: map(_node_name, node.input))


def _called(node_defs) -> Iterable[str]:
    """Names of the functions a list of NodeDefs calls (as ops or through attributes).
    Of the allowed ops only FUNCTION_CALLERS take functions, so the others' attributes
    are skipped (reading them all is most of the check's time); any other op's are read."""
    for node in node_defs:
        yield node.op
        if node.op in ALLOWED_OPS and node.op not in FUNCTION_CALLERS:
            continue
        for attr in node.attr.values():
            if attr.HasField("func"):
                yield attr.func.name
            yield from (f.name for f in attr.list.func)


def _reachable(roots: Iterable[str], library: dict) -> set[str]:
    """The functions in ``roots`` and all they call."""
    return _walk(roots, library, lambda function: _called(function.node_def))


def _graph_node_regions(meta) -> tuple[set[str], set[str], set[str]]:
    """(strict, restore, save): the graph's nodes split by what may run them. Every node
    outside the saver's two closures is a root (an init op or a signature may run any),
    and what the roots reach is strict, saver nodes included."""
    nodes = {n.name: n for n in meta.graph_def.node}
    saver = meta.saver_def
    restore = _closure([_node_name(saver.restore_op_name)] if saver.restore_op_name else [], nodes)
    save = _closure([_node_name(saver.save_tensor_name)] if saver.save_tensor_name else [], nodes)
    strict = _closure(set(nodes) - restore - save, nodes)
    restore -= strict
    return strict, restore, save - strict - restore


def _regions(meta) -> list[tuple[str, list, frozenset]]:
    """(where, nodes, allowed ops) for the graph's nodes and every library function,
    each checked against what the least trusted of its callers may run."""
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    nodes = {n.name: n for n in meta.graph_def.node}
    strict, restore, save = _graph_node_regions(meta)
    restore_fns = _reachable(_called(nodes[n] for n in restore), library)
    save_fns = _reachable(_called(nodes[n] for n in save), library)
    roots = set(library) - restore_fns - save_fns
    roots |= set(_called(nodes[n] for n in strict))
    roots |= set(meta.object_graph_def.concrete_functions)
    strict_fns = _reachable(roots, library)
    restore_fns -= strict_fns
    save_fns -= strict_fns | restore_fns
    calls = frozenset(library)  # a node whose op is a library function calls it
    allowed = {
        "strict": ALLOWED_OPS | calls,
        "restore": ALLOWED_OPS | RESTORE_OPS | calls,
        "save": ALLOWED_OPS | SAVE_OPS | calls,
    }
    regions = [
        ("the graph", [nodes[n] for n in sorted(names)], allowed[kind])
        for kind, names in (("strict", strict), ("restore", restore), ("save", save))
    ]
    for kind, names in (("strict", strict_fns), ("restore", restore_fns), ("save", save_fns)):
        regions += [(f"function {n}", library[n].node_def, allowed[kind]) for n in sorted(names)]
    return regions


def _why(op: str) -> str:
    if op in RESTORE_OPS | SAVE_OPS:
        return "a checkpoint op outside the saver's own restore and save functions"
    return "not on the allow-list of ops a feature extractor needs (fanout/allowed_ops.py)"


def read_saved_model(path: str | os.PathLike) -> saved_model_pb2.SavedModel:
    """The parsed ``saved_model.pb`` of the module at ``path``; a missing or corrupt one
    is a DamagedModuleError naming the module."""
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((Path(path) / SAVED_MODEL_FILE).read_bytes())
    except (OSError, DecodeError) as e:
        raise DamagedModuleError(
            f"module {path}: cannot read its {SAVED_MODEL_FILE} ({_first_line(e)}); "
            "export or download the module again"
        ) from e
    return saved


def check_module(path: str | os.PathLike) -> None:
    """Raises ForbiddenOpError naming the module at ``path``, the first op off the
    allow-list with the function (or graph) holding it, and the other such ops; does
    nothing when ``$EXPERTS_ALLOW_ANY_OPS`` switches the check off."""
    if check_disabled():
        return
    found = {}  # op -> (node, where) of its first occurrence
    for meta in read_saved_model(path).meta_graphs:
        for where, node_defs, allowed in _regions(meta):
            for node in node_defs:
                if node.op not in allowed:
                    found.setdefault(node.op, (node.name, where))
    if found:
        (op, (node, where)), *others = found.items()
        more = f"; so are {', '.join(o for o, _ in others)}" if others else ""
        raise ForbiddenOpError(
            f"module {path}: op {op} (node {node} in {where}) is {_why(op)}{more}; "
            f"a hub module is code: if you trust this one, load it with {ALLOW_ENV}=1"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load(path: str | os.PathLike, trainable: bool = False, **kwargs) -> hub.KerasLayer:
    """``hub.KerasLayer`` for the local module directory ``path``, checked before any of
    its graphs runs; ``kwargs`` go to the layer. A module whose files are damaged (a
    truncated variables file, say) is a DamagedModuleError naming it."""
    check_module(path)
    try:
        return hub.KerasLayer(os.fspath(path), trainable=trainable, **kwargs)
    except (IndexError, OSError, DecodeError, tf.errors.OpError) as e:
        raise DamagedModuleError(
            f"module {path}: cannot load it ({_first_line(e)}); its files are damaged or "
            "incomplete: export or download the module again"
        ) from e
