r"""The feature proxies' CPU seconds on synthetic features of a pool's shape, timed by
the call the ranking command makes (`vtab_eval.rank.score_proxies`), this source tree
against another in one run.

    git worktree add /tmp/wt-before <older commit>
    python -m vtab_eval.bench.proxy_speed --config=vtab_eval/configs/proxy_speed.py:cpu \
        --workdir=runs/bench/proxy_speed --config.baseline=/tmp/wt-before

Each tree is timed in a child process of its own (its sources first on `sys.path`,
`config.threads` BLAS threads), the trees alternating for `config.rounds` rounds, so a
machine shared with other jobs slows both alike; the table gives each proxy's median
CPU seconds per tree, their ratio, and the largest relative difference between the
two trees' scores of a module (what a change of the arithmetic did to the results).
A tree older than `score_proxies` is timed by the loop the command then ran.

The features stand in for a pool's embeddings of one task: per module, a 64-dimensional
Gaussian latent whose class means are `signal` apart (the signal grows over the
modules, so their scores differ), mixed into `dims` columns, thresholded at zero as a
ReLU is (each column at its own level, so columns are sparse to a different degree,
and a twentieth never fire: the dead units real embeddings have), and scaled per column
over a decade each way. Writes `<workdir>/proxy_speed.json` and `.md`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

PROGRAM = "vtab_eval.bench.proxy_speed"
_MARK = "PROXY_SPEED_RESULT "
# Runs this file in a child with `tree` first on the path: `python -c BOOT tree file args`.
_BOOT = (
    "import runpy, sys; sys.path.insert(0, sys.argv[1]); "
    "runpy.run_path(sys.argv[2], run_name='proxy_speed_child')['child'](sys.argv[3])"
)
SHARED = "(shared)"  # the row of what the proxies share, counted once
LATENT_DIMS = 64
DEAD_FRACTION = 0.05


def synthetic_features(index: int, images: int, dims: int, classes: int, seed: int):
    """(float32 features [images, dims], int labels) of module `index` (see the module
    docstring)."""
    rng = np.random.default_rng([seed, index])
    labels = np.arange(images) % classes
    signal = 0.1 + 0.02 * index
    centres = rng.normal(size=(classes, LATENT_DIMS)) * signal
    latent = centres[labels] + rng.normal(size=(images, LATENT_DIMS))
    mix = rng.normal(size=(LATENT_DIMS, dims)) / np.sqrt(LATENT_DIMS)
    before = latent @ mix + 0.1 * rng.normal(size=(images, dims))
    levels = before.std(axis=0) * rng.uniform(0.0, 2.5, dims)
    levels[rng.random(dims) < DEAD_FRACTION] = np.inf  # never fires
    features = np.maximum(before - levels, 0.0) * np.exp(rng.uniform(-2.3, 2.3, dims))
    return features.astype(np.float32), labels


class _Store:
    """A feature cache in memory (what the ranking command's store is once read)."""

    compute_seconds = load_seconds = 0.0

    def __init__(self, outputs):
        self._outputs = outputs

    def outputs(self, handle, task, split):
        features, labels = self._outputs[handle]
        return features, labels, 0.0


def _timed(names, task, ctx, workers: int):
    """({proxy: result}, {proxy: CPU seconds}, CPU seconds the proxies shared) as the
    tree's ranking command gets them (`workers` modules at a time where it can)."""
    import inspect

    from vtab_eval import rank

    if hasattr(rank, "score_proxies"):
        takes_workers = "workers" in inspect.signature(rank.score_proxies).parameters
        extra = {"workers": workers} if takes_workers else {}
        timed = rank.score_proxies(names, task, ctx, True, **extra)
        return timed if len(timed) == 3 else (*timed, 0.0)
    from vtab_eval import selection

    results, cpu = {}, {}
    for name in names:  # the command's loop before score_proxies
        before = time.process_time()
        results[name] = selection.get_selector(name, include_baseline=True).select(task, ctx)
        cpu[name] = time.process_time() - before
    return results, cpu, 0.0


def child(arguments: str) -> None:
    """In a child process: times every proxy on the synthetic pool, prints the figures."""
    import vtab_eval
    from vtab_eval import selection
    from vtab_eval.pool.expert_pool import Module, Pool

    a = json.loads(arguments)
    handles = [f"m{i:02d}" for i in range(a["modules"])]
    outputs = {
        h: synthetic_features(i, a["images"], a["dims"], a["classes"], a["seed"])
        for i, h in enumerate(handles)
    }
    kinds = {h: "baseline" if i == 0 else "full" for i, h in enumerate(handles)}
    pool = Pool(tuple(Module(h, h, {"kind": kinds[h]}) for h in handles))
    task = types.SimpleNamespace(name="synthetic", spec="synthetic", key="synthetic")
    ctx = selection.Context(pool, _Store(outputs), seed=a["seed"])
    start = time.perf_counter()
    results, cpu, shared = _timed(a["proxies"], task, ctx, a["workers"])
    elapsed = time.perf_counter() - start
    figures = {
        "workers": a["workers"],
        "elapsed_seconds": elapsed,
        "source": str(Path(vtab_eval.__file__).parents[1]),
        "cpu_seconds": {**cpu, SHARED: shared},
        "wall_seconds": {**{n: r.seconds for n, r in results.items()}, SHARED: 0.0},
        "scores": {n: r.scores for n, r in results.items()},
    }
    print(_MARK + json.dumps(figures), flush=True)


def _run_child(tree: Path, config, workers: int) -> dict:
    arguments = {
        "workers": workers,
        "modules": config.modules,
        "images": config.images,
        "dims": config.dims,
        "classes": config.classes,
        "seed": config.seed,
        "proxies": [n.strip() for n in config.proxies.split(",") if n.strip()],
    }
    threads = str(config.threads)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _BOOT, str(tree), __file__, json.dumps(arguments)],
        capture_output=True, text=True, env=env, cwd=tree, check=False,
    )  # fmt: skip
    lines = [x for x in done.stdout.splitlines() if x.startswith(_MARK)]
    if done.returncode or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"timing the proxies of {tree} failed: {tail}")
    figures = json.loads(lines[-1][len(_MARK) :])
    if Path(figures["source"]).resolve() != tree.resolve():
        raise RuntimeError(f"the child for {tree} imported vtab_eval from {figures['source']}")
    return figures


def _largest_difference(before: dict, after: dict) -> float:
    """The largest |a - b| / max(|a|, |b|) over the modules both scored finitely."""
    worst = 0.0
    for module, a in before.items():
        b = after.get(module)
        if b is None or not (np.isfinite(a) and np.isfinite(b)):
            continue
        scale = max(abs(a), abs(b))
        worst = max(worst, abs(a - b) / scale if scale else 0.0)
    return worst


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Per proxy: each tree's median CPU seconds (and wall), and with two trees their
    ratio and the largest relative difference of their scores."""
    trees = list(runs)
    names = list(runs[trees[-1]][0]["cpu_seconds"])
    rows = {}
    for name in names:
        row = {}
        for tree in trees:
            row[tree] = statistics.median(r["cpu_seconds"].get(name, 0.0) for r in runs[tree])
            row[f"{tree}_wall"] = statistics.median(
                r["wall_seconds"].get(name, 0.0) for r in runs[tree]
            )
        if len(trees) == 2:
            row["ratio"] = row[trees[0]] / max(row[trees[1]], 1e-9)
            scores = [runs[t][0]["scores"].get(name) for t in trees]
            row["score_difference"] = None if None in scores else _largest_difference(*scores)
        rows[name] = row
    totals = {tree: sum(rows[n][tree] for n in names) for tree in trees}
    elapsed = {
        tree: statistics.median(r.get("elapsed_seconds", math.nan) for r in runs[tree])
        for tree in trees
    }
    workers = {tree: runs[tree][0].get("workers", 1) for tree in trees}
    return {
        "trees": trees,
        "proxies": rows,
        "total_cpu_seconds": totals,
        "elapsed": elapsed,
        "workers": workers,
    }


def markdown(summary: dict, config) -> str:
    trees = summary["trees"]
    head = f"{config.modules} modules x {config.images} images x {config.dims} features, "
    head += f"{config.classes} classes (synthetic), {config.threads} BLAS thread(s)"
    columns = [f"{t} CPU s" for t in trees] + (
        ["speed-up", "max score change"] if len(trees) == 2 else []
    )
    lines = [head, "", "| proxy | " + " | ".join(columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for name, row in summary["proxies"].items():
        cells = [f"{row[t]:.3f}" for t in trees]
        if len(trees) == 2:
            difference = row["score_difference"]
            cells += [
                f"{row['ratio']:.1f}x" if row[trees[0]] else "",
                "" if difference is None else f"{difference:.1e}",
            ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [f"{summary['total_cpu_seconds'][t]:.2f}" for t in trees]
    if len(trees) == 2:
        t0, t1 = (summary["total_cpu_seconds"][t] for t in trees)
        totals += [f"{t0 / max(t1, 1e-9):.1f}x", ""]
    lines.append("| all | " + " | ".join(totals) + " |")
    elapsed = [f"{summary['elapsed'][t]:.2f}" for t in trees]
    if len(trees) == 2:
        e0, e1 = (summary["elapsed"][t] for t in trees)
        elapsed += [f"{e0 / max(e1, 1e-9):.1f}x", ""]
    lines.append("| elapsed (wall s, the whole call) | " + " | ".join(elapsed) + " |")
    workers = ", ".join(f"{t} {summary['workers'][t]}" for t in trees)
    lines.append(f"\nmodules scored side by side: {workers}")
    return "\n".join(lines) + "\n"


def execute(config, workdir: str | None, log=print) -> dict:
    from fanout import cli, config_rules
    from vtab_eval import files
    from vtab_eval.configs import proxy_speed as proxy_speed_config

    with cli.user_errors(PROGRAM):
        config_rules.check(config, proxy_speed_config.RULES)
        if not workdir:
            raise ValueError("--workdir is required: where proxy_speed.json and .md go")
        here = Path(__file__).resolve().parents[2]
        trees = {"after": here}
        if config.baseline:
            baseline = Path(config.baseline).expanduser()
            if not (baseline / "vtab_eval" / "selection").is_dir():
                raise ValueError(f"config.baseline={config.baseline!r} is no source tree")
            trees = {"before": baseline, "after": here}
        runs = {name: [] for name in trees}
        workers = {"before": config.baseline_workers, "after": config.workers}
        load = os.getloadavg()[0]
        for round_index in range(config.rounds):
            order = list(trees) if round_index % 2 == 0 else list(trees)[::-1]
            for name in order:
                runs[name].append(_run_child(trees[name], config, workers[name]))
                log(f"round {round_index + 1}: {name} timed ({trees[name]})")
        summary = {**summarise(runs), "load_average": load, "config": config.to_dict()}
        summary["sources"] = {name: str(path) for name, path in trees.items()}
        out = Path(workdir)
        files.write_json(out / "proxy_speed.json", {**summary, "runs": runs})
        text = markdown(summary, config) + f"\nload average at the start: {load:.1f}\n"
        files.write_text(out / "proxy_speed.md", text)
    log(text)
    return summary


def main(config):
    execute(config, config.workdir, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    import fanout.flags

    fanout.flags.launch(main, PROGRAM, "vtab_eval/configs/proxy_speed.py:cpu")
