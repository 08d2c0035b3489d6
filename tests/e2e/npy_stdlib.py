"""write_npy: a NumPy .npy file (format 1.0, little-endian, C order) from
Python's standard library, for e2e tests that run where python3 has no
NumPy (imported by the scripts test_train_arrays.sh and
test_train_partial.sh run; not a test itself)."""
import struct

_FORMATS = {"<f4": "f", "<f8": "d", "<i8": "q", "<i4": "i"}


def write_npy(path, dtype, shape, values):
    """dtype a NumPy descr ('<f4', '<f8', '<i8', '<i4'), shape a tuple, values
    a flat sequence of prod(shape) numbers."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (dtype, "".join(f"{s}, " for s in shape))
    header += " " * (127 - 10 - len(header)) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() +
                struct.pack("<%d%s" % (len(values), _FORMATS[dtype]), *values))
