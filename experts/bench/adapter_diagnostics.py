r"""Where an adapter expert puts what it learns, against a full expert (prints a table).

    python -m experts.bench.adapter_diagnostics \
        --config=experts/configs/adapter_diagnostics.py:cpu --workdir=runs/demo/upstream

Needs no training: it reads B, the full experts and the adapter experts of a finished
work tree and, on each expert slice's validation images, measures

* ``shift``: the share of the expert's feature change that is one offset common to the
  slice, ``||mean d||^2 / mean ||d||^2`` with ``d = f_e - f_B`` (pre-logits). A share
  near 1 moves every image alike: the sigmoid loss can fall while Euclidean
  nearest neighbours, hence the specialisation probes, stay as they were.
* the slice's sigmoid loss under B, the adapter and the full expert;
* ``rms``: RMS(a(x)) / RMS(x) of the adapter before each block (block 1 to 4), how
  far each adapter grew against the residual stream it adds to;
* ``bias``: the share of the adapter's loss gain over B that a head bias fitted to the
  slice recovers on B's features alone (per node, two-fold: fitted on one half of the
  images, measured on the other), and ``mean-d``: the share recovered by adding the
  adapter's mean feature change to B's features (B's head).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

import fanout.flags
from experts import jobs, work_tree
from experts.configs import adapter_diagnostics
from experts.data import pipelines
from experts.models.adapters import PAPER_WIDTH
from fanout import cli

PROGRAM = "experts.bench.adapter_diagnostics"


def shift_share(f_expert: np.ndarray, f_base: np.ndarray) -> float:
    """||mean d||^2 / mean ||d||^2 for d = f_expert - f_base (rows are images): 1 when
    every image moves by the same vector, 1/n for changes that cancel out on average."""
    d = np.asarray(f_expert, np.float64) - np.asarray(f_base, np.float64)
    total = float(np.mean(np.sum(d * d, axis=1)))
    return float(np.sum(d.mean(axis=0) ** 2) / total) if total > 0 else 0.0


def sigmoid_loss(targets: np.ndarray, logits: np.ndarray) -> float:
    """Sigmoid cross-entropy summed over outputs, averaged over images (as training)."""
    z = np.asarray(logits, np.float64)
    per_output = np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z)))
    return float(per_output.sum(axis=1).mean())


def fit_bias(
    targets: np.ndarray, logits: np.ndarray, steps: int, ridge: float = 1.0, bound: float = 15.0
) -> np.ndarray:
    """The per-output offset b minimising the summed sigmoid loss of ``logits + b`` plus
    ``ridge * b^2 / 2``: one convex 1-D problem per output, solved by Newton's method.
    The ridge keeps a slice prior and not a memory of the few images of a rare label
    (a label seen once in the fitting half and never in the other would cost the
    unregularised fit its whole bound there); ``bound`` caps what is left."""
    z, y = np.asarray(logits, np.float64), np.asarray(targets, np.float64)
    b = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z + b)))
        grad = (p - y).sum(axis=0) + ridge * b
        hess = (p * (1 - p)).sum(axis=0) + ridge
        b = np.clip(b - np.clip(grad / hess, -2.0, 2.0), -bound, bound)
    return b


def cross_fitted_bias_loss(targets, logits, steps: int) -> float:
    """The loss of ``logits`` plus a bias fitted on the other half of the images."""
    halves = [np.arange(len(logits))[k::2] for k in (0, 1)]
    total = 0.0
    for fit, use in (halves, halves[::-1]):
        bias = fit_bias(targets[fit], logits[fit], steps)
        total += sigmoid_loss(targets[use], logits[use] + bias) * len(use)
    return total / len(logits)


def recovered(base: float, reached: float, target: float) -> float:
    """The share of the gain ``base - target`` that ``reached`` recovers."""
    gain = base - target
    return (base - reached) / gain if gain > 0 else float("nan")


def _features(model, images, expert=None):
    """Pre-logits and logits (an adapter expert's with its own head bias, if it has one)."""
    kwargs = {} if expert is None else {"expert": tf.constant(expert, tf.int32)}
    out = model(images, **kwargs)
    return out["pre_logits"].numpy(), out["logits"].numpy()


def expert_row(data, models, e: int, name: str, config) -> dict:
    """The diagnostics of adapter expert ``e`` (node ``name``) and its full expert."""
    base, adapters, full = models["baseline"], models["adapters"], models["full"][name]
    ds = data.read(
        pipelines.expert_slice, name, split=jobs.EVAL_SPLIT, batch=config.eval_batch,
        training=False,
    ).unbatch().take(config.diagnostics.max_images).batch(config.eval_batch)  # fmt: skip
    parts = {k: [] for k in ("y", "fb", "zb", "fa", "za", "ff", "zf", "rms")}
    for batch in ds:
        images = batch["image"]
        parts["rms"].append(adapters.adapter_rms_ratios(images, e).numpy()[None])
        parts["y"].append(batch["targets"].numpy())
        for (f, z), (model, expert) in zip(
            (("fb", "zb"), ("fa", "za"), ("ff", "zf")),
            ((base, None), (adapters, e), (full, None)),
            strict=True,
        ):
            feats, logits = _features(model, images, expert)
            parts[f].append(feats)
            parts[z].append(logits)
    p = {k: np.concatenate(v) for k, v in parts.items()}
    loss = {
        k: sigmoid_loss(p["y"], p[z]) for k, z in (("B", "zb"), ("adapter", "za"), ("full", "zf"))
    }
    shifted = p["fb"] + (p["fa"] - p["fb"]).mean(axis=0)
    loss_shift = sigmoid_loss(p["y"], base.head(tf.constant(shifted, tf.float32)).numpy())
    loss_bias = cross_fitted_bias_loss(p["y"], p["zb"], config.diagnostics.newton_steps)
    return {
        "expert": name,
        "images": len(p["y"]),
        "shift_adapter": shift_share(p["fa"], p["fb"]),
        "shift_full": shift_share(p["ff"], p["fb"]),
        "loss_B": loss["B"],
        "loss_adapter": loss["adapter"],
        "loss_full": loss["full"],
        "loss_B_bias": loss_bias,
        "bias_recovers": recovered(loss["B"], loss_bias, loss["adapter"]),
        "mean_d_recovers": recovered(loss["B"], loss_shift, loss["adapter"]),
        "bias_recovers_full": recovered(loss["B"], loss_bias, loss["full"]),
        "rms": p["rms"].mean(axis=0).tolist(),
    }


def load_models(config, data, experts):
    tree = work_tree.WorkTree(config.workdir)
    recorded = tree.job("adapter", None).config()["model"]
    config.model.expert_head_bias = bool(recorded.get("expert_head_bias", False))
    config.model.adapter_scale = bool(recorded.get("adapter_scale", False))
    config.model.adapter_width = float(recorded.get("adapter_width", PAPER_WIDTH))
    adapters = jobs.sigmoid_model(config, data.num_nodes, num_experts=len(experts))
    models = {
        "baseline": data.baseline(config),
        "adapters": jobs.restore(adapters, str(tree.job("adapter", None).path)),
        "full": {},
    }
    for name in experts:
        model = jobs.sigmoid_model(config, data.num_nodes)
        models["full"][name] = jobs.restore(model, str(tree.job("full", name).path))
    return models


def table(rows: list[dict]) -> str:
    head = (
        "| expert | images | shift adapter | shift full | loss B | adapter | full "
        "| B + bias | bias recovers | mean-d recovers | rms a(x)/x, blocks 1-4 |"
    )
    lines = [head, "|---|" + "---:|" * 10]
    for r in rows:
        lines.append(
            f"| {r['expert']} | {r['images']} | {r['shift_adapter']:.3f} | {r['shift_full']:.3f} "
            f"| {r['loss_B']:.3f} | {r['loss_adapter']:.3f} | {r['loss_full']:.3f} "
            f"| {r['loss_B_bias']:.3f} | {r['bias_recovers']:.2f} | {r['mean_d_recovers']:.2f} "
            f"| {_ratios(r['rms'])} |"
        )
    med = {
        k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0] if k not in ("expert", "rms")
    }
    med_rms = np.median([r["rms"] for r in rows], axis=0)
    lines.append(
        f"| median | {med['images']:.0f} | {med['shift_adapter']:.3f} | {med['shift_full']:.3f} "
        f"| {med['loss_B']:.3f} | {med['loss_adapter']:.3f} | {med['loss_full']:.3f} "
        f"| {med['loss_B_bias']:.3f} | {med['bias_recovers']:.2f} | {med['mean_d_recovers']:.2f} "
        f"| {_ratios(med_rms)} |"
    )
    return "\n".join(lines)


def _ratios(values) -> str:
    return " ".join(f"{v:.3g}" for v in values)


def run(config) -> list[dict]:
    tree = work_tree.WorkTree(config.workdir)
    recorded = tree.job("adapter", None)
    if not recorded.finished():
        raise FileNotFoundError(f"{recorded.path} has no finished adapter job")
    config.data.experts = tuple(recorded.config()["data"]["experts"])
    config.baseline_workdir = config.baseline_workdir or str(tree.baseline.path)
    data = jobs.Upstream.open(config)
    experts = list(data.experts)
    models = load_models(config, data, experts)
    rows = []
    for e, name in enumerate(experts):
        rows.append(expert_row(data, models, e, name, config))
        print(f"{PROGRAM}: {e + 1}/{len(experts)} {name}", flush=True)
    return rows


def main(config):
    execute(config)


def execute(config) -> list[dict]:
    """``run`` and its table, with a user's mistake (no finished work tree, a missing
    full expert) ended in one line, as the binary reports it."""
    with cli.user_errors(PROGRAM):
        config.workdir = str(Path(config.workdir).resolve())
        rows = run(config)
    print(table(rows))
    return rows


if __name__ == "__main__":
    fanout.flags.launch(
        main, PROGRAM, "experts/configs/adapter_diagnostics.py:cpu",
        rules=adapter_diagnostics.RULES,
    )  # fmt: skip
