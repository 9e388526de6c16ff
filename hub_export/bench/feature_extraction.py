r"""Feature-extraction throughput: an exported module against the bare tf_keras model.

    python -m hub_export.bench.feature_extraction --size=r26x0.25 --image_size=32 --batch=256
    python -m hub_export.bench.feature_extraction --module=runs/demo/hub/local/experts/bit/...
    python -m hub_export.bench.feature_extraction --hub_root=runs/demo/hub --output=runs/bench/hub.json

Both sides embed the same in-memory batches with ``training=False``: the bare side is
``model(images)["pre_logits"]`` under ``tf.function`` (how a feature extractor runs the
Keras model), the hub side is ``hub.KerasLayer(module)`` under ``tf.function`` (how
``vtab_eval`` runs it), loaded through the module check every load goes through
(``fanout.module_check``). Without ``--module`` or ``--hub_root`` a freshly initialised
model of ``--size`` is exported to a temporary directory; with them, the bare model is a
fresh model of each module's arch, with one adapter set for an adapter expert (weights
do not change the cost). ``--module`` may be repeated; ``--hub_root`` adds the first
module (by handle) of each feature-vector kind in that tree: baseline, full, adapter.
Rounds alternate between the two sides and the median is reported, so machine load
hits both alike. Target: ratio >= 0.9.

``--precision`` (float32, bfloat16, float16) runs each side the way it would run in that
precision: the bare model under the Keras ``mixed_<precision>`` policy
(``experts.models.resnet_v2``), the module (a float32 graph) under TensorFlow's
mixed-precision rewrite as ``vtab_eval`` applies it (``fanout.precision``), which
TensorFlow skips on machines without the hardware for it (it says which in the output).

``--output`` writes the figures as JSON (atomically, after each module), one entry per
module, image size and batch. A rerun keeps the other entries and skips a module
already measured with the same settings (``--overwrite`` measures it again);
``to_markdown`` renders the file as a table.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from absl import app, flags

from experts.models import resnet_v2
from fanout import cli, files, module_check
from fanout import precision as precision_lib
from hub_export import modules, tree


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines this binary's flags; only when run as a program, so importing the module
    claims no global flag names (``hub_export.catalog`` also has ``--hub_root``)."""
    flags.DEFINE_string("size", "r26x0.25", "ResNet-v2 size (without a module).", flag_values=fv)
    flags.DEFINE_integer("image_size", 32, "Input height and width.", flag_values=fv)
    flags.DEFINE_integer("batch", 256, "Images per batch.", flag_values=fv)
    flags.DEFINE_integer("batches", 10, "Batches per timed round.", flag_values=fv)
    flags.DEFINE_integer("rounds", 5, "Timed rounds per side (alternating).", flag_values=fv)
    flags.DEFINE_multi_string(
        "module", [], "An exported feature-vector module directory (repeatable).", flag_values=fv
    )
    flags.DEFINE_string(
        "hub_root",
        None,
        "Also measure the first baseline, full and adapter module of this tree.",
        flag_values=fv,
    )
    flags.DEFINE_string("output", None, "Write the figures to this JSON file.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Remeasure modules already in --output.", flag_values=fv)
    flags.DEFINE_enum(
        "precision", "float32", list(precision_lib.PRECISIONS), "Compute precision of both sides.",
        flag_values=fv,
    )  # fmt: skip


def throughput(fn, images: tf.Tensor, batches: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        out = fn(images)
    out.numpy()  # wait for the last batch
    return batches * int(images.shape[0]) / (time.perf_counter() - start)


def compare(
    model: resnet_v2.ResNetV2, module_dir: str, images, batches: int, rounds: int,
    precision: str = "float32",
):  # fmt: skip
    """(bare images/s, hub images/s): medians over alternating rounds. ``model`` has the
    module's architecture (a one-expert adapter model for an adapter expert) and the
    bare side's precision; the hub side runs in ``precision``'s rewrite."""
    expert = 0 if model.num_experts else None
    bare = tf.function(lambda x: model(x, expert=expert, training=False)["pre_logits"])
    layer = module_check.load(module_dir)  # refused before it runs if it is not pure compute
    via_hub = tf.function(lambda x: layer(x, training=False))

    def hub_throughput(count):
        with precision_lib.rewrite(precision):
            return throughput(via_hub, images, count)

    throughput(bare, images, 2)  # trace and warm up
    hub_throughput(2)
    results = {"bare": [], "hub": []}
    for _ in range(rounds):
        results["bare"].append(throughput(bare, images, batches))
        results["hub"].append(hub_throughput(batches))
    return statistics.median(results["bare"]), statistics.median(results["hub"])


def hub_root_modules(root: str) -> list[str]:
    """The first module (by handle) of each feature-vector kind under ``root``."""
    found = []
    for kind in tree.feature_vector_kinds():
        listed = tree.catalog(root, kind)
        if listed:
            found.append(listed[0]["path"])
    if not found:
        raise app.UsageError(f"--hub_root: no feature-vector module under {root}")
    return found


def describe(module_dir: str | None, size: str) -> dict:
    """Who is measured: the module's handle, name, kind and arch (from its info file),
    or a fresh export of ``size``."""
    if not module_dir:
        return {"module": None, "handle": f"fresh/{size}", "name": "fresh", "kind": None}
    path = Path(module_dir)
    info = json.loads((path / tree.INFO_FILE).read_text())
    if info["kind"] not in tree.feature_vector_kinds():
        raise app.UsageError(f"--module: a {info['kind']} module is not one expert")
    return {
        "module": str(path),
        "handle": info.get("handle", str(path)),
        "name": info.get("name", path.name),
        "kind": info["kind"],
        "arch": info["arch"],
        # A re-exported module is measured again.
        "module_mtime_ns": (path / tree.SAVED_MODEL_FILE).stat().st_mtime_ns,
    }


def measure(
    who: dict, size: str, image_size: int, batch: int, batches: int, rounds: int,
    precision: str = "float32",
):  # fmt: skip
    """Figures for one module (``describe``'s output): bare and hub images/s."""
    size = who.get("arch", size)
    policy = "float32" if precision == "float32" else f"mixed_{precision}"
    with tempfile.TemporaryDirectory() as tmp:
        module_dir = who["module"]
        num_experts = int(who["kind"] == "adapter")
        model = resnet_v2.ResNetV2(size, 0, num_experts, dtype=policy).build_for(image_size)
        if not module_dir:  # exported in float32 whatever the policy (modules.py)
            module_dir = str(Path(tmp) / "module")
            start = time.perf_counter()
            modules.save(modules.resnet_feature_vector(model), module_dir)
            print(f"exported a fresh {size} in {time.perf_counter() - start:.1f}s")
        images = tf.random.stateless_uniform([batch, image_size, image_size, 3], seed=[0, 1])
        bare, via_hub = compare(model, module_dir, images, batches, rounds, precision)
    return {
        **who,
        "arch": size,
        "precision": precision,
        "rewrite_effective": precision_lib.effective(precision),
        "image_size": image_size,
        "batch": batch,
        "batches": batches,
        "rounds": rounds,
        "bare_images_per_second": bare,
        "hub_images_per_second": via_hub,
        "ratio": via_hub / bare,
        "load_average": os.getloadavg()[0],
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def entry_key(who: dict, image_size: int, batch: int, precision: str = "float32") -> str:
    suffix = "" if precision == "float32" else f"/{precision}"
    return f"{who['handle']}@{image_size}px/batch{batch}{suffix}"


# What a stored entry must match to be reused (entries written before --precision
# existed are float32).
_SETTINGS = ("module", "module_mtime_ns", "image_size", "batch", "batches", "rounds", "precision")


def read_results(path: str | os.PathLike) -> dict:
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("measurements", {})
    return results


def write_results(path: str | os.PathLike, results: dict) -> None:
    """Writes ``results`` as JSON atomically: a reader sees the old file or the new one."""
    files.write_json(path, results)


def to_markdown(results: dict) -> str:
    """The measurements as a Markdown table, one row per module, image size and batch."""
    lines = [
        "| module | image size | batch | precision | bare img/s | hub img/s | hub/bare |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for _, e in sorted(results["measurements"].items()):
        lines.append(
            f"| {e['handle']} | {e['image_size']} | {e['batch']} "
            f"| {e.get('precision', 'float32')} "
            f"| {e['bare_images_per_second']:,.0f} | {e['hub_images_per_second']:,.0f} "
            f"| {e['ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def report(figures: dict) -> None:
    precision = figures.get("precision", "float32")
    print(
        f"{figures['arch']} at {figures['image_size']}px, batch {figures['batch']}, "
        f"{precision}, feature extraction:"
    )
    if precision != "float32" and not figures.get("rewrite_effective"):
        print(f"  (TensorFlow's {precision} rewrite has no effect here: the module ran in float32)")
    print(f"  bare tf_keras model: {figures['bare_images_per_second']:,.0f} img/s")
    print(f"  hub.KerasLayer:      {figures['hub_images_per_second']:,.0f} img/s")
    print(f"  ratio hub / bare:    {figures['ratio']:.3f} (target >= 0.9)")


def run(fv: flags.FlagValues) -> dict:
    """Measures what the parsed flags ask for; returns the results (as written)."""
    module_dirs = list(fv.module)
    if fv.hub_root:
        module_dirs += hub_root_modules(fv.hub_root)
    if not module_dirs:
        module_dirs = [None]
    results = read_results(fv.output) if fv.output else {"measurements": {}}
    for module_dir in module_dirs:
        who = describe(module_dir, fv.size)
        key = entry_key(who, fv.image_size, fv.batch, fv.precision)
        wanted = {**who, "image_size": fv.image_size, "batch": fv.batch}
        wanted.update(batches=fv.batches, rounds=fv.rounds, precision=fv.precision)
        old = results["measurements"].get(key)
        if fv.output and not fv.overwrite and old and _same_settings(old, wanted):
            print(f"{key}: measured already (--overwrite measures it again)")
            report(old)
            continue
        if module_dir:
            print(f"module {who['handle']}")
        figures = measure(
            who, fv.size, fv.image_size, fv.batch, fv.batches, fv.rounds, fv.precision
        )
        report(figures)
        results["measurements"][key] = figures
        if fv.output:
            write_results(fv.output, results)
    return results


def _same_settings(old: dict, wanted: dict) -> bool:
    old = {"precision": "float32", **old}
    return all(old.get(k) == wanted.get(k) for k in _SETTINGS)


def main(argv):
    del argv
    fv = flags.FLAGS
    with cli.user_errors("hub_export.bench.feature_extraction"):
        results = run(fv)
    if fv.output:
        print(f"\n{to_markdown(results)}\nwritten to {fv.output}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("hub_export.bench.feature_extraction"))
