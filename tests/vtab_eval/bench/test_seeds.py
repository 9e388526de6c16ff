"""The multi-seed headline (report/seed_headline.py, bench/seeds.py) on synthetic seed
directories whose gains are known."""

import json

import pytest

from vtab_eval.bench import seeds as seeds_binary
from vtab_eval.configs import bench_seeds
from vtab_eval.report import seed_headline

# (task, group, relation): B's accuracy 0.5 everywhere.
TASKS = [
    ("mini_a", "natural", "matched"),
    ("mini_b", "natural", "weak"),
    ("mini_c", "structured", "unrelated"),
    ("mini_d", "specialized", None),
]


def write_seed(root, seed, knn, random=0.5, finished=True, tasks=TASKS, runs=3, protocol=None):
    """A seed directory whose knn scores `knn` (one accuracy, or one per task) and
    random `random` on every run of every task, B 0.5; `protocol`: results.json's
    fine-tuning settings (left out when None, as older reports do)."""
    knn = knn if isinstance(knn, list) else [knn] * len(tasks)
    entries = [
        {
            "task": name,
            "group": group,
            "relation": relation,
            "methods": {
                "baseline": {"test_accuracies": [0.5] * runs},
                "knn": {"test_accuracies": [acc] * runs},
                "random": {"test_accuracies": [random] * runs},
            },
        }
        for (name, group, relation), acc in zip(tasks, knn, strict=True)
    ]
    report = root / f"seed-{seed}" / "transfer" / "report"
    report.mkdir(parents=True)
    record = {"tasks": entries} if protocol is None else {"tasks": entries, "protocol": protocol}
    (report / "results.json").write_text(json.dumps(record))
    if finished:
        (root / f"seed-{seed}" / "seed.json").write_text(json.dumps({"seed": seed, "seconds": 60}))


def config(root, **fields):
    c = bench_seeds.get_config("smoke")
    c.workdir = str(root)
    c.update(fields)
    return c


def test_the_headline_averages_each_seeds_gain(tmp_path):
    write_seed(tmp_path, 0, 0.55)  # +10%
    write_seed(tmp_path, 1, 0.625)  # +25%
    write_seed(tmp_path, 2, 0.6, finished=False)  # still running: not counted
    (tmp_path / "seed-3").mkdir()  # started, no results
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    assert record["seeds_used"] == [0, 1] and not record["partial"]
    assert record["seeds_partial"] == {"2": 4} and record["seeds_without_results"] == [3]
    knn = record["methods"]["knn"]["all"]
    assert knn["seed_gains"] == pytest.approx([0.1, 0.25])
    assert knn["gain"] == pytest.approx(0.175)
    assert knn["interval"] == pytest.approx([0.1, 0.25])  # runs constant: the seeds' span
    assert knn["spread"] == pytest.approx(0.15)
    # A constant gain within every seed: resampling the tasks adds nothing.
    assert knn["interval_tasks"] == pytest.approx(knn["interval"])
    assert record["methods"]["random"]["all"]["gain"] == 0.0
    vs_random = record["methods"]["knn"]["vs_control"]
    assert vs_random["all"]["gain"] == pytest.approx(0.175)
    assert set(vs_random) == {"all", "matched", "weak", "unrelated", "undeclared"}


def test_seeds_fine_tuned_under_other_settings_are_refused_by_name(tmp_path):
    epochs = {"finetune.epochs": [5.0], "finetune.learning_rates": [0.01]}
    write_seed(tmp_path, 0, 0.55, protocol=epochs)
    write_seed(tmp_path, 1, 0.6, protocol={**epochs, "finetune.epochs": [10.0]})
    with pytest.raises(
        ValueError, match=r"seed-1/.*other settings than seed-0 \(finetune\.epochs\)"
    ):
        seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    write_seed(tmp_path, 2, 0.6)  # a report from before the settings were recorded
    (tmp_path / "seed-1" / "seed.json").unlink()
    (tmp_path / "seed-1" / "transfer" / "report" / "results.json").unlink()
    with pytest.raises(
        ValueError, match=r"seed-2/.*\(finetune\.epochs, finetune\.learning_rates\)"
    ):
        seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))


def test_the_headline_names_the_settings_its_seeds_share(tmp_path):
    for seed in (0, 1):
        write_seed(tmp_path, seed, 0.55, protocol={"finetune.epochs": [10.0], "image_size": 32})
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    assert record["protocol"] == {"finetune.epochs": [10.0], "image_size": 32}
    assert "Fine-tuning, the same on every seed: epochs [10.0]." in seed_headline.markdown(record)


def test_groups_and_relations_split_the_tasks(tmp_path):
    for seed in (0, 1):
        write_seed(tmp_path, seed, [0.75, 0.5, 0.5, 0.5])  # only the matched task gains
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    knn = record["methods"]["knn"]
    assert knn["relation"]["matched"]["gain"] == pytest.approx(0.5)
    assert knn["relation"]["unrelated"]["gain"] == 0.0
    assert knn["relation"]["undeclared"]["tasks"] == 1  # a task declaring none
    assert knn["group"]["natural"]["gain"] == pytest.approx(0.25)
    assert knn["all"]["gain"] == pytest.approx(0.125)
    text = seed_headline.markdown(record)
    assert "| knn | +12.5% |" in text
    assert "matched (1)" in text and "natural (2)" in text


def test_one_seed_has_no_interval_and_says_so(tmp_path):
    write_seed(tmp_path, 0, 0.55)
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    knn = record["methods"]["knn"]["all"]
    assert knn["interval"] is None and knn["paired_t_p"] is None
    # Four tasks of one seed, all +5 points: 2 of 16 sign patterns as extreme.
    assert knn["sign_flip_units_p"] == 2 / 16 and knn["sign_flip_units_exact"]
    assert "n/a (one seed)" in seed_headline.markdown(record)


def test_partial_seeds_only_are_labelled_partial(tmp_path):
    write_seed(tmp_path, 4, 0.55, finished=False)
    write_seed(tmp_path, 5, 0.55, finished=False, tasks=TASKS[:2])
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    assert record["partial"] and record["seeds_used"] == [4, 5]
    assert record["tasks"] == ["mini_a", "mini_b"]  # those common to the seeds used
    assert "PARTIAL" in seed_headline.markdown(record)


def test_the_binary_writes_the_headline_and_the_demo_quotes_its_spread(tmp_path, capsys):
    write_seed(tmp_path, 0, 0.55)
    write_seed(tmp_path, 1, 0.625)
    paths = seeds_binary.execute(config(tmp_path))
    assert "Seeds finished: 0 (60 s), 1 (60 s)." in capsys.readouterr().out
    line = seed_headline.spread_line(paths["json"])
    assert line.startswith("One upstream seed. In the last multi-seed bench")
    assert "knn +10.0% to +25.0% (spread 15.0 points)" in line


def test_the_demo_says_when_there_is_no_bench_yet(tmp_path):
    line = seed_headline.spread_line(tmp_path / "headline.json", committed=None)
    assert "no multi-seed bench has been run yet" in line


def test_without_a_bench_of_its_own_the_demo_quotes_the_committed_one(tmp_path):
    for seed, knn in ((0, 0.55), (1, 0.6)):
        write_seed(tmp_path / "ours", seed, knn, protocol={"finetune.learning_rates": [0.01],
                                                           "finetune.epochs": [20.0]})  # fmt: skip
    paths = seeds_binary.execute(config(tmp_path / "ours"))
    line = seed_headline.spread_line(tmp_path / "absent.json", committed=paths["json"])
    assert f"({paths['json']}, 2 seeds)" in line
    assert line.endswith("It fine-tuned with learning rates [0.01], epochs [20.0].")
    mine = seed_headline.spread_line(tmp_path / "absent.json", committed=tmp_path / "none.json")
    assert "no multi-seed bench has been run yet" in mine


def test_a_bench_of_one_seed_gives_the_demo_no_spread(tmp_path):
    write_seed(tmp_path, 0, 0.55)
    paths = seeds_binary.execute(config(tmp_path))
    line = seed_headline.spread_line(paths["json"])
    assert "has one seed so far, so how far apart upstream seeds are is not measured" in line
    assert "spread" not in line


def test_a_method_some_seed_lacks_is_left_out_and_named(tmp_path):
    write_seed(tmp_path, 0, 0.55)
    write_seed(tmp_path, 1, 0.55)
    path = tmp_path / "seed-1" / "transfer" / "report" / "results.json"
    record = json.loads(path.read_text())
    for task in record["tasks"]:
        del task["methods"]["random"]
    path.write_text(json.dumps(record))
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    assert set(record["methods"]) == {"knn"} and record["control"] == ""
    assert "Not run on every task of every seed used: random (in the last section" in (
        seed_headline.markdown(record)
    )
    # Over the one seed that has it, beside knn on that seed.
    [fewer] = record["fewer_seeds"]
    assert fewer["seeds"] == [0] and set(fewer["methods"]) == {"knn", "random"}
    assert fewer["methods"]["random"]["all"]["gain"] == 0.0


def test_the_oracle_on_some_seeds_gives_each_method_a_share_of_its_gain(tmp_path):
    """The oracle (+20%) on seeds 1 and 2 only: knn (+10% there) reaches half of its
    gain and picked its module on the tasks where their picks agree."""
    for seed, knn in ((0, 0.5), (1, 0.55), (2, 0.55)):
        write_seed(tmp_path, seed, knn)
        if seed == 0:
            continue
        path = tmp_path / f"seed-{seed}" / "transfer" / "report" / "results.json"
        record = json.loads(path.read_text())
        for i, task in enumerate(record["tasks"]):
            task["methods"]["oracle"] = {"test_accuracies": [0.6] * 3, "pick": "e1"}
            task["methods"]["knn"]["pick"] = "e1" if i < 3 else "e2"
        path.write_text(json.dumps(record))
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    assert record["methods_incomplete"] == ["oracle"]
    assert record["methods"]["knn"]["all"]["gain"] == pytest.approx(0.2 / 3)  # all seeds
    [fewer] = record["fewer_seeds"]
    assert fewer["seeds"] == [1, 2]
    oracle, knn = fewer["methods"]["oracle"], fewer["methods"]["knn"]
    assert oracle["all"]["gain"] == pytest.approx(0.2) and oracle["oracle_share"] == 1.0
    assert knn["all"]["gain"] == pytest.approx(0.1) and knn["oracle_share"] == pytest.approx(0.5)
    assert knn["oracle_picks"] == [6, 8]  # 3 of 4 tasks on each seed
    assert fewer["methods"]["random"]["oracle_picks"] == [0, 0]  # no picks recorded
    assert knn["relation"]["matched"]["gain"] == pytest.approx(0.1)
    text = seed_headline.markdown(record)
    assert "**Seeds 1, 2**" in text and "| knn | +10.0% |" in text and "| 50% | 6/8 |" in text


def add_method(root, seed, method, accuracy, picks, tasks=None):
    """Adds `method` to a seed's results on `tasks` (indices; default all)."""
    path = root / f"seed-{seed}" / "transfer" / "report" / "results.json"
    record = json.loads(path.read_text())
    for i, task in enumerate(record["tasks"]):
        if tasks is None or i in tasks:
            task["methods"][method] = {"test_accuracies": [accuracy] * 3, "pick": picks[i]}
    path.write_text(json.dumps(record))


def test_an_oracle_on_every_seed_still_gives_shares_and_ensembles_never_match_it(tmp_path):
    for seed in (0, 1):
        write_seed(tmp_path, seed, 0.55)
        add_method(tmp_path, seed, "oracle", 0.6, ["e1"] * 4)
        add_method(tmp_path, seed, "ensemble", 0.65, ["e1+e2"] * 4)
        add_method(tmp_path, seed, "partial", 0.5, ["e1"] * 4, tasks=[0])  # one task only
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    dropped, everything = record["fewer_seeds"]
    assert dropped == {"seeds": [], "methods": {}, "dropped": ["partial"]}
    assert everything["seeds"] == [0, 1]
    assert everything["methods"]["knn"]["oracle_share"] == pytest.approx(0.5)
    assert everything["methods"]["ensemble"]["oracle_picks"] == [0, 0]
    assert "Run on no seed's every task, so left out: partial." in seed_headline.markdown(record)


def test_no_share_of_an_oracle_gain_that_is_not_above_zero(tmp_path):
    for seed in (0, 1):
        write_seed(tmp_path, seed, 0.55)
        add_method(tmp_path, seed, "oracle", 0.5, ["e1"] * 4)  # B's accuracy: no gain
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    [everything] = record["fewer_seeds"]
    assert everything["methods"]["knn"]["oracle_share"] is None
