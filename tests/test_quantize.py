"""mnengine.quantize: which calibration files it takes, and the graphs it refuses."""

import numpy as np
import pytest
from PIL import Image

import mnengine
from mnengine.graph import Graph, Node
from mnengine.quantize import calibration_files, quantize


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.jpg", "b.png", "sub/c.jpeg", "d.bmp", "notes.txt"]):
        path = folder / name
        if name.endswith(".txt"):
            path.write_text("not an image")
        else:
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(path)
    return folder


def test_calibration_files(photos, tmp_path):
    everything = [photos / "a.jpg", photos / "b.png", photos / "d.bmp", photos / "sub" / "c.jpeg"]
    assert calibration_files(photos) == everything  # recursive, image extensions only, sorted
    assert calibration_files(str(photos / "*.jpg")) == [photos / "a.jpg"]
    assert calibration_files([photos / "b.png", photos / "a.jpg"]) == [photos / "b.png", photos / "a.jpg"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{photos / 'd.bmp'}\n\n{photos / 'a.jpg'}\n")
    assert calibration_files(f"@{listing}") == [photos / "d.bmp", photos / "a.jpg"]
    assert calibration_files(photos, count=2) == [everything[0], everything[2]]  # spread over the order


@pytest.mark.parametrize("source, message", [
    ("missing-folder", "missing-folder does not exist"),
    ("*.nothing", "does not exist"),
])
def test_calibration_files_refused(tmp_path, source, message):
    with pytest.raises(ValueError, match=message):
        calibration_files(tmp_path / source)


def test_empty_folder_refused(tmp_path):
    with pytest.raises(ValueError, match="no calibration images found"):
        calibration_files(tmp_path)
    with pytest.raises(ValueError, match="positive integer"):
        calibration_files(tmp_path, count=0)


def test_quantize_refuses(photos):
    graph = mnengine.models.mobilenet_v1(0.25, 32, classes=10)
    with pytest.raises(ValueError, match="calibration set is empty"):
        quantize(graph, [])
    with pytest.raises(ValueError, match="already an int8 graph"):
        quantize(quantize(graph, calibration_files(photos)), calibration_files(photos))
    conv = Graph("conv", (8, 8, 4), [Node("mid", "conv3x3", ["input"], {"kernel": np.ones((3, 3, 4, 2), np.float32)},
                                          1, (1, 1, 1, 1))])
    with pytest.raises(ValueError, match="layer 'mid': int8 runs a full 3x3 convolution only as a first layer"):
        quantize(conv, np.zeros((1, 8, 8, 4), np.float32))



def test_quantize_refuses_mobilenet_v3():
    """int8 has no MobileNetV3 layers: quantize names the first, before calibrating."""
    with pytest.raises(ValueError, match="layer 'conv': int8 has no activation 'hard_swish'"):
        quantize(mnengine.models.mobilenet_v3_small(0.5, 32, classes=10), [])
    minimalistic = mnengine.models.mobilenet_v3_large(0.5, 32, classes=10, minimalistic=True)  # ReLU, 3x3, no SE
    assert quantize(minimalistic, np.zeros((1, 32, 32, 3), np.uint8)).int8
    dw5 = Graph("dw5", (8, 8, 4), [Node("dw", "depthwise5x5", ["input"], {"kernel": np.ones((5, 5, 4), np.float32)},
                                        1, (2, 2, 2, 2), "relu")])
    with pytest.raises(ValueError, match="layer 'dw': int8 has no operator 'depthwise5x5'"):
        quantize(dw5, [])
