"""Hierarchy logic on small hand-made DAGs, including every error case."""

import numpy as np
import pytest

from experts.data import hierarchy as H

# A WordNet-like toy: "dog" has two parents, so it is counted once under "entity".
TEXT = """
# toy hierarchy
entity:
animal: entity
pet: entity
dog: animal pet      # two parents
cat: animal pet
lion: animal
artifact: entity
car: artifact
"""


@pytest.fixture
def h():
    return H.Hierarchy.from_text(TEXT, source="toy.txt")


def test_structure(h):
    assert h.nodes == ("entity", "animal", "pet", "dog", "cat", "lion", "artifact", "car")
    assert h.roots == ("entity",)
    assert h.parents("dog") == ("animal", "pet")
    assert set(h.children("animal")) == {"dog", "cat", "lion"}
    assert h.ancestors("dog") == {"animal", "pet", "entity"}
    assert h.ancestors("entity") == frozenset()
    assert h.descendants("pet") == {"dog", "cat"}
    assert h.descendants("entity") == set(h.nodes) - {"entity"}


def test_parents_may_follow_children():
    h = H.Hierarchy.from_text("dog: animal\nanimal: entity\nentity:\n")
    assert h.ancestors("dog") == {"animal", "entity"}


def test_deep_chain_closure():
    # Declared leaf-first, so the closure must not depend on declaration order.
    names = [f"n{i}" for i in range(50)]
    text = "".join(f"{names[i]}: {names[i + 1]}\n" for i in range(49)) + "n49:\n"
    h = H.Hierarchy.from_text(text)
    assert h.ancestors("n0") == set(names[1:])


def test_multi_hot(h):
    target = h.multi_hot(["dog"])
    assert target.dtype == np.float32
    on = {h.nodes[i] for i in np.flatnonzero(target)}
    assert on == {"dog", "animal", "pet", "entity"}
    both = h.multi_hot(["lion", "car"])
    assert {h.nodes[i] for i in np.flatnonzero(both)} == {
        "lion",
        "animal",
        "car",
        "artifact",
        "entity",
    }
    table = h.closure_matrix(["cat", "car"])
    assert table.shape == (2, len(h))
    np.testing.assert_array_equal(table[0], h.multi_hot(["cat"]).astype(bool))


def test_image_counts_count_each_image_once(h):
    counts = h.image_counts({"dog": 10, "cat": 5, "lion": 3, "car": 7})
    assert counts == {
        "entity": 25,
        "animal": 18,
        "pet": 15,
        "dog": 10,
        "cat": 5,
        "lion": 3,
        "artifact": 7,
        "car": 7,
    }


def test_internal_nodes_may_carry_images(h):
    counts = h.image_counts({"animal": 4, "dog": 1})
    assert counts["animal"] == 5 and counts["entity"] == 5 and counts["pet"] == 1


def test_slices(h):
    labels = ["dog", "cat", "lion", "car"]
    assert h.slice_labels("pet", labels) == ["dog", "cat"]
    assert h.slice_labels("entity", labels) == labels
    mask = h.expert_label_mask(["animal", "artifact"], labels)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [0, 0, 0, 1]])


def test_choose_experts_largest_first(h):
    counts = {"dog": 10, "cat": 5, "lion": 3, "car": 7}
    assert h.choose_experts(counts, 3) == ["entity", "animal", "pet"]
    assert h.choose_experts(counts, 3, exclude=["entity"]) == ["animal", "pet", "dog"]
    # Ties go to the node declared first: artifact and car both have 7 images.
    assert h.choose_experts(counts, 5, exclude=["entity"]) == [
        "animal",
        "pet",
        "dog",
        "artifact",
        "car",
    ]


def test_choose_experts_min_images(h):
    counts = {"dog": 10, "cat": 5, "lion": 3, "car": 7}
    chosen = h.choose_experts(counts, 100, min_images=6, exclude=["entity"])
    assert chosen == ["animal", "pet", "dog", "artifact", "car"]
    assert h.choose_experts(counts, 0) == []


def test_choose_experts_overlap_cap(h):
    counts = {"dog": 10, "cat": 5, "lion": 3, "car": 7}
    # animal/pet Jaccard = 15/18; artifact/car = 1; dog/pet = 10/15.
    chosen = h.choose_experts(counts, 10, exclude=["entity"], max_overlap=0.8)
    assert chosen == ["animal", "dog", "artifact", "cat", "lion"]
    assert "car" not in chosen and "pet" not in chosen


def test_choose_experts_includes_named_nodes_first(h):
    counts = {"dog": 10, "cat": 5, "lion": 3, "car": 7}
    # lion (3 images, below min_images) and car (Jaccard 1 with artifact) come first anyway;
    # the rest fill by size, and a cut to the head keeps the included nodes.
    chosen = h.choose_experts(counts, 4, min_images=4, max_overlap=0.8, include=["lion", "car"])
    assert chosen == ["lion", "car", "entity", "animal"]
    assert h.choose_experts(counts, 2, include=["lion", "car"]) == ["lion", "car"]


@pytest.mark.parametrize(
    "include, exclude, message",
    [
        (["plant"], [], "no node named 'plant'"),
        (["car", "car"], [], "node 'car' is included twice"),
        (["car"], ["car"], "node 'car' is both included and excluded"),
        (["artifact", "car", "dog"], [], r"3 nodes to include .* only 2 experts"),
        ("car", [], "include must be a list"),
    ],
)
def test_choose_experts_include_errors(h, include, exclude, message):
    counts = {"dog": 10, "car": 7}
    with pytest.raises(H.HierarchyError, match=message):
        h.choose_experts(counts, 2, exclude=exclude, include=include)
    with pytest.raises(H.HierarchyError, match="included node 'lion' has no images"):
        h.choose_experts(counts, 2, include=["lion"])


def test_round_trip_and_atomic_save(h, tmp_path):
    path = tmp_path / "h.txt"
    h.save(str(path))
    assert H.Hierarchy.load(str(path)) == h
    assert [p.name for p in tmp_path.iterdir()] == ["h.txt"]


def test_a_byte_order_mark_is_skipped(h, tmp_path):
    path = tmp_path / "h.txt"
    path.write_bytes(b"\xef\xbb\xbf" + h.to_text().encode())  # as some editors save UTF-8
    assert H.Hierarchy.load(str(path)) == h


def test_flat():
    h = H.flat(["a", "b"], root="all")
    assert h.ancestors("b") == {"all"}
    with pytest.raises(H.HierarchyError, match="duplicate label 'a'"):
        H.flat(["a", "a"])


# -- error cases -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: b\nb: c\nc: a\n", r"cycle in the hierarchy: a -> b -> c -> a"),
        ("a: a\n", r"cycle in the hierarchy: a -> a"),
        ("root:\na: root\na: root\n", r"t.txt:3: duplicate node 'a' \(first declared on line 2\)"),
        ("root:\na: root ghost\n", r"parent 'ghost' of 'a' is not declared"),
        ("root:\na: root root\n", r"node 'a' lists a parent twice"),
        ("root\n", r"t.txt:1: expected '<node>: <parents...>'"),
        ("my node: x\n", r"t.txt:1: bad node name 'my node'"),
        ("a: b,c\n", r"t.txt:1: bad node name 'b,c'"),
        ("root:\n../../evil: root\n", r"t.txt:2: bad node name '../../evil': names neither"),
        ("/abs:\n", r"t.txt:1: bad node name '/abs'"),
        ("root:\na/./b: root\n", r"t.txt:2: bad node name 'a/./b'"),
        ("# only comments\n\n", r"declares no nodes"),
    ],
)
def test_bad_files(text, message):
    with pytest.raises(H.HierarchyError, match=message):
        H.Hierarchy.from_text(text, source="t.txt")


def test_error_messages_are_one_line():
    with pytest.raises(H.HierarchyError) as info:
        H.Hierarchy.from_text("a: b\nb: a\n", source="t.txt")
    assert "\n" not in str(info.value)


def test_label_with_no_node(h):
    with pytest.raises(H.HierarchyError, match=r"toy.txt: label 'wolf' has no node"):
        h.multi_hot(["wolf"])
    with pytest.raises(H.HierarchyError, match=r"label 'wolf' has no node"):
        h.image_counts({"dog": 1, "wolf": 2})
    with pytest.raises(H.HierarchyError, match=r"no node named 'wolf'"):
        h.ancestors("wolf")


def test_expert_errors(h):
    counts = {"dog": 10, "car": 7}
    h.check_experts(["animal", "car"], counts)
    with pytest.raises(H.HierarchyError, match=r"expert 'lion' has no images"):
        h.check_experts(["animal", "lion"], counts)
    with pytest.raises(H.HierarchyError, match=r"expert 'car' is listed twice"):
        h.check_experts(["car", "car"], counts)
    with pytest.raises(H.HierarchyError, match=r"no node named 'plant'"):
        h.check_experts(["plant"], counts)
    with pytest.raises(H.HierarchyError, match=r"no node named 'plant'"):
        h.choose_experts(counts, 2, exclude=["plant"])
    with pytest.raises(H.HierarchyError, match=r"max_overlap"):
        h.choose_experts(counts, 2, max_overlap=0)
    with pytest.raises(H.HierarchyError, match=r"negative image count"):
        h.image_counts({"dog": -1})


def test_parents_given_as_string_rejected():
    with pytest.raises(H.HierarchyError, match=r"parents of 'a' must be a list"):
        H.Hierarchy({"root": [], "a": "root"})


def test_job_experts_takes_the_largest_of_the_recorded_choice(h):
    from experts.data import upstream

    counts = {"dog": 10, "car": 7}
    info = upstream.UpstreamInfo(
        name="toy",
        labels=tuple(counts),
        hierarchy=h,
        label_counts={"train": counts},
        experts=("animal", "car"),
        descriptions={},
    )
    assert info.job_experts() == ("animal", "car")
    assert info.job_experts(num_experts=1) == ("animal",)
    assert info.job_experts(["car"], num_experts=5) == ("car",)
    with pytest.raises(ValueError, match="num_experts must be >= 0"):
        info.job_experts(num_experts=-1)
    with pytest.raises(H.HierarchyError, match="no images"):
        info.job_experts(["lion"])
