"""The upstream work tree's layout: safe job directories and recorded configs."""

import pytest

import fanout.files
from experts import work_tree


@pytest.mark.parametrize("node", ["../../evil", "a/b", "..", ".", ".hidden", "/abs", "x%2Fy"])
def test_every_node_is_one_safe_path_component(node, tmp_path):
    tree = work_tree.WorkTree(tmp_path)
    path = tree.job("full", node).path
    assert path.parent == tmp_path / "full"
    assert "/" not in path.name and not path.name.startswith(".")
    assert work_tree.node_of(path.name) == node


def test_directory_names_are_distinct_for_distinct_nodes():
    nodes = ["a/b", "a%2Fb", "a b", "a_b", ".a", "%2Ea", "..", "%2E."]
    assert len({work_tree.dir_name(n) for n in nodes}) == len(nodes)
    assert work_tree.dir_name("script/latin") == "script%2Flatin"
    assert work_tree.dir_name("glyph") == "glyph"
    with pytest.raises(ValueError, match="empty"):
        work_tree.dir_name("")


def test_start_records_then_checks_only_result_changing_fields(tmp_path):
    job = work_tree.JobDir(tmp_path / "baseline")
    config = {"model": {"size": "r14"}, "train": {"base_lr": 0.1, "log_every": 5}}
    job.start(config)
    assert job.config() == config
    job.start({"model": {"size": "r14"}, "train": {"base_lr": 0.1, "log_every": 50}})
    with pytest.raises(work_tree.ConfigChanged) as error:
        job.start({"model": {"size": "r14"}, "train": {"base_lr": 0.3, "log_every": 5}})
    message = str(error.value)
    assert message.startswith("train.base_lr is 0.3 but ") and "records 0.1" in message
    assert "--config.restart=true" in message and "\n" not in message
    assert job.config() == config  # the record is unchanged


def test_training_without_a_record_is_not_resumed_blindly(tmp_path):
    job = work_tree.JobDir(tmp_path / "epn")
    job.start({"train": {}})
    job.checkpoints.mkdir(parents=True)
    job.config_path.unlink()
    with pytest.raises(work_tree.ConfigChanged, match="without a config.json; pass --config.rest"):
        job.start({"train": {}})
    job.start({"train": {}}, restart=True)
    assert job.has_config() and not job.checkpoints.exists()


def test_a_restart_never_empties_a_directory_no_job_made(tmp_path):
    job = work_tree.JobDir(tmp_path / "epn")
    job.checkpoints.mkdir(parents=True)
    (job.path / "notes.txt").write_text("mine")
    with pytest.raises(work_tree.ConfigChanged, match="move it away"):
        job.start({"train": {}})
    with pytest.raises(fanout.files.NotOwned, match=r"epn holds files experts.train did not"):
        job.start({"train": {}}, restart=True)
    assert (job.path / "notes.txt").read_text() == "mine" and job.checkpoints.is_dir()


def test_a_missing_or_corrupt_record_names_the_file(tmp_path):
    job = work_tree.JobDir(tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        job.config()
    job.path.mkdir()
    job.config_path.write_text("{not json")
    with pytest.raises(ValueError, match=r"adapter/config.json is not valid JSON"):
        job.config()


def test_a_job_trained_with_one_upstream_seed_refuses_another(tmp_path):
    # A multi-seed bench gives every seed its own work tree: a seed passed to the wrong
    # one must not resume (or skip as finished) another seed's training.
    job = work_tree.JobDir(tmp_path / "baseline")
    job.start({"train": {"seed": 0}})
    with pytest.raises(work_tree.ConfigChanged, match="train.seed is 1 but"):
        job.start({"train": {"seed": 1}})
