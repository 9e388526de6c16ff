"""The ranking command on the tiny pool: every proxy's scores, the printed table, the
JSON and CSV files; and its bad-input cases."""

import csv

import pytest

from tests.bad_input import fails_cleanly
from vtab_eval import files, rank, tasks
from vtab_eval.configs import rank as rank_config

PROGRAM = "vtab_eval.rank"


@pytest.fixture
def colour_task(monkeypatch, red_task):
    monkeypatch.setattr(tasks, "get_task", lambda spec, data_dir=None: red_task)
    return red_task


def _config(hub_root, **fields):
    config = rank_config.get_config("smoke")
    config.update(pool=str(hub_root), task="colour_red", image_size=8)
    config.update(fields)
    return config


def test_ranks_the_pool_with_every_proxy_and_writes_the_table(hub_root, colour_task, tmp_path):
    lines = []
    table = rank.execute(_config(hub_root, top=2), str(tmp_path), log=lines.append)
    names = rank_config.FAST_PROXIES.split(",")
    assert list(table["proxies"]) == names
    assert len(table["ranking"]) == 4 and table["ranking"][0].endswith("/red")
    # The feature proxies shared each module's covariance and spectrum, timed apart.
    assert table["shared_cpu_seconds"] > 0 and table["proxies_seconds"] > 0
    assert lines[0].startswith("task colour_red: 4 modules, ranked by knn")
    assert len(lines) == 2 + 2 + 2 + 2  # header, 2 modules, seconds, cpu, total, files
    out = tmp_path / "ranking" / files.slug(colour_task.key)
    assert files.read_json(out.with_suffix(".json"))["ranking"] == table["ranking"]
    rows = list(csv.reader(out.with_suffix(".csv").open()))
    assert rows[0] == ["rank", "module", "kind", *names]
    assert [r[1] for r in rows[1:5]] == table["ranking"] and rows[5][1] == "seconds"
    # A rerun reads the cached features: nothing is embedded again. Scoring one
    # module at a time ranks the pool alike.
    cached = sorted((tmp_path / "features").rglob("*.npz"))
    again = rank.execute(_config(hub_root, workers=1), str(tmp_path), log=lines.append)
    assert sorted((tmp_path / "features").rglob("*.npz")) == cached
    assert again["ranking"] == table["ranking"] and again["workers"] == 1


def test_workers_default_to_the_cores_the_process_may_use(hub_root):
    assert rank.workers(_config(hub_root)) == len(rank.os.sched_getaffinity(0))
    assert rank.workers(_config(hub_root, workers=3)) == 3


@pytest.mark.parametrize(
    "fields,culprit",
    [
        ({"proxies": "knn,nope"}, "unknown selector 'nope'"),
        ({"proxies": "knn,domain"}, "domain does not score modules from their features"),
        ({"rank_by": "logme", "proxies": "knn"}, "config.rank_by='logme'"),
        ({"pool": ""}, "config.pool is empty"),
        ({"top": 0}, "config.top=0"),
        ({"workers": -1}, "config.workers=-1"),
    ],
)
def test_bad_input_is_one_line(hub_root, colour_task, tmp_path, fields, culprit):
    call = lambda: rank.execute(_config(hub_root, **fields), str(tmp_path / "w"))  # noqa: E731
    fails_cleanly(call, PROGRAM, culprit, roots=[tmp_path])


def test_no_workdir_is_one_line(hub_root, colour_task):
    fails_cleanly(lambda: rank.execute(_config(hub_root), ""), PROGRAM, "--workdir is required")
