"""hub_export's output against the downstream side: the module contract, the schema,
and discovery by vtab_eval's pool of a real export tree."""

import numpy as np
import pytest
import tensorflow as tf

from experts.models import resnet_v2
from fanout import module_check
from hub_export import modules
from tests import hub_contract
from vtab_eval.finetune import tuner as finetune
from vtab_eval.finetune.hyperparams import HParams
from vtab_eval.pool import expert_pool as pool
from vtab_eval.pool import module_program

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


def test_b_and_the_full_experts_hold_one_program_the_adapter_experts_another(
    hub_tree, work, tmp_path
):
    root = hub_tree[0]

    def program(kind, expert=None):
        return module_program.program_key(module_path(root, kind, expert))

    assert program("baseline") == program("full", EXPERTS[0]) == program("full", EXPERTS[1])
    assert program("adapter", EXPERTS[0]) == program("adapter", EXPERTS[1])
    assert program("adapter", EXPERTS[0]) != program("baseline")
    # Exported on its own, as a Ray worker exports it: a template of its own, traced
    # again (other function names), still B's program.
    alone = tmp_path / "alone"
    modules.save(modules.resnet_feature_vector(work[1][f"full/{EXPERTS[0]}"]), alone)
    assert module_check.read_saved_model(alone) != module_check.read_saved_model(
        module_path(root, "full", EXPERTS[0])
    )
    assert module_program.program_key(alone) == program("baseline")


def test_a_fine_tuner_built_for_b_runs_a_full_expert_as_one_built_for_it(hub_tree):
    """Bit for bit: the expert's weights loaded into B's traced FineTuner compute what
    loading the expert's own module does."""
    root = hub_tree[0]
    baseline, expert = (str(module_path(root, *m)) for m in (("baseline",), ("full", EXPERTS[1])))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 48)
    train, test = (images[:32], labels[:32]), (images[32:], labels[32:])
    setting = HParams(0.05, 6, 8, warmup_steps=2, decay_boundaries=(4,))
    tuner = finetune.FineTuner(baseline, max_classes=4, image_size=16, eval_batch=16)
    tuner.run(train, test, setting, seed=1, num_classes=3)
    tuner.load_module(expert)
    got = tuner.run(train, test, setting, seed=2, num_classes=3)
    got_losses = tuner.losses
    fresh = finetune.FineTuner(expert, max_classes=4, image_size=16, eval_batch=16)
    want = fresh.run(train, test, setting, seed=2, num_classes=3)
    assert got_losses == fresh.losses and got["accuracy"] == want["accuracy"]
    for a, b in zip(tuner.model.variables, fresh.model.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
