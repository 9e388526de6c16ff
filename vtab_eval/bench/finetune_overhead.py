r"""Where a fine-tuning stage's time goes: the share of each (task, module) protocol spent
in training and evaluation steps (prints a table; not a test).

    python -m vtab_eval.bench.finetune_overhead --config=vtab_eval/configs/transfer.py:cpu \
        --config.pool=<module dir>,<module dir>,... --config.data_dir=runs/tfds \
        --config.suite='<spec>;<spec>;...' --config.finetune.final_repeats=3

Runs the transfer config's protocol on every task of ``config.suite`` for every module
of ``config.pool`` (module handles, comma-separated, each fine-tuned as it is), module
by module as the fine-tuning jobs do, through one FineTuner cache
(``config.finetune.tuner_cache``). Each protocol's record splits its ``seconds`` into
``build_seconds`` (making the module ready: building a FineTuner, or loading the
module's weights into the FineTuner of its program), ``steps_seconds`` (the runs'
training and evaluation steps) and the rest; the table sums them per module and over
all, with this process's CPU seconds beside the wall time (on a shared machine, the
wall time of one phase depends on what else runs). Reading the tasks' images is timed
apart: the protocol's records never include it. The last line digests every test
accuracy, so two versions of the code can be shown to give the same results.
"""

from __future__ import annotations

import hashlib
import json
import resource
import time

import fanout.flags

PROGRAM = "vtab_eval.bench.finetune_overhead"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _row(name: str, seconds: float, build: float, steps: float, cpu: float) -> str:
    share = 100 * steps / seconds if seconds > 0 else 0.0
    return f"| {name} | {seconds:.1f} | {cpu:.1f} | {build:.1f} | {steps:.1f} | {share:.1f}% |"


def main(config) -> None:
    import tensorflow as tf

    from vtab_eval import tasks
    from vtab_eval.finetune import protocol, runs
    from vtab_eval.finetune import tuner as finetune
    from vtab_eval.images import load_images

    tf.get_logger().setLevel("ERROR")
    handles = [h.strip() for h in config.pool.split(",") if h.strip()]
    specs = [s.strip() for s in config.suite.split(";") if s.strip()]
    if not handles or not specs:
        raise ValueError("give module handles in --config.pool and task specs in --config.suite")
    ft, size = config.finetune, config.image_size
    start = time.perf_counter()
    suite = []
    for spec in specs:  # each made once the one before is ready: they may share a dataset
        suite.append(tasks.get_task(spec, data_dir=config.data_dir or None))
        suite[-1].prepare()
    splits = {t.spec: {s: load_images(t, s, size) for s in tasks.SPLITS} for t in suite}
    print(f"read {len(suite)} tasks' images in {time.perf_counter() - start:.1f}s", flush=True)
    cache = protocol.TunerCache(
        size, max(t.num_classes for t in suite), ft.eval_batch, ft.tuner_cache
    )
    rows, totals, accuracies = [], [0.0] * 4, []
    for handle in handles:  # module by module, as the fine-tuning jobs run
        sums = [0.0] * 4  # seconds, build, steps, CPU
        for task in suite:
            cpu = _cpu_seconds()
            result = protocol.finetune(
                handle, task, splits[task.spec], runs.sweep_fn(config), image_size=size,
                sweep_repeats=ft.sweep_repeats, final_repeats=ft.final_repeats,
                seed=finetune.run_seed(config.seed, task.spec), eval_batch=ft.eval_batch,
                tuners=cache,
            )  # fmt: skip
            parts = [result["seconds"], result["build_seconds"], result["steps_seconds"]]
            sums = [a + b for a, b in zip(sums, [*parts, _cpu_seconds() - cpu], strict=True)]
            accuracies.append(result["test_accuracies"])
            print(f"{handle} on {task.spec}: {runs.time_split(result)}", flush=True)
        rows.append(_row(handle, *sums))
        totals = [a + b for a, b in zip(totals, sums, strict=True)]
    print(f"\n{len(handles)} modules x {len(suite)} tasks, {ft.final_repeats} final runs each; "
          f"FineTuners built {cache.builds}, modules given their weights "
          f"{cache.weight_loads}\n")  # fmt: skip
    print("| module | seconds | CPU seconds | build | steps | steps' share |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join([*rows, _row("all", *totals)]))
    digest = hashlib.sha256(json.dumps(accuracies).encode()).hexdigest()[:16]
    print(f"\ntest accuracies' digest: {digest}")


if __name__ == "__main__":
    fanout.flags.launch(main, PROGRAM, "vtab_eval/configs/transfer.py:cpu", workdir=False)
