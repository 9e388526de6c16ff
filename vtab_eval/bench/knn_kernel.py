r"""Leave-one-out 1-NN, the kNN proxy's kernel, against scikit-learn and faiss.

    python -m vtab_eval.bench.knn_kernel --output=runs/bench/knn_kernel.json
    python -m vtab_eval.bench.knn_kernel --sizes=1000,10000 --dims=128 --output=/tmp/knn.json

For every N in ``--sizes`` and D in ``--dims`` the same seeded float32 embeddings
(standard normal) and random labels (``--classes``) go through three implementations
of what the kNN selector computes (DESIGN.md: k=1, Euclidean, leave-one-out): each
point's nearest other point, then the accuracy of that neighbour's label.

* ``ours``: ``vtab_eval.selection.knn.loo_neighbors``, which ``KnnSelector`` calls
  (through ``loo_accuracy``), in float32 as the selector runs it by default;
* ``sklearn``: ``NearestNeighbors(algorithm="brute", metric="euclidean")``;
* ``faiss``: ``faiss.IndexFlatL2``, searched with k=2, the point itself dropped.

Each (impl, N, D) runs in a fresh process (this module with ``--child``), which imports
only its own library, so ``ru_maxrss`` is that measurement's peak: reported absolute
and above a baseline taken after the imports (so it includes the N x D x 4-byte input).
Times are ``time.perf_counter`` around neighbours plus accuracy, excluding imports and
data generation; a call shorter than ``--min_seconds`` is repeated and the median
reported. Ratios compare times measured with the same settings, normally in the same
run (``same_run`` says when a resumed run mixed runs). The three should agree on every neighbour: disagreements (in
neighbours and in their labels) are counted and reported, not fatal, since random
float data has no exact ties and they can only come from rounding near-ties.

The JSON is rewritten atomically after every measurement, and a rerun resumes: an
entry measured with the same settings (sizes, seed, threads, library versions and, for
``ours``, the source of knn.py) is kept. Neighbour indices are kept beside it, in
``<output without .json>.neighbors/``, for the agreement counts.

The kernel is meant to be no slower than faiss at the protocol's N = 1,000.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import app, flags

import vtab_eval
from fanout import cli
from vtab_eval import files
from vtab_eval.bench import knn_kernel_table

MODULE = "vtab_eval.bench.knn_kernel"
IMPLS = knn_kernel_table.IMPLS
# The distribution whose version identifies each implementation.
PACKAGES = {"ours": "scipy", "sklearn": "scikit-learn", "faiss": "faiss-cpu"}
KNN_SOURCE = Path(vtab_eval.__file__).parent / "selection" / "knn.py"
PAIRS = (("ours", "sklearn"), ("ours", "faiss"), ("sklearn", "faiss"))
_RESULT_MARK = "KNN_KERNEL_RESULT "


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines this binary's flags; only when run as a program, so importing the module
    (tests, a README writer) claims no global flag names."""
    flags.DEFINE_string("output", "runs/bench/knn_kernel.json", "Results JSON.", flag_values=fv)
    flags.DEFINE_list("sizes", ["1000", "10000", "50000"], "Numbers of points N.", flag_values=fv)
    flags.DEFINE_list("dims", ["128", "2048"], "Embedding dimensions D.", flag_values=fv)
    flags.DEFINE_list("impls", list(IMPLS), f"Implementations, from {IMPLS}.", flag_values=fv)
    flags.DEFINE_integer("classes", 10, "Random label classes.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the embeddings and labels.", flag_values=fv)
    flags.DEFINE_integer("threads", 0, "Threads per library; 0: its default.", flag_values=fv)
    flags.DEFINE_float("min_seconds", 2.0, "Repeat shorter calls up to this total.", flag_values=fv)
    flags.DEFINE_integer("max_repeats", 10, "At most this many timed calls.", flag_values=fv)
    flags.DEFINE_bool("isolate", True, "One process per measurement (peak memory).", flag_values=fv)
    flags.DEFINE_string("markdown", None, "Also write the Markdown table here.", flag_values=fv)
    flags.DEFINE_string("child", None, "Internal: measure impl:n:d here.", flag_values=fv)
    flags.DEFINE_string("neighbors_file", None, "Internal: --child's .npz.", flag_values=fv)


def make_data(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 ``[n, d]`` embeddings and int64 labels in [0, classes)."""
    x_seed, _ = np.random.SeedSequence(seed).spawn(2)
    x = np.random.default_rng(x_seed).standard_normal((n, d), dtype=np.float32)
    return x, make_labels(n, classes, seed)


def make_labels(n: int, classes: int, seed: int) -> np.ndarray:
    # A stream of its own: the labels do not need the embeddings regenerated.
    _, y_seed = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(y_seed).integers(0, classes, n)


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def drop_self(found: np.ndarray) -> np.ndarray:
    """``[n]`` nearest other points from ``[n, 2]`` searches of every point among all:
    the first column unless it is the point itself. When duplicates of a point come
    before it (or push it out of both columns), the first is one at distance 0, which
    is a correct leave-one-out neighbour."""
    own = np.arange(len(found))
    return np.where(found[:, 0] == own, found[:, 1], found[:, 0]).astype(np.int64)


def load(impl: str, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Imports ``impl``'s library and returns ``x [n, d] float32 -> [n]`` int64
    leave-one-out nearest-neighbour indices."""
    if impl in ("ours", "sklearn") and threads:
        import threadpoolctl

        # Once for the process (each measurement has its own): entering the limiter per
        # call would time threadpoolctl's scan of the loaded libraries too.
        threadpoolctl.threadpool_limits(threads)
    if impl == "ours":
        from vtab_eval.selection import knn

        def our_neighbors(x):
            return knn.loo_neighbors(x, 1)[:, 0]

        return our_neighbors
    if impl == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        def sklearn_neighbors(x):
            # Brute force: exact like the others, one GEMM-based distance pass over all
            # pairs (sklearn's float32 path accumulates in float64 chunks); its trees
            # prune nothing on random data at these dimensions. kneighbors() without X
            # queries every training point against the others: it asks for k+1
            # neighbours and removes the point's own index (not simply the first
            # column), so a duplicate at distance 0 stays a valid neighbour.
            nn = NearestNeighbors(n_neighbors=1, algorithm="brute", metric="euclidean")
            return nn.fit(x).kneighbors(return_distance=False)[:, 0].astype(np.int64)

        return sklearn_neighbors
    if impl == "faiss":
        import faiss

        if threads:
            faiss.omp_set_num_threads(threads)

        def faiss_neighbors(x):
            index = faiss.IndexFlatL2(x.shape[1])
            index.add(x)
            _, found = index.search(x, 2)
            return drop_self(found)

        return faiss_neighbors
    raise ValueError(f"unknown implementation {impl!r}; choose from {IMPLS}")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(
    impl: str,
    n: int,
    d: int,
    *,
    classes: int = 10,
    seed: int = 0,
    threads: int = 0,
    min_seconds: float = 2.0,
    max_repeats: int = 10,
) -> tuple[dict[str, Any], np.ndarray]:
    """(figures, neighbour indices) of one implementation on one data set, measured in
    this process (in a fresh one the memory figures are this measurement's alone)."""
    start = time.perf_counter()
    neighbors_of = load(impl, threads)
    import_seconds = time.perf_counter() - start
    baseline = _peak_mib()
    x, y = make_data(n, d, classes, seed)

    def timed():
        start = time.perf_counter()
        nn = neighbors_of(x)
        accuracy = float(np.mean(y[nn] == y))
        return time.perf_counter() - start, nn, accuracy

    first, nn, accuracy = timed()
    repeats, deterministic = [], True
    if first < min_seconds:
        while len(repeats) < max(1, max_repeats - 1):
            seconds, again, _ = timed()
            repeats.append(seconds)
            deterministic &= bool(np.array_equal(again, nn))
            if sum(repeats) >= min_seconds:
                break
    seconds = statistics.median(repeats) if repeats else first
    figures = {
        "impl": impl,
        "n": n,
        "d": d,
        "accuracy": accuracy,
        "seconds": seconds,
        "first_seconds": first,
        "timed_calls": len(repeats) or 1,
        "deterministic": deterministic,
        "import_seconds": import_seconds,
        "input_mib": x.nbytes / 2**20,
        "baseline_mib": baseline,
        "peak_mib": _peak_mib(),
        "peak_above_baseline_mib": _peak_mib() - baseline,
        "load_average": os.getloadavg()[0],
    }
    return figures, nn


def settings(impl: str, n: int, d: int, classes: int, seed: int, threads: int) -> dict:
    """What a measurement depends on: a stored one is reused only if these are equal."""
    out = {"impl": impl, "n": n, "d": d, "classes": classes, "seed": seed, "threads": threads}
    out["version"] = importlib.metadata.version(PACKAGES[impl])
    if impl == "ours":
        out["knn_source_sha1"] = hashlib.sha1(KNN_SOURCE.read_bytes()).hexdigest()
    return out


def neighbors_path(output: str | os.PathLike, impl: str, n: int, d: int) -> Path:
    output = Path(output)
    return output.parent / f"{output.stem}.neighbors" / f"{impl}_n{n}_d{d}.npz"


def _measure_isolated(impl, n, d, nn_path: Path, **kwargs) -> dict[str, Any]:
    """Runs ``measure`` in a fresh Python (this module with --child); it writes the
    neighbours to ``nn_path`` and prints its figures."""
    args = [f"--child={impl}:{n}:{d}", f"--neighbors_file={nn_path}"]
    args += [f"--{name}={value}" for name, value in kwargs.items()]
    env = dict(os.environ)
    root = str(Path(os.path.abspath(vtab_eval.__file__)).parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, *args], env=env, capture_output=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT_MARK)]
    if proc.returncode or not lines:
        raise RuntimeError(
            f"measuring {impl} at N={n}, D={d} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return json.loads(lines[-1][len(_RESULT_MARK) :])


def compare(results: dict, output, n: int, d: int, classes: int, seed: int) -> dict:
    """Agreement and time ratios of every measured pair of implementations at (n, d)."""
    found = results["measurements"]
    labels = make_labels(n, classes, seed)
    out = {}
    for a, b in PAIRS:
        ea, eb = found.get(knn_kernel_table.key(a, n, d)), found.get(knn_kernel_table.key(b, n, d))
        pa, pb = neighbors_path(output, a, n, d), neighbors_path(output, b, n, d)
        if not (ea and eb and pa.exists() and pb.exists()):
            continue
        na, nb = np.load(pa)["neighbors"], np.load(pb)["neighbors"]
        out[f"{a}/{b}"] = {
            "time_ratio": ea["seconds"] / eb["seconds"],
            "same_accuracy": ea["accuracy"] == eb["accuracy"],
            "neighbor_disagreements": int(np.sum(na != nb)),
            "label_disagreements": int(np.sum(labels[na] != labels[nb])),
            "same_run": ea["run"] == eb["run"],
        }
    return out


def run(
    output: str | os.PathLike,
    sizes: Sequence[int],
    dims: Sequence[int],
    impls: Sequence[str] = IMPLS,
    *,
    classes: int = 10,
    seed: int = 0,
    threads: int = 0,
    min_seconds: float = 2.0,
    max_repeats: int = 10,
    isolate: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Measures every (N, D, impl) not already in ``output`` with the same settings,
    rewriting ``output`` after each, and returns the results."""
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; choose from {IMPLS}")
    if "faiss" in impls and not faiss_available():
        raise RuntimeError("faiss is not installed: pip install faiss-cpu (the bench extra)")
    output = Path(output)
    results = files.read_json(output) if output.exists() else {}
    results.setdefault("measurements", {})
    results.setdefault("comparisons", {})
    run_id = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    kwargs = dict(classes=classes, seed=seed, threads=threads,
                  min_seconds=min_seconds, max_repeats=max_repeats)  # fmt: skip
    for n in sizes:
        for d in dims:
            for impl in impls:
                _measure_into(results, output, impl, n, d, run_id, isolate, log, **kwargs)
            for pair, c in results["comparisons"].get(f"n={n}/d={d}", {}).items():
                if c["neighbor_disagreements"] or not c["same_accuracy"]:
                    log(
                        f"n={n}/d={d} {pair}: {c['neighbor_disagreements']} neighbours and"
                        f" {c['label_disagreements']} neighbour labels differ"
                    )
    return results


def _measure_into(results, output, impl, n, d, run_id, isolate, log, **kwargs) -> None:
    """Measures (impl, N, D) unless ``results`` has it with the same settings, then
    records it and the pairwise comparisons, and rewrites ``output``."""
    wanted = settings(impl, n, d, kwargs["classes"], kwargs["seed"], kwargs["threads"])
    key, nn_path = knn_kernel_table.key(impl, n, d), neighbors_path(output, impl, n, d)
    old = results["measurements"].get(key)
    if old and old["settings"] == wanted and nn_path.exists():
        log(f"{key}: measured already ({old['seconds']:.3f}s), skipped")
        return
    if isolate:
        entry = _measure_isolated(impl, n, d, nn_path, **kwargs)
    else:
        entry, nn = measure(impl, n, d, **kwargs)
        files.write_npz(nn_path, neighbors=nn)
    entry.update(settings=wanted, run=run_id, isolated=isolate)
    results["measurements"][key] = entry
    results["comparisons"][f"n={n}/d={d}"] = compare(
        results, output, n, d, kwargs["classes"], kwargs["seed"]
    )
    files.write_json(output, results)
    log(
        f"{key}: {entry['seconds']:.3f}s, accuracy {entry['accuracy']:.4f},"
        f" peak {entry['peak_above_baseline_mib']:.0f} MiB above"
        f" {entry['baseline_mib']:.0f} MiB"
    )


def _child_main(fv: flags.FlagValues) -> None:
    impl, n, d = fv.child.split(":")
    figures, nn = measure(
        impl,
        int(n),
        int(d),
        classes=fv.classes,
        seed=fv.seed,
        threads=fv.threads,
        min_seconds=fv.min_seconds,
        max_repeats=fv.max_repeats,
    )
    files.write_npz(fv.neighbors_file, neighbors=nn)
    print(_RESULT_MARK + json.dumps(figures), flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    if fv.child:
        _child_main(fv)
        return
    results = run(
        fv.output,
        [int(s) for s in fv.sizes],
        [int(s) for s in fv.dims],
        fv.impls,
        classes=fv.classes,
        seed=fv.seed,
        threads=fv.threads,
        min_seconds=fv.min_seconds,
        max_repeats=fv.max_repeats,
        isolate=fv.isolate,
    )
    table = knn_kernel_table.to_markdown(results)
    print(f"\n{table}\nwritten to {fv.output}")
    if fv.markdown:
        files.write_text(fv.markdown, table)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("vtab_eval.bench.knn_kernel"))
