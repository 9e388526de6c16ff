"""A fake finished upstream work tree of tiny random models, exported once per session.

The models are freshly initialised and then perturbed: zero-initialised heads and
adapter kernels would otherwise make every expert equal B, and equality tests could
not fail.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from experts import work_tree
from experts.data import pipelines
from experts.data.hierarchy import Hierarchy
from experts.data.upstream import UpstreamInfo
from experts.models import resnet_v2
from hub_export import config as config_lib
from hub_export import exporter, trained
from hub_export import tree as hub_export_tree

TINY = "r14x0.125"
IMAGE_SIZE = 32
HIERARCHY = """
glyph:
script/latin: glyph
script/greek: glyph
char/a: script/latin
char/b: script/latin
char/alpha: script/greek
char/beta: script/greek
"""
LABELS = ("char/a", "char/b", "char/alpha", "char/beta")
TRAIN_COUNTS = {"char/a": 10, "char/b": 30, "char/alpha": 20, "char/beta": 40}
EXPERTS = ("script/latin", "script/greek")
STEPS = {"baseline": 20, "full": 5, "adapter": 8, "epn": 3}
BATCH = {"baseline": 16, "full": 8, "adapter": 4, "epn": 2}


def make_info() -> UpstreamInfo:
    return UpstreamInfo(
        name="toy_upstream",
        labels=LABELS,
        hierarchy=Hierarchy.from_text(HIERARCHY, source="toy"),
        label_counts={"train": TRAIN_COUNTS, "validation": dict.fromkeys(LABELS, 1)},
        experts=EXPERTS,
        descriptions={"script/latin": "Latin script", "script/greek": "Greek script"},
    )


def perturb(model: resnet_v2.ResNetV2, seed: int, scale: float = 0.05) -> resnet_v2.ResNetV2:
    rng = np.random.default_rng(seed)
    for v in model.variables:
        v.assign(v + scale * rng.standard_normal(v.shape).astype(np.float32))
    return model


def write_final(model, workdir: Path, metrics: dict, job: str, experts=()) -> None:
    """A finished job as experts.train leaves it: its recorded config, then final/."""
    jobdir = work_tree.JobDir(workdir)
    jobdir.start(
        {
            "job": job,
            "model": {"size": TINY, "image_size": IMAGE_SIZE},
            "data": {"name": "toy_upstream/32px", "data_dir": "", "experts": list(experts)},
            "train": {"global_batch": BATCH[job]},
        }
    )
    jobdir.write_final(model, metrics)


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    """(TrainedUpstream, {job or "full/<expert>": source model}) with every job finished."""
    root = tmp_path_factory.mktemp("upstream")
    info = make_info()
    nodes = len(info.hierarchy)
    models = {}
    baseline = perturb(resnet_v2.ResNetV2(TINY, nodes).build_for(IMAGE_SIZE), 0)
    models["baseline"] = baseline
    write_final(baseline, root / "baseline", {"steps": STEPS["baseline"], "top1": 0.5}, "baseline")
    for i, expert in enumerate(EXPERTS):
        full = resnet_v2.ResNetV2(TINY, nodes).build_for(IMAGE_SIZE)
        full.copy_backbone_from(baseline)
        models[f"full/{expert}"] = perturb(full, 10 + i)
        full_dir = work_tree.WorkTree(root).job("full", expert).path
        write_final(full, full_dir, {"steps": STEPS["full"], "top1": 0.7}, "full", [expert])
    adapters = resnet_v2.ResNetV2(TINY, nodes, num_experts=len(EXPERTS)).build_for(IMAGE_SIZE)
    adapters.copy_backbone_from(baseline)
    rng = np.random.default_rng(20)
    for v in adapters.adapter_variables:
        v.assign(v + 0.1 * rng.standard_normal(v.shape).astype(np.float32))
    models["adapters"] = adapters
    adapter_metrics = {"steps": STEPS["adapter"], "script/latin/top1": 0.25}
    adapter_metrics.update({"script/greek/top1": 0.75, "script/greek/loss": 1.5})
    write_final(adapters, root / "adapter", adapter_metrics, "adapter", EXPERTS)
    epn = resnet_v2.ResNetV2(TINY, len(EXPERTS)).build_for(IMAGE_SIZE)
    epn.copy_backbone_from(baseline, include_head=False)
    models["epn"] = perturb(epn, 30)
    write_final(epn, root / "epn", {"steps": STEPS["epn"], "prec1": 0.9}, "epn", EXPERTS)
    tree = trained.TrainedUpstream(
        workdir=root,
        dataset="toy_upstream/32px",
        info=info,
        experts=EXPERTS,
        size=TINY,
        image_size=IMAGE_SIZE,
    )
    return tree, models


@pytest.fixture(scope="session")
def hub_tree(work, tmp_path_factory):
    """(hub root, export results, log lines): every kind exported from ``work``."""
    tree, _ = work
    root = tmp_path_factory.mktemp("hub")
    targets, skipped = exporter.plan(tree, "local", 1)
    assert skipped == []
    lines = []
    results = exporter.Exporter(tree, root, lines.append).export(targets)
    return root, results, lines


@pytest.fixture(scope="session")
def loaded(hub_tree):
    """loaded(kind, expert=None): the module loaded once per session (loads are slow)."""
    root, _, _ = hub_tree
    cache = {}

    def load(kind, expert=None):
        if (kind, expert) not in cache:
            path = module_path(root, kind, expert)
            cache[kind, expert] = tf.saved_model.load(str(path))
        return cache[kind, expert]

    return load


def module_path(root, kind, expert=None) -> Path:
    return hub_export_tree.Handle.make("local", kind, TINY, "toy_upstream/32px", expert).path(root)


@pytest.fixture
def images():
    # Two sizes: the training resolution and a non-square other one.
    return [
        tf.random.stateless_uniform([3, IMAGE_SIZE, IMAGE_SIZE, 3], seed=[1, 2]),
        tf.random.stateless_uniform([2, 40, 56, 3], seed=[3, 4]),
    ]


@pytest.fixture
def config(work, tmp_path, monkeypatch):
    """A config for a copy of the fake work tree's B; its data "opens" without tfds."""
    monkeypatch.setattr(pipelines, "open_upstream", lambda name, data_dir: (None, make_info()))
    shutil.copytree(work[0].workdir / "baseline", tmp_path / "upstream" / "baseline")
    config = config_lib.get_config()
    config.workdir = str(tmp_path / "upstream")
    config.hub_root = str(tmp_path / "hub")
    config.kinds = "baseline"  # the cheapest module to build
    return config
