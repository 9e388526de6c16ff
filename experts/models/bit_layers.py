"""BiT ResNet-v2's layers: weight-standardised convolutions, BiT's GroupNorm and padding,
and the pre-activation bottleneck unit (``resnet_v2`` assembles them; its docstring
says what stays float32 under a mixed policy and why)."""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

GN_GROUPS = 32
GN_EPSILON = 1e-5
# BiT standardises kernels with this epsilon (bit_tf2 and bit_pytorch alike).
WS_EPSILON = 1e-10


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
