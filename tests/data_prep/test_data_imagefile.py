"""Image headers read before decoding: sizes, JPEG kind, EXIF orientation, transparency, and the
files that must be refused (empty, not an image, truncated, corrupt)."""
import cv2
import numpy as np
import pytest

from data_prep import imagefile
from data_prep.imagefile import BadImage, read_header
from data_prep_helpers import jpeg, photo
from data_prep_images import cmyk_jpeg, png, png_bomb, with_exif_orientation


def reason_of(data: bytes) -> str:
    with pytest.raises(BadImage) as info:
        read_header(data)
    return info.value.reason


@pytest.mark.parametrize("height,width", [(375, 500), (500, 333), (17, 9)])
def test_jpeg_header_gives_the_stored_size_and_a_plain_baseline_jpeg(height, width):
    header = read_header(jpeg(photo(0, height, width)))
    assert (header.format, header.width, header.height, header.channels) == ("jpeg", width, height, 3)
    assert header.jpeg_sof == 0xC0 and header.orientation is None
    assert header.is_plain_jpeg


def test_progressive_grayscale_cmyk_and_rotated_jpegs_are_not_plain():
    image = photo(1, 40, 56)
    progressive = read_header(jpeg(image, IMWRITE_JPEG_PROGRESSIVE=1))
    assert progressive.jpeg_sof == 0xC2 and not progressive.is_plain_jpeg
    gray = read_header(jpeg(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)))
    assert gray.channels == 1 and not gray.is_plain_jpeg
    cmyk = read_header(cmyk_jpeg(np.full((16, 24, 4), 200, np.uint8)))
    assert (cmyk.channels, cmyk.width, cmyk.height) == (4, 24, 16) and not cmyk.is_plain_jpeg
    rotated = read_header(with_exif_orientation(jpeg(image), 6))
    assert rotated.orientation == 6 and not rotated.is_plain_jpeg
    upright = read_header(with_exif_orientation(jpeg(image), 1))
    assert upright.orientation == 1 and upright.is_plain_jpeg


@pytest.mark.parametrize("colour_type,channels,transparency,alpha", [
    (0, 1, None, False), (2, 3, None, False), (4, 2, None, True), (6, 4, None, True),
    (2, 3, b"\x00\x01\x00\x02\x00\x03", True)])
def test_png_header_reports_channels_and_transparency(colour_type, channels, transparency, alpha):
    samples = np.zeros((5, 7, channels), np.uint8)
    header = read_header(png(samples, colour_type, transparency=transparency))
    assert (header.format, header.width, header.height, header.channels) == ("png", 7, 5, channels)
    assert header.has_alpha is alpha


def test_16_bit_png_is_flagged():
    assert read_header(png(np.zeros((3, 4, 3), np.uint16), 2, bit_depth=16)).bit_depth == 16


@pytest.mark.parametrize("extension", [".webp", ".bmp", ".ppm", ".pgm"])
def test_other_formats_give_the_size_opencv_decodes(extension):
    image = photo(2, 37, 61)
    if extension == ".pgm":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    ok, buffer = cv2.imencode(extension, image)
    assert ok
    header = read_header(buffer.tobytes())
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    assert (header.height, header.width) == decoded.shape[:2] == (37, 61)


def test_decompression_bomb_size_is_read_without_decoding():
    header = read_header(png_bomb(20000))
    assert header.pixels == 400_000_000


def test_empty_file_is_refused():
    assert reason_of(b"") == imagefile.EMPTY_FILE


@pytest.mark.parametrize("data", [b"hello, this is a text file\n", b"%PDF-1.4\n" + bytes(100), bytes(64)])
def test_non_image_is_refused(data):
    assert reason_of(data) == imagefile.NOT_AN_IMAGE


def test_gif_is_refused_as_unsupported():
    assert reason_of(b"GIF89a" + bytes(20)) == imagefile.UNSUPPORTED_FORMAT


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_jpeg_cut_in_its_image_data_is_truncated(fraction):
    data = jpeg(photo(3, 120, 160))
    assert reason_of(data[:int(len(data) * fraction)]) == imagefile.TRUNCATED


def test_jpeg_cut_in_its_header_is_truncated():
    assert reason_of(jpeg(photo(3, 120, 160))[:100]) == imagefile.TRUNCATED


def test_png_cut_short_is_truncated():
    ok, buffer = cv2.imencode(".png", photo(4, 60, 80))
    assert reason_of(buffer.tobytes()[:-300]) == imagefile.TRUNCATED


def test_jpeg_with_garbage_after_its_start_is_corrupt():
    data = jpeg(photo(5, 60, 80))
    assert reason_of(data[:3] + b"\x00" * 40 + data[43:]) in (imagefile.CORRUPT, imagefile.TRUNCATED)
    assert reason_of(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(5) + b"\xff\xda\x00\x08" + bytes(6) + b"\xff\xd9") \
        == imagefile.CORRUPT  # image data without a frame header


def test_png_with_a_damaged_header_is_corrupt():
    ok, buffer = cv2.imencode(".png", photo(6, 10, 10))
    data = bytearray(buffer.tobytes())
    data[12:16] = b"XXXX"
    assert reason_of(bytes(data)) == imagefile.CORRUPT
