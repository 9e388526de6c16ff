"""Hostile hub modules, made with plain TensorFlow: each meets the feature-vector
contract and also reaches outside the computation when it is loaded or run, one family
of op each. The module check (fanout.module_check) must refuse every one.

Each writes only under its own ``effects`` directory, or reads a secret planted there
(``reads``): then its features carry the secret, scaled to be unmistakable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from tests.vtab_eval import hub_fixtures

SECRET = 1000.0  # what a reading module adds to its features


@dataclasses.dataclass(frozen=True)
class Hostile:
    path: Path
    effects: Path  # everything it writes goes here
    reads: bool = False  # it leaks a secret into its features instead of writing
    kwargs: dict = dataclasses.field(default_factory=dict)  # for hub.KerasLayer

    def wrote(self) -> bool:
        return self.effects.exists() and any(
            p.name != "secret.csv" for p in self.effects.rglob("*")
        )


def _printv2(effects: Path, features):
    tf.print("leaked", output_stream=f"file://{effects / 'printed.txt'}")
    return features


def _cache(effects: Path, features):
    dataset = tf.data.Dataset.from_tensors(features).cache(str(effects / "cache"))
    return dataset.reduce(tf.zeros_like(features), lambda total, x: total + x)


def _tfrecord(effects: Path, features):
    records = tf.data.Dataset.from_tensors(tf.io.serialize_tensor(features))
    tf.data.experimental.TFRecordWriter(str(effects / "records.tfrecord")).write(records)
    return features


def _csv(effects: Path, features):
    rows = tf.data.experimental.CsvDataset(str(effects / "secret.csv"), [tf.float32])
    return features + rows.reduce(0.0, lambda total, row: total + row)


def _sql(effects: Path, features):
    # Opening a database that does not exist creates it.
    query = "SELECT 1.0"
    rows = tf.data.experimental.SqlDataset("sqlite", str(effects / "made.db"), query, (tf.float64,))
    return features + tf.cast(
        rows.reduce(tf.constant(0.0, tf.float64), lambda t, r: t + r), tf.float32
    )


def _listing(effects: Path, features):
    names = tf.data.Dataset.list_files(str(effects / "*"), shuffle=False)
    return features + SECRET * tf.cast(names.reduce(0, lambda count, _: count + 1), tf.float32)


def _debug(effects: Path, features):
    urls = [f"file://{effects / 'dump'}"]
    nans = tf.raw_ops.DebugNanCount(input=features, tensor_name="f:0", debug_urls=urls)
    summary = tf.raw_ops.DebugNumericSummary(input=features, tensor_name="f:0", debug_urls=urls)
    return features + 0.0 * tf.cast(nans + tf.cast(tf.reduce_sum(summary), tf.int64), tf.float32)


# family -> (how its features are made, whether it reads rather than writes)
TF2_FAMILIES: dict[str, tuple[Callable, bool]] = {
    "PrintV2": (_printv2, False),
    "CacheDatasetV2": (_cache, False),
    "DatasetToTFRecord": (_tfrecord, False),
    "CSVDatasetV2": (_csv, True),
    "SqlDataset": (_sql, False),
    "MatchingFiles": (_listing, True),
    "DebugNanCount": (_debug, False),
}
FAMILIES = (*TF2_FAMILIES, "SaveV2")  # SaveV2: a TF1 module whose main_op saves


def _tf2_module(root: Path, family: str, **info) -> Hostile:
    effects = root / "effects" / family
    effects.mkdir(parents=True)
    effect, reads = TF2_FAMILIES[family]
    if reads:  # the CSV module reads it, the listing one counts it
        (effects / "secret.csv").write_text(f"{SECRET}\n")

    class Module(hub_fixtures.TinyModule):
        def __init__(self):
            super().__init__("mean_color")

        @tf.function
        def __call__(self, images, training=False):
            features = tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel) + self.bias
            return effect(effects, features)

    path = root / "modules" / family / "1"
    path = hub_fixtures.save_module(
        path, Module(), hub_fixtures.expert_info(family.lower(), **info)
    )
    return Hostile(path, effects, reads)


def tf1_module(root: Path, hostile: bool = True, main_op_saves: bool = False) -> Hostile:
    """A TF1 SavedModel (no hub.Module spec) with the usual saver. ``hostile``: its
    main_op, run when it is loaded, saves its variable to a checkpoint and merges it
    elsewhere, deleting the original. ``main_op_saves``: its main_op runs the saver's
    own save path instead. Neither: an honest module."""
    name = "SaveV2" if hostile else ("saver" if main_op_saves else "honest")
    effects = root / "effects" / name
    effects.mkdir(parents=True)
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        images = v1.placeholder(tf.float32, [None, None, None, 3], name="images")
        kernel = v1.get_variable("kernel", initializer=tf.ones([3, 8]))
        features = tf.matmul(tf.reduce_mean(images, [1, 2]), kernel)
        saver = v1.train.Saver(filename=str(effects / "via_saver"))
        main_op = [v1.global_variables_initializer()]
        if hostile:
            main_op.append(_save_and_merge(kernel, effects))
        if main_op_saves:
            main_op.append(graph.get_tensor_by_name(saver.saver_def.save_tensor_name).op)
        path = root / "modules" / name / "1"
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.predict_signature_def(
                {"images": images}, {"default": features}
            )
            builder.add_meta_graph_and_variables(
                session,
                [v1.saved_model.SERVING],
                signature_def_map={"serving_default": signature},
                main_op=tf.group(*main_op),
                saver=saver,
            )
            builder.save()
    kwargs = {"signature": "serving_default", "output_key": "default"}
    return Hostile(path, effects, kwargs=kwargs)


def _save_and_merge(variable, effects: Path):
    part = str(effects / "parts" / "part")
    save = tf.raw_ops.SaveV2(
        prefix=part, tensor_names=["kernel"], shape_and_slices=[""], tensors=[variable]
    )
    with tf.control_dependencies([save]):
        return tf.raw_ops.MergeV2Checkpoints(
            checkpoint_prefixes=[part],
            destination_prefix=str(effects / "stolen"),
            delete_old_dirs=True,
        )


def build_one(root: Path, family: str, **info) -> Hostile:
    """The hostile module of one TF2 family; ``info`` overrides its expert_info fields."""
    return _tf2_module(root, family, **info)


def build_all(root: Path) -> dict[str, Hostile]:
    """One hostile module per family, under ``root``."""
    hostiles = {family: _tf2_module(root, family) for family in TF2_FAMILIES}
    hostiles["SaveV2"] = tf1_module(root)
    return hostiles
