"""Every field of every preset's config has a rule (fanout/config_rules.py) or is
exempt on purpose, every preset passes its rules, and each value a rule refuses is
refused in one line naming the field: a field added without a rule fails here."""

import importlib
from pathlib import Path

import ml_collections
import pytest

from experts.configs import presets
from fanout import config_rules

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = [
    *sorted(ROOT.glob("experts/configs/*.py")),
    ROOT / "hub_export" / "config.py",
    *sorted(ROOT.glob("vtab_eval/configs/*.py")),
]


def _config_modules():
    for path in CONFIG_FILES:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(name)
        if hasattr(module, "get_config"):
            yield name, module


MODULES = dict(_config_modules())
CASES = [(name, preset) for name in MODULES for preset in presets.PRESETS]


def test_every_binarys_config_is_walked():
    assert {
        "experts.configs.baseline",
        "experts.configs.full",
        "experts.configs.adapter",
        "experts.configs.epn",
        "hub_export.config",
        "vtab_eval.configs.transfer",
    } <= set(MODULES)


@pytest.mark.parametrize(("name", "preset"), CASES)
def test_every_field_has_a_rule_and_the_preset_keeps_them(name, preset):
    module = MODULES[name]
    config = module.get_config(preset)
    without_rule, without_field = config_rules.unmatched(config, module.RULES)
    assert not without_rule, f"{name}: fields without a rule (or exemption): {without_rule}"
    assert not without_field, f"{name}: rules of no field: {without_field}"
    config_rules.check(config, module.RULES)


def _set(config, field: str, value):
    """Sets ``field`` to ``value``; returns the value as stored (a float field stores
    an integer as a float)."""
    *owners, last = field.split(".")
    for owner in owners:
        config = config[owner]
    config[last] = value
    return config[last]


@pytest.mark.parametrize(("name", "preset"), CASES)
def test_each_refused_value_is_one_line_naming_the_field(name, preset):
    module = MODULES[name]
    config = module.get_config(preset)
    tried = 0
    for field, _ in config_rules.fields(config):
        rule = module.RULES[field]
        assert rule.refuses or rule.says.startswith("anything ("), field
        for bad in rule.refuses:
            broken = config.copy_and_resolve_references()
            stored = _set(broken, field, bad)
            with pytest.raises(config_rules.ConfigError) as error:
                config_rules.check(broken, module.RULES)
            message = str(error.value)
            assert message.startswith(f"config.{field}={stored!r}: must be "), message
            assert "\n" not in message
            tried += 1
    assert tried > len(module.RULES)


def test_a_field_without_a_rule_is_refused_naming_it():
    config = ml_collections.ConfigDict({"train": {"steps": 3, "new": 1}})
    rules = {"train.steps": config_rules.integer(min=1)}
    with pytest.raises(config_rules.ConfigError, match=r"^config\.train\.new: the field has no"):
        config_rules.check(config, rules)


@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        (config_rules.integer(min=1), [1, 7], [0, -3, 2.0, True, "3"]),
        (config_rules.positive(), [0.1, 3], [0, -0.1, float("nan"), float("inf"), "1"]),
        (config_rules.fraction(max_open=True), [0, 0.5], [1, -0.1, float("nan")]),
        (config_rules.path(), ["runs", "/abs"], ["", "  ", None]),
        (config_rules.name(), ["local"], ["a/b", "..", " x", ""]),
        (
            config_rules.sequence(config_rules.fraction(), length=2, ordered=True),
            [(0.5, 1.0), [0.2, 0.2]],
            [(1.0, 0.5), (0.5,), (0.5, 2.0), "ab"],
        ),
    ],
)
def test_rules_accept_and_refuse(rule, good, bad):
    assert all(rule.accepts(value) for value in good)
    assert not any(rule.accepts(value) for value in bad)


def test_names_restated_without_tensorflow_agree_with_their_owners():
    from fanout import distribute, precision
    from vtab_eval.configs import transfer
    from vtab_eval.tasks import base

    assert transfer.STRATEGIES == distribute.STRATEGIES
    assert transfer.SPLITS == base.SPLITS
    assert transfer.PRECISIONS == precision.PRECISIONS
