"""The paper's residual adapters (section 4.1, Figure 3).

One ``MultiAdapter`` layer sits before each of the four ResNet blocks and holds one
adapter per expert. Expert e's adapter adapts the block's input:
``x + A2(A1(x))``, where each A is GroupNorm, ReLU and a bias-free 1x1 convolution,
A1 maps c channels to k = c/2 and A2 maps them back (so an adapter has c^2 conv
weights, the size of a linear adapter). ``width`` sets k = width * c otherwise (the
paper's section 4.1 says k can be changed to limit the parameters). A2's kernel
starts at zero, so an untrained adapter is the identity and an untrained adapter
expert equals the baseline B.

All experts' weights are stacked on a leading expert axis. Routing gathers each
example's own weights and applies them with one batched contraction, instead of
running every expert on every example (E times the work) or partitioning the batch
(dynamic shapes, which TPUs and XLA dislike). The cost is a [batch, c, c/2] gathered
kernel per layer, a few MB per replica even at r50x1.

With ``output_scale`` each expert's adapter also has a trainable scalar ``s`` per
block, and adds ``s * A2(A1(x))``: still the identity at first, whatever ``s``. Every
BiT block starts with a GroupNorm (its projection shortcut too), so a block sees its
input only relative to its scale: an adapter's output counts against the stream's
RMS (several units in the later blocks), while A2's updates are the same size in every
block and its gradient arrives divided by that RMS. Setting ``s`` to the stream's RMS
(``ResNetV2.calibrate_adapter_scales``) makes an update move every block's adapter
by the same share of its stream. This scale is our addition; the paper's adapters
have none.

The adapter convolutions are plain (not weight-standardised): standardising A2's
zero-initialised kernel would divide by sqrt(epsilon) and blow up its gradients.

Under a mixed dtype policy the contractions run in the compute dtype while the
GroupNorms (statistics, scale and offset) stay float32, like the backbone's.
"""

from __future__ import annotations

import functools
import math

import tensorflow as tf
import tf_keras as keras

GN_GROUPS = 32
GN_EPSILON = 1e-5
PAPER_WIDTH = 0.5  # k = c / 2: the paper's bottleneck


def hidden_channels(channels: int, width: float) -> int:
    """k, the bottleneck's channels: ``width * channels``, which must be a whole number
    of at least one (a one-line error names the block's channels otherwise)."""
    hidden = width * channels
    if not (hidden >= 1 and float(hidden).is_integer()):
        raise ValueError(
            f"adapter width {width} of {channels} input channels gives {hidden} bottleneck "
            "channels: it must be a whole number >= 1"
        )
    return int(hidden)


def _group_norm(x, gamma, beta, groups: int):
    """GroupNorm with per-example (``[batch, c]``) or shared (``[c]``) scale and offset.
    Keras' GroupNormalization only takes shared ones, hence this small function."""
    shape = tf.shape(x)
    channels = x.shape[-1]
    grouped = tf.reshape(x, tf.concat([shape[:-1], [groups, channels // groups]], axis=0))
    mean, var = tf.nn.moments(grouped, axes=[1, 2, 4], keepdims=True)
    x = tf.reshape((grouped - mean) * tf.math.rsqrt(var + GN_EPSILON), shape)
    if gamma.shape.rank == 2:  # per-example
        gamma, beta = gamma[:, None, None, :], beta[:, None, None, :]
    return x * gamma + beta


def _stacked_glorot_uniform(fan_in: int, fan_out: int):
    """Keras' default conv initialiser, drawn independently for each expert (the stock
    initialiser would count the expert axis into the fans)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return keras.initializers.RandomUniform(-limit, limit)


class MultiAdapter(keras.layers.Layer):
    """One residual bottleneck adapter per expert on a ``channels``-wide input."""

    def __init__(
        self,
        num_experts: int,
        channels: int,
        output_scale: bool = False,
        width: float = PAPER_WIDTH,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.num_experts, self.channels = num_experts, channels
        self.output_scale, self.width = bool(output_scale), float(width)
        self.hidden = hidden_channels(channels, self.width)
        self.groups_in = math.gcd(GN_GROUPS, channels)
        self.groups_hidden = math.gcd(GN_GROUPS, self.hidden)

    def build(self, input_shape):
        e, c, k = self.num_experts, self.channels, self.hidden
        if input_shape[-1] != c:
            raise ValueError(f"{self.name}: built for {c} channels, got input shape {input_shape}")
        # Read as float32 (no autocast): call casts the kernels itself and keeps the
        # GroupNorm parameters float32.
        add = functools.partial(self.add_weight, experimental_autocast=False)
        self.norm1_gamma = add("a1/group_norm/gamma", [e, c], initializer="ones")
        self.norm1_beta = add("a1/group_norm/beta", [e, c], initializer="zeros")
        self.conv1_kernel = add(
            "a1/conv1x1/kernel", [e, c, k], initializer=_stacked_glorot_uniform(c, k)
        )
        self.norm2_gamma = add("a2/group_norm/gamma", [e, k], initializer="ones")
        self.norm2_beta = add("a2/group_norm/beta", [e, k], initializer="zeros")
        # Zero-initialised, so that an untrained adapter is the identity.
        self.conv2_kernel = add("a2/conv1x1/kernel", [e, k, c], initializer="zeros")
        self.scale = None
        if self.output_scale:  # last, so the other weights keep their order
            self.scale = add("output_scale", [e], initializer="ones")
        super().build(input_shape)

    def call(self, x, expert):
        """expert: a Python int or scalar tensor (one expert for the batch), or int
        ids of shape [batch] (per-example routing)."""
        return x + self.residual(x, expert)

    def residual(self, x, expert):
        """The adapter's output a(x), which ``call`` adds to x."""
        expert = check_expert_ids(expert, self.num_experts, self.name)
        weights = [
            tf.gather(w, expert)
            for w in (
                self.norm1_gamma,
                self.norm1_beta,
                self.conv1_kernel,
                self.norm2_gamma,
                self.norm2_beta,
                self.conv2_kernel,
            )
        ]
        gamma1, beta1, kernel1, gamma2, beta2, kernel2 = weights
        kernel1, kernel2 = tf.cast(kernel1, x.dtype), tf.cast(kernel2, x.dtype)
        contract = "bhwc,ck->bhwk" if expert.shape.rank == 0 else "bhwc,bck->bhwk"
        h = tf.nn.relu(_group_norm(tf.cast(x, tf.float32), gamma1, beta1, self.groups_in))
        h = tf.einsum(contract, tf.cast(h, x.dtype), kernel1)
        h = tf.nn.relu(_group_norm(tf.cast(h, tf.float32), gamma2, beta2, self.groups_hidden))
        out = tf.einsum(contract, tf.cast(h, x.dtype), kernel2)
        if self.scale is None:
            return out
        scale = tf.cast(tf.gather(self.scale, expert), x.dtype)
        return out * (scale if expert.shape.rank == 0 else scale[:, None, None, None])

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "channels": self.channels,
            "output_scale": self.output_scale,
            "width": self.width,
        }


def rms(x) -> tf.Tensor:
    """The root mean square of every element of ``x``, in float32."""
    return tf.sqrt(tf.reduce_mean(tf.square(tf.cast(x, tf.float32))))


def check_expert_ids(expert, num_experts: int, name: str) -> tf.Tensor:
    """``expert`` as int32 ids: a scalar or [batch], each in [0, num_experts)."""
    expert = tf.convert_to_tensor(expert, dtype=tf.int32)
    if expert.shape.rank not in (0, 1):
        raise ValueError(f"{name}: expert must be a scalar or [batch] ids, got {expert.shape}")
    tf.debugging.assert_less(expert, num_experts, message=f"{name}: expert id out of range")
    tf.debugging.assert_non_negative(expert, message=f"{name}: negative expert id")
    return expert


class ExpertHeadBias(keras.layers.Layer):
    """One trainable offset of the head's logits per adapter expert (zero at first).

    With B's backbone and head frozen, the cheapest way for an adapter to lower its
    slice's sigmoid loss is to move every image of the slice by one common feature
    offset: the slice's prior (its nodes up, the others down). That lowers the loss and
    leaves nearest neighbours as they were. A full expert puts that prior into its
    head's biases; this gives an adapter expert the same place for it, so that its
    adapters are left what only features can do. It adds no feature: the modules'
    features are the same function of the adapters with or without it."""

    def __init__(self, num_experts: int, outputs: int, **kwargs):
        super().__init__(**kwargs)
        self.num_experts, self.outputs = num_experts, outputs

    def build(self, input_shape):
        self.bias = self.add_weight(
            "bias", [self.num_experts, self.outputs], initializer="zeros",
            experimental_autocast=False,
        )  # fmt: skip
        super().build(input_shape)

    def call(self, logits, expert):
        expert = check_expert_ids(expert, self.num_experts, self.name)
        bias = tf.gather(self.bias, expert)
        return logits + (bias if expert.shape.rank == 1 else bias[None])

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "outputs": self.outputs}
