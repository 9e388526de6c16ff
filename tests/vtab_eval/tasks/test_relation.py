"""Every task says how it relates to the upstream: relation and nodes, checked."""

import pytest

from vtab_eval import tasks
from vtab_eval.tasks import base


def test_embedded_tasks_declare_their_relation():
    for task in tasks.get_suite("embedded", data_dir="/nonexistent"):  # listing reads no data
        assert task.relation in base.RELATIONS, task
        assert (task.relation == "matched") <= bool(task.nodes), task
        assert (task.relation == "unrelated") <= (task.nodes == ()), task


def test_a_task_whose_data_changed_has_another_key():
    # The 8x8 digits moved off-centre (builder 1.1.0): features cached for the centred
    # ones under the same spec must not be read for them.
    digits = tasks.get_task("mini_digits8x8", data_dir="/nonexistent")
    assert digits.key == tasks.task_key("mini_digits8x8") == "mini_digits8x8#data=1.1.0"
    spec = 'mini_clevr(task="count_all")'
    assert tasks.get_task(spec, data_dir="/nonexistent").key == tasks.task_key(spec) == spec


def test_vtab1k_tasks_declare_nothing():
    for task in tasks.get_suite("vtab1k", data_dir="/nonexistent"):
        assert (task.relation, task.nodes) == (None, ())


@pytest.mark.parametrize(
    "relation, nodes",
    [(None, ()), ("unrelated", ()), ("weak", ()), ("weak", ["emoji"]), ("matched", ("a/b", "c"))],
)
def test_check_relation_accepts(relation, nodes):
    assert base.check_relation("t", relation, nodes) == (relation, tuple(nodes))


@pytest.mark.parametrize(
    "relation, nodes, message",
    [
        ("close", (), "relation 'close' is not one of"),
        ("matched", (), "a matched task names the upstream node"),
        ("unrelated", ("emoji",), "relation 'unrelated' names no nodes"),
        (None, ("emoji",), "relation None names no nodes"),
        ("matched", "emoji", "nodes must be a sequence"),
        ("matched", ("a b",), "'a b' is not a hierarchy node name"),
        ("matched", ("a/../b",), "is not a hierarchy node name"),
        ("matched", ("/a",), "is not a hierarchy node name"),
        ("matched", ("a", "a"), "a node is named twice"),
    ],
)
def test_check_relation_refuses(relation, nodes, message):
    with pytest.raises(ValueError, match=message):
        base.check_relation("t", relation, nodes)


def _declared_nodes(relations):
    suite = tasks.get_suite("embedded", data_dir="/nonexistent")
    return {node for task in suite if task.relation in relations for node in task.nodes}


def test_every_matched_node_gets_an_expert():
    from experts.data.builders.embedded_upstream import embedded_choice
    from experts.data.embedded import plan

    choice = embedded_choice()
    assert _declared_nodes({"matched"}) == set(plan.MATCHED_NODES)
    assert not choice.exclude_roots
    assert choice.include[:2] == (plan.GLYPH_ROOT, plan.EMOJI_ROOT)
    assert set(plan.MATCHED_NODES) <= set(choice.include)
