"""hub_export's output against the downstream side: the module contract, the schema,
and discovery by vtab_eval's pool of a real export tree."""

import pytest

from hub_export import metadata
from tests import hub_contract
from vtab_eval import pool

from .conftest import EXPERTS, module_path


def test_both_sides_keep_the_same_versioned_schema():
    assert metadata.SCHEMA_VERSION == pool.SCHEMA_VERSION
    assert metadata.FIELDS == pool.SCHEMA_FIELDS


@pytest.mark.parametrize(
    "kind, expert", [("baseline", None), ("full", EXPERTS[0]), ("adapter", EXPERTS[1])]
)
def test_exported_feature_modules_meet_the_hub_contract(hub_tree, kind, expert):
    info = hub_contract.check_feature_module(module_path(hub_tree[0], kind, expert))
    assert info["kind"] == kind


def test_the_pool_discovers_a_real_export_tree(hub_tree):
    found = pool.open_pool(str(hub_tree[0]))
    kinds = sorted(e.kind for e in found.experts)
    assert kinds == ["adapter", "adapter", "baseline", "full", "full"]  # packed left out
    assert found.baseline.name == "baseline"
    assert found.epn.labels == ["script.latin", "script.greek"]
    assert found.upstream_classifier.labels == ["char/a", "char/b", "char/alpha", "char/beta"]
    for expert in found.experts:
        assert abs(sum(expert.label_distribution().values()) - 1) < 1e-6
