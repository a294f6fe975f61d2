"""Turning what users pass to ``Engine.predict`` into a preprocessed float32 NHWC batch."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Iterator, List, Sequence, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .graph import Shape

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")

#: The files a folder contributes as images (to classify, to calibrate on).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

PathLike = Union[str, "os.PathLike[str]"]


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return type(x).__name__


def is_single_image(x: Any) -> bool:
    """Whether ``x`` denotes one image (as opposed to a batch or a list)."""
    if isinstance(x, (str, os.PathLike, Image.Image)):
        return True
    return isinstance(x, np.ndarray) and x.ndim in (2, 3)


def to_batch(x: Any, shape: Shape, preprocessing: str) -> np.ndarray:
    """A C-contiguous float32 (N, H, W, C) batch for a model of input ``shape``.

    Accepts an image path, a PIL image, a uint8 array (H, W), (H, W, 1|3|4) or a batch of
    them (N, H, W, C), a list or tuple of any of these single images, or float arrays
    already preprocessed at the model's input size, (H, W, C) or (N, H, W, C). Images are
    converted to RGB, resized (bilinear, whole image) and preprocessed; float input is
    passed through without a copy when it is already float32 and C-contiguous.
    """
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("empty batch: predict() needs at least one image")
        batch = np.empty((len(x),) + tuple(shape), np.float32)
        for i, item in enumerate(x):
            if not is_single_image(item):
                raise TypeError(
                    f"item {i} of the list is a {_describe(item)}; expected an image path, a PIL "
                    f"image or an (H, W, C) array"
                )
            batch[i] = to_batch(item, shape, preprocessing)[0]
        return batch
    if isinstance(x, (str, os.PathLike)):
        return _from_pil(_open(x), shape, preprocessing)
    if isinstance(x, Image.Image):
        return _from_pil(x, shape, preprocessing)
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"expected an image path, a PIL image, a NumPy array or a list of them; got {_describe(x)}"
        )
    if x.size == 0 and x.ndim == 4:
        raise ValueError(f"empty batch: {_describe(x)}")
    if x.dtype == np.uint8:
        if x.ndim == 4:
            return np.concatenate([_from_uint8(image, shape, preprocessing) for image in x])
        return _from_uint8(x, shape, preprocessing)
    if x.dtype.kind == "f":
        return _from_float(x, shape)
    raise TypeError(
        f"expected uint8 pixels (0..255) or float32 preprocessed input; got {_describe(x)}"
    )


def _open(path: Any) -> Image.Image:
    try:
        with Image.open(Path(path)) as image:
            image.load()
            return image
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None


def _from_float(x: np.ndarray, shape: Shape) -> np.ndarray:
    if x.ndim == 3:
        x = x[np.newaxis]
    if x.ndim != 4 or x.shape[1:] != tuple(shape):
        raise ValueError(
            f"float input must be preprocessed at the model's input size: (N, {shape[0]}, "
            f"{shape[1]}, {shape[2]}) or ({shape[0]}, {shape[1]}, {shape[2]}); got "
            f"{_describe(x)}. Pass uint8 images to have them resized and preprocessed."
        )
    if x.shape[0] == 0:
        raise ValueError(f"empty batch: {_describe(x)}")
    batch = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(batch).all():
        raise ValueError("input contains NaN or infinity")
    return batch


def _from_uint8(image: np.ndarray, shape: Shape, preprocessing: str) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3 and image.shape[:2] == tuple(shape[:2]) and shape[2] == 3:
        return _preprocess(image[np.newaxis], preprocessing)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) or 0 in image.shape:
        raise ValueError(
            f"expected a uint8 image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {_describe(image)}"
        )
    return _from_pil(Image.fromarray(np.ascontiguousarray(image)), shape, preprocessing)


def _from_pil(image: Image.Image, shape: Shape, preprocessing: str) -> np.ndarray:
    if shape[2] != 3:
        raise ValueError(f"this model takes {shape[2]} channels per pixel, not RGB images")
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        # Pillow's RGB conversion clips 16-bit values at 255; scale them to 8 bits instead.
        # Mode "I" (32-bit) holds 16-bit PNGs in some Pillow versions, 8-bit data in others.
        wide = np.asarray(image, dtype=np.int64)
        if image.mode in _SIXTEEN_BIT_MODES or wide.max() > 255:
            wide = wide >> 8
        image = Image.fromarray(np.clip(wide, 0, 255).astype(np.uint8))
    if image.mode != "RGB":
        image = image.convert("RGB")
    size = (shape[1], shape[0])  # PIL sizes are (width, height)
    if image.size != size:
        image = image.resize(size, Image.BILINEAR)
    return _preprocess(np.asarray(image)[np.newaxis], preprocessing)


def _preprocess(pixels: np.ndarray, preprocessing: str) -> np.ndarray:
    x = pixels.astype(np.float32)
    if preprocessing == "mobilenet":
        x /= np.float32(127.5)
        x -= np.float32(1.0)
    return x


def top_k_pairs(probabilities: np.ndarray, k: int, labels: List[str] | None) -> List[List[Tuple[Any, float]]]:
    """(label or index, probability) of the k largest values of each row."""
    result = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")[:k]
        result.append([(labels[i] if labels is not None else int(i), float(row[i])) for i in order])
    return result


def expand_paths(specs: Sequence[PathLike], recursive: bool = True) -> Iterator[str]:
    """The image files that command-line PATH arguments name, lazily, in argument order.

    Each spec is a file (passed through as is, image or not), a folder (its files with an
    image extension, in sorted order, searched recursively unless ``recursive`` is False), a
    glob pattern (``photos/*.jpg``, ``**`` matching folders recursively; sorted), or
    ``@list.txt``: a text file read lazily, one path per line (blank lines skipped; the
    lines are taken as file paths, not expanded further). A spec that names nothing is
    passed through, so that classifying it reports the missing file.
    """
    for spec in specs:
        spec = os.fspath(spec)
        if spec.startswith("@"):
            yield from _read_list(spec[1:])
        elif os.path.isdir(spec):
            yield from _folder_images(Path(spec), recursive)
        elif not os.path.exists(spec) and any(c in spec for c in "*?["):
            matches = sorted(glob.glob(spec, recursive=True))
            for match in matches:
                if os.path.isdir(match):
                    yield from _folder_images(Path(match), recursive)
                else:
                    yield match
            if not matches:
                yield spec
        else:
            yield spec


def _folder_images(folder: Path, recursive: bool) -> List[str]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    # Path order compares component by component: a folder's files stay together.
    return [str(p) for p in sorted(candidates) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]


def _read_list(list_file: str) -> Iterator[str]:
    with open(list_file, encoding="utf-8") as lines:
        for line in lines:
            path = line.rstrip("\r\n")
            if path.strip():
                yield path
