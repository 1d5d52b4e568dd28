#!/usr/bin/env python3
"""Generate the seed corpus in tests/data/rpc_echo_seeds/ for tests/fuzz/fuzz_rpc_decode.c.

Run by hand (python3 tests/data/gen_rpc_echo_seeds.py); the outputs are committed. Each file is
a candidate shoal.test.EchoRequest (tests/proto/echo.proto) in protobuf wire format: valid ones
(so the fuzzer starts from the accepted path) and ones that break a rule (truncated, wrong wire
type, unknown enum at each nesting level, validator ranges, garbage, oversized lengths).
"""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rpc_echo_seeds")


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wt):
    return varint(field << 3 | wt)


def ld(field, data):
    return key(field, 2) + varint(len(data)) + data


def vi(field, n):
    return key(field, 0) + varint(n)


inner_ok = vi(1, 2) + ld(2, bytes([0, 1, 2]))
good = ld(1, b"hello") + vi(2, 3) + vi(3, 10) + vi(4, 2) + ld(6, b"\x01\x02\x03") + ld(7, inner_ok)

cases = {
    "good_full.bin": good,
    "good_empty.bin": b"",
    "good_text.bin": ld(1, b"hi"),
    "good_unknown_field.bin": vi(99, 5) + ld(1, b"x"),
    "truncated.bin": good[:-3],
    "truncated_len.bin": key(1, 2) + varint(100) + b"abc",
    "wire_type.bin": vi(1, 5),
    "enum_top.bin": vi(4, 99),
    "enum_negative.bin": vi(4, -1),
    "enum_nested.bin": ld(7, vi(1, 7)),
    "enum_repeated.bin": ld(7, ld(2, bytes([0, 9]))),
    "text_too_long.bin": ld(1, b"a" * 100),
    "count_absurd.bin": vi(2, 2**31 - 1),
    "count_negative.bin": vi(2, -5),
    "fail_status_bad.bin": vi(5, 1000),
    "huge_length.bin": key(6, 2) + varint(2**62),
    "garbage.bin": bytes([0xFF] * 12),
    "varint_overlong.bin": key(2, 0) + bytes([0xFF] * 11) + b"\x01",
    "group_wire.bin": key(1, 3) + key(1, 4),
    # field number 0 in an over-long key (0x85 0x00): protobuf-c parses it (found by fuzzing)
    "field_zero_overlong.bin": bytes([0x85, 0x00, 0x00, 0x00, 0x05, 0x28]),
}

os.makedirs(OUT, exist_ok=True)
for name, data in cases.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(cases)} seeds to {OUT}")
