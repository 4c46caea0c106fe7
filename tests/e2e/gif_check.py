#!/usr/bin/python3
"""Checks a GIF without third-party modules: logical size, frame count, and that frames differ.

Usage: gif_check.py FILE WIDTH HEIGHT FRAMES
"""
import struct
import sys


def frames(data):
    """Yields the raw LZW data of each image (enough to tell frames apart)."""
    assert data[:6] in (b"GIF87a", b"GIF89a"), "not a GIF"
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            return
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        elif block == 0x2C:  # image descriptor
            flags = data[pos + 9]
            pos += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            start = pos
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
            yield data[start:pos]
        else:
            raise ValueError(f"unexpected block 0x{block:02x} at {pos}")


def main():
    path, width, height, count = sys.argv[1], *map(int, sys.argv[2:5])
    data = open(path, "rb").read()
    w, h = struct.unpack("<HH", data[6:10])
    images = list(frames(data))
    problems = []
    if (w, h) != (width, height):
        problems.append(f"size {w}x{h}, expected {width}x{height}")
    if len(images) != count:
        problems.append(f"{len(images)} frames, expected {count}")
    if len(set(images)) < 2:
        problems.append("all frames are identical")
    if problems:
        sys.exit("gif_check: " + "; ".join(problems))
    print(f"gif_check: {w}x{h}, {len(images)} frames, {len(set(images))} distinct")


if __name__ == "__main__":
    main()
