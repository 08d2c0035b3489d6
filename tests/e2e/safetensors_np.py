"""A minimal safetensors writer and reader on NumPy arrays (F32, F64, I64, I32, I8, U8),
the format's reference layout: 8 bytes of header length, the JSON header
(padded to 8 bytes), then the tensors' bytes. NumPy only, so scripts that
run without PyTorch (onnx_export.py) share it; etch_test_util wraps it for
torch tensors. Not a test itself."""
import json
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "I8": np.int8, "U8": np.uint8}


def write(path, arrays):
    """path <- {name: array} (each array's own dtype, one of DTYPES)."""
    header, offset, blobs = {}, 0, []
    for name, a in arrays.items():
        a = np.asarray(a)
        dt = {v: k for k, v in DTYPES.items()}[a.dtype.type]
        b = a.tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read(path):
    """{name: array} of every tensor in path (the metadata left out)."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + lo:8 + n + hi], dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return out
