r"""Expert selection, fine-tuning and the report over a suite of tasks.

    python -m vtab_eval.main --config=vtab_eval/configs/transfer.py:cpu \
        --workdir=runs/transfer --config.pool=runs/hub --config.suite=embedded

Presets (the `:preset` suffix): smoke | cpu | paper. Override any field with
``--config.<field>=<value>``, e.g. ``--config.finetune.final_repeats=3``.

* ``smoke``: tests; seconds on tiny modules and tasks (a quarter epoch: one or two
  steps, 16 px).
* ``cpu``: the embedded suite on a 2-core CPU with r26x0.25 experts at 32 px: kNN over
  the whole pool plus fine-tuning of the kNN pick and of the baseline, one setting (20
  epochs at lr 0.01), one run per (task, module) (its timings on 2 cores: RESULTS.md);
  the report in ``<workdir>/report``.
* ``paper``: the paper's protocol (section 6.3): 224 px, VTAB's lightweight sweep (lr
  {0.1, 0.01} x {2500, 10000} steps, batch 512) chosen on train800/val200, 10 sweep
  trials x 3 retrains on train800val200, median of the 30 test accuracies; all
  selectors. Meant for accelerators: fine-tuning runs under ``--config.strategy``
  (``auto`` here: a TPU, else the local GPUs mirrored; ``default``, one device, for
  the other presets), the field training configs have.
"""

from __future__ import annotations

import ml_collections

from fanout import config_rules as rule
from vtab_eval.finetune import hyperparams

# The same presets as experts/configs/presets.py, restated because vtab_eval never
# imports experts/ (it sees experts only as hub handles).
PRESETS = ("smoke", "cpu", "paper")
DEFAULT_PRESET = "cpu"


def parse_preset(arg: str | None) -> str:
    preset = (arg or DEFAULT_PRESET).strip()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return preset


# Restated for the same reason, and because the modules owning these names import
# TensorFlow, which checking a config should not need (tests/configs/test_rules.py
# checks they agree): fanout.distribute.STRATEGIES, the task splits of
# vtab_eval/tasks/base.py, fanout/precision.py's precisions.
STRATEGIES = ("auto", "default", "mirrored", "multi_worker_mirrored", "tpu")
SPLITS = ("train800", "val200", "train800val200", "test")
PRECISIONS = ("float32", "float16", "bfloat16")


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    preset = parse_preset(preset)
    config = ml_collections.ConfigDict()
    config.preset = preset
    # Usually given on the command line (--config.pool=..., --config.suite=...).
    config.pool = ""  # a hub root, or comma-separated module handles
    config.suite = "embedded"  # a suite name, or ';'-separated task specs
    config.selectors = {
        "smoke": "knn,domain,label,random,baseline",
        "cpu": "knn,baseline",
        "paper": "knn,domain,label,random,baseline",
    }[preset]
    config.workdir = "runs/transfer"
    # A folder of specialisation probes (experts/data/embedded/probes.py, probes.json inside):
    # every expert embeds them with the tasks, and the report gains the expert x probe
    # kNN matrix (vtab_eval.bench.probes) in <report dir>/probes. Empty: none.
    config.probes = ""
    config.data_dir = "runs/tfds"
    config.seed = 0
    # Only rewrite the report, reading nothing but result files (the finished tasks'
    # under workdir, and the probe matrix when `probes` names one): no pool, task data
    # or fine-tuning; on the methods `selectors` names when it is given on the command
    # line, else on every method of the finished tasks.
    config.report_only = False
    # The tf.distribute strategy fine-tuning runs under, with the training configs'
    # names and values (fanout/distribute.py): auto, default, mirrored,
    # multi_worker_mirrored, tpu; `tpu_address` names the TPU for tpu and auto.
    config.strategy = "auto" if preset == "paper" else "default"
    config.tpu_address = ""
    # Square input resolution of every module (VTAB resizes to 224 without cropping).
    config.image_size = {"smoke": 16, "cpu": 32, "paper": 224}[preset]

    # Ensembles of the top experts (Mustafa et al. 2020; selection/ensemble.py): the
    # number k of candidates, ranked by the proxy `ensemble_proxy`, that the methods
    # ensemble (fine-tuned with the protocol: a budget of k single picks' fine-tuning)
    # and ensemble_heads (logistic heads on the frozen features) combine greedily on
    # val200. k > 0 adds both methods to the run (--config.selectors may name them
    # too); 0: off.
    config.ensemble = 0
    config.ensemble_proxy = "knn"
    config.selection = _selection_config()
    config.finetune = _finetune_config(preset)

    # The oracle (benchmarks only) picks the best test accuracy in hindsight. Fine-tuning
    # every expert on every task with the whole protocol is the costliest step of a
    # benchmark, so it may screen them with `screen_repeats` final runs of one trial
    # instead; 0: screen with a whole protocol. Screening runs have seeds of their own:
    # the oracle picks on them and is reported on its pick's protocol runs, the same
    # runs as every other method picking that expert (so the pick's luck on the
    # screening runs does not inflate its row). Its own field, outside
    # `selection`, because it changes the oracle's row only, whose files it names.
    config.oracle = ml_collections.ConfigDict({"screen_repeats": 0 if preset == "paper" else 1})

    config.report = ml_collections.ConfigDict(
        # dir: where the report goes; empty means <workdir>/report.
        # probes: a specialisation benchmark's probes.json (vtab_eval.bench.probes), whose
        # summary line the report quotes; empty: none.
        {"bootstrap_samples": 2000, "confidence": 0.95, "plots": True, "dir": "", "probes": ""}
    )
    # A run is one upstream seed: its report says so, and how far apart the seeds of the
    # last multi-seed bench were, from that bench's headline.json (vtab_eval.bench.seeds;
    # its absence is said too). Empty: say nothing (the bench's own per-seed runs).
    config.report.bench_headline = "runs/bench/seeds/headline.json"
    return config


def _selection_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "split": "train800val200",  # the paper's "1k training examples" of each task
            "knn_k": 1,
            "knn_float64": False,
            "label_smoothing": 1e-3,
            # B is a candidate too, so a task no expert suits falls back on the generic
            # model (paper, section 7); selector knn_experts reports the pool without it.
            "include_baseline": True,
            # kNN picks an expert over B only when its leave-one-out predictions beat
            # B's in McNemar's exact test at this one-sided level (0: never test; the
            # level's reasoning: selection/knn.py). knn_nofallback reports kNN without it.
            "knn_fallback_level": 0.05,
            "batch_size": 256,
            # The modules' forward passes when embedding tasks: float32, or float16 /
            # bfloat16 through TensorFlow's mixed-precision rewrite where the machine
            # has it (float16: GPUs; fanout/precision.py); a no-op elsewhere.
            "precision": "float32",
        }
    )


def _finetune_config(preset: str) -> ml_collections.ConfigDict:
    ft = ml_collections.ConfigDict()
    if preset == "paper":
        ft.rule = "fixed"  # VTAB-1k's lightweight sweep (finetune/hyperparams.py)
        ft.learning_rates = (0.1, 0.01)
        ft.steps = (2500, 10000)
        ft.epochs = ()
        ft.batch_size = 512
        ft.sweep_repeats = 10
        ft.final_repeats = 3
    else:
        # One setting, so the val200 sweep is skipped; steps follow the data size. The
        # cpu preset's 20 epochs: the shortest schedule measured whose B is within about
        # a point of fine-tuning for 50 (RESULTS.md); at 5, B stopped 10 points short on
        # ALL and the experts' faster start passed for a gain. One run per (task, module)
        # keeps the demo within its time; the multi-seed bench runs three.
        ft.rule = "epochs"
        ft.learning_rates = (0.01,)
        ft.steps = ()
        ft.epochs = (0.25,) if preset == "smoke" else (20.0,)
        ft.batch_size = {"smoke": 8, "cpu": 64}[preset]
        ft.sweep_repeats = 1
        ft.final_repeats = 1
    ft.eval_batch = 256
    # One FineTuner per module serves every task: its zero head has max_classes outputs
    # and a task's unused ones are masked (finetune/tuner.py). 0: the most classes of any task
    # in the suite; a task with more classes than a nonzero value is an error.
    ft.max_classes = 0
    # FineTuners kept (least recently used dropped), one per module program: B's and the
    # full experts' (one architecture), the adapter experts', and a published module's.
    ft.tuner_cache = 3
    # A test split larger than this once decoded is streamed batch by batch for every
    # evaluation instead of held in memory (results are the same; memory is bounded).
    ft.max_test_bytes = 1 << 30
    # The fine-tuning steps and evaluations: float32, or bfloat16 through TensorFlow's
    # mixed-precision rewrite where the machine has it (fanout/precision.py; a no-op
    # elsewhere). float16 would need loss scaling, which fine-tuning does not do.
    ft.precision = "float32"
    return ft


# One rule per field (fanout/config_rules.py), checked when vtab_eval.main has resolved
# its config (flags included). pool, suite and selectors are parsed by the runner, which
# names an empty or unknown entry.
RULES = {
    "preset": rule.one_of(*PRESETS),
    "pool": rule.exempt("parsed by the pool, which names a missing or empty one"),
    "suite": rule.exempt("parsed by the task registry, which names an unknown task"),
    "selectors": rule.exempt("parsed by the runner, which names an unknown selector"),
    "ensemble": rule.satisfies(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == 0 or v >= 2),
        "0 (off) or the number of top experts an ensemble combines, an integer >= 2",
        (1, -1, None),
    ),
    "ensemble_proxy": rule.exempt("parsed by the runner, which names one that is no proxy"),
    "workdir": rule.path(),
    "probes": rule.path(empty=True, meaning="no probes"),
    "data_dir": rule.path(empty=True, meaning="tfds's default directory"),
    "seed": rule.integer(min=0),
    "report_only": rule.boolean(),
    "strategy": rule.one_of(*STRATEGIES),
    "tpu_address": rule.text(),
    "image_size": rule.integer(min=1),
    "selection.split": rule.one_of(*SPLITS),
    "selection.knn_k": rule.integer(min=1),
    "selection.knn_float64": rule.boolean(),
    "selection.label_smoothing": rule.fraction(max_open=True),
    "selection.include_baseline": rule.boolean(),
    "selection.knn_fallback_level": rule.fraction(max_open=True),
    "selection.batch_size": rule.integer(min=1),
    "selection.precision": rule.one_of(*PRECISIONS),
    "finetune.rule": rule.one_of(*hyperparams.RULES),
    "finetune.learning_rates": rule.sequence(rule.positive(), min_len=1),
    "finetune.steps": rule.sequence(rule.integer(min=1)),
    "finetune.epochs": rule.sequence(rule.positive()),
    "finetune.batch_size": rule.integer(min=1),
    "finetune.sweep_repeats": rule.integer(min=1),
    "finetune.final_repeats": rule.integer(min=1),
    "finetune.eval_batch": rule.integer(min=1),
    "finetune.max_classes": rule.integer(min=0),
    "finetune.tuner_cache": rule.integer(min=1),
    "finetune.max_test_bytes": rule.integer(min=0),
    # float16 would need loss scaling, which fine-tuning does not do.
    "finetune.precision": rule.one_of("float32", "bfloat16"),
    "oracle.screen_repeats": rule.integer(min=0),
    "report.bootstrap_samples": rule.integer(min=1),
    "report.confidence": rule.fraction(min_open=True, max_open=True),
    "report.plots": rule.boolean(),
    "report.dir": rule.path(empty=True, meaning="<workdir>/report"),
    "report.probes": rule.path(empty=True, meaning="none"),
    "report.bench_headline": rule.path(empty=True, meaning="say nothing about seeds"),
}
