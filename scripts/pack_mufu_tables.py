#!/usr/bin/env python3
"""Packs the MUFU delta tables captured on a GPU (one signed byte per entry) into data/mufu/.

A capture holds delta = bits(hardware(xc)) - bits(predictor(xc)) for every canonical input xc, one int8 per
entry (see docs/mufu.md). The packed files hold delta + bias in 2 bits per entry: entry i sits at bits
2*(i % 4) .. 2*(i % 4) + 1 of byte i // 4. Any delta outside the range the format can hold stops the script
before anything is written, so a capture from a GPU that rounds differently cannot be packed silently wrong.

usage: scripts/pack_mufu_tables.py RSQRT_I8 RCP_I8 [OUT_DIR]   (OUT_DIR defaults to data/mufu)
Prints the sha256 of each packed file; data/mufu/README.md records them.
"""
import hashlib
import os
import sys

# name, entries, bias (delta + bias is the stored 2-bit value), largest stored value
TABLES = [("rsqrt", 1 << 24, 2, 3), ("rcp", 1 << 23, 1, 2)]


def pack(raw: bytes, entries: int, bias: int, top: int, name: str) -> bytes:
    if len(raw) != entries:
        sys.exit(f"{name}: {len(raw)} bytes, expected {entries}")
    out = bytearray(entries // 4)
    for i, byte in enumerate(raw):
        delta = byte - 256 if byte >= 128 else byte
        stored = delta + bias
        if not 0 <= stored <= top:
            sys.exit(f"{name}: entry {i:#x} has delta {delta}, outside [{-bias}, {top - bias}]")
        out[i >> 2] |= stored << (2 * (i & 3))
    return bytes(out)


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    out_dir = sys.argv[3] if len(sys.argv) == 4 else os.path.join("data", "mufu")
    packed = []
    for (name, entries, bias, top), src in zip(TABLES, sys.argv[1:3]):
        with open(src, "rb") as f:
            packed.append((name, pack(f.read(), entries, bias, top, name)))
    os.makedirs(out_dir, exist_ok=True)
    for name, data in packed:
        path = os.path.join(out_dir, f"{name}_delta.bin")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        print(f"{hashlib.sha256(data).hexdigest()}  {path}")


if __name__ == "__main__":
    main()
