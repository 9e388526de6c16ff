"""A tiny generated image-folder upstream and its smoke-preset upstream run (B, two
full experts, the adapter experts, the EPN), shared by the jobs tests and the fan-out
tests through the session fixtures in tests/conftest.py."""

import tensorflow_datasets as tfds

from experts import train
from experts.configs import upstream
from experts.data import upstream as upstream_data
from experts.data.builders import ImageFolderUpstream, ImageFolderUpstreamConfig
from tests.data.conftest import make_folder

EXPERTS = ("circle", "red")
DATA_NAME = "image_folder_upstream/jobs_test"
# What every job's smoke config is given; ``experts.train.run`` takes the same as
# overrides of the whole upstream's.
OVERRIDES = {"data.name": DATA_NAME, "data.experts": EXPERTS, "eval_batch": 16}


def prepare(root) -> str:
    """Builds the upstream under ``root``; returns its tfds directory."""
    config = ImageFolderUpstreamConfig(
        name=DATA_NAME.split("/")[1],
        validation_percent=25,
        experts=upstream_data.ExpertChoice(num_experts=3, min_images=1, max_overlap=0.9),
    )
    builder = ImageFolderUpstream(config=config, data_dir=str(root / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=make_folder(str(root / "manual")), try_download_gcs=False
        )
    )
    return str(root / "tfds")


def smoke(module, data_dir, workdir, **overrides):
    """``module``'s smoke config on the upstream, in ``workdir``."""
    config = module.get_config("smoke")
    config.data.name, config.data_dir = DATA_NAME, data_dir
    config.data.experts = EXPERTS
    config.workdir, config.eval_batch = str(workdir), 16
    config.update(overrides)
    return config


def train_all(data_dir, workdir) -> dict:
    """B, then every other job, each for the smoke preset's 2 steps, in this process:
    the whole upstream as ``experts.train --config.job=all`` runs it."""
    return train.run(smoke(upstream, data_dir, workdir), overrides={
        **OVERRIDES, "workdir": str(workdir), "data_dir": data_dir,
    })  # fmt: skip
