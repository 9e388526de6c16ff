r"""Exports a freshly initialised model of a preset's baseline size as a hub module, for
the downstream accelerator table (``vtab_eval.bench.accelerator``) to time.

    python -m hub_export.bench.accelerator_module --preset=paper --out=runs/bench/accelerator_module
    python -m vtab_eval.bench.accelerator --preset=paper --module=runs/bench/accelerator_module

``make bench-accelerator`` runs both after ``experts.bench.accelerator`` (the upstream
train steps). The model has the preset's baseline architecture and resolution
(``--size``, ``--image_size`` override them); weights do not change the cost. Beside
the module goes its ``expert_info.json`` (kind ``baseline``, arch, input size), from
which the downstream table takes its model column and image size, as it would from any
module this package exports. ``--out`` is written whole or not at all (a temporary
sibling renamed into place), and replaced only if this program wrote it.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags, logging

from experts.configs import baseline
from experts.models import resnet_v2
from fanout import cli, files
from hub_export import metadata, modules, tree

PROGRAM = "hub_export.bench.accelerator_module"


def fresh_info(size: str, image_size: int, feature_dim: int) -> dict:
    """The module's expert_info: a baseline of ``size`` that saw no images."""
    handle = tree.Handle.make("local", "baseline", size, "fresh")
    return metadata.expert_info(
        handle,
        node=None,
        description="freshly initialised weights, for timing only",
        feature_dim=feature_dim,
        upstream={},
        images_seen=0,
        training={},
        image_size=image_size,
        output={},
        provenance={"program": PROGRAM},
    )


def export_fresh(size: str, image_size: int, out: str | Path) -> resnet_v2.ResNetV2:
    """A fresh model of ``size`` and its hub module (with its info file) in ``out``."""
    out = Path(out)
    model = resnet_v2.ResNetV2(size, 0).build_for(image_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.make_temp_dir(f".{out.name}.tmp-", out.parent, owner=PROGRAM)
    try:
        modules.save(modules.resnet_feature_vector(model), tmp)
        metadata.write_info(tmp, fresh_info(size, image_size, model.feature_dim))
        files.replace_dir(tmp, out, PROGRAM)
    finally:
        if tmp.exists():
            files.remove_dir(tmp, PROGRAM)
    return model


def define_flags() -> None:
    flags.DEFINE_enum("preset", "paper", ["smoke", "cpu", "paper"], "The configs' preset.")
    flags.DEFINE_string("size", None, "ResNet-v2 size; default: the preset's baseline.")
    flags.DEFINE_integer("image_size", None, "Input size; default: the preset's baseline.")
    flags.DEFINE_string("out", None, "Directory to write the module to.")
    flags.mark_flag_as_required("out")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f["verbosity"].present:  # the export's INFO lines would bury the result
        logging.set_verbosity(logging.WARNING)
    with cli.user_errors(PROGRAM):
        model_config = baseline.get_config(f.preset).model
        size = f.size or model_config.size
        image_size = f.image_size or model_config.image_size
        export_fresh(size, image_size, f.out)
    print(f"a fresh {size} at {image_size}px exported to {f.out}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser(PROGRAM))
