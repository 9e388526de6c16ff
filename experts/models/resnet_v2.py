"""BiT ResNet-v2: weight-standardised convolutions, GroupNorm, pre-activation bottlenecks.

This follows Big Transfer (Kolesnikov et al., 2019) layer for layer, so that the
baseline B and the full experts have exactly the architecture of the published
BiT experts:

* every convolution is weight-standardised and bias-free;
* GroupNorm with 32 groups and epsilon 1e-5 (Keras defaults to 1e-3);
* pre-activation bottleneck units whose projection shortcut is taken from the
  pre-activated input, with the stride on the 3x3 convolution;
* a root of a 7x7/2 convolution and a 3x3/2 max-pool with no norm in between;
* a final GroupNorm, ReLU and global average pooling, then a zero-initialised head.

Inputs are float images in [0, 1] of any size; the model maps them to [-1, 1]
itself (BiT's training range), so every caller and every exported hub module
shares TF-Hub's image convention.

The model returns a dict with ``pre_logits`` and, when it has a head, ``logits``.
With ``num_experts > 0`` a multi-adapter layer (see ``adapters.py``) sits before
each of the four blocks and ``call`` takes the expert id(s) to route through.

Precision follows the model's Keras dtype policy (``dtype="mixed_bfloat16"`` or
``"mixed_float16"``; by default the global policy, float32), handed to every layer:
convolutions and activations run in the policy's compute dtype, while variables stay
float32 and three things stay float32 whatever the policy (Keras' mixed-precision
guide's advice for normalisation and outputs, applied to BiT's layers): GroupNorm (its statistics over a group would lose most of
their digits in 16 bits), weight standardisation (a kernel's mean can dwarf its spread,
so it is standardised from the float32 variable before the cast), and everything after
the last block (the final GroupNorm, pooling and the head), so ``pre_logits`` and
``logits`` are float32 for the loss and for feature extraction.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from experts.models import adapters as adapters_lib
from experts.models.bit_layers import BottleneckUnitV2, FixedPadding, group_norm, std_conv


@dataclasses.dataclass(frozen=True)
class ResNetSize:
    """A named ResNet-v2 size: units per block and a width multiplier."""

    num_units: tuple[int, int, int, int]
    width: float

    @property
    def root_filters(self) -> int:
        return int(round(64 * self.width))


# Depth counts the weighted layers: 3 per unit, plus the root conv and the head.
SIZES: dict[str, ResNetSize] = {
    "r50x1": ResNetSize((3, 4, 6, 3), 1),
    "r50x3": ResNetSize((3, 4, 6, 3), 3),
    "r101x1": ResNetSize((3, 4, 23, 3), 1),
    "r101x3": ResNetSize((3, 4, 23, 3), 3),
    "r152x2": ResNetSize((3, 8, 36, 3), 2),
    "r152x4": ResNetSize((3, 8, 36, 3), 4),
    # Small sizes for 2-core CPUs (the `cpu` preset) and for tests (`smoke`).
    "r26x0.5": ResNetSize((2, 2, 2, 2), 0.5),
    "r26x0.25": ResNetSize((2, 2, 2, 2), 0.25),
    "r14x0.125": ResNetSize((1, 1, 1, 1), 0.125),
}


def get_size(name: str) -> ResNetSize:
    if name not in SIZES:
        raise ValueError(f"unknown ResNet-v2 size {name!r}; known sizes: {', '.join(SIZES)}")
    return SIZES[name]


class ResNetV2(keras.Model):
    """BiT ResNet-v2, optionally with one multi-adapter layer before each block.

    Args:
      size: a name from ``SIZES`` (``r50x1``, ``r26x0.25``, ...).
      num_classes: head outputs; 0 or None builds a backbone without head.
      num_experts: adapter experts; 0 builds the plain network.
      head_bias_init: initial head bias. Sigmoid heads over thousands of rare outputs
        start near their prior (e.g. -log(num_classes)), as big_vision's BiT/ViT
        upstream configs do; from 0 the first steps spend themselves pushing every
        logit down, with a loss of num_classes * log 2 per image.
      expert_head_bias: with adapters and a head, one trainable logit offset per
        expert (``adapters.ExpertHeadBias``), part of the adapter variables.
      adapter_scale: with adapters, a trainable output scale per expert and block
        (``adapters.MultiAdapter``'s ``output_scale``), an adapter variable.
      adapter_width: with adapters, the bottleneck's channels as a fraction of the
        adapter's input channels (``adapters.MultiAdapter``'s ``width``; the paper's 0.5).
      dtype: a Keras dtype policy or its name (``float32``, ``mixed_bfloat16``,
        ``mixed_float16``); by default the global policy. See the module docstring
        for what stays float32.
    """

    def __init__(
        self,
        size: str = "r50x1",
        num_classes: int | None = 0,
        num_experts: int = 0,
        head_bias_init: float = 0.0,
        expert_head_bias: bool = False,
        adapter_scale: bool = False,
        adapter_width: float = adapters_lib.PAPER_WIDTH,
        **kwargs,
    ):
        kwargs.setdefault("name", "resnet")
        super().__init__(**kwargs)
        self.size_name, self.num_classes, self.num_experts = size, num_classes or 0, num_experts
        self.head_bias_init = float(head_bias_init)
        self.expert_head_bias = bool(expert_head_bias)
        self.adapter_scale = bool(adapter_scale)
        self.adapter_width = float(adapter_width)
        spec = get_size(size)
        policy = self.dtype_policy
        self.root_pad = FixedPadding(7, name="root_block/padding", dtype=policy)
        self.root_conv = std_conv(
            spec.root_filters, 7, strides=2, name="root_block/standardized_conv2d", dtype=policy
        )
        self.root_pool_pad = FixedPadding(3, name="root_block/pool_padding", dtype=policy)
        self.root_pool = keras.layers.MaxPool2D(
            3, strides=2, padding="valid", name="root_block/max_pool", dtype=policy
        )

        self.blocks, self.block_input_channels = [], []
        channels = spec.root_filters
        for b, units in enumerate(spec.num_units):
            filters = spec.root_filters * 2**b
            self.block_input_channels.append(channels)
            block = []
            for u in range(units):
                stride = 2 if (b > 0 and u == 0) else 1
                block.append(
                    BottleneckUnitV2(
                        filters,
                        channels,
                        stride,
                        name=f"block{b + 1}/unit{u + 1:02d}",
                        dtype=policy,
                    )  # fmt: skip
                )
                channels = 4 * filters
            self.blocks.append(block)
        self.feature_dim = channels

        self.adapters = []
        if num_experts:
            self.adapters = [
                adapters_lib.MultiAdapter(
                    num_experts,
                    c,
                    self.adapter_scale,
                    self.adapter_width,
                    name=f"block{b + 1}/adapters",
                    dtype=policy,
                )
                for b, c in enumerate(self.block_input_channels)
            ]
        self.pre_head_norm = group_norm(channels, name="pre_head/group_norm")
        self.head = None
        if self.num_classes:
            self.head = keras.layers.Dense(
                self.num_classes,
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(self.head_bias_init),
                name="head/dense",
                dtype="float32",  # float32 logits for the loss
            )
        self.expert_bias = None
        if self.expert_head_bias and num_experts and self.num_classes:
            self.expert_bias = adapters_lib.ExpertHeadBias(
                num_experts, self.num_classes, name="head/expert_bias", dtype="float32"
            )

    def call(self, images, expert=None, training=False):
        """images: float [batch, h, w, 3] in [0, 1]. expert: an int (one expert for the
        whole batch) or an int tensor [batch] (per-example routing); required iff the
        model has adapters."""
        if self.adapters and expert is None:
            raise ValueError(
                "this ResNetV2 has adapter experts: pass expert= (an int or ids [batch])"
            )
        if expert is not None and not self.adapters:
            raise ValueError("expert= was given but this ResNetV2 has no adapters (num_experts=0)")
        pre_logits, _ = self._forward(images, expert)
        outputs = {"pre_logits": pre_logits}
        if self.head is not None:
            outputs["logits"] = self.head(pre_logits)
            if self.expert_bias is not None:
                outputs["logits"] = self.expert_bias(outputs["logits"], expert)
        return outputs

    def _forward(self, images, expert, observe: bool = False):
        """Pre-logits and, when ``observe``, RMS(a(x)) and RMS(x) of each adapter and
        its input (over the batch; a float32 [blocks, 2] tensor)."""
        x = tf.cast(images, self.compute_dtype) * 2.0 - 1.0
        x = self.root_pool(self.root_pool_pad(self.root_conv(self.root_pad(x))))
        ratios = []
        for b, block in enumerate(self.blocks):
            if observe:  # the model is built: the adapter's own weights, by hand
                residual = self.adapters[b].residual(x, expert)
                ratios.append(tf.stack([adapters_lib.rms(residual), adapters_lib.rms(x)]))
                x = x + residual
            elif self.adapters:
                x = self.adapters[b](x, expert)
            for unit in block:
                x = unit(x)
        # The final GroupNorm outputs float32, so pooling and pre_logits are float32.
        pre_logits = tf.reduce_mean(tf.nn.relu(self.pre_head_norm(x)), axis=[1, 2])
        return pre_logits, tf.stack(ratios) if ratios else tf.zeros([0])

    def adapter_rms_ratios(self, images, expert) -> tf.Tensor:
        """RMS(a(x)) / RMS(x) of the adapter before each block on ``images`` routed to
        ``expert``: how far each adapter has grown against the residual stream it adds
        to (0 untrained)."""
        if not self.adapters:
            raise ValueError("this ResNetV2 has no adapters (num_experts=0)")
        if not self.built:
            self.build_for(images.shape[1])
        observed = self._forward(images, expert, observe=True)[1]
        return observed[:, 0] / observed[:, 1]

    def calibrate_adapter_scales(self, images, expert=0) -> list[float]:
        """Sets every expert's output scale before each block to the RMS of that
        block's input on ``images`` (routed to ``expert``: with untrained adapters, B's
        stream whatever the routing); returns the scales. Keeps an untrained adapter
        the identity: its output is zero at any scale."""
        if not self.adapter_scale:
            raise ValueError("this ResNetV2 has no adapter scales (adapter_scale=False)")
        if not self.built:
            self.build_for(images.shape[1])
        stream = self._forward(images, expert, observe=True)[1][:, 1].numpy()
        for adapter, value in zip(self.adapters, stream, strict=True):
            adapter.scale.assign(tf.fill(adapter.scale.shape, float(value)))
        return stream.tolist()

    def build_for(self, image_size: int = 32):
        """Creates every variable by running one dummy batch."""
        expert = 0 if self.num_experts else None
        self(tf.zeros([1, image_size, image_size, 3]), expert=expert)
        return self

    # -- views used by training and export ------------------------------------------------

    @property
    def adapter_variables(self) -> list[tf.Variable]:
        """The adapters' weights: what an adapter expert adds to B's features."""
        return [v for a in self.adapters for v in a.weights]

    @property
    def expert_variables(self) -> list[tf.Variable]:
        """Everything an adapter expert trains: its adapters and, when the model has
        one, its head bias (the adapter job's trainable variables)."""
        bias = [] if self.expert_bias is None else self.expert_bias.weights
        return self.adapter_variables + list(bias)

    def freeze_backbone(self, frozen: bool = True):
        """Freezes everything except the adapters (the paper's adapter training)."""
        for layer in self.layers:
            if not isinstance(layer, (adapters_lib.MultiAdapter, adapters_lib.ExpertHeadBias)):
                layer.trainable = not frozen

    @property
    def backbone_and_head_weights(self) -> list[tf.Variable]:
        """Every weight except the adapters', in creation order (the same in every
        model of one size, with or without adapters)."""
        adapter_ids = {id(v) for v in self.expert_variables}
        return [v for v in self.weights if id(v) not in adapter_ids]

    def copy_backbone_from(self, source: ResNetV2, include_head: bool = True) -> None:
        """Copies ``source``'s non-adapter weights (e.g. B's) into this model; without
        the head when ``include_head`` is false (a new head keeps its initialisation)."""
        for model in (self, source):
            if not model.built:
                model.build_for()
        for src, dst in zip(
            source.backbone_and_head_weights, self.backbone_and_head_weights, strict=False
        ):
            if "/head/" in dst.name and not include_head:
                continue
            if src.name.split("/", 1)[1] != dst.name.split("/", 1)[1] or src.shape != dst.shape:
                raise ValueError(f"cannot copy {src.name} {src.shape} into {dst.name} {dst.shape}")
            dst.assign(src)

    def single_expert(self, expert: int) -> ResNetV2:
        """A new model with only ``expert``'s adapters, weights copied: a plain
        one-expert network (``call(images, expert=0)``). This is how an adapter expert
        is exported with the same contract as a full expert."""
        if not 0 <= expert < self.num_experts:
            raise ValueError(f"expert {expert} out of range for {self.num_experts} adapter experts")
        single = ResNetV2(
            self.size_name, self.num_classes, num_experts=1, name=self.name,
            expert_head_bias=self.expert_head_bias, adapter_scale=self.adapter_scale,
            adapter_width=self.adapter_width, dtype=self.dtype_policy,
        )  # fmt: skip
        single.copy_backbone_from(self)
        for src, dst in zip(self.expert_variables, single.expert_variables, strict=True):
            dst.assign(src[expert : expert + 1])
        return single

    def get_config(self):
        return {
            "size": self.size_name,
            "num_classes": self.num_classes,
            "num_experts": self.num_experts,
            "head_bias_init": self.head_bias_init,
            "expert_head_bias": self.expert_head_bias,
            "adapter_scale": self.adapter_scale,
            "adapter_width": self.adapter_width,
            "name": self.name,
            "dtype": self.dtype_policy.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
