"""One worker of the two-worker MultiWorkerMirroredStrategy test (TF_CONFIG is set by
the test). Writes the logged losses to argv[1]."""

import json
import sys

from experts.training import distribute, loop
from tests.training import synthetic

if __name__ == "__main__":
    out, workdir = sys.argv[1], sys.argv[2]
    strategy = distribute.make_strategy("multi_worker_mirrored")
    result = loop.train(synthetic.job(), synthetic.config(), workdir, strategy)
    with open(out, "w") as f:
        json.dump(result["losses"], f)
