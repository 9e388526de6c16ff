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
import math

import tensorflow as tf
import tf_keras as keras

from experts.models import adapters as adapters_lib

GN_GROUPS = 32
GN_EPSILON = 1e-5
# BiT standardises kernels with this epsilon (bit_tf2 and bit_pytorch alike).
WS_EPSILON = 1e-10


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


def group_norm(channels_hint: int | None = None, name: str = "group_norm"):
    """BiT's GroupNorm, always in float32 (Keras' GroupNormalization takes its moments
    in the input's dtype, so it gets float32 inputs and outputs float32; the next
    layer casts back to the compute dtype). Layers narrower than 32 channels (the
    small CPU sizes) use gcd(32, channels) groups, since 32 groups cannot split them;
    every BiT size has at least 64 channels, so this never changes the published
    architecture."""
    groups = GN_GROUPS if channels_hint is None else math.gcd(GN_GROUPS, channels_hint)
    return keras.layers.GroupNormalization(
        groups=groups, epsilon=GN_EPSILON, name=name, dtype="float32"
    )


class StandardizedConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel is standardised to zero mean and unit variance over
    (height, width, input channels) before every use (weight standardisation).

    Under a mixed policy the kernel is standardised in float32 and only the result is
    cast to the compute dtype: Keras would otherwise hand ``convolution_op`` a kernel
    already rounded to 16 bits, whose spread around a large mean is lost."""

    def add_weight(self, *args, **kwargs):
        # Reads of this layer's variables give their float32 values (no autocast).
        kwargs.setdefault("experimental_autocast", False)
        return super().add_weight(*args, **kwargs)

    def convolution_op(self, inputs, kernel):
        kernel = tf.cast(kernel, tf.float32)
        mean, var = tf.nn.moments(kernel, axes=[0, 1, 2], keepdims=True)
        standardized = (kernel - mean) / tf.sqrt(var + WS_EPSILON)
        return super().convolution_op(inputs, tf.cast(standardized, inputs.dtype))


def std_conv(
    filters: int, kernel_size: int, strides: int = 1, name: str = "standardized_conv2d", dtype=None
):
    return StandardizedConv2D(
        filters, kernel_size, strides=strides, padding="valid", use_bias=False, name=name,
        dtype=dtype,
    )  # fmt: skip


class FixedPadding(keras.layers.Layer):
    """Pads like BiT: (k - 1) pixels split before/after, so that strided convs and
    pools are aligned the same way at every input size (unlike 'same' padding)."""

    def __init__(self, kernel_size: int, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        total = kernel_size - 1
        self._pads = [
            [0, 0],
            [total // 2, total - total // 2],
            [total // 2, total - total // 2],
            [0, 0],
        ]

    def call(self, x):
        return tf.pad(x, self._pads)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


class BottleneckUnitV2(keras.layers.Layer):
    """Pre-activation bottleneck: GN-ReLU-conv1x1, GN-ReLU-conv3x3/stride, GN-ReLU-conv1x1."""

    def __init__(self, filters: int, in_channels: int, stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.in_channels, self.stride = filters, in_channels, stride
        out_channels = 4 * filters
        policy = self.dtype_policy  # Keras does not hand a layer's policy to its sublayers
        self.norm_a = group_norm(in_channels, name="a/group_norm")
        self.conv_a = std_conv(filters, 1, name="a/standardized_conv2d", dtype=policy)
        self.norm_b = group_norm(filters, name="b/group_norm")
        self.pad_b = FixedPadding(3, name="b/padding", dtype=policy)
        self.conv_b = std_conv(
            filters, 3, strides=stride, name="b/standardized_conv2d", dtype=policy
        )
        self.norm_c = group_norm(filters, name="c/group_norm")
        self.conv_c = std_conv(out_channels, 1, name="c/standardized_conv2d", dtype=policy)
        self.proj = None
        if stride > 1 or in_channels != out_channels:
            self.proj = std_conv(
                out_channels, 1, strides=stride, name="a/proj/standardized_conv2d", dtype=policy
            )

    def call(self, x):
        shortcut = x
        x = tf.nn.relu(self.norm_a(x))
        if self.proj is not None:
            # BiT takes the projection from the pre-activated input.
            shortcut = self.proj(x)
        x = self.conv_a(x)
        x = self.conv_b(self.pad_b(tf.nn.relu(self.norm_b(x))))
        x = self.conv_c(tf.nn.relu(self.norm_c(x)))
        return x + shortcut

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "in_channels": self.in_channels,
            "stride": self.stride,
        }


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
        **kwargs,
    ):
        kwargs.setdefault("name", "resnet")
        super().__init__(**kwargs)
        self.size_name, self.num_classes, self.num_experts = size, num_classes or 0, num_experts
        self.head_bias_init = float(head_bias_init)
        self.expert_head_bias = bool(expert_head_bias)
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
                    num_experts, c, name=f"block{b + 1}/adapters", dtype=policy
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
        """Pre-logits and, when ``observe``, RMS(a(x)) / RMS(x) of each adapter (over
        the batch; a float32 [blocks] tensor)."""
        x = tf.cast(images, self.compute_dtype) * 2.0 - 1.0
        x = self.root_pool(self.root_pool_pad(self.root_conv(self.root_pad(x))))
        ratios = []
        for b, block in enumerate(self.blocks):
            if observe:  # the model is built: the adapter's own weights, by hand
                residual = self.adapters[b].residual(x, expert)
                ratios.append(adapters_lib.rms(residual) / adapters_lib.rms(x))
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
        return self._forward(images, expert, observe=True)[1]

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
            expert_head_bias=self.expert_head_bias, dtype=self.dtype_policy,
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
            "name": self.name,
            "dtype": self.dtype_policy.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
