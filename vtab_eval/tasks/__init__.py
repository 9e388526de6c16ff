"""Downstream tasks: VTAB-1k via tfds, the embedded mini-VTAB suite, and image folders.

    from vtab_eval import tasks
    task = tasks.get_task('dsprites(predicted_attribute="label_orientation",num_classes=16)')
    task.num_classes, task.group            # 16, "structured"
    ds = task.as_dataset("train800")        # (uint8 [h, w, 3], int64) pairs
    tasks.suite_specs("vtab1k")             # the 19 VTAB-1k specs; also "embedded"

Nothing is downloaded unless `download=True`; embedded tasks are generated from local
sources on first use (or ahead with `python -m vtab_eval.tasks.build`).
"""

from vtab_eval.tasks import folder, vtab1k  # noqa: F401  (register their tasks)
from vtab_eval.tasks.base import GROUPS, SPLITS, Task, TfdsTask
from vtab_eval.tasks.embedded import tasks as _embedded_tasks  # noqa: F401  (registers them)
from vtab_eval.tasks.registry import (
    get_suite,
    get_task,
    suite_names,
    suite_specs,
    task_key,
    task_names,
)
from vtab_eval.tasks.spec import format_spec, parse_spec, split_specs

__all__ = [
    "GROUPS",
    "SPLITS",
    "Task",
    "TfdsTask",
    "format_spec",
    "get_suite",
    "get_task",
    "parse_spec",
    "split_specs",
    "suite_names",
    "suite_specs",
    "task_key",
    "task_names",
]
