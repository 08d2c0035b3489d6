#!/usr/bin/env python3
"""make_corpus.py: writes the seed corpora of the runtime readers' fuzz
harnesses (tests/fuzz/fuzz_<reader>.c) into tests/fuzz/corpus/<reader>/:
small valid files of every kind each reader accepts (dtypes, ranks, header
versions, gzip'd or not, empty arrays) plus a few near-misses, each a few
hundred bytes. Standard library only; deterministic (gzip mtime 0), so
rerunning it changes nothing. Usage: tests/fuzz/make_corpus.py"""
import gzip
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(reader, name, data):
    d = os.path.join(ROOT, reader)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy(descr, shape, payload, version=1, fortran=False):
    dims = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    pre = 10 if version == 1 else 12
    h += " " * (63 - (pre + len(h)) % 64) + "\n"
    n = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    enc = "utf8" if version == 3 else "latin1"
    return b"\x93NUMPY" + bytes([version, 0]) + n + h.encode(enc) + payload


def npy_corpus():
    put("npy", "f32_2x3", npy("<f4", (2, 3), struct.pack("<6f", 0, 1, -2.5, 3e38, 1e-45, float("nan"))))
    put("npy", "f64_4", npy("<f8", (4,), struct.pack("<4d", 1, 2, 3, float("inf"))))
    put("npy", "i32_2x2x2", npy("<i4", (2, 2, 2), struct.pack("<8i", *range(-4, 4))))
    put("npy", "i64_scalar", npy("<i8", (), struct.pack("<q", -7)))
    put("npy", "bool_5", npy("|b1", (5,), bytes([0, 1, 1, 0, 1])))
    put("npy", "u8_3x1", npy("|u1", (3, 1), bytes([0, 128, 255])))
    put("npy", "f32_empty", npy("<f4", (0, 4), b""))
    put("npy", "v2_f32_3", npy("<f4", (3,), struct.pack("<3f", 1, 2, 3), version=2))
    put("npy", "v3_i32_2", npy("<i4", (2,), struct.pack("<2i", 5, 6), version=3))
    put("npy", "big_endian_f4", npy(">f4", (2,), struct.pack(">2f", 1, 2)))
    put("npy", "fortran_2x2", npy("<f4", (2, 2), struct.pack("<4f", 1, 2, 3, 4), fortran=True))
    put("npy", "truncated", npy("<f4", (4, 4), struct.pack("<3f", 1, 2, 3)))


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data, h


def st_corpus():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    cases = {
        "mlp_like": [("fc1.weight", "F32", (2, 3), f32), ("fc1.bias", "F32", (2,), struct.pack("<2f", 0.5, -0.5))],
        "all_dtypes": [("a", "F32", (1,), struct.pack("<f", 1)), ("b", "F64", (1,), struct.pack("<d", 2)),
                       ("c", "I32", (2,), struct.pack("<2i", 3, 4)), ("d", "I64", (), struct.pack("<q", 5)),
                       ("e", "BOOL", (3,), bytes([1, 0, 1])), ("f", "U8", (2, 2), bytes([1, 2, 3, 4]))],
        "empty_tensor": [("z", "F32", (0, 3), b"")],
        "optimizer_state": [("optimizer.step", "I64", (), struct.pack("<q", 100)),
                            ("w", "F32", (3, 2), f32), ("optimizer.m.w", "F32", (3, 2), f32)],
        "unsupported_dtype": [("h", "F16", (2,), b"\0\0\0\0")],
        "unicode_name": [("caf\u00e9.\u03b2", "F32", (1,), struct.pack("<f", 7))],
    }
    headers = {}
    for name, ts in cases.items():
        meta = {"format": "pt"} if name == "mlp_like" else None
        data, h = safetensors(ts, meta)
        put("safetensors", name, data)
        headers[name] = h
    data, h = safetensors([], {"format": "pt", "note": "no tensors"})
    put("safetensors", "no_tensors", data)
    headers["no_tensors"] = h
    return headers


def json_corpus(headers):
    # the json harness frames its input itself: headers only, their offsets
    # inside its 64 zero bytes of data
    for name, h in headers.items():
        put("json", name, h)
    put("json", "escapes", json.dumps({"a\\\"\u00e9\ud83d\ude00\n\t/": {"dtype": "U8", "shape": [2],
                                                                       "data_offsets": [0, 2]}},
                                      ensure_ascii=True).encode())
    put("json", "nested_metadata", b'{"__metadata__":{"k":[1,2,{"x":[true,false,null,-1.5e3]}],"s":"v"},'
                                   b'"t":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}')
    put("json", "whitespace", b' \t\n{ "t" : { "shape" : [ 4 ] , "dtype" : "U8" , "data_offsets" : [ 8 , 12 ] } }  ')


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx(code, dims, payload):
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_corpus():
    img = bytes((i * 37) % 256 for i in range(2 * 4 * 4))
    put("idx", "images_u8", idx(0x08, (2, 4, 4), img))
    put("idx", "images_u8.gz", gz(idx(0x08, (2, 4, 4), img)))
    put("idx", "labels_u8", idx(0x08, (5,), bytes([0, 9, 3, 3, 7])))
    put("idx", "labels_u8.gz", gz(idx(0x08, (5,), bytes([0, 9, 3, 3, 7]))))
    put("idx", "i8", idx(0x09, (3,), bytes([0x80, 0, 0x7f])))
    put("idx", "i16", idx(0x0B, (2, 2), struct.pack(">4h", -1, 2, -300, 4)))
    put("idx", "i32", idx(0x0C, (2,), struct.pack(">2i", -5, 1 << 30)))
    put("idx", "f32", idx(0x0D, (3,), struct.pack(">3f", 1.5, -2, 1e-3)))
    put("idx", "f64", idx(0x0E, (1, 2), struct.pack(">2d", 3.25, -1e300)))
    put("idx", "empty", idx(0x08, (0, 28, 28), b""))
    put("idx", "truncated", idx(0x08, (2, 4, 4), img[:20]))


def gzip_corpus():
    text = b"etch: a static graph compiler for neural networks. " * 6
    put("gzip", "text", gz(text))
    put("gzip", "stored", gzip.compress(bytes(range(256)), compresslevel=0, mtime=0))
    put("gzip", "empty", gz(b""))
    put("gzip", "zeros", gz(bytes(1000)))
    put("gzip", "random", gz(bytes((i * 2654435761 >> 13) & 255 for i in range(300))))
    # FNAME, FEXTRA, FCOMMENT and FHCRC in the member header
    body = gz(b"hello, flags")[10:]
    hdr = bytes([0x1F, 0x8B, 8, 0x1E, 0, 0, 0, 0, 0, 3]) + struct.pack("<H", 4) + b"ab\0\0" + b"name\0" + b"comment\0"
    crc = gzip.zlib.crc32(hdr) & 0xFFFF
    put("gzip", "header_flags", hdr + struct.pack("<H", crc) + body)
    put("gzip", "bad_crc", gz(b"checksum")[:-8] + b"\0\0\0\0\x08\0\0\0")
    put("gzip", "idx_images", gz(idx(0x08, (1, 3, 3), bytes(range(9)))))


if __name__ == "__main__":
    npy_corpus()
    json_corpus(st_corpus())
    idx_corpus()
    gzip_corpus()
