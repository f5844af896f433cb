"""What an image file is, read from its header before anything is decoded.

Supports the data preparation of Sec. 3.1 (training images rescaled to a smallest side S):
the header gives the image's size, so a decompression bomb is refused before a pixel is
allocated, and it tells whether a JPEG's own bytes can be stored as they are (baseline,
8-bit, 3 components, no EXIF rotation). Formats: JPEG, PNG, WebP, BMP and PNM, the ones
OpenCV decodes everywhere; anything else is refused with a reason.

Each parser reads only the bytes it needs and raises `BadImage(reason, detail)`.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

# Skip reasons, as counted in the summary and written in report.txt.
NOT_AN_IMAGE = "not-an-image"
UNSUPPORTED_FORMAT = "unsupported-format"
CORRUPT = "corrupt"
TRUNCATED = "truncated"
TOO_MANY_PIXELS = "too-many-pixels"
EMPTY_FILE = "empty-file"


class BadImage(Exception):
    """An input that is skipped: `reason` is one of the module's reason names."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # results travel between processes
        return BadImage, (self.reason, self.detail)


@dataclass(frozen=True)
class ImageHeader:
    format: str          # "jpeg", "png", "webp", "bmp", "pnm"
    width: int           # as stored (before any EXIF rotation)
    height: int
    channels: int        # colour components as stored (JPEG 1/3/4, PNG 1-4, ...)
    bit_depth: int = 8   # per component
    has_alpha: bool = False
    # JPEG only: the SOF marker (0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...)
    jpeg_sof: int = 0
    # EXIF orientation tag (1 = upright); None when there is none.
    orientation: int | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def smallest_side(self) -> int:
        return min(self.width, self.height)

    @property
    def is_plain_jpeg(self) -> bool:
        """A JPEG whose bytes Caffe's decoder turns into the same 3-channel BGR image we do."""
        return (self.format == "jpeg" and self.jpeg_sof in (0xC0, 0xC1) and self.bit_depth == 8
                and self.channels == 3 and self.orientation in (None, 1))


def read_header(data: bytes) -> ImageHeader:
    """The header of an encoded image; BadImage when it is none we can decode safely."""
    if not data:
        raise BadImage(EMPTY_FILE, "the file is empty")
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:2] == b"BM":
        return _bmp(data)
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return _pnm(data)
    for magic, name in ((b"GIF8", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF")):
        if data.startswith(magic):
            raise BadImage(UNSUPPORTED_FORMAT, f"{name} images are not supported (use JPEG or PNG)")
    raise BadImage(NOT_AN_IMAGE, "not a JPEG, PNG, WebP, BMP or PNM file")


def _checked(fmt: str, width: int, height: int, **kw) -> ImageHeader:
    if width <= 0 or height <= 0:
        raise BadImage(CORRUPT, f"{fmt.upper()} header gives a {width}x{height} image")
    return ImageHeader(fmt, width, height, **kw)


# JPEG start-of-frame markers (ITU T.81 Table B.1): all but DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM and RST0-7.
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])


def _jpeg(data: bytes) -> ImageHeader:
    pos, n = 2, len(data)
    sof = None
    orientation = None
    while True:
        if pos + 4 > n:
            raise BadImage(TRUNCATED, "JPEG ends inside its header")
        if data[pos] != 0xFF:
            raise BadImage(CORRUPT, f"JPEG marker expected at byte {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise BadImage(TRUNCATED, "JPEG ends inside its header")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0x00):
            raise BadImage(CORRUPT, f"unexpected JPEG marker 0x{marker:02X} before the image data")
        if pos + 2 > n:
            raise BadImage(TRUNCATED, "JPEG ends inside its header")
        (length,) = struct.unpack_from(">H", data, pos)
        segment = data[pos + 2:pos + length]
        if length < 2 or len(segment) != length - 2:
            raise BadImage(TRUNCATED, f"JPEG segment 0x{marker:02X} runs past the end of the file")
        if marker in _SOF_MARKERS:
            if len(segment) < 6:
                raise BadImage(CORRUPT, "JPEG frame header too short")
            precision, height, width, components = struct.unpack_from(">BHHB", segment)
            sof = (marker, precision, height, width, components)
        elif marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and orientation is None:
            orientation = _exif_orientation(segment[6:])
        elif marker == 0xDA:  # start of scan: the entropy-coded data follows
            break
        pos += length
    if sof is None:
        raise BadImage(CORRUPT, "JPEG has image data but no frame header")
    marker, precision, height, width, components = sof
    if height == 0:
        raise BadImage(UNSUPPORTED_FORMAT, "JPEG defines its height after the image data (DNL)")
    if components not in (1, 3, 4):
        raise BadImage(UNSUPPORTED_FORMAT, f"JPEG with {components} colour components")
    # A complete JPEG ends with EOI. 0xFF 0xD9 cannot occur inside entropy-coded data
    # (0xFF is stuffed there), so its absence after the first scan means a truncated file.
    if data.rfind(b"\xff\xd9", pos) < 0:
        raise BadImage(TRUNCATED, "JPEG has no end-of-image marker")
    return _checked("jpeg", width, height, channels=components, bit_depth=precision,
                    jpeg_sof=marker, orientation=orientation)


def _exif_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 in an EXIF block; None when absent or unreadable."""
    if tiff[:4] == b"II*\x00":
        endian = "<"
    elif tiff[:4] == b"MM\x00*":
        endian = ">"
    else:
        return None
    try:
        (ifd,) = struct.unpack_from(endian + "I", tiff, 4)
        (count,) = struct.unpack_from(endian + "H", tiff, ifd)
        for i in range(count):
            tag, typ, _, value = struct.unpack_from(endian + "HHI4s", tiff, ifd + 2 + 12 * i)
            if tag == 0x0112 and typ == 3:  # SHORT, stored left-justified in the value field
                (orientation,) = struct.unpack_from(endian + "H", value)
                return orientation if 1 <= orientation <= 8 else None
    except struct.error:
        return None
    return None


# PNG colour types (PNG spec 11.2.2): components per colour type.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def _png(data: bytes) -> ImageHeader:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise BadImage(TRUNCATED if len(data) < 33 else CORRUPT, "PNG without a complete IHDR chunk")
    width, height, bit_depth, colour_type = struct.unpack_from(">IIBB", data, 16)
    if colour_type not in _PNG_CHANNELS or bit_depth not in (1, 2, 4, 8, 16):
        raise BadImage(CORRUPT, f"PNG colour type {colour_type} with bit depth {bit_depth}")
    # Transparency: an alpha channel, or a tRNS chunk before the image data.
    has_alpha = colour_type in (4, 6)
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"tRNS":
            has_alpha = True
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    if data.rfind(b"IEND", 33) < 0:
        raise BadImage(TRUNCATED, "PNG has no IEND chunk")
    return _checked("png", width, height, channels=_PNG_CHANNELS[colour_type],
                    bit_depth=16 if bit_depth == 16 else 8, has_alpha=has_alpha)


def _webp(data: bytes) -> ImageHeader:
    kind = data[12:16]
    body = data[20:]
    if kind == b"VP8X" and len(body) >= 10:
        flags = body[0]
        width = 1 + int.from_bytes(body[4:7], "little")
        height = 1 + int.from_bytes(body[7:10], "little")
        return _checked("webp", width, height, channels=3, has_alpha=bool(flags & 0x10))
    if kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        return _checked("webp", width, height, channels=3, has_alpha=bool((bits >> 28) & 1))
    if kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", body, 6)
        return _checked("webp", width & 0x3FFF, height & 0x3FFF, channels=3)
    raise BadImage(CORRUPT, "WebP without a readable VP8/VP8L/VP8X header")


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise BadImage(TRUNCATED, "BMP header incomplete")
    (dib_size,) = struct.unpack_from("<I", data, 14)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", data, 18)
    elif dib_size >= 40 and len(data) >= 26 + 4:
        width, height = struct.unpack_from("<ii", data, 18)
    else:
        raise BadImage(CORRUPT, f"BMP with a {dib_size}-byte info header")
    # A negative height marks a top-down bitmap.
    return _checked("bmp", width, abs(height), channels=3)


_PNM_TOKEN = re.compile(rb"(?:\s+|#[^\n]*\n)*(\d+)")


def _pnm(data: bytes) -> ImageHeader:
    values = []
    pos = 2
    for _ in range(2):
        match = _PNM_TOKEN.match(data, pos)
        if not match:
            raise BadImage(CORRUPT, "PNM header without width and height")
        values.append(int(match.group(1)))
        pos = match.end()
    channels = 3 if data[1:2] in b"36" else 1
    return _checked("pnm", values[0], values[1], channels=channels)
