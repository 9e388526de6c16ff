"""Trains the smoke B on a prepared image-folder upstream with deterministic ops, in a
process of its own (op determinism is process-wide), and saves its weights as .npz."""

import sys

import numpy as np
import tensorflow as tf

from experts import train
from experts.configs import baseline


def main(data_dir: str, workdir: str, out: str) -> None:
    config = baseline.get_config("smoke")
    config.data.name, config.data.data_dir = "image_folder_upstream/test", data_dir
    config.workdir, config.eval_batch = workdir, 16
    config.train.total_steps, config.train.deterministic = 6, True
    train.run(config)
    reader = tf.train.load_checkpoint(f"{workdir}/baseline/final/model")
    names = [k for k in reader.get_variable_to_shape_map() if k.startswith("model/")]
    np.savez(out, **{k.replace("/", "|"): reader.get_tensor(k) for k in names})


if __name__ == "__main__":
    main(*sys.argv[1:])
