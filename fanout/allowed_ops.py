"""The TensorFlow ops a hub module may hold: what an image feature extractor and its
fine-tuning compute with, and nothing that reaches outside the computation.

``fanout.module_check`` refuses a module whose graphs hold any other op. The list was
started from the ops of the modules this project exports (every kind, float32 and
mixed bfloat16 models), BiT-style ResNet-v2 graphs, the test fixtures and SavedModels
of the ``tf_keras.applications`` image models (MobileNet, EfficientNet, ResNet-v2,
Inception, DenseNet, NASNet, ConvNeXt, Xception, VGG), then reviewed family by family
and completed with each family's close relatives (the V1 and V2 spellings of an op, the
gradient ops of the forward ops, the TF1 forms of variables and control flow that
TF1-style hub modules use).

Left out on purpose, whatever a module says: printing and logging (``PrintV2`` can
write to a file), the debugger's ops (``Debug*`` dump to directories), every
``tf.data`` op (datasets read, list, cache and write files, and a feature extractor
has no use for them), file and checkpoint writers (``Save*``, ``Merge*``,
``WriteFile``), file readers (``ReadFile``, ``MatchingFiles``, text-file tables),
Python callbacks (``PyFunc``), summary writers, collectives, send/recv and RPC.

To trust a module that needs an op missing here, add the op to the family it belongs to
(or to ``TRUSTED_EXTRAS``) after reading what it does; or skip the check for that load
with ``EXPERTS_ALLOW_ANY_OPS=1``.
"""

from __future__ import annotations

# Constants, placeholders, identities and shape queries.
PLUMBING = frozenset(
    {
        "Const", "Identity", "IdentityN", "NoOp", "Placeholder", "PlaceholderWithDefault",
        "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "ZerosLike",
        "OnesLike", "Fill", "Shape", "ShapeN", "Size", "Rank", "BroadcastTo",
        "BroadcastArgs", "BroadcastGradientArgs", "Cast", "Bitcast", "CheckNumerics",
        "CheckNumericsV2", "Assert",
    }
)  # fmt: skip

# Calls of the module's own functions, and control flow: TF2 functional forms and the
# TF1 dataflow forms (Switch/Merge for cond, Enter/Exit/NextIteration for loops).
CONTROL_FLOW = frozenset(
    {
        "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While",
        "StatelessWhile", "Case", "StatelessCase", "Switch", "Merge", "Enter", "Exit",
        "NextIteration", "LoopCond", "ControlTrigger",
    }
)  # fmt: skip

# Variables: resource variables (TF2, and TF1 with resource variables) and TF1's
# reference variables, which TF1-style hub modules hold.
VARIABLES = frozenset(
    {
        "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp",
        "AssignSubVariableOp", "ResourceGather", "VarIsInitializedOp", "VariableShape",
        "DestroyResourceOp", "DisableCopyOnRead", "VariableV2", "Variable", "Assign",
        "AssignAdd", "AssignSub", "IsVariableInitialized",
    }
)  # fmt: skip

# Element-wise arithmetic, comparisons and selection.
ARITHMETIC = frozenset(
    {
        "Add", "AddV2", "AddN", "Sub", "Mul", "MulNoNan", "Div", "DivNoNan", "RealDiv",
        "FloorDiv", "FloorMod", "TruncateDiv", "TruncateMod", "Neg", "Abs", "Sign",
        "Square", "Sqrt", "Rsqrt", "Reciprocal", "Exp", "Expm1", "Log", "Log1p", "Pow",
        "Maximum", "Minimum", "SquaredDifference", "Erf", "Erfc", "Floor", "Ceil",
        "Round", "Rint", "ClipByValue", "Xdivy", "Xlogy", "Sin", "Cos", "Equal",
        "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual", "LogicalAnd",
        "LogicalOr", "LogicalNot", "IsFinite", "IsNan", "IsInf", "Select", "SelectV2",
    }
)  # fmt: skip

# Activations and their gradients.
ACTIVATIONS = frozenset(
    {
        "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus",
        "Softsign", "Softmax", "LogSoftmax", "ReluGrad", "Relu6Grad", "EluGrad",
        "SeluGrad", "LeakyReluGrad", "SigmoidGrad", "TanhGrad", "SoftplusGrad",
        "SoftsignGrad", "SqrtGrad", "RsqrtGrad", "ReciprocalGrad",
    }
)  # fmt: skip

# Reductions, matrix products and losses.
REDUCTIONS = frozenset(
    {
        "Sum", "Mean", "Prod", "Max", "Min", "ArgMax", "ArgMin", "All", "Any", "Cumsum",
        "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "L2Loss",
        "SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits", "TopKV2",
    }
)  # fmt: skip

# Convolution, pooling and normalisation, with the gradients fine-tuning runs.
NEURAL_NETWORK = frozenset(
    {
        "Conv2D", "Conv3D", "DepthwiseConv2dNative", "BiasAdd", "BiasAddV1", "MaxPool",
        "MaxPoolV2", "AvgPool", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
        "LRN", "Conv2DBackpropInput", "Conv2DBackpropFilter",
        "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter",
        "BiasAddGrad", "MaxPoolGrad", "MaxPoolGradV2", "AvgPoolGrad",
        "FusedBatchNormGrad", "FusedBatchNormGradV2", "FusedBatchNormGradV3",
    }
)  # fmt: skip

# Reshaping, slicing, gathering and padding.
SHAPES = frozenset(
    {
        "Reshape", "Squeeze", "ExpandDims", "Transpose", "ConcatV2", "Concat", "Pack",
        "Unpack", "Split", "SplitV", "Slice", "StridedSlice", "StridedSliceGrad", "Pad",
        "PadV2", "MirrorPad", "Tile", "GatherV2", "Gather", "GatherNd", "Range", "OneHot",
        "Where", "ReverseV2", "ScatterNd", "TensorScatterUpdate", "DynamicStitch",
        "InvertPermutation", "SpaceToDepth", "DepthToSpace", "SpaceToBatchND",
        "BatchToSpaceND",
    }
)  # fmt: skip

# Resizing and cropping images inside a module (its own preprocessing).
IMAGE = frozenset(
    {
        "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea",
        "ScaleAndTranslate", "CropAndResize", "ResizeBilinearGrad",
    }
)  # fmt: skip

# Random numbers (dropout and stochastic depth in training mode).
RANDOM = frozenset(
    {
        "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
        "StatelessRandomUniform", "StatelessRandomNormal", "StatelessTruncatedNormal",
        "StatelessRandomUniformV2", "StatelessRandomNormalV2",
        "StatelessTruncatedNormalV2", "StatelessRandomUniformIntV2",
        "StatelessRandomGetKeyCounter", "StatelessRandomGetKeyCounterAlg",
        "StatelessRandomGetAlg",
    }
)  # fmt: skip

# Tensor lists and arrays: the per-step values of loops (TF2 lists, TF1 arrays).
TENSOR_LISTS = frozenset(
    {
        "TensorListFromTensor", "TensorListGetItem", "TensorListReserve",
        "TensorListSetItem", "TensorListStack", "TensorListElementShape",
        "TensorListLength", "TensorListPushBack", "TensorListPopBack", "EmptyTensorList",
        "TensorArrayV3", "TensorArrayReadV3", "TensorArrayWriteV3", "TensorArrayGatherV3",
        "TensorArrayScatterV3", "TensorArraySizeV3",
    }
)  # fmt: skip

# The ops above that run functions named in their attributes (every other op on the
# list takes none: tests/vtab_eval/test_module_check.py checks it against TensorFlow).
FUNCTION_CALLERS = frozenset(
    {
        "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While",
        "StatelessWhile", "Case", "StatelessCase",
    }
)  # fmt: skip

# Ops added for modules you trust: name each with a comment saying why it is safe.
TRUSTED_EXTRAS: frozenset[str] = frozenset()

ALLOWED_OPS = (
    PLUMBING | CONTROL_FLOW | VARIABLES | ARITHMETIC | ACTIVATIONS | REDUCTIONS
    | NEURAL_NETWORK | SHAPES | IMAGE | RANDOM | TENSOR_LISTS | TRUSTED_EXTRAS
)  # fmt: skip

# Reading the module's own checkpoint: allowed only where the SavedModel's saver
# restores its variables, never in what a caller or an init op runs.
RESTORE_OPS = frozenset({"RestoreV2"})

# Writing a checkpoint: every SavedModel holds a save function (tf.saved_model.save
# writes one), but loading never runs it, so these ops are allowed only there: not in
# the restore path, an init op or a signature.
SAVE_OPS = frozenset(
    {"SaveV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "StaticRegexFullMatch"}
)
