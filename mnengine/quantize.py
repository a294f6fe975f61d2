"""Post-training int8 quantization of a float32 graph, calibrated on the user's images.

The scheme is TFLite's int8 scheme:

- weights int8 in [-127, 127], symmetric per output channel (zero point 0,
  ``weight_scale[c] = max |w[..., c]| / 127``);
- activations int8 with one scale and zero point per tensor, from the range of values each
  layer produced on the calibration images (min/max, widened to include 0); the network input's
  range is the preprocessing's own ([-1, 1] for MobileNet's, [0, 255] for none);
- biases int32 at scale ``input_scale * weight_scale[c]``, corrected for the mean shift the
  weights' rounding causes on the calibration images (bias correction);
- ReLU/ReLU6 stay as the activation, which the engine applies as the clamp of the requantized
  output; softmax and sigmoid compute in float32 on the dequantized values;
- unlike TFLite, the classifier (a last pointwise or dense layer followed only by softmax or
  sigmoid, or ending the network) outputs its int32 sums dequantized to float32 rather than
  requantized to int8, so its logits are neither rounded to 256 steps nor clipped to the range
  the calibration images produced.

The engine requantizes in float32 (see csrc/kernels.h), quantizes the preprocessed float32
input itself and returns float32 outputs, so an int8 model file is used as a float one is.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .engine import default_threads, requested_isa
from .graph import (DEQUANTIZING_OPS, FLOAT32_ONLY_ACTIVATIONS, FLOAT32_ONLY_OPS, FLOAT_OPS, INPUT, MAX_INT8_BIAS,
                    Graph, Node, Quantization)
from .images import expand_paths, is_single_image, to_batch

__all__ = ["DEFAULT_CALIBRATION_COUNT", "calibration_files", "quantize"]

#: Calibration images used when the caller does not say how many.
DEFAULT_CALIBRATION_COUNT = 100
#: Images run through the float network at once while calibrating.
_CALIBRATION_BATCH = 8
#: The real range of a preprocessed input, by preprocessing.
_INPUT_RANGES = {"mobilenet": (-1.0, 1.0), "none": (0.0, 255.0)}

PathLike = Union[str, "os.PathLike[str]"]


def calibration_files(source: Union[PathLike, Sequence[PathLike]], count: int = DEFAULT_CALIBRATION_COUNT) -> List[Path]:
    """The image files of `source` (a folder, searched recursively for image extensions; a glob
    pattern; a file; ``@list.txt``; or a list of these: see :func:`mnengine.expand_paths`), and
    at most `count` of them spread evenly over that order. Raises ValueError if there are none
    or one does not exist."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"calibration count must be a positive integer, got {count!r}")
    specs = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files = [Path(p) for p in expand_paths(specs)]
    missing = next((p for p in files if not p.is_file()), None)
    if missing is not None:
        raise ValueError(f"calibration image {missing} does not exist (or is not a file)")
    if not files:
        raise ValueError(f"no calibration images found in {source}: expected a folder of images, a glob or files")
    if len(files) > count:
        files = [files[i * len(files) // count] for i in range(count)]
    return files


@dataclasses.dataclass
class _Statistics:
    """What the calibration images made a tensor hold: its value range, and each channel's sum
    over images and pixels."""

    low: float = math.inf
    high: float = -math.inf
    sums: Optional[np.ndarray] = None
    pixels: int = 0

    def update(self, low: float, high: float, sums: np.ndarray, pixels: int) -> None:
        self.low, self.high = min(self.low, low), max(self.high, high)
        self.sums = sums if self.sums is None else self.sums + sums
        self.pixels += pixels

    @property
    def channel_means(self) -> np.ndarray:
        return self.sums / self.pixels


def quantize(graph: Graph, calibration: Union[np.ndarray, Iterable[Any]], *, threads: Optional[int] = None) -> Graph:
    """The int8 graph of the float32 `graph`, its activation ranges measured on `calibration`.

    `calibration` holds the images as `Engine.predict` takes them, preprocessed as it would
    preprocess them: image paths, PIL images, uint8 arrays (H, W, 3), a uint8 batch
    (N, H, W, 3), or float32 input already preprocessed at the model's size, (N, H, W, C).
    Raises ValueError for a graph the int8 kernels cannot run (naming the layer) and for an
    empty calibration set.
    """
    if graph.int8:
        raise ValueError(f"{graph.name} is already an int8 graph")
    shapes = graph.shapes()
    for node in graph.nodes:
        if node.op in FLOAT32_ONLY_OPS or node.activation in FLOAT32_ONLY_ACTIVATIONS:
            what = f"operator {node.op!r}" if node.op in FLOAT32_ONLY_OPS else f"activation {node.activation!r}"
            raise ValueError(f"layer {node.name!r}: int8 has no {what} (MobileNetV3's hard-swish, squeeze-excite "
                             f"and 5x5 depthwise layers run in float32 only); keep {graph.name} float32")
        h, w, c = shapes[node.inputs[0]]
        if node.op == "conv3x3" and not (c == 3 and node.stride == 2):
            raise ValueError(f"layer {node.name!r}: int8 runs a full 3x3 convolution only as a first layer "
                             f"(3 input channels, stride 2); it has {c} input channels at stride {node.stride}")
    statistics = _calibration_statistics(graph, calibration, threads or default_threads())
    input_quantization = _activation_quantization(*_INPUT_RANGES[graph.preprocessing])
    quantizations = {INPUT: input_quantization}
    dequantizing = _classifier(graph)
    nodes = []
    for node in graph.nodes:
        observed = statistics[node.name]
        float_output = node.op in FLOAT_OPS or node.name == dequantizing
        quantization = None if float_output else _activation_quantization(observed.low, observed.high)
        weights = {}
        if "kernel" in node.weights:
            input_shape = shapes[node.inputs[0]]
            weights = _quantized_weights(node, quantizations[node.inputs[0]],
                                         _input_means(node, statistics[node.inputs[0]], input_shape))
        nodes.append(dataclasses.replace(node, weights=weights, quantization=quantization))
        quantizations[node.name] = quantization
    metadata = dict(graph.metadata, quantization="int8")
    quantized = dataclasses.replace(graph, nodes=nodes, metadata=metadata, input_quantization=input_quantization)
    quantized.shapes()
    return quantized


def _classifier(graph: Graph) -> Optional[str]:
    """The layer whose output the int8 graph keeps in float32: the last pointwise or dense
    layer, if only float operators (softmax, sigmoid) follow it. Its logits are then neither
    rounded to int8 steps nor clipped to the calibration's range: a photo whose top logit
    exceeds every calibration image's (as a confidently classified one may) keeps its lead."""
    for i in range(len(graph.nodes) - 1, -1, -1):
        node = graph.nodes[i]
        if node.op in DEQUANTIZING_OPS:
            return node.name
        if node.op not in FLOAT_OPS:
            return None
    return None


def _calibration_statistics(graph: Graph, calibration: Union[np.ndarray, Iterable[Any]],
                            threads: int) -> Dict[str, _Statistics]:
    """The statistics of the input and of each node's output over the calibration images, from
    the float network run layer by layer (no fusion: every node's output exists)."""
    network = _core.Network(requested_isa(), threads, tuple(graph.input_shape), graph.core_nodes(), "never")
    if network.steps != [(i, 1) for i in range(len(graph.nodes))]:
        raise RuntimeError(f"calibration needs one step per node, got {network.steps}")
    shapes = graph.shapes()
    statistics = {name: _Statistics() for name in [INPUT] + [node.name for node in graph.nodes]}
    out = np.empty((_CALIBRATION_BATCH, int(np.prod(network.output_shape))), np.float32)
    for batch in _batches(calibration, graph):
        count = batch.shape[0]
        pixels = batch.shape[0] * batch.shape[1] * batch.shape[2]
        statistics[INPUT].update(float(batch.min()), float(batch.max()),
                                 batch.sum(axis=(0, 1, 2), dtype=np.float64), pixels)
        for node, (low, high, sums) in zip(graph.nodes, network.value_statistics(batch, out[:count])):
            h, w, _ = shapes[node.name]
            statistics[node.name].update(low, high, sums, count * h * w)
    if statistics[INPUT].pixels == 0:
        raise ValueError("the calibration set is empty: int8 quantization needs images to measure ranges on")
    return statistics


def _input_means(node: Node, statistics: _Statistics, shape: Tuple[int, int, int]) -> np.ndarray:
    """The mean of each value a layer's kernel multiplies: per input channel for convolutions;
    for a dense layer, per flattened (H, W, C) input, taken as its channel's mean."""
    means = statistics.channel_means
    return np.tile(means, shape[0] * shape[1]) if node.op == "dense" else means


def _batches(calibration: Union[np.ndarray, Iterable[Any]], graph: Graph) -> Iterable[np.ndarray]:
    """Preprocessed float32 batches of at most _CALIBRATION_BATCH images."""
    shape, preprocessing = tuple(graph.input_shape), graph.preprocessing
    if isinstance(calibration, np.ndarray) and not is_single_image(calibration):
        calibration = list(calibration) if calibration.dtype == np.uint8 else [calibration]
    elif is_single_image(calibration):
        calibration = [calibration]
    pending: List[np.ndarray] = []
    for item in calibration:
        pending.extend(to_batch(item, shape, preprocessing))
        while len(pending) >= _CALIBRATION_BATCH:
            yield np.stack(pending[:_CALIBRATION_BATCH])
            pending = pending[_CALIBRATION_BATCH:]
    if pending:
        yield np.stack(pending)


def _activation_quantization(low: float, high: float) -> Quantization:
    """TFLite's asymmetric int8 quantization of a range widened to include 0:
    scale = (high - low) / 255, zero point = round(-128 - low / scale)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"calibration produced a non-finite value range [{low}, {high}]")
    if high - low < 1e-6:  # a layer that output only zeros: any scale represents it
        high = low + 1e-6
    scale = float(np.float32((high - low) / 255.0))
    zero_point = int(np.clip(np.rint(-128.0 - low / scale), -128, 127))
    return scale, zero_point


def _quantized_weights(node: Node, input_quantization: Quantization, input_means: np.ndarray) -> dict:
    """int8 kernel symmetric per output channel (the last axis), int32 bias at scale
    input_scale * weight_scale, and the float32 weight scales.

    A channel whose weights are tiny beside its bias (BatchNormalization folds a near-dead
    channel into one) gets a larger weight scale, as TFLite's quantizer gives it, so that its
    bias fits the int32 range the kernels allow (MAX_INT8_BIAS steps).

    The bias is corrected for the rounding of the weights (bias correction, Nagel et al. 2019,
    "Data-Free Quantization Through Weight Equalization and Bias Correction"): rounded weights
    shift each output by (W_q - W) * x, whose mean over the calibration images is
    (W_q - W) * mean(x), taken from the bias. Inputs after ReLU have positive means, so the shift
    is systematic: on the fixture models' photos it halved the mean probability difference from
    the float model and raised the top-5 overlap from 0.83-0.93 to 0.92-0.98
    (bench/int8_accuracy.py)."""
    kernel = np.asarray(node.weights["kernel"], np.float64)
    channels = kernel.shape[-1]
    largest = np.abs(kernel.reshape(-1, channels)).max(axis=0) / 127.0
    bias = np.asarray(node.weights["bias"], np.float64) if "bias" in node.weights else np.zeros(channels)
    needed_for_bias = np.abs(bias) / (np.float64(input_quantization[0]) * (MAX_INT8_BIAS // 2))
    weight_scale = np.maximum(largest, needed_for_bias)
    weight_scale = np.where(weight_scale > 0, weight_scale, 1.0).astype(np.float32)
    q_kernel = np.clip(np.rint(kernel / weight_scale.astype(np.float64)), -127, 127).astype(np.int8)
    rounding = q_kernel.astype(np.float64) * weight_scale.astype(np.float64) - kernel
    means = np.asarray(input_means, np.float64)
    if node.op == "depthwise3x3":
        shift = rounding.sum(axis=(0, 1)) * means
    elif node.op == "conv3x3":
        shift = np.einsum("hwio,i->o", rounding, means)
    else:  # conv1x1 (C_in, C_out), dense (H*W*C, units)
        shift = means @ rounding
    bias_scale = np.float64(input_quantization[0]) * weight_scale.astype(np.float64)
    q_bias = np.clip(np.rint((bias - shift) / bias_scale), -MAX_INT8_BIAS, MAX_INT8_BIAS)
    return {"kernel": q_kernel, "bias": q_bias.astype(np.int32), "weight_scale": weight_scale}
