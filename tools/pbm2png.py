#!/usr/bin/env python3
"""Convert the simulator's display frame (binary PBM, 1 = lit pixel) into a PNG that looks like
the OLED: lit pixels light on a dark background, scaled up so it can be read on a screen.

    .venv/bin/python tools/pbm2png.py .sim/display.pbm display.png [--scale 4]
"""
import argparse
import struct
import zlib


def read_pbm(path):
    """Return (width, height, rows) where rows[y][x] is 1 for a lit pixel."""
    data = open(path, "rb").read()
    if not data.startswith(b"P4"):
        raise ValueError("%s is not a binary PBM (P4)" % path)
    # Header: magic, width, height separated by whitespace (no comments are written by us).
    fields, pos = [], 2
    while len(fields) < 2:
        while data[pos:pos + 1].isspace():
            pos += 1
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(int(data[start:pos]))
    pos += 1
    w, h = fields
    stride = (w + 7) // 8
    rows = []
    for y in range(h):
        line = data[pos + y * stride: pos + (y + 1) * stride]
        rows.append([(line[x >> 3] >> (7 - (x & 7))) & 1 for x in range(w)])
    return w, h, rows


def png_bytes(rows, scale=4, on=(120, 220, 255), off=(8, 12, 24)):
    """A minimal RGB PNG (signature, IHDR, one IDAT, IEND) of `rows` scaled by `scale`."""
    h = len(rows)
    w = len(rows[0]) if rows else 0
    raw = bytearray()
    for row in rows:
        line = bytearray([0])  # filter type 0 for every scanline
        for px in row:
            line += bytes(on if px else off) * scale
        raw += bytes(line) * scale

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w * scale, h * scale, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pbm")
    ap.add_argument("png")
    ap.add_argument("--scale", type=int, default=4)
    a = ap.parse_args()
    _, _, rows = read_pbm(a.pbm)
    with open(a.png, "wb") as f:
        f.write(png_bytes(rows, a.scale))


if __name__ == "__main__":
    main()
