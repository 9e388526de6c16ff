"""A hub module is code: its graphs run with this process's rights. Before a module is
loaded, ``check_module`` reads its SavedModel and refuses ops that reach outside the
computation: files, the network, processes, or Python. An image feature-vector module
needs none of them.

Restoring the variables is the one file access loading needs: checkpoint ops are
allowed in the functions the SavedModel's saver runs (and only there), and nowhere in
the functions a caller can run (signatures and the object graph's functions, and all
they call). The list is of ops that do I/O in TensorFlow 2.x; an op unknown to it
passes, so the check narrows what a module can do, it does not make an untrusted
module safe. Set ``EXPERTS_ALLOW_ANY_OPS=1`` to skip the check for a module you trust
that needs such an op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tensorflow.core.protobuf import saved_model_pb2

ALLOW_ENV = "EXPERTS_ALLOW_ANY_OPS"
CHECKPOINT_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"})
# Ops that read or write files, talk to the network, or run Python or other processes.
FORBIDDEN_OPS = CHECKPOINT_OPS | frozenset(
    {
        "WriteFile", "ReadFile", "MatchingFiles", "ImmutableConst", "Save", "SaveSlices",
        "Restore", "RestoreSlice", "PyFunc", "PyFuncStateless", "EagerPyFunc",
        "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "DatasetToTFRecord", "CSVDataset", "CSVDatasetV2",
        "SqlDataset", "LMDBDataset", "MatchingFilesDataset", "SnapshotDataset",
        "SnapshotDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset",
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
        "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "InitializeTableFromTextFile",
        "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "CreateSummaryFileWriter",
        "WriteSummary", "WriteScalarSummary", "WriteImageSummary", "WriteAudioSummary",
        "WriteHistogramSummary", "WriteRawProtoSummary", "WriteGraphSummary", "ImportEvent",
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DataServiceDataset",
        "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
        "RegisterDataset", "RegisterDatasetV2", "Rpc", "TryRpc", "RpcClient", "RpcServer",
        "RpcCall", "CollectiveReduce", "CollectiveReduceV2", "CollectiveGather",
        "CollectiveGatherV2", "CollectiveBcastSend", "CollectiveBcastRecv", "Send", "Recv",
        "_Send", "_Recv", "_HostSend", "_HostRecv",
    }
)  # fmt: skip


class ForbiddenOpError(ValueError):
    """A module whose graphs hold an op outside the computation, named with the module."""


def _called(node_defs) -> Iterable[str]:
    """Names of the functions a list of NodeDefs calls (as ops or through attributes)."""
    for node in node_defs:
        yield node.op
        for attr in node.attr.values():
            if attr.HasField("func"):
                yield attr.func.name
            yield from (f.name for f in attr.list.func)


def _reachable(roots: Iterable[str], library: dict) -> set[str]:
    seen, todo = set(), [r for r in roots if r in library]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [f for f in _called(library[name].node_def) if f in library]
    return seen


def check_module(path: str | os.PathLike) -> None:
    """Raises ForbiddenOpError naming the first forbidden op of the module at ``path``
    and the function holding it; does nothing when ``EXPERTS_ALLOW_ANY_OPS`` is set."""
    if os.environ.get(ALLOW_ENV):
        return
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    for meta in saved.meta_graphs:
        library = {f.signature.name: f for f in meta.graph_def.library.function}
        saver_nodes = {
            meta.saver_def.save_tensor_name.split(":")[0],
            meta.saver_def.restore_op_name.split(":")[0],
        }
        callable_roots = set(meta.object_graph_def.concrete_functions)
        top = [n for n in meta.graph_def.node if n.name not in saver_nodes]
        callable_roots |= set(_called(top))
        runnable = _reachable(callable_roots, library)
        saver = _reachable(
            _called(n for n in meta.graph_def.node if n.name in saver_nodes), library
        )
        checks = [("the module's graph", meta.graph_def.node, FORBIDDEN_OPS - CHECKPOINT_OPS)]
        checks += [(name, library[name].node_def, FORBIDDEN_OPS) for name in sorted(runnable)]
        checks += [
            (name, library[name].node_def, FORBIDDEN_OPS - CHECKPOINT_OPS)
            for name in sorted(saver - runnable)
        ]
        for where, nodes, forbidden in checks:
            for node in nodes:
                if node.op in forbidden:
                    raise ForbiddenOpError(
                        f"module {path}: op {node.op} (node {node.name} in {where}) reaches "
                        f"outside the computation; a hub module is code: load it only from a "
                        f"source you trust, with {ALLOW_ENV}=1"
                    )
