"""Small files that declare huge contents (PNG decompression bombs, deeply nested TOML and JSON), and the hostile
image files and policies built from them.

A bomb PNG is valid: its pixels are all zero, compressed a block of rows at a time, so a 9000x9000 image is an
80 KB file made in milliseconds without ever holding the image. Shared by tests/test_image_hardening.py,
tests/test_policy_hardening.py and the image and policy families of benchmarks/fuzz.py.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

from hostile import mutate_bytes, mutated_policy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, channels: int = 1) -> bytes:
    """A valid PNG of `width` x `height` zero pixels, made in well under a second whatever its size."""
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    row = bytes(1 + width * channels)  # filter byte 0, then the row's samples
    per_block = max(1, (1 << 20) // len(row))
    blocks, rest = divmod(height, per_block)
    packer = zlib.compressobj(9)
    # After a full flush deflate starts afresh, so every block of identical rows compresses to the same bytes.
    first = packer.compress(row * per_block) + packer.flush(zlib.Z_FULL_FLUSH) if blocks else b""
    again = packer.compress(row * per_block) + packer.flush(zlib.Z_FULL_FLUSH) if blocks > 1 else b""
    body = first + again * (blocks - 1) + packer.compress(row * rest) + packer.flush(zlib.Z_SYNC_FLUSH)
    checksum = (height * len(row) % 65521) << 16 | 1  # Adler-32 of that many zero bytes
    data = body + packer.flush()[:-4] + struct.pack(">I", checksum)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def nested_toml(depth: int, kind: str = "list") -> str:
    """A TOML policy whose one value nests `depth` lists (or inline tables, or dotted key parts)."""
    if kind == "list":
        return f"[thresholds]\nx = {'[' * depth}1{']' * depth}\n"
    if kind == "table":
        return f"[thresholds]\nx = {'{a = ' * depth}1{'}' * depth}\n"
    return f"[thresholds]\n{'.'.join(['a'] * depth)} = 1\n"


def nested_json(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


BOMB_SIZES = [(30000, 30000), (12000, 12000), (9000, 9000), (5000, 5000), (65535, 65535), (1, 10**6),
              (8, 9000)]


def hostile_image(rng: random.Random) -> bytes:
    """An image file that is a bomb (a small file declaring a huge image), mutated, or of another size or mode."""
    roll = rng.random()
    if roll < 0.35:
        width, height = rng.choice(BOMB_SIZES)
        raw = png(width, height, rng.choice([1, 3, 4]))
        return raw[:rng.randrange(33, len(raw))] if rng.random() < 0.2 else raw  # header-only bombs too
    if roll < 0.5:  # a BMP or GIF whose header declares a huge size
        fmt = rng.choice(["BMP", "GIF"])
        out = io.BytesIO()
        Image.new("L", (8, 8)).save(out, format=fmt)
        data = bytearray(out.getvalue())
        side = rng.choice([65535, 30000, 9000])
        if fmt == "BMP":
            height = -side if rng.random() < 0.3 else side
            data[18:26] = side.to_bytes(4, "little", signed=True) + height.to_bytes(4, "little", signed=True)
        else:
            data[6:10] = side.to_bytes(2, "little") * 2
        return bytes(data)
    out = io.BytesIO()
    mode, size = rng.choice([("L", (8, 8))] * 3 + [("RGB", (8, 8)), ("RGBA", (8, 8)), ("I;16", (8, 8)),
                                                   ("L", (9, 8)), ("1", (8, 8)), ("F", (8, 8))])
    fmt = rng.choice(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "ICO"])
    try:
        Image.new(mode, size).save(out, format=fmt)
    except (OSError, ValueError, KeyError):  # a mode the format cannot hold
        out = io.BytesIO()
        Image.new("L", size).save(out, format="PNG")
    return mutate_bytes(out.getvalue(), rng) if rng.random() < 0.5 else out.getvalue()


def hostile_policy(rng: random.Random) -> str:
    """A mutated policy (mutated_policy), or one nested deep, unbalanced or grown large."""
    roll = rng.random()
    if roll < 0.25:
        return nested_toml(rng.choice([60, 65, 1000, 100_000]), rng.choice(["list", "table", "key"]))
    if roll < 0.3:
        return mutated_policy(rng) + "# " + "x" * rng.choice([1 << 20, 4 << 20]) + "\n"
    if roll < 0.35:
        return f"[thresholds]\nx = {'[' * 5000}{'{' * 5000}\n"
    return mutated_policy(rng)
