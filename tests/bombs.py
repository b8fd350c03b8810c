"""Small files that declare huge contents: PNG decompression bombs and deeply nested TOML and JSON.

A bomb PNG is valid: its pixels are all zero, compressed one row at a time, so a 9000x9000 image is a 79 KB file
made without ever holding the image. Shared by tests/test_image_hardening.py, tests/test_policy_hardening.py and
the image and policy families of benchmarks/fuzz.py.
"""

from __future__ import annotations

import struct
import zlib

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
