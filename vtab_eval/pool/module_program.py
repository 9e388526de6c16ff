"""Which hub modules compute the same function of their weights: ``program_key``.

Two modules of one architecture (B and a full expert, say) hold the same graphs and
differ in their variables' values. Their ``saved_model.pb`` files still differ: every
traced function is named with a process-wide counter (``__inference_call_10053``), and
each function argument that captures a variable records the number of the tensor it
captured (the ``_user_specified_name`` attribute). Neither changes what is computed.
``program_key`` hashes the whole SavedModel (every graph, function, attribute,
constant, signature and the object graph with its variables' names, shapes and dtypes)
after renaming the functions to a canonical name each and dropping those argument
names. Equal keys mean equal programs, so loading one module's variables into the other
module's loaded objects computes exactly what loading that module would (a fine-tuner
traced once serves every module of the program, ``finetune.tuner``).

The renaming is a bijection (functions ordered by their counter within each base name),
so two different programs never get one key. Two equal programs whose functions were
created in another order get different keys: that costs a second build, never a wrong
result. TensorFlow's own SavedModel fingerprint cannot serve here: its program hash
leaves the function library out, which is where a TF2 module's computation is.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor

from fanout import module_check

_COUNTER = re.compile(r"(.*?)(\d+)\Z")
# An attribute naming a function's argument for readers of the graph; the number of a
# captured tensor in TF2 saves, different in every save.
ARGUMENT_NAME_ATTR = "_user_specified_name"


def program_key(directory: str | os.PathLike) -> str:
    """A hex digest equal for two local module directories iff (see the module
    docstring) their SavedModels hold the same program; read once per file version."""
    saved = Path(directory) / module_check.SAVED_MODEL_FILE
    try:
        stat = saved.stat()
    except OSError:  # named by the reader, as a damaged module
        return _program_key(str(saved.parent), -1, -1)
    return _program_key(str(saved.parent), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _program_key(directory: str, mtime_ns: int, size: int) -> str:
    saved = module_check.read_saved_model(directory)
    names = canonical_names(
        f.signature.name for meta in saved.meta_graphs for f in meta.graph_def.library.function
    )
    _rename_strings(saved, names)
    for meta in saved.meta_graphs:
        library = meta.graph_def.library.function
        for function in library:
            for arg in function.arg_attr.values():
                if ARGUMENT_NAME_ATTR in arg.attr:
                    del arg.attr[ARGUMENT_NAME_ATTR]
        ordered = sorted(library, key=lambda f: f.signature.name)
        del library[:]
        library.extend(ordered)
    return hashlib.sha256(saved.SerializeToString(deterministic=True)).hexdigest()


def canonical_names(names) -> dict[str, str]:
    """Function name -> ``<base>#<rank>``: the base without its counter, ranked by the
    counter among the functions of that base."""

    def base_and_counter(name: str) -> tuple[str, int]:
        found = _COUNTER.match(name)
        return (found.group(1), int(found.group(2))) if found else (name, -1)

    ranks: dict[str, int] = {}
    out = {}
    for name in sorted(set(names), key=base_and_counter):
        base = base_and_counter(name)[0]
        out[name] = f"{base}#{ranks.get(base, 0)}"
        ranks[base] = ranks.get(base, 0) + 1
    return out


def _rename_strings(message, names: dict[str, str]) -> None:
    """Replaces, in place, every string field, repeated string and string map key of
    ``message`` (recursively) that is a key of ``names``: a function name can appear as
    a node's op, a call's ``f`` attribute, a gradient's entry and in the object graph."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                _rename_map(field, value, names)
            elif field.is_repeated:
                for item in value:
                    _rename_strings(item, names)
            else:
                _rename_strings(value, names)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [names.get(s, s) for s in value]
            elif value in names:
                setattr(message, field.name, names[value])


def _rename_map(field, entries, names: dict[str, str]) -> None:
    key_type = field.message_type.fields_by_name["key"].type
    holds_messages = field.message_type.fields_by_name["value"].type == (
        FieldDescriptor.TYPE_MESSAGE
    )
    if key_type == FieldDescriptor.TYPE_STRING and any(k in names for k in entries):
        items = [(names.get(k, k), v) for k, v in entries.items()]
        if holds_messages:
            copies = []
            for key, value in items:
                copy = type(value)()
                copy.CopyFrom(value)
                copies.append((key, copy))
            entries.clear()
            for key, copy in copies:
                entries[key].CopyFrom(copy)
        else:
            entries.clear()
            entries.update(items)
    if holds_messages:
        for value in entries.values():
            _rename_strings(value, names)
