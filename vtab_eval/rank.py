r"""Ranks a pool's modules for one task with every transferability proxy, in seconds
once the features are cached, before paying for any fine-tuning.

    python -m vtab_eval.rank --config=vtab_eval/configs/rank.py:cpu \
        --config.pool=runs/hub --config.task=/data/birds --workdir=runs/rank

    --config.pool     a hub tree root or comma-separated module handles
    --config.task     a task spec (mini_clipart) or a folder of images, one
                      sub-folder per class
    --config.proxies  comma-separated proxy names, or `all`
    --workdir         the feature cache (<workdir>/features, reused by every run) and
                      the table (<workdir>/ranking/<task>.json and .csv)

Prints the top modules by `rank_by`'s score with every proxy's score, and the seconds
each proxy took on the cached features (reading the cache, or embedding what is not
cached, is timed apart; so is what the feature proxies share, computed once per module:
its covariance and eigendecomposition, its nearest neighbours). Presets and every field:
vtab_eval/configs/rank.py.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path

import fanout.flags
from fanout import cli, config_rules
from vtab_eval.configs import rank as rank_config

PROGRAM = "vtab_eval.rank"


def task_spec(task: str) -> str:
    """`task` as a task spec: a folder of images becomes `image_folder(path=...)`."""
    from vtab_eval.tasks.spec import format_spec

    if os.path.isdir(task):
        return format_spec("image_folder", {"path": os.path.abspath(task)})
    return task


def proxy_names(config) -> list[str]:
    from vtab_eval import selection

    if config.proxies.strip() == "all":
        names = [
            n
            for n in selection.table_order()
            if selection.SELECTORS[n].is_proxy and selection.SELECTORS[n].needs == "features"
        ]
    else:
        names = [n.strip() for n in config.proxies.split(",") if n.strip()]
    if not names:
        raise ValueError("config.proxies names no proxy")
    for name in names:
        cls = selection.selector_class(name)  # an unknown name: one line listing the known
        if cls.needs != "features":
            raise ValueError(f"config.proxies: {name} does not score modules from their features")
    if config.rank_by not in names:
        raise ValueError(f"config.rank_by={config.rank_by!r} is not among config.proxies")
    return names


class _MemoryStore:
    """The feature store with every split read once and kept in memory, so the proxies
    are timed on their arithmetic, not on reading the same files again."""

    def __init__(self, store):
        self._store = store
        self._kept = {}

    def __getattr__(self, name):
        return getattr(self._store, name)

    def outputs(self, handle, task, split):
        key = (handle, task.key, split)
        if key not in self._kept:
            self._kept[key] = self._store.outputs(handle, task, split)
        return self._kept[key]


def workers(config) -> int:
    """The modules scored side by side: `config.workers`, or with 0 one per core this
    process may use."""
    return config.workers or len(os.sched_getaffinity(0))


def score_proxies(
    names, task, ctx, include_baseline: bool, workers: int = 1
) -> tuple[dict, dict, float]:
    """({proxy: SelectionResult}, {proxy: CPU seconds}, shared CPU seconds) of every named
    proxy on the pool's cached features (`vtab_eval.bench.proxy_speed` times this same
    call). The feature proxies score the pool in one pass over the modules, sharing
    each module's checked copy, covariance, eigendecomposition and nearest neighbours
    (`proxy_math.Labelled`), whose CPU seconds
    are counted once, apart (`feature_proxy.select_together`, `workers` modules at a
    time)."""
    from vtab_eval import selection
    from vtab_eval.selection.feature_proxy import FeatureProxy, select_together

    selectors = {n: selection.get_selector(n, include_baseline=include_baseline) for n in names}
    together = [s for s in selectors.values() if isinstance(s, FeatureProxy)]
    results, cpu, shared = (
        select_together(together, task, ctx, workers) if together else ({}, {}, 0.0)
    )
    for name, selector in selectors.items():
        if name in results:
            continue
        before = time.process_time()
        results[name] = selector.select(task, ctx)
        # CPU seconds beside the wall time: on a shared machine the wall time also
        # counts waiting for a core.
        cpu[name] = time.process_time() - before
    return {n: results[n] for n in names}, {n: cpu[n] for n in names}, shared


def rank(config, workdir: str, log=print) -> dict:
    """Scores every module of the pool with every proxy; writes and returns the table."""
    from vtab_eval import features, files, selection, tasks
    from vtab_eval.pool import expert_pool

    names = proxy_names(config)
    pool = expert_pool.open_pool(config.pool)
    task = tasks.get_task(task_spec(config.task), data_dir=config.data_dir or None)
    cache = features.FeatureStore(
        Path(workdir) / "features", config.image_size, config.batch_size, precision=config.precision
    )
    store = _MemoryStore(cache)
    start = time.perf_counter()
    for expert in pool.experts:
        store.outputs(expert.handle, task, config.split)
    reading = time.perf_counter() - start
    ctx = selection.Context(pool, store, split=config.split, seed=config.seed)
    start = time.perf_counter()
    threads = workers(config)
    results, cpu, shared = score_proxies(names, task, ctx, config.include_baseline, threads)
    seconds = {"cache": reading, "proxies": time.perf_counter() - start, "shared_cpu": shared}
    table = _table(task, pool, config, results, cpu, seconds, threads)
    out = Path(workdir) / "ranking" / files.slug(task.key)
    files.write_json(out.with_suffix(".json"), table)
    files.write_text(out.with_suffix(".csv"), _csv(table))
    for line in _lines(table, config.top):
        log(line)
    log(f"table: {out.with_suffix('.json')} and {out.with_suffix('.csv')}")
    return table


def _table(task, pool, config, results, cpu, seconds, workers: int) -> dict:
    by = results[config.rank_by].scores
    order = sorted(pool.ids, key=lambda m: -by[m] if math.isfinite(by[m]) else math.inf)
    return {
        "task": task.spec,
        "split": config.split,
        "rank_by": config.rank_by,
        "cache_seconds": seconds["cache"],
        "proxies_seconds": seconds["proxies"],  # wall, every proxy and what they share
        "workers": workers,  # modules scored side by side
        # What the feature proxies shared, counted once: each module's checked copy,
        # covariance, eigendecomposition and nearest neighbours.
        "shared_cpu_seconds": seconds["shared_cpu"],
        "proxies": {
            n: {
                "seconds": r.seconds,
                "cpu_seconds": cpu[n],
                "pick": r.pick,
                "scores": {k: (v if math.isfinite(v) else None) for k, v in r.scores.items()},
                "details": r.details,
            }
            for n, r in results.items()
        },
        "ranking": order,
        "kinds": {e.id: e.kind for e in pool.experts},
    }


def _lines(table, top: int):
    from vtab_eval.pool.expert_pool import short_name

    names = list(table["proxies"])
    width = max([len("cpu seconds")] + [len(short_name(m)) for m in table["ranking"][:top]])
    yield f"task {table['task']}: {len(table['ranking'])} modules, ranked by {table['rank_by']}"
    yield " ".join([f"{'module':<{width}}"] + [f"{n[:13]:>13}" for n in names])
    for module in table["ranking"][:top]:
        cells = [table["proxies"][n]["scores"][module] for n in names]
        yield " ".join(
            [f"{short_name(module):<{width}}"]
            + [f"{'-':>13}" if c is None else f"{c:>13.5g}" for c in cells]
        )
    yield " ".join(
        [f"{'seconds':<{width}}"] + [f"{table['proxies'][n]['seconds']:>13.3f}" for n in names]
    )
    yield " ".join(
        [f"{'cpu seconds':<{width}}"]
        + [f"{table['proxies'][n]['cpu_seconds']:>13.3f}" for n in names]
    )
    total = table["proxies_seconds"]
    shared = table["shared_cpu_seconds"]
    cpu = sum(p["cpu_seconds"] for p in table["proxies"].values()) + shared
    yield (
        f"all proxies: {total:.2f} s wall ({table['workers']} module(s) at a time), "
        f"{cpu:.2f} s CPU on cached features, of which {shared:.2f} s shared "
        f"(reading the cache: {table['cache_seconds']:.2f} s)"
    )


def _csv(table) -> str:
    names = list(table["proxies"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "module", "kind", *names])
    for i, module in enumerate(table["ranking"], 1):
        scores = [table["proxies"][n]["scores"][module] for n in names]
        writer.writerow(
            [i, module, table["kinds"][module], *("" if s is None else repr(s) for s in scores)]
        )
    for field in ("seconds", "cpu_seconds"):
        writer.writerow(["", field, "", *(repr(table["proxies"][n][field]) for n in names)])
    return buffer.getvalue()


def execute(config, workdir: str | None, log=print) -> dict:
    with cli.user_errors(PROGRAM):
        config_rules.check(config, rank_config.RULES)
        if not workdir:
            raise ValueError("--workdir is required: where the feature cache and the table go")
        if not config.pool:
            raise ValueError("config.pool is empty: give a hub root or module handles")
        if not config.task.strip():
            raise ValueError("config.task is empty: give a task spec or a folder of images")
        return rank(config, os.path.expanduser(workdir), log)


def main(config):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    execute(config, config.workdir, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    fanout.flags.launch(main, PROGRAM, "vtab_eval/configs/rank.py:cpu")
