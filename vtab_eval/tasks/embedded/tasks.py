"""Registry entries of the embedded mini-VTAB suite.

Every task reads `train[:800]`, `validation[:200]` and `test` of its builder (the tfds
`validation` split exists for all of them). Builders are generated from local sources on
first use (nothing is downloaded) and cached in the tfds data_dir. `config="tiny"`
selects a few examples per split, for tests and smoke runs.
"""

from __future__ import annotations

from vtab_eval.tasks import base, vtab1k
from vtab_eval.tasks.embedded import dsprites, held_out, kanji, natural, rendered, specialized
from vtab_eval.tasks.registry import register, register_suite

CONFIGS = ("full", "tiny")


def _embedded_task(canonical, group, relation, builder_cls, config, labels, **opts):
    """``relation`` is ``(relation, nodes)``: how the task relates to the embedded
    upstream (experts/data/embedded/plan.py names its nodes), declared here, before any
    run."""
    if config not in CONFIGS:
        raise ValueError(f"task {canonical}: config must be one of {CONFIGS}, got {config!r}")
    task = base.TfdsTask(
        canonical,
        group=group,
        relation=relation[0],
        nodes=relation[1],
        num_classes=2,  # Placeholder until read from the builder's features below.
        # The version the code builds: a data_dir that holds an older one (whose images
        # differ) must not be read in its place.
        tfds_name=f"{builder_cls.name}/{config}:{builder_cls.VERSION}",
        split_fn=base.splits_from_validation,
        pair_fn=base.image_label,
        local_source=True,
        **opts,
    )
    task.num_classes, task.pair_fn = labels(task.builder.info.features)
    task.key = data_key(canonical, builder_cls)
    return task


def data_key(canonical: str, builder_cls) -> str:
    """What names a task's results and cached features: its spec, and once its builder's
    data has changed since the first release, the version too (the same spec over new
    images must not be served the old images' features)."""
    version = str(builder_cls.VERSION)
    return canonical if version == "1.0.0" else f"{canonical}#data={version}"


def _register(name: str, builder_cls):
    return register(name, key=lambda canonical, **kwargs: data_key(canonical, builder_cls))


def _plain_labels(features):
    return features["label"].num_classes, base.image_label


UNRELATED = ("unrelated", ())


def _plain(name: str, group: str, relation, builder_cls) -> None:
    @_register(name, builder_cls)
    def factory(canonical, config="full", **opts):
        return _embedded_task(
            canonical, group, relation, builder_cls, config, _plain_labels, **opts
        )


# Classes the upstream never saw, of its own domains (held_out.py).
_plain("mini_emoji", "natural", ("matched", ("emoji",)), held_out.MiniVtabEmoji)
_plain("mini_han_radical", "natural", ("matched", ("script/han",)), held_out.MiniVtabHanRadical)
# Clothes are one emoji subgroup (Objects > clothing); the pictures are photographs.
_plain("mini_fashion_mnist", "natural", ("weak", ("emoji/objects",)), natural.MiniVtabFashionMnist)
# Handwritten digits: the domain of the digit node (printed digits of many scripts).
_plain("mini_mnist", "natural", ("matched", ("category/digit",)), natural.MiniVtabMnist)
# Clip art of animals, food, people, transport, ...: what emoji draw.
_plain("mini_clipart", "natural", ("matched", ("emoji",)), natural.MiniVtabClipart)
_plain("mini_brain_mri", "specialized", UNRELATED, specialized.MiniVtabBrainMri)
_plain(
    "mini_digits8x8", "specialized", ("matched", ("category/digit",)), specialized.MiniVtabDigits8x8
)
# Han characters, but the skill (counting strokes) is no upstream label.
_plain("mini_kanji_strokes", "structured", ("weak", ("script/han",)), kanji.MiniVtabKanji)


@_register("mini_dsprites", dsprites.MiniVtabDsprites)
def mini_dsprites(canonical, predicted_attribute, num_classes=None, config="full", **opts):
    def labels(features):
        num_original = vtab1k.check_attribute(features, predicted_attribute, "mini_dsprites")
        return vtab1k.binned_attribute_pair_fn(
            predicted_attribute, num_original, num_classes, "mini_dsprites"
        )

    builder = dsprites.MiniVtabDsprites
    return _embedded_task(canonical, "structured", UNRELATED, builder, config, labels, **opts)


@_register("mini_smallnorb", rendered.MiniVtabSmallnorb)
def mini_smallnorb(canonical, predicted_attribute, num_classes=None, config="full", **opts):
    """``num_classes`` bins neighbouring values, as dSprites' tasks do."""

    def labels(features):
        num_original = vtab1k.check_attribute(features, predicted_attribute, "mini_smallnorb")
        return vtab1k.binned_attribute_pair_fn(
            predicted_attribute, num_original, num_classes, "mini_smallnorb"
        )

    builder = rendered.MiniVtabSmallnorb
    return _embedded_task(canonical, "structured", UNRELATED, builder, config, labels, **opts)


@_register("mini_clevr", rendered.MiniVtabClevr)
def mini_clevr(canonical, task, config="full", **opts):
    def labels(features):
        del features
        return vtab1k.clevr_pair_fn(task)

    builder = rendered.MiniVtabClevr
    return _embedded_task(canonical, "structured", UNRELATED, builder, config, labels, **opts)


# A miniature of VTAB-1k (7:4:8 natural:specialized:structured) in its relation to the
# upstream: most natural tasks are of the upstream's domains (as VTAB's natural tasks are
# slices of ImageNet-21k's), the structured ones are not. smallNORB elevation is left
# out, and dSprites orientation and smallNORB azimuth have coarser bins than VTAB's:
# B's accuracy near chance says nothing (the suite keeps tasks where B is in 25-85%).
EMBEDDED_SPECS = (
    # natural
    "mini_emoji",
    "mini_han_radical",
    "mini_mnist",
    "mini_clipart",
    "mini_fashion_mnist",
    # specialized
    "mini_brain_mri",
    "mini_digits8x8",
    # structured
    'mini_dsprites(predicted_attribute="label_x_position",num_classes=16)',
    'mini_dsprites(predicted_attribute="label_orientation",num_classes=4)',
    'mini_smallnorb(predicted_attribute="label_azimuth",num_classes=9)',
    'mini_clevr(task="count_all")',
    'mini_clevr(task="closest_object_distance")',
    "mini_kanji_strokes",
)
register_suite("embedded", EMBEDDED_SPECS)
