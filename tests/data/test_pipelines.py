"""Input pipelines on the tiny folder upstream: targets, slices, mixes, augmentation."""

import collections
import functools

import numpy as np
import pytest
import tensorflow as tf

from experts.data import augment, pipelines, upstream
from tests.data.conftest import draw, ink_centroid_x


@pytest.fixture(scope="module")
def info(folder_builder):
    return upstream.load_info(folder_builder)


@pytest.fixture(autouse=True, params=["per_example", "batched"])
def image_path(request, monkeypatch):
    """Runs every pipeline test down both paths: the folder's images all have one size,
    so declaring it static sends them through the decoded, batched path."""
    if request.param == "batched":
        monkeypatch.setattr(pipelines, "static_image_shape", lambda builder: (20, 24, 3))
    return request.param


def _all(ds):
    batches = list(ds.as_numpy_iterator())
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_whole_eval_reads_each_example_once(folder_builder, info):
    out = _all(pipelines.whole(folder_builder, info, "validation", 4, 16, training=False))
    assert len(out["label"]) == folder_builder.info.splits["validation"].num_examples
    assert out["image"].shape[1:] == (16, 16, 3) and out["image"].dtype == np.float32
    assert out["image"].min() >= 0.0 and out["image"].max() <= 1.0
    assert out["image"].max() > 0.9  # white background survives the [0, 1] conversion
    for label, target in zip(out["label"], out["targets"], strict=True):
        on = {info.hierarchy.nodes[i] for i in np.flatnonzero(target)}
        name = info.labels[label]
        assert on == {name} | info.hierarchy.ancestors(name)
        assert target.sum() == len(on)  # exactly 0/1


def test_whole_training_repeats_shuffles_and_is_seeded(folder_builder, info):
    def first(seed):
        ds = pipelines.whole(folder_builder, info, "train", 8, 16, training=True, seed=seed)
        return [b for b in ds.take(6).as_numpy_iterator()]

    a, b, c = first(1), first(1), first(2)
    n_train = folder_builder.info.splits["train"].num_examples
    assert sum(len(x["label"]) for x in a) == 48 > n_train  # repeats
    assert all(x["image"].shape == (8, 16, 16, 3) for x in a)  # drop_remainder
    np.testing.assert_array_equal(a[0]["image"], b[0]["image"])
    assert not all(np.array_equal(x["label"], y["label"]) for x, y in zip(a, c, strict=True))


def test_expert_slice(folder_builder, info):
    out = _all(pipelines.expert_slice(folder_builder, info, "red", "train", 3, 16, training=False))
    names = {info.labels[i] for i in out["label"]}
    assert names == {"red_circle", "red_square"}
    assert len(out["label"]) == info.node_counts("train")["red"]
    assert out["targets"].shape[1] == len(info.hierarchy)  # B's full head


def test_expert_mix_equal_shares_and_routing(folder_builder, info):
    experts = ["shape", "red", "triangle"]  # slices of very different sizes
    ds = pipelines.expert_mix(folder_builder, info, experts, "train", 32, 16, training=True)
    out = _all(ds.take(40))
    shares = np.bincount(out["expert"], minlength=3) / len(out["expert"])
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.05)
    mask = info.hierarchy.expert_label_mask(experts, info.labels)
    assert all(mask[e, lab] for e, lab in zip(out["expert"], out["label"], strict=True))
    assert out["expert"].dtype == np.int32


def test_expert_mix_eval_emits_each_pair_once(folder_builder, info):
    experts = ["circle", "red"]
    ds = pipelines.expert_mix(folder_builder, info, experts, "validation", 5, 16, training=False)
    out = _all(ds)
    counts = info.node_counts("validation")
    assert collections.Counter(out["expert"].tolist()) == {0: counts["circle"], 1: counts["red"]}


def test_expert_prediction_targets(folder_builder, info):
    experts = ["circle", "red", "blue_square"]
    out = _all(
        pipelines.expert_prediction(folder_builder, info, experts, "train", 4, 16, training=False)
    )
    by_label = {
        info.labels[i]: t.tolist() for i, t in zip(out["label"], out["expert_targets"], strict=True)
    }
    assert by_label["red_circle"] == [1.0, 1.0, 0.0]
    assert by_label["blue_square"] == [0.0, 0.0, 1.0]
    assert "triangle" not in by_label  # in no expert's slice: dropped
    kept = _all(
        pipelines.expert_prediction(
            folder_builder, info, experts, "train", 4, 16, training=False, keep_unassigned=True
        )
    )
    assert len(kept["label"]) == folder_builder.info.splits["train"].num_examples


def test_bad_expert_names(folder_builder, info):
    with pytest.raises(ValueError, match=r"no node named 'dog'"):
        pipelines.expert_slice(folder_builder, info, "dog", "train", 4, 16, training=False)
    with pytest.raises(ValueError, match=r"at least one expert"):
        pipelines.expert_mix(folder_builder, info, [], "train", 4, 16, training=True)


def test_augmentation_crops_but_never_flips():
    # A shape in the left part of the image stays in the left part under every crop.
    image = np.asarray(draw("red_square", 0, size=(32, 32)))
    encoded = tf.io.encode_png(image)
    centre = ink_centroid_x(image)
    assert centre < 0.35
    outs = [
        augment.preprocess(encoded, 32, training=True, seed=tf.constant([s, 7])).numpy()
        for s in range(20)
    ]
    assert all(o.shape == (32, 32, 3) and 0 <= o.min() and o.max() <= 1 for o in outs)
    assert all(ink_centroid_x(o) < 0.5 for o in outs)
    assert len({o.tobytes() for o in outs}) > 10  # crops differ
    flipped = [
        augment.preprocess(
            encoded, 32, True, tf.constant([s, 7]), augment.Augment((0.6, 1.0), True)
        ).numpy()
        for s in range(20)
    ]
    assert any(ink_centroid_x(o) > 0.5 for o in flipped)
    same = augment.preprocess(encoded, 32, True, tf.constant([3, 7])).numpy()
    np.testing.assert_array_equal(same, outs[3])


def test_eval_preprocess_only_resizes():
    image = np.asarray(draw("triangle", 2, size=(32, 32)))
    out = augment.preprocess(tf.io.encode_png(image), 32, training=False).numpy()
    np.testing.assert_allclose(out, image / 255.0, atol=1e-6)


def test_label_prior_and_sliced_splits(folder_builder, info):
    prior = info.label_prior("red")
    train = info.label_counts["train"]
    expected = np.asarray(
        [train[lab] if lab in ("red_circle", "red_square") else 0 for lab in info.labels], float
    )
    np.testing.assert_allclose(prior, expected / expected.sum())
    assert info.node_counts("train[:50%]") == info.node_counts("train")
    with pytest.raises(KeyError, match=r"no split 'test'"):
        info.node_counts("test")
    ds = pipelines.expert_mix(folder_builder, info, ["red", "blue"], "train[:50%]", 4, 16, True)
    assert next(ds.as_numpy_iterator())["expert"].shape == (4,)


def test_batched_augmentation_crops_but_never_flips():
    image = np.asarray(draw("red_square", 0, size=(32, 32)))
    batch = tf.constant(np.stack([image] * 20))
    out = augment.preprocess_batch(batch, 32, training=True, seed=tf.constant([5, 7])).numpy()
    assert out.shape == (20, 32, 32, 3) and 0 <= out.min() and out.max() <= 1
    assert ink_centroid_x(image) < 0.35
    assert all(ink_centroid_x(o) < 0.5 for o in out)
    assert len({o.tobytes() for o in out}) > 10  # one crop per image
    again = augment.preprocess_batch(batch, 32, True, tf.constant([5, 7])).numpy()
    np.testing.assert_array_equal(again, out)
    flipped = augment.preprocess_batch(
        batch, 32, True, tf.constant([5, 7]), augment.Augment((0.6, 1.0), True)
    ).numpy()
    assert any(ink_centroid_x(o) > 0.5 for o in flipped)


def test_batched_eval_only_converts_or_resizes():
    image = np.asarray(draw("triangle", 2, size=(32, 32)))
    out = augment.preprocess_batch(tf.constant(image[None]), 32, training=False).numpy()
    np.testing.assert_allclose(out[0], image / 255.0, atol=1e-6)
    small = augment.preprocess_batch(tf.constant(image[None]), 16, training=False).numpy()
    assert small.shape == (1, 16, 16, 3)


def test_batch_targets_match_per_example(info):
    tables = pipelines._Tables(info)
    labels = tf.constant([0, 3, 1, 3], tf.int64)
    expected = np.stack([tables.targets(label).numpy() for label in labels])
    np.testing.assert_array_equal(tables.batch_targets(labels).numpy(), expected)


# Training streams as each job reads them (batches of 4), with the read path they take on
# the folder's 28 training images: the whole split; a slice through the slice index; a
# mix over the whole split; slices over most labels, streamed and filtered by label (of
# the split, and of a sliced split, whose epoch is counted).
STREAMS = {
    "whole": lambda b, i, **kw: pipelines.whole(b, i, "train", 4, 16, True, **kw),
    "slice": lambda b, i, **kw: pipelines.expert_slice(b, i, "red", "train", 4, 16, True, **kw),
    "mix": lambda b, i, **kw: pipelines.expert_mix(
        b, i, ["shape", "red", "triangle"], "train", 4, 16, True, **kw
    ),
    "filtered": lambda b, i, **kw: pipelines.expert_prediction(
        b, i, ["red", "circle"], "train", 4, 16, True, **kw
    ),
    "filtered_sliced_split": lambda b, i, **kw: pipelines.expert_prediction(
        b, i, ["red", "circle"], "train[:75%]", 4, 16, True, **kw
    ),
}


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "read_each_epoch"])
@pytest.mark.parametrize("stream", list(STREAMS))
def test_a_stream_started_later_is_the_rest_of_the_stream_from_the_start(
    folder_builder, info, stream, cache
):
    """What a resumed run reads (start: the examples trained on) is what the
    uninterrupted run reads from there on, in later epochs too, augmentation included."""
    make = functools.partial(STREAMS[stream], folder_builder, info, seed=3, cache=cache)
    whole_run = list(make().take(14).as_numpy_iterator())
    skipped = 9  # into the second epoch of the split (7 batches each), later of a slice
    resumed = make(start=4 * skipped).take(14 - skipped).as_numpy_iterator()
    for batch, expected in zip(resumed, whole_run[skipped:], strict=True):
        for key, value in expected.items():
            np.testing.assert_array_equal(batch[key], value, err_msg=key)


def test_each_training_epoch_is_the_split_in_an_order_of_its_own(folder_builder, info):
    batches = list(STREAMS["whole"](folder_builder, info, seed=3).take(14).as_numpy_iterator())
    labels = np.concatenate([b["label"] for b in batches]).tolist()
    first, second = labels[:28], labels[28:]  # two epochs of the 28 training images
    expected = {info.labels.index(k): v for k, v in info.counts("train").items()}
    assert collections.Counter(first) == collections.Counter(second) == expected
    assert first != second


def test_a_stream_starts_at_a_batch(folder_builder, info):
    with pytest.raises(ValueError, match="start=6 is not a multiple of the batch size 4"):
        STREAMS["whole"](folder_builder, info, start=6)


def test_another_seed_reorders_the_same_examples(folder_builder, info):
    # An upstream seed changes the order examples are read in, never which examples:
    # the first epoch of every seed holds each training example once.
    n_train = folder_builder.info.splits["train"].num_examples

    def first_epoch(seed):
        ds = pipelines.whole(folder_builder, info, "train", 1, 16, training=True, seed=seed)
        return [int(b["label"][0]) for b in ds.take(n_train).as_numpy_iterator()]

    every = _all(pipelines.whole(folder_builder, info, "train", 4, 16, training=False))["label"]
    one, two = first_epoch(1), first_epoch(2)
    assert sorted(one) == sorted(two) == sorted(every.tolist())
    assert one != two
