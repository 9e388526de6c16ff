"""The expert pool: hub handles plus the metadata exported beside them.

`vtab_eval` sees experts only as hub handles. A pool is found by walking the
tfhub-style tree that `hub_export` writes (hub_export/tree.py):

    <root>/<publisher>/experts/bit/<arch>/<upstream>/<expert|baseline>/<version>/
    <root>/<publisher>/experts/bit-adapter/<arch>/<upstream>/<expert>/<version>/
    <root>/<publisher>/experts/bit-classifier/<arch>/<upstream>/upstream/<version>/
    <root>/<publisher>/experts/bit-epn/<arch>/<upstream>/epn/<version>/

Every module directory holds `saved_model.pb` and `expert_info.json`. Only the highest
`<version>` of each module is used (tfhub.dev serves the newest when asked without a
version); hidden directories (writes in progress) are skipped. Kinds baseline, full and
adapter are experts; `classifier` (B with its head over the upstream labels) serves
label matching and `epn` domain prediction; `packed` (all adapters in one module) is
not a single expert and is left out.

`expert_info.json` (schema_version 1, documented in hub_export/metadata.py) is read
strictly: its documented fields are accepted, anything else is an error naming the file
and field, so an exporter change cannot silently disable a proxy. The fields used here:

    name                 module name (hierarchy node slug, "baseline", ...): the EPN's
                         `output.labels` name experts by it
    kind                 baseline | full | adapter | packed | classifier | epn
    label_distribution   {upstream label: p}, zeros left out: label matching's prior
    output               {"feature_vector": [None, dim]} or {"logits": [None, n],
                         "activation": "sigmoid" | "softmax", "labels": [...]}
    input                {"range": [0, 1], "size": [h, w], ...}

Handles that are not local directories (tfhub.dev URLs, Kaggle handles) carry metadata
only when `vtab_eval.pool.hub_loader` resolves them to a local mirror; otherwise they work
with every proxy that needs only features (kNN, random) and with fine-tuning. A Kaggle
handle without a version takes the mirror's newest, like a hub root's modules.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from absl import logging

from fanout import expert_info
from vtab_eval import files
from vtab_eval.pool import hub_loader

INFO_FILE = hub_loader.INFO_FILE
# expert_info.json's schema: one copy for the side that writes it and this one.
SCHEMA_VERSION = expert_info.SCHEMA_VERSION
EXPERT_KINDS = ("full", "adapter", "baseline")
CLASSIFIER_KINDS = ("classifier", "epn")
IGNORED_KINDS = ("packed",)
SCHEMA_FIELDS = expert_info.FIELDS
_REQUIRED = expert_info.REQUIRED


def short_name(module_id: str) -> str:
    """A module id as a table cell: `bit-adapter/<arch>/<upstream>/script.han` ->
    `adapter:script.han`, `bit/<arch>/<upstream>/baseline` -> `baseline`."""
    parts = module_id.split("/")
    kind = {"bit": "full", "bit-adapter": "adapter"}.get(parts[0], parts[0])
    return "baseline" if parts[-1] == "baseline" else f"{kind}:{parts[-1]}"


class PoolError(ValueError):
    """A pool, handle or metadata file that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Module:
    """One hub module: its handle, a unique id within the pool, and its metadata."""

    handle: str
    id: str
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.info.get("name", self.id)

    @property
    def kind(self) -> str:
        return self.info.get("kind", "full")

    @property
    def is_baseline(self) -> bool:
        return self.kind == "baseline"

    @property
    def labels(self) -> list[str]:
        """A classification module's output names, in logit order."""
        labels = self.info.get("output", {}).get("labels")
        if labels is None:
            raise PoolError(f"{self.handle}: {INFO_FILE} has no 'output.labels'")
        return list(labels)

    @property
    def activation(self) -> str:
        return self.info.get("output", {}).get("activation", "sigmoid")

    def label_distribution(self) -> dict[str, float]:
        if "label_distribution" not in self.info:
            raise PoolError(f"{self.handle}: {INFO_FILE} has no 'label_distribution'")
        return dict(self.info["label_distribution"])


@dataclasses.dataclass(frozen=True)
class Pool:
    """The experts to choose from (baseline included) and the optional upstream
    classification modules that label matching and domain prediction need."""

    experts: tuple[Module, ...]
    upstream_classifier: Module | None = None
    epn: Module | None = None
    # With several baselines (a pool of several upstreams), the one B stands for: the
    # first source's. The others stay candidates like any module.
    baseline_id: str | None = None

    def __post_init__(self):
        ids = [e.id for e in self.experts]
        if len(set(ids)) != len(ids):
            raise PoolError(f"pool has duplicate expert ids: {sorted(ids)}")
        if not self.experts:
            raise PoolError("pool has no experts")

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.experts]

    def get(self, expert_id: str) -> Module:
        for expert in self.experts:
            if expert.id == expert_id:
                return expert
        raise PoolError(f"no expert {expert_id!r} in the pool; have {self.ids}")

    @property
    def baseline(self) -> Module:
        if self.baseline_id is not None:
            return self.get(self.baseline_id)
        baselines = [e for e in self.experts if e.is_baseline]
        if len(baselines) != 1:
            raise PoolError(
                f"pool must hold exactly one expert of kind 'baseline', has {len(baselines)}"
            )
        return baselines[0]

    def non_baseline(self) -> list[Module]:
        return [e for e in self.experts if not e.is_baseline]


def read_info(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and validates one `expert_info.json` (see the module docstring)."""
    path = Path(path)
    return check_info(files.read_json(path), path)


def check_info(info: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Validates one parsed `expert_info.json`; errors name ``path`` and the field."""
    if not isinstance(info, dict):
        raise PoolError(f"{path}: expected a JSON object, got {type(info).__name__}")
    for field, value in info.items():
        if field not in SCHEMA_FIELDS:
            raise PoolError(f"{path}: unknown field {field!r}; documented: {sorted(SCHEMA_FIELDS)}")
        if not isinstance(value, SCHEMA_FIELDS[field]) or isinstance(value, bool):
            raise PoolError(f"{path}: field {field!r} has type {type(value).__name__}")
    for field in _REQUIRED:
        if field not in info:
            raise PoolError(f"{path}: missing required field {field!r}")
    if info["schema_version"] != SCHEMA_VERSION:
        raise PoolError(
            f"{path}: field 'schema_version' is {info['schema_version']}; this reader "
            f"knows version {SCHEMA_VERSION}"
        )
    kind = info["kind"]
    known = EXPERT_KINDS + CLASSIFIER_KINDS + IGNORED_KINDS
    if kind not in known:
        raise PoolError(f"{path}: field 'kind' is {kind!r}; expected one of {known}")
    if "label_distribution" in info:
        dist = info["label_distribution"]
        bad = [k for k, v in dist.items() if not isinstance(v, int | float) or v < 0]
        if bad or not dist:
            raise PoolError(f"{path}: field 'label_distribution' has invalid entries {bad[:3]}")
        total = math.fsum(dist.values())
        if abs(total - 1.0) > 1e-3:
            raise PoolError(f"{path}: field 'label_distribution' sums to {total:.4f}, not 1")
    output = info["output"]
    if kind in CLASSIFIER_KINDS:
        labels = output.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise PoolError(f"{path}: a {kind} module needs 'output.labels', a list of strings")
        if output.get("activation") not in ("sigmoid", "softmax"):
            raise PoolError(
                f"{path}: field 'output.activation' is {output.get('activation')!r}; "
                "expected sigmoid or softmax"
            )
    elif kind in EXPERT_KINDS and "feature_vector" not in output:
        raise PoolError(f"{path}: an expert's 'output' must have 'feature_vector'")
    input_range = info.get("input", {}).get("range")
    if input_range is not None and [float(v) for v in input_range] != [0.0, 1.0]:
        raise PoolError(f"{path}: field 'input.range' is {input_range}; the contract is [0, 1]")
    return info


def _version_key(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (-1, path.name)


def _warn_symlinks(root: Path) -> None:
    """Discovery does not follow symlinked directories (a link could lead anywhere, or
    in a loop): say so for each, rather than dropping its modules silently."""
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            link = Path(dirpath) / name
            if link.is_symlink():
                logging.warning(
                    "hub root %s: %s is a symlink and is not searched for modules; pass "
                    "its modules as --config.pool handles instead",
                    root,
                    link,
                )


def discover(root: str | os.PathLike) -> Pool:
    """Finds every module under a hub tree root (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise PoolError(f"hub root {root} is not a directory")
    _warn_symlinks(root)
    # Group module directories by their path without the version; keep the newest.
    newest: dict[Path, Path] = {}
    for info_path in sorted(root.rglob(INFO_FILE)):
        module_dir = info_path.parent
        if not (module_dir / "saved_model.pb").exists():
            raise PoolError(f"{info_path}: no saved_model.pb beside it")
        if any(part.startswith(".") for part in module_dir.relative_to(root).parts):
            continue  # Half-written exports live in hidden temporary directories.
        unversioned = module_dir.parent
        if unversioned not in newest or _version_key(module_dir) > _version_key(
            newest[unversioned]
        ):
            newest[unversioned] = module_dir
    if not newest:
        raise PoolError(f"hub root {root}: no directory with {INFO_FILE} and saved_model.pb")
    experts, classifiers = [], {}
    for unversioned, module_dir in sorted(newest.items()):
        info = read_info(module_dir / INFO_FILE)
        rel = unversioned.relative_to(root).parts
        # <publisher>/experts/<collection>/<arch>/<upstream>/<name>: the id drops the
        # publisher and the constant "experts" so it stays short but unique.
        module_id = "/".join(rel[2:] if len(rel) > 2 and rel[1] == "experts" else rel)
        module = Module(handle=str(module_dir), id=module_id, info=info)
        if module.kind in IGNORED_KINDS:
            continue
        if module.kind in CLASSIFIER_KINDS:
            if module.kind in classifiers:
                raise PoolError(
                    f"hub root {root}: two {module.kind} modules: "
                    f"{classifiers[module.kind].handle} and {module.handle}"
                )
            classifiers[module.kind] = module
        else:
            experts.append(module)
    return Pool(
        experts=tuple(experts),
        upstream_classifier=classifiers.get("classifier"),
        epn=classifiers.get("epn"),
    )


def module_from_handle(handle: str) -> Module:
    """A module from one handle: a local directory, a tfhub.dev URL or a Kaggle handle
    (metadata read when the directory, or the hub_loader mirror of the handle, has it)."""
    try:
        where = hub_loader.resolve(handle)
        name = hub_loader.module_name(handle)
    except hub_loader.HubLoadError as e:
        raise PoolError(f"--config.pool handle {handle!r}: {e}") from e
    local = Path(where)
    info = read_info(local / INFO_FILE) if (local / INFO_FILE).is_file() else {}
    if not info:
        # Published modules carry no metadata: a name from the handle, kind by name.
        info = {"name": name, "kind": "baseline" if name == "baseline" else "full"}
    return Module(handle=where, id=info.get("handle", name), info=info)


def from_handles(handles: Iterable[str]) -> Pool:
    experts, classifiers = [], {}
    for handle in handles:
        module = module_from_handle(handle)
        if module.kind in IGNORED_KINDS:
            raise PoolError(
                f"--config.pool handle {handle!r}: a {module.kind} module is not an expert"
            )
        if module.kind in CLASSIFIER_KINDS:
            classifiers[module.kind] = module
        else:
            experts.append(module)
    return Pool(tuple(experts), classifiers.get("classifier"), classifiers.get("epn"))


def open_pool(spec: str | Sequence[str]) -> Pool:
    """`--config.pool`: comma-separated hub tree roots and module handles (directories, URLs or
    `kaggle:` handles), combined into one pool: ours, another upstream's, a mirror of the published
    experts. Module ids must differ across sources; an upstream classifier or EPN is
    kept only when one source has it (each answers for its own upstream's experts), and
    the first source's baseline is the pool's B."""
    entries = [h.strip() for h in spec.split(",")] if isinstance(spec, str) else list(spec)
    # A quoted flag value (--config.pool='~/hub') reaches the program with its "~" unexpanded.
    entries = [os.path.expanduser(h) if h.startswith("~") else h for h in entries if h]
    if not entries:
        raise PoolError("empty --config.pool")
    roots = [
        e
        for e in entries
        if hub_loader.is_path(e) and Path(e).is_dir() and not (Path(e) / "saved_model.pb").exists()
    ]
    handles = [e for e in entries if e not in roots]
    if not handles and len(roots) == 1:
        return discover(roots[0])
    sources = [discover(root) for root in roots] + ([from_handles(handles)] if handles else [])
    return _combined(sources, entries)


def _combined(sources: list[Pool], entries: list[str]) -> Pool:
    experts = tuple(e for source in sources for e in source.experts)
    ids = [e.id for e in experts]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise PoolError(
            f"--config.pool {','.join(entries)}: module ids {twice} come from two sources"
        )
    single = {}
    for kind in ("upstream_classifier", "epn"):
        found = [getattr(s, kind) for s in sources if getattr(s, kind) is not None]
        if len(found) > 1:
            logging.warning("%d sources have a %s: none is used", len(found), kind)
        single[kind] = found[0] if len(found) == 1 else None
    baselines = [e.id for e in experts if e.is_baseline]
    return Pool(experts, baseline_id=baselines[0] if len(baselines) > 1 else None, **single)
