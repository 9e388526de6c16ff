import pytest
from absl import flags
from ml_collections import config_flags

from experts.configs import baseline, presets
from experts.models import resnet_v2


@pytest.mark.parametrize("preset", presets.PRESETS)
def test_every_preset_names_a_known_model(preset):
    config = baseline.get_config(preset)
    assert config.preset == preset
    resnet_v2.get_size(config.model.size)
    assert config.model.image_size >= 32


def test_presets_follow_design():
    assert baseline.get_config("paper").model.to_dict() == {
        "size": "r50x1",
        "image_size": 224,
        "num_experts": 0,
        "expert_head_bias": False,
        "adapter_scale": False,
        "adapter_width": 0.5,
    }
    assert baseline.get_config("cpu").model.size == "r26x0.25"
    assert baseline.get_config("").preset == presets.DEFAULT_PRESET


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preset 'gpu'; choose one of smoke, cpu, paper"):
        baseline.get_config("gpu")


def test_config_flag_takes_a_preset_and_overrides():
    argv = ["prog", f"--config={baseline.__file__}:smoke", "--config.model.size=r26x0.5"]
    flag_values = flags.FlagValues()
    # The config flag reads its overrides from argv itself (sys.argv by default).
    config_flags.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    assert flag_values.config.preset == "smoke"
    assert flag_values.config.model.size == "r26x0.5"
    assert flag_values.config.model.image_size == 32
