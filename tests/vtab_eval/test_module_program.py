"""Module programs: equal for modules that differ only in weights and in the names a
save gives, different for any other computation."""

import pytest
import tensorflow as tf

from fanout import module_check
from tests.vtab_eval import hub_fixtures
from vtab_eval.pool import module_program


class Scaled(hub_fixtures.TinyModule):
    """The corner module with its features times a constant: same variables, another
    computation."""

    def __init__(self, scale: float, seed: int = 0):
        self.scale = scale
        super().__init__("corner", seed=seed)

    @tf.function
    def __call__(self, images, training=False):
        pre = tf.reshape(images[:, :2, :2, :], [-1, 12]) * self.scale
        return tf.matmul(pre, self.kernel) + self.bias


def _save(path, module):
    return hub_fixtures.save_module(path, module, hub_fixtures.expert_info(path.name))


def test_saves_of_one_computation_with_other_weights_share_a_program(tmp_path):
    a = _save(tmp_path / "a", hub_fixtures.TinyModule("conv", seed=1))
    b = _save(tmp_path / "b", hub_fixtures.TinyModule("conv", seed=2))
    # The files differ beyond the weights (function names, captured tensors' numbers).
    assert (a / "saved_model.pb").read_bytes() != (b / "saved_model.pb").read_bytes()
    assert module_program.program_key(a) == module_program.program_key(b)
    assert module_program.program_key(str(a)) == module_program.program_key(a)


def test_another_computation_is_another_program(tmp_path):
    keys = {
        module_program.program_key(_save(tmp_path / name, module))
        for name, module in [
            ("conv", hub_fixtures.TinyModule("conv")),
            ("corner", hub_fixtures.TinyModule("corner")),
            ("corner_x2", Scaled(2.0)),
            ("corner_x3", Scaled(3.0)),  # only a constant differs
        ]
    }
    assert len(keys) == 4


def test_function_names_are_ranked_by_their_counter_within_their_base():
    names = ["__inference_call_100", "__inference_call_99", "__inference_serve_7", "plain"]
    assert module_program.canonical_names(names) == {
        "__inference_call_99": "__inference_call_#0",
        "__inference_call_100": "__inference_call_#1",
        "__inference_serve_7": "__inference_serve_#0",
        "plain": "plain#0",
    }


def test_a_damaged_module_is_named(tmp_path):
    module = _save(tmp_path / "broken", hub_fixtures.TinyModule("corner"))
    (module / "saved_model.pb").write_bytes(b"not a saved model")
    with pytest.raises(module_check.DamagedModuleError, match="broken"):
        module_program.program_key(module)
