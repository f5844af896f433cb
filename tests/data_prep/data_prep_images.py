"""Image files OpenCV cannot write: palette and gray+alpha PNGs, CMYK JPEGs, EXIF-rotated
JPEGs, headers of decompression bombs. Built from the format specifications (PNG 1.2,
ITU T.81, EXIF 2.3) so the tests do not depend on an image library beyond OpenCV."""
from __future__ import annotations

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png(samples: np.ndarray, colour_type: int, bit_depth: int = 8, palette=None, transparency=None,
        width: int | None = None, height: int | None = None, idat: bytes | None = None) -> bytes:
    """A PNG of `samples` (H x W x C, or H x W) stored as given: no filtering, no interlace.

    `width`/`height` override the IHDR size and `idat` the compressed data (for bombs)."""
    samples = np.asarray(samples)
    rows = samples.reshape(samples.shape[0], -1)
    if bit_depth == 16:
        rows = rows.astype(">u2").view(np.uint8)
    else:
        rows = rows.astype(np.uint8)
    if idat is None:
        idat = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in rows))
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(
        ">IIBBBBB", width or samples.shape[1], height or samples.shape[0], bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    if transparency is not None:
        out += _chunk(b"tRNS", bytes(transparency))
    return out + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_bomb(side: int) -> bytes:
    """A gray PNG of side x side zeros: a few KB that would decode to side^2 bytes."""
    compressor = zlib.compressobj(1)
    rows = b"\x00" * ((side + 1) * 100)
    data = b"".join(compressor.compress(rows) for _ in range(side // 100)) + compressor.flush()
    return png(np.zeros((1, 1), np.uint8), colour_type=0, width=side, height=side, idat=data)


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 EXIF segment carrying the orientation tag, right after SOI."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


# --- A minimal baseline JPEG encoder for 4-component (Adobe CMYK) images -------------------
_ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13,
    6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45,
    38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63])
_DCT = np.array([[np.sqrt((1 if u == 0 else 2) / 8) * np.cos((2 * x + 1) * u * np.pi / 16)
                  for x in range(8)] for u in range(8)])
# Canonical Huffman tables that give every possible symbol a code: 12 DC categories with
# 4-bit codes, the 162 AC symbols (run/size pairs, EOB, ZRL) with 8-bit codes.
_DC_SYMBOLS = list(range(12))
_AC_SYMBOLS = [0x00, 0xF0] + [(run << 4) | size for run in range(16) for size in range(1, 11)]
_DC_CODES = {s: (i, 4) for i, s in enumerate(_DC_SYMBOLS)}
_AC_CODES = {s: (i, 8) for i, s in enumerate(_AC_SYMBOLS)}


class _Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, length: int):
        for shift in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> shift) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc = self.n = 0

    def flush(self) -> bytes:
        while self.n:
            self.put(1, 1)
        return bytes(self.out)


def _category(value: int) -> int:
    return int(abs(value)).bit_length()


def _bits_of(value: int, size: int) -> int:
    return value if value >= 0 else value + (1 << size) - 1


def cmyk_jpeg(cmyk: np.ndarray) -> bytes:
    """A baseline JPEG of an H x W x 4 uint8 image, stored as Adobe (inverted) CMYK samples.

    Adobe's convention, which libjpeg/OpenCV assume for 4-component JPEGs: the stored value
    is 255 - ink, so `cmyk` here holds 255 - C, 255 - M, 255 - Y, 255 - K.
    """
    height, width = cmyk.shape[:2]
    padded = np.pad(cmyk, ((0, -height % 8), (0, -width % 8), (0, 0)), mode="edge").astype(np.float64) - 128
    bits = _Bits()
    previous_dc = [0, 0, 0, 0]
    for by in range(0, padded.shape[0], 8):
        for bx in range(0, padded.shape[1], 8):
            for c in range(4):
                coefficients = np.rint(_DCT @ padded[by:by + 8, bx:bx + 8, c] @ _DCT.T).astype(int).ravel()[_ZIGZAG]
                diff = coefficients[0] - previous_dc[c]
                previous_dc[c] = coefficients[0]
                size = _category(diff)
                bits.put(*_DC_CODES[size])
                bits.put(_bits_of(diff, size), size)
                run = 0
                last = max((i for i in range(1, 64) if coefficients[i]), default=0)
                for value in coefficients[1:last + 1]:
                    if value == 0:
                        run += 1
                        continue
                    while run > 15:
                        bits.put(*_AC_CODES[0xF0])
                        run -= 16
                    size = _category(value)
                    bits.put(*_AC_CODES[(run << 4) | size])
                    bits.put(_bits_of(value, size), size)
                    run = 0
                if last < 63:
                    bits.put(*_AC_CODES[0x00])

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    def huffman_table(table_class: int, symbols, length: int) -> bytes:
        counts = [0] * 16
        counts[length - 1] = len(symbols)
        return bytes([table_class << 4]) + bytes(counts) + bytes(symbols)

    return (b"\xff\xd8"
            + segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))     # transform 0: CMYK
            + segment(0xDB, bytes([0]) + bytes([1] * 64))                      # all-ones quantiser
            + segment(0xC0, struct.pack(">BHHB", 8, height, width, 4)
                      + b"".join(bytes([i + 1, 0x11, 0]) for i in range(4)))
            + segment(0xC4, huffman_table(0, _DC_SYMBOLS, 4) + huffman_table(1, _AC_SYMBOLS, 8))
            + segment(0xDA, bytes([4]) + b"".join(bytes([i + 1, 0x00]) for i in range(4)) + bytes([0, 63, 0]))
            + bits.flush() + b"\xff\xd9")
