"""Trains the smoke B on a prepared image-folder upstream with deterministic ops, in a
process of its own (op determinism is process-wide). With an output path it saves,
as .npz, every tensor of the last training checkpoint (model and optimiser) and of the
final model; without one it only trains, so that a test can kill it part way.

    python -m tests.training.determinism_worker DATA_DIR WORKDIR [OUT.npz]
"""

import sys

import numpy as np
import tensorflow as tf

from experts import train
from experts.configs import baseline

# More steps than the 28 training images make batches of 8 in one epoch, so a resumed
# run has to find its place in a later epoch, mid-batch across an epoch's end.
TOTAL_STEPS, CHECKPOINT_EVERY = 9, 2


def main(data_dir: str, workdir: str, out: str | None = None) -> None:
    config = baseline.get_config("smoke")
    config.data.name, config.data_dir = "image_folder_upstream/test", data_dir
    config.workdir, config.eval_batch = workdir, 16
    config.train.total_steps, config.train.deterministic = TOTAL_STEPS, True
    config.train.checkpoint_every, config.train.log_every = CHECKPOINT_EVERY, 1
    train.run(config)
    if out is None:
        return
    tensors = {}
    for prefix, path in (
        ("checkpoint", tf.train.latest_checkpoint(f"{workdir}/baseline/checkpoints")),
        ("final", f"{workdir}/baseline/final/model"),
    ):
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            tensors[f"{prefix}|{name.replace('/', '|')}"] = reader.get_tensor(name)
    np.savez(out, **tensors)


if __name__ == "__main__":
    main(*sys.argv[1:])
