"""fanout/recorded_config.py: a rerun is refused at the first result field that differs
from the record, naming it and both values; speed-only changes pass; fields added later
read as the value older records ran with."""

import json
import math

import pytest

from fanout import recorded_config
from fanout.recorded_config import Change, ConfigChanged, Fields

CONFIG = {"model": {"size": "r14"}, "train": {"lr": 0.1, "log_every": 5, "sizes": (1, 2)}}
ALL_BUT_SPEED = Fields(speed_only=frozenset({"train.log_every"}))


def message(change: Change) -> str:
    return f"{change.field}: {change.recorded!r} recorded, {change.wanted!r} now"


def changed(**fields):
    config = json.loads(json.dumps(CONFIG))
    for field, value in fields.items():
        section, leaf = field.split("__")
        config[section][leaf] = value
    return config


def test_the_same_config_and_a_speed_only_change_pass():
    ALL_BUT_SPEED.check(CONFIG, CONFIG, message)
    ALL_BUT_SPEED.check(CONFIG, changed(train__log_every=50), message)
    assert ALL_BUT_SPEED.first_change(CONFIG, changed(train__log_every=50)) is None


def test_the_first_differing_field_is_named_with_both_values():
    with pytest.raises(ConfigChanged) as error:
        ALL_BUT_SPEED.check(CONFIG, changed(train__lr=0.3, model__size="r26"), message)
    assert str(error.value) == "model.size: 'r14' recorded, 'r26' now"  # sorted: model first
    assert isinstance(error.value, ValueError)  # every binary reports it in one line


def test_a_tuple_equals_its_recorded_list_and_a_new_field_is_a_change():
    recorded = json.loads(json.dumps(CONFIG))  # the tuple comes back as a list
    assert ALL_BUT_SPEED.first_change(recorded, CONFIG) is None
    assert ALL_BUT_SPEED.first_change(recorded, changed(train__momentum=0.9)) == Change(
        "train.momentum", None, 0.9
    )


def test_a_field_added_later_reads_as_its_old_value():
    fields = Fields(later={"train.precision": "float32"})
    assert fields.first_change(CONFIG, changed(train__precision="float32")) is None
    assert fields.first_change(CONFIG, changed(train__precision="bfloat16")) == Change(
        "train.precision", "float32", "bfloat16"
    )
    # a new record leaves the field out at that value, so old and new records agree
    assert "precision" not in fields.kept(changed(train__precision="float32"))["train"]
    assert fields.kept(changed(train__precision="bfloat16"))["train"]["precision"] == "bfloat16"


def test_a_named_result_table_ignores_other_fields():
    fields = Fields(results=frozenset({"model.size"}), speed_only=frozenset({"train.lr"}))
    assert fields.first_change(CONFIG, changed(train__log_every=1)) is None
    assert fields.kept(CONFIG) == {"model": {"size": "r14"}}
    assert fields.first_change(CONFIG, changed(model__size="r26")).field == "model.size"


def test_an_unrecorded_field_matches_any_value_only_when_the_record_lacks_it():
    fields = Fields(unrecorded=frozenset({"train.repeats"}))
    assert fields.first_change(CONFIG, changed(train__repeats=3)) is None
    recorded = changed(train__repeats=2)
    assert fields.first_change(recorded, changed(train__repeats=3)) == Change("train.repeats", 2, 3)


def test_flatten_and_unflatten_are_inverse():
    flat = recorded_config.flatten(CONFIG)
    assert flat == {
        "model.size": "r14",
        "train.lr": 0.1,
        "train.log_every": 5,
        "train.sizes": [1, 2],
    }
    assert recorded_config.unflatten(flat) == json.loads(json.dumps(CONFIG))


def test_a_record_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "job" / "config.json"
    recorded_config.write(path, CONFIG)
    assert json.loads(path.read_text()) == json.loads(json.dumps(CONFIG))
    with pytest.raises(ValueError):  # NaN could not be compared once read back
        recorded_config.write(path, changed(train__lr=math.nan))
    assert json.loads(path.read_text())["train"]["lr"] == 0.1
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]
