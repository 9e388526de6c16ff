r"""Peak memory of a test-split evaluation held in memory against streamed (prints a
table; not a test).

    python -m vtab_eval.bench.eval_memory --module=<hub module dir> --image_size=224 \
        --spec='mini_dsprites(predicted_attribute="label_x_position",num_classes=16)'

The fine-tuning protocol evaluates every final run on the test split. Held in memory
(``images.load_images``, what ``Tuning.splits`` does when the split fits
``config.finetune.max_test_bytes``) the decoded split costs ``n x size^2 x 3`` bytes;
streamed (``images.StreamedSplit``) it costs one batch, paid for by decoding the split
again at each evaluation. Each mode runs in its own process: the figure is its peak
resident memory (``ru_maxrss``) above what the process held once the module was loaded
and its prediction traced, and the two accuracies must agree.
"""

from __future__ import annotations

import multiprocessing
import resource
import time

from absl import app, flags

from fanout import cli

FLAGS = flags.FLAGS


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(mode: str, module: str, spec: str, size: int, batch: int, data_dir, out) -> None:
    import numpy as np

    from vtab_eval import images, tasks
    from vtab_eval.finetune import tuner as finetune

    task = tasks.get_task(spec, data_dir=data_dir)
    task.prepare()
    tuner = finetune.FineTuner(module, task.num_classes, size, eval_batch=batch)
    warm = np.zeros((batch, size, size, 3), np.uint8), np.zeros([batch], np.int64)
    tuner.accuracy(warm, task.num_classes)  # traces prediction at the eval batch
    before, start = _peak_mib(), time.perf_counter()
    if mode == "memory":
        data = images.load_images(task, "test", size)
    else:
        data = images.StreamedSplit(task, "test", size, batch)
    accuracy = tuner.accuracy(data, task.num_classes)
    out.put((mode, _peak_mib() - before, time.perf_counter() - start, accuracy,
             task.num_examples("test"), images.decoded_bytes(task, "test", size)))  # fmt: skip


def main(argv):
    del argv
    context = multiprocessing.get_context("spawn")
    rows = []
    for mode in ("memory", "streamed"):
        queue = context.Queue()
        args = (mode, FLAGS.module, FLAGS.spec, FLAGS.image_size, FLAGS.batch, FLAGS.data_dir)
        child = context.Process(target=measure, args=(*args, queue))
        child.start()
        rows.append(queue.get())
        child.join()
    n, decoded = rows[0][4], rows[0][5]
    print(f"{FLAGS.spec}: test split of {n} images, {decoded / 2**20:.0f} MiB decoded at "
          f"{FLAGS.image_size} px; eval batch {FLAGS.batch}\n")  # fmt: skip
    print("| test split | peak MiB above the loaded module | seconds | accuracy |")
    print("|---|---:|---:|---:|")
    for mode, mib, seconds, accuracy, _, _ in rows:
        print(f"| {mode} | {mib:.0f} | {seconds:.1f} | {accuracy:.4f} |")
    if rows[0][3] != rows[1][3]:
        raise SystemExit("the two accuracies differ")


if __name__ == "__main__":
    flags.DEFINE_string("module", None, "A hub module directory.", required=True)
    flags.DEFINE_string(
        "spec", 'mini_dsprites(predicted_attribute="label_x_position",num_classes=16)', "Task."
    )
    flags.DEFINE_integer("image_size", 224, "Evaluation image size.")
    flags.DEFINE_integer("batch", 256, "Evaluation batch.")
    flags.DEFINE_string("data_dir", "runs/tfds", "tfds directory of the tasks.")
    app.run(main, flags_parser=cli.flags_parser("vtab_eval.bench.eval_memory"))
