#!/usr/bin/env python3
"""Generate the malformed safetensors corpus in tests/data/safetensors_bad/.

Run by hand (python3 tests/data/gen_bad_safetensors.py); the outputs are committed. Each file
breaks exactly one rule of the format; tests/common/test_safetensors.c expects a specific
status for each (EXPECT below is mirrored there) and the fuzz target uses them as seeds.
"""
import json, os, struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors_bad")

def st(header, data=b"", hlen=None, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    n = len(h) if hlen is None else hlen
    return struct.pack("<Q", n) + h + data

good_entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
eight = b"\x00" * 8

cases = {
    # name: bytes
    "empty": b"",
    "truncated_len": b"\x10\x00\x00",
    "header_past_eof": st({"a": good_entry}, eight, hlen=4096),
    "huge_header_len": struct.pack("<Q", 1 << 40) + b"{}",
    "not_json": st(None, b"", raw_header=b"{this is not json}"),
    "non_object_header": st(None, b"", raw_header=b"[1, 2, 3]"),
    "truncated_data": st({"a": good_entry}, b"\x00" * 4),
    "trailing_data": st({"a": good_entry}, b"\x00" * 12),
    "unknown_dtype": st({"a": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, eight),
    "negative_offset": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, eight),
    "reversed_offsets": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, eight),
    "out_of_range_offset": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}},
                              b"\x00" * 12),
    "overlapping": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                      b"\x00" * 12),
    "gap": st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
               "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, b"\x00" * 12),
    "not_from_zero": st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, eight),
    "shape_size_mismatch": st({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, eight),
    "shape_overflow": st({"a": {"dtype": "F32", "shape": [1 << 32, 1 << 32, 16],
                                "data_offsets": [0, 8]}}, eight),
    "negative_dim": st({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, eight),
    "too_many_dims": st({"a": {"dtype": "U8", "shape": [1] * 9, "data_offsets": [0, 1]}}, b"\x00"),
    "duplicate_names": st(None, eight, raw_header=
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
    "metadata_not_strings": st({"__metadata__": {"format": 1}, "a": good_entry}, eight),
    "missing_dtype": st({"a": {"shape": [2], "data_offsets": [0, 8]}}, eight),
    "offsets_not_pair": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, eight),
    "entry_not_object": st({"a": 7}, b""),
}

def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in cases.items():
        with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
            f.write(data)
    print(f"wrote {len(cases)} files to {OUT}")

if __name__ == "__main__":
    main()
