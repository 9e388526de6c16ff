"""The label hierarchy: a DAG of "is-a" links whose nodes become expert domains.

As in the paper (sections 4.2 and 6.1), a dataset's labels are nodes of a hierarchy, an
image counts for its labels and every ancestor of them (ImageNet-21k's 21,843 classes plus
1,741 ancestor synsets), and the expert domains are the nodes with the most images. A node
may have several parents, as in WordNet.

File format (UTF-8 text, one node per line, ``#`` starts a comment)::

    # <node>: <parent> <parent> ...
    entity:
    animal: entity
    dog: animal pet
    pet: entity

A node is declared exactly once, with its parents after the colon separated by spaces (none
for a root); parents may be declared before or after their children. Names may not contain
whitespace, ``:``, ``,`` or ``#``. Which nodes are labels is the dataset's business: any
node may carry images, leaves or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fanout import files

_NAME = re.compile(r"^[^\s:,#]+$")


class HierarchyError(ValueError):
    """A malformed hierarchy, or a label, node or expert that does not fit it."""


def check_name(name: str, where: str = "") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise HierarchyError(
            f"{where}bad node name {name!r}: names are non-empty, without whitespace, ':', ',', '#'"
        )
    # Names become directory and handle names (encoded, so they could not escape
    # anyway); a name that reads like a path outside its directory is a mistake.
    if name.startswith("/") or {".", ".."} & set(name.split("/")):
        raise HierarchyError(
            f"{where}bad node name {name!r}: names neither start with '/' nor have "
            "'.' or '..' between slashes"
        )
    return name


class Hierarchy:
    """An immutable DAG of named nodes. Node order is declaration order, which fixes the
    index of every node in multi-hot targets."""

    def __init__(self, parents: Mapping[str, Sequence[str]], source: str = "<hierarchy>"):
        self.source = source
        self.nodes: tuple[str, ...] = tuple(parents)
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.nodes)}
        for name in self.nodes:
            check_name(name, f"{source}: ")
        self._parents: dict[str, tuple[str, ...]] = {}
        for name, ps in parents.items():
            if isinstance(ps, str):
                raise HierarchyError(f"{source}: parents of {name!r} must be a list, got {ps!r}")
            for p in ps:
                if p not in self.index:
                    raise HierarchyError(f"{source}: parent {p!r} of {name!r} is not declared")
            if len(set(ps)) != len(ps):
                raise HierarchyError(f"{source}: node {name!r} lists a parent twice: {list(ps)}")
            self._parents[name] = tuple(ps)
        self._children: dict[str, list[str]] = {n: [] for n in self.nodes}
        for name, ps in self._parents.items():
            for p in ps:
                self._children[p].append(name)
        self._check_acyclic()
        self._closure = self._ancestor_closure()

    # -- construction and serialisation ------------------------------------------------

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> Hierarchy:
        parents: dict[str, list[str]] = {}
        declared_on: dict[str, int] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            name, colon, rest = line.partition(":")
            name = name.strip()
            where = f"{source}:{number}: "
            if not colon:
                raise HierarchyError(f"{where}expected '<node>: <parents...>', got {raw.strip()!r}")
            check_name(name, where)
            if name in parents:
                raise HierarchyError(
                    f"{where}duplicate node {name!r} (first declared on line {declared_on[name]})"
                )
            ps = rest.split()
            for p in ps:
                check_name(p, where)
            parents[name] = ps
            declared_on[name] = number
        if not parents:
            raise HierarchyError(f"{source}: the hierarchy declares no nodes")
        return cls(parents, source)

    @classmethod
    def load(cls, path: str) -> Hierarchy:
        """Reads a UTF-8 file; the byte-order mark some editors put first is skipped."""
        with open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise HierarchyError(
                f"{path}:{line}: byte {e.start} (0x{data[e.start]:02x}) is not UTF-8; "
                "save the file as UTF-8"
            ) from None
        return cls.from_text(text, source=path)

    def to_text(self) -> str:
        lines = ["# <node>: <parent> <parent> ...  (see experts/data/hierarchy.py)"]
        lines += [f"{n}: {' '.join(self._parents[n])}".rstrip() for n in self.nodes]
        return "\n".join(lines) + "\n"

    def save(self, path: str) -> None:
        """Writes the file atomically (a temporary file renamed into place)."""
        files.write_text(path, self.to_text())

    # -- structure ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and self._parents == other._parents

    def node_index(self, name: str) -> int:
        try:
            return self.index[name]
        except KeyError:
            raise HierarchyError(f"{self.source}: no node named {name!r}") from None

    def parents(self, name: str) -> tuple[str, ...]:
        return self._parents[self.nodes[self.node_index(name)]]

    def children(self, name: str) -> tuple[str, ...]:
        return tuple(self._children[self.nodes[self.node_index(name)]])

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(n for n in self.nodes if not self._parents[n])

    def ancestors(self, name: str) -> frozenset[str]:
        """Every node reachable upwards from ``name``, not including it."""
        i = self.node_index(name)
        return frozenset(self.nodes[j] for j in np.flatnonzero(self._closure[i]) if j != i)

    def descendants(self, name: str) -> frozenset[str]:
        """Every node reachable downwards from ``name``, not including it."""
        j = self.node_index(name)
        return frozenset(self.nodes[i] for i in np.flatnonzero(self._closure[:, j]) if i != j)

    def _check_acyclic(self) -> None:
        # Iterative depth-first search; on a back edge, report the cycle's path.
        state = dict.fromkeys(self.nodes, 0)  # 0 new, 1 on the stack, 2 done
        for start in self.nodes:
            if state[start]:
                continue
            stack = [(start, iter(self._parents[start]))]
            state[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                elif state[nxt] == 1:
                    path = [n for n, _ in stack]
                    cycle = path[path.index(nxt) :] + [nxt]
                    raise HierarchyError(
                        f"{self.source}: cycle in the hierarchy: {' -> '.join(cycle)}"
                    )
                elif state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, iter(self._parents[nxt])))

    def _topological_order(self) -> list[str]:
        """Nodes with every parent before its children (the graph is known to be acyclic)."""
        pending = {n: len(ps) for n, ps in self._parents.items()}
        order = [n for n in self.nodes if not pending[n]]
        for node in order:  # grows while iterating
            for child in self._children[node]:
                pending[child] -= 1
                if not pending[child]:
                    order.append(child)
        return order

    def _ancestor_closure(self) -> np.ndarray:
        """``closure[i, j]``: node j is node i or one of its ancestors (bool, [n, n])."""
        n = len(self.nodes)
        closure = np.eye(n, dtype=bool)
        for node in self._topological_order():
            i = self.index[node]
            for p in self._parents[node]:
                closure[i] |= closure[self.index[p]]
        return closure

    # -- labels and targets ------------------------------------------------------------

    def closure_matrix(self, labels: Sequence[str]) -> np.ndarray:
        """``[len(labels), len(nodes)]`` bool: each label's row marks it and its ancestors.
        This is the table that maps a class id to its multi-hot target."""
        return self._closure[self.label_indices(labels)]

    def label_indices(self, labels: Iterable[str]) -> np.ndarray:
        out = []
        for label in labels:
            if label not in self.index:
                raise HierarchyError(f"{self.source}: label {label!r} has no node in the hierarchy")
            out.append(self.index[label])
        return np.asarray(out, dtype=np.int64)

    def multi_hot(self, labels: Iterable[str]) -> np.ndarray:
        """float32 ``[len(nodes)]`` target: 1 for every label of an image and its ancestors."""
        rows = self._closure[self.label_indices(labels)]
        return rows.any(axis=0).astype(np.float32)

    def check_labels(self, labels: Iterable[str]) -> None:
        """Raises for the first label that is not a node."""
        self.label_indices(labels)

    def image_counts(self, label_counts: Mapping[str, int]) -> dict[str, int]:
        """Images per node for single-label images: a node counts the images of every label
        at or below it (each image once, however many paths lead up from its label)."""
        labels = list(label_counts)
        counts = np.asarray([label_counts[k] for k in labels], dtype=np.int64)
        if (counts < 0).any():
            raise HierarchyError(f"{self.source}: negative image count in {dict(label_counts)}")
        per_node = counts @ self.closure_matrix(labels).astype(np.int64)
        return {n: int(c) for n, c in zip(self.nodes, per_node, strict=True)}

    def slice_labels(self, expert: str, labels: Sequence[str]) -> list[str]:
        """The labels (of ``labels``) whose images belong to expert ``expert``'s slice."""
        j = self.node_index(expert)
        return [lab for lab, row in zip(labels, self.closure_matrix(labels), strict=True) if row[j]]

    def expert_label_mask(self, experts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        """``[len(experts), len(labels)]`` bool: label l's images are in expert e's slice."""
        cols = [self.node_index(e) for e in experts]
        return self.closure_matrix(labels)[:, cols].T.copy()

    # -- experts -----------------------------------------------------------------------

    def check_experts(self, experts: Sequence[str], label_counts: Mapping[str, int]) -> None:
        """Raises unless every expert is a distinct node with at least one image."""
        seen = set()
        counts = self.image_counts(label_counts)
        for e in experts:
            self.node_index(e)
            if e in seen:
                raise HierarchyError(f"{self.source}: expert {e!r} is listed twice")
            seen.add(e)
            if counts[e] == 0:
                raise HierarchyError(f"{self.source}: expert {e!r} has no images")

    def choose_experts(
        self,
        label_counts: Mapping[str, int],
        num_experts: int,
        min_images: int = 1,
        exclude: Iterable[str] = (),
        max_overlap: float = 1.0,
        include: Sequence[str] = (),
    ) -> list[str]:
        """The paper's automatic choice: the ``num_experts`` nodes with the most images.

        Nodes with fewer than ``min_images`` images and the ``exclude``d ones (such as a root
        that holds everything) are never chosen. ``max_overlap`` caps the Jaccard index
        |A and B| / |A or B| between the image sets of any two chosen experts, so that near
        duplicates (a script and its only block) do not both take a slot; nesting is allowed
        (animal and dog overlap little by this measure). Ties go to the earlier node.
        The ``include``d nodes (the domains of the downstream tasks that must have an
        expert) come first, in their order, whatever their size and overlap; the largest
        others follow, so that cutting the list to its head keeps them.
        Returns fewer experts when not enough nodes qualify."""
        if num_experts < 0:
            raise HierarchyError(f"num_experts must be >= 0, got {num_experts}")
        if not 0.0 < max_overlap <= 1.0:
            raise HierarchyError(f"max_overlap must be in (0, 1], got {max_overlap}")
        excluded = set(exclude)
        for e in excluded:
            self.node_index(e)
        labels = list(label_counts)
        counts = np.asarray([label_counts[k] for k in labels], dtype=np.int64)
        member = self.closure_matrix(labels)  # [labels, nodes]
        per_node = counts @ member.astype(np.int64)
        chosen = self._included(include, excluded, per_node, num_experts)
        order = sorted(range(len(self.nodes)), key=lambda j: (-per_node[j], j))
        for j in order:
            if len(chosen) >= num_experts or per_node[j] < max(min_images, 1):
                break
            if self.nodes[j] in excluded or j in chosen:
                continue
            if max_overlap < 1.0 and any(
                _jaccard(counts, member[:, j], member[:, k]) > max_overlap for k in chosen
            ):
                continue
            chosen.append(j)
        return [self.nodes[j] for j in chosen]

    def _included(
        self, include: Sequence[str], excluded: set[str], per_node: np.ndarray, num_experts: int
    ) -> list[int]:
        """Indices of the nodes a choice must hold, checked."""
        if isinstance(include, str):
            raise HierarchyError(f"include must be a list of node names, got {include!r}")
        if len(include) > num_experts:
            raise HierarchyError(
                f"{len(include)} nodes to include ({', '.join(include)}) but only "
                f"{num_experts} experts; raise num_experts"
            )
        chosen = []
        for name in include:
            j = self.node_index(name)
            if name in excluded:
                raise HierarchyError(f"{self.source}: node {name!r} is both included and excluded")
            if j in chosen:
                raise HierarchyError(f"{self.source}: node {name!r} is included twice")
            if per_node[j] == 0:
                raise HierarchyError(f"{self.source}: included node {name!r} has no images")
            chosen.append(j)
        return chosen


def _jaccard(counts: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    union = counts[a | b].sum()
    return float(counts[a & b].sum() / union) if union else 0.0


def flat(labels: Sequence[str], root: str | None = None) -> Hierarchy:
    """A hierarchy of independent labels, optionally under one root."""
    parents: dict[str, list[str]] = {root: []} if root else {}
    for label in labels:
        if label in parents:
            raise HierarchyError(f"duplicate label {label!r}")
        parents[label] = [root] if root else []
    return Hierarchy(parents, source="<flat>")
