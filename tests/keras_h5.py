"""A minimal reader for weights-only Keras HDF5 files (the keras.applications layout):
root attribute ``layer_names``, per layer the attribute ``weight_names`` and datasets
``<layer>/<layer>/<weight>:0``. Used by the tests until models come through the exporter."""

import h5py
import numpy as np


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_weights(path):
    """{layer name: {weight name: float32 array}}, e.g. weights["conv1_bn"]["gamma"]."""
    weights = {}
    with h5py.File(path, "r") as f:
        for layer in map(_text, f.attrs["layer_names"]):
            names = [_text(n) for n in f[layer].attrs["weight_names"]]
            if names:
                weights[layer] = {
                    n.split("/")[-1].split(":")[0]: np.asarray(f[layer][n], np.float32) for n in names
                }
    return weights
