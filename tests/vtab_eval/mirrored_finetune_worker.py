"""Fine-tunes under MirroredStrategy over two logical CPU devices, in its own process
(the devices must be configured before TensorFlow starts, and the training tests hold
MirroredStrategy objects of their own in the pytest process). Writes what the test
compares with a single-device run to argv[2]; argv[1] is the module, argv[3] another
module of its program, whose weights are then loaded into the same FineTuner for one
more run.

    python -m tests.vtab_eval.mirrored_finetune_worker <module dir> <output.json> <other>
"""

import json
import sys

from fanout import distribute

SETTING = {"learning_rate": 0.3, "steps": 40, "batch_size": 8, "warmup_steps": 4}
DECAY_BOUNDARIES = (24,)
SEEDS = (1, 2)

if __name__ == "__main__":
    distribute.split_cpu(2)
    import numpy as np

    from tests.vtab_eval import hub_fixtures
    from vtab_eval.finetune import tuner as finetune
    from vtab_eval.finetune.hyperparams import HParams

    module, out = sys.argv[1], sys.argv[2]
    strategy = distribute.make_strategy("mirrored")
    tuner = finetune.FineTuner(module, max_classes=6, image_size=8, strategy=strategy)
    task = hub_fixtures.colour_task("colour_red", hub_fixtures.REDDISH)
    hp = HParams(**SETTING, decay_boundaries=DECAY_BOUNDARIES)
    runs = []
    for seed in SEEDS:  # the second run starts from the reset mirrored variables
        result = tuner.run(task.splits["train800"], task.splits["test"], hp, seed, 4)
        runs.append({"losses": tuner.losses, "accuracy": result["accuracy"]})
    odd = HParams(**{**SETTING, "batch_size": 7}, decay_boundaries=DECAY_BOUNDARIES)
    try:
        tuner.run(task.splits["train800"], task.splits["test"], odd, SEEDS[0], 4)
        refused = ""
    except ValueError as error:
        refused = str(error)
    copies = [v.values for v in tuner.model.variables]
    spread = max(float(np.max(np.abs(c[0].numpy() - c[1].numpy()))) for c in copies)
    weights = [v.numpy().tolist() for v in tuner.model.variables]
    report = {"replicas": strategy.num_replicas_in_sync, "runs": runs, "weights": weights}
    tuner.load_module(sys.argv[3])  # every replica's copy of every variable
    result = tuner.run(task.splits["train800"], task.splits["test"], hp, SEEDS[0], 4)
    report["other"] = {"losses": tuner.losses, "accuracy": result["accuracy"]}
    with open(out, "w") as f:
        json.dump({**report, "replica_spread": spread, "refused": refused}, f)
