"""Selectors register themselves: a new one is usable by name in the runner and the
report without touching another file, and no module outside a selector's own file
names a selector."""

import ast
from pathlib import Path

import numpy as np
import pytest

from vtab_eval import files, runner, selection
from vtab_eval.configs import transfer
from vtab_eval.pool import expert_pool as pool
from vtab_eval.report import tables as report
from vtab_eval.selection import Selector

VTAB_EVAL = Path(selection.__file__).parents[1]


class FeatureNorm(Selector):
    """A stand-in performance proxy: the mean norm of each expert's features."""

    name = "feature_norm"
    display_name = "Feature norm (test)"
    short_name = "norm"
    score_label = "mean feature norm"
    needs = "features"
    is_proxy = True

    def score(self, task, ctx):
        scores, forward = {}, 0.0
        for expert in ctx.pool.experts:
            feats, _, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
            scores[expert.id], forward = (
                float(np.linalg.norm(feats, axis=1).mean()),
                forward + seconds,
            )
        return scores, {}, forward


class FineTunesAll(Selector):
    name = "fine_tunes_all"
    display_name = "Fine-tunes every expert (test)"
    fine_tunes_candidates = True

    def score(self, task, ctx):
        return {e.id: 0.0 for e in ctx.pool.experts}, {}, 0.0


@pytest.fixture
def registered():
    for cls in (FeatureNorm, FineTunesAll):
        selection.register(cls)
    yield
    for cls in (FeatureNorm, FineTunesAll):
        selection.SELECTORS.remove(cls.name)


def _runner(hub_root, workdir, selectors):
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), workdir=str(workdir))
    return runner.Runner(config, pool.open_pool(config.pool), [], selectors, workdir, log=print)


def test_a_registered_selector_runs_by_name_and_its_traits_steer_the_runner(
    registered, hub_root, red_task, tmp_path
):
    run = _runner(hub_root, tmp_path, ["feature_norm", "baseline"])
    result = run.select(red_task, "feature_norm")
    assert result.selector == "feature_norm" and len(result.scores) == 4
    assert (
        tmp_path / "tasks" / files.slug(red_task.key) / "selection" / "feature_norm.json"
    ).exists()
    assert run._modules_needed() == list(run.pool.experts)  # needs = "features"
    assert run.oracle_candidates([red_task]) == []  # nothing fine-tunes candidates
    both = _runner(hub_root, tmp_path, ["fine_tunes_all", "baseline"])
    candidates = FineTunesAll.from_config(both.config.selection).candidates(both.pool)
    assert [m.id for m in both.oracle_candidates([red_task])] == candidates
    assert selection.table_order()[-1] == "oracle"  # a new selector goes before it


def test_an_unknown_selector_is_one_line_naming_the_known_ones(tmp_path, hub_root):
    with pytest.raises(ValueError, match=r"^unknown selector 'nope'; choose from .*knn.*oracle"):
        _runner(hub_root, tmp_path, ["nope"])


def test_the_report_weighs_every_proxy_against_fine_tuning(registered, tmp_path):
    task = "task_a"
    d = tmp_path / "tasks" / files.slug(task)
    methods = {
        m: {"pick": "bit/e1", "selection_seconds": s, "finetune_seconds": 30.0,
            "test_accuracies": [0.8], "median_test_accuracy": 0.8}
        for m, s in (("feature_norm", 3.0), ("baseline", 0.0))
    }  # fmt: skip
    files.write_json(
        d / "result.json",
        {"task": task, "group": "natural", "num_classes": 2, "methods": methods, "seconds": 1},
    )
    scores = {"bit/e1": 2.0, "bit/e2": 1.0, "bit/baseline": 1.5}
    record = {"selector": "feature_norm", "task": task, "pick": "bit/e1", "details": {}}
    record.update(scores=scores, seconds=3.0, cost_seconds=3.0)
    files.write_json(d / "selection" / "feature_norm.json", record)
    config = transfer.get_config("cpu")
    config.report.update(bootstrap_samples=20, plots=False)
    report.write_report(tmp_path, config)
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| Feature norm (test) |" in (tmp_path / "report" / "table.md").read_text()
    assert "would take about 90s, 30x the norm selection." in summary
    assert "## Proxy against fine-tuning" in summary
    record = files.read_json(tmp_path / "report" / "results.json")
    assert record["tasks"][0]["feature_norm_scores"] == scores
    assert "knn_scores" not in record["tasks"][0]  # kNN did not run


def _string_literals(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


# Words that are also another vocabulary's: the pool's baseline module (the probes'
# column of it, the module kind the tau table groups by), the datasets' label feature,
# and the config field of the ensembles' size.
HOMONYMS = {
    "baseline": ("pool/expert_pool.py", "report/probes.py", "report/tau.py"),
    "label": ("tasks/",),
    "ensemble": ("run_dir.py",),
}
# A selector's own file names it; configs choose the default selectors; the benchmark
# write-up (bench/readme.py) is about kNN against the oracle by design.
OWNERS = ("selection/", "configs/", "bench/")


def test_no_module_outside_a_selectors_file_names_a_selector():
    names = set(selection.SELECTORS)
    found = []
    for path in sorted(VTAB_EVAL.rglob("*.py")):
        where = path.relative_to(VTAB_EVAL).as_posix()
        if where.startswith(OWNERS):
            continue
        for line, value in _string_literals(path):
            if value in names and not where.startswith(HOMONYMS.get(value, ())):
                found.append(f"{where}:{line}: {value!r}")
    assert not found, "selector names outside their files (ask a trait instead): " + ", ".join(
        found
    )
