"""hub_export's output against the downstream side: the module contract, the schema,
and discovery by vtab_eval's pool of a real export tree."""

import pytest
import tensorflow as tf

from experts.models import resnet_v2
from fanout import module_check
from tests import hub_contract
from vtab_eval.pool import expert_pool as pool

from .conftest import EXPERTS, TINY, module_path


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


def test_every_exported_module_passes_the_module_check(hub_tree):
    """Every kind, classifiers and the packed adapters included: nothing but the
    allow-list's ops, and checkpoint ops only in the saver's functions."""
    root, _, _ = hub_tree
    modules = sorted(p.parent for p in root.rglob("saved_model.pb"))
    kinds = {pool.read_info(m / pool.INFO_FILE)["kind"] for m in modules}
    assert kinds == {"baseline", "full", "adapter", "packed", "epn", "classifier"}, kinds
    for module in modules:
        module_check.check_module(module)


def test_a_bit_style_resnet_saved_whole_passes_the_module_check(tmp_path):
    """The published BiT experts are ResNet-v2 models saved whole; in mixed bfloat16 the
    graph holds the float32 one's ops and the casts (the float32 ops are the exports')."""
    model = resnet_v2.ResNetV2(TINY, 3, dtype="mixed_bfloat16").build_for(8)
    tf.saved_model.save(model, str(tmp_path / "resnet"))
    module_check.check_module(tmp_path / "resnet")
