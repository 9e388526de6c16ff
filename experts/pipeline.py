"""Gone: ``experts.train`` runs the whole upstream (``--config.job=all``, the default of
``experts/configs/upstream.py``). Run as a program, this says so in one line."""

import sys

NEW_COMMAND = (
    "experts.pipeline is now python -m experts.train "
    "--config=experts/configs/upstream.py:<preset> --workdir=<dir> --config.data_dir=<dir>"
)

if __name__ == "__main__":
    sys.exit(f"experts.pipeline: error: {NEW_COMMAND}")
