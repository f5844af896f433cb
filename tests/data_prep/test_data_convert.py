"""One image to its records: exact smallest side S, pixels close to decoding + rescaling the
source directly, and every colour layout ending up as 8-bit BGR (what Caffe expects)."""
import cv2
import numpy as np
import pytest

from data_prep import convert
from data_prep.convert import BadImage, ConvertOptions, convert_image, decode, read_image_file, rescaled_shape
from data_prep.imagefile import TOO_MANY_PIXELS, read_header
from data_prep_helpers import jpeg, photo, psnr
from data_prep_images import cmyk_jpeg, png, png_bomb, with_exif_orientation

from data_prep_helpers import direct_rescale, within_jpeg_tolerance


def decoded(record) -> np.ndarray:
    height, width, data = record
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR)  # as Caffe's Data layer
    assert image.shape == (height, width, 3)
    return image


def decode_source(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.parametrize("height,width,side,expected", [
    (375, 500, 256, (256, 341)), (333, 500, 256, (256, 384)), (500, 333, 256, (384, 256)),
    (100, 100, 64, (64, 64)), (3, 1000, 256, (256, 85333)), (201, 300, 134, (134, 200))])
def test_rescaled_shape_keeps_the_aspect_ratio_rounding_half_up(height, width, side, expected):
    assert rescaled_shape(height, width, side) == expected


@pytest.mark.parametrize("height,width", [(375, 500), (500, 333), (240, 241), (1400, 1000), (90, 400)])
def test_every_scale_has_smallest_side_s_and_the_pixels_of_a_direct_rescale(height, width):
    data = jpeg(photo(height * width, height, width), quality=92)
    options = ConvertOptions(scales=(96, 160, 240))
    result = convert_image(data, options)
    source = decode_source(data)
    for side, record in zip(options.scales, result.records):
        image = decoded(record)
        assert min(image.shape[:2]) == side
        assert image.shape[:2] == rescaled_shape(height, width, side)
        assert within_jpeg_tolerance(image, direct_rescale(source, side))


def test_reduced_decode_is_opt_in_and_keeps_the_shape_of_a_full_decode():
    data = jpeg(photo(7, 1400, 1000), quality=92)
    header = read_header(data)
    assert convert.reduction_factor(header, 240) == 4  # ceil(1000 / 4) = 250 >= 240 > 125
    assert decode(data, header, 240, ConvertOptions(scales=(240,)))[1] == 1
    options = ConvertOptions(scales=(96, 240), reduced_decode=True)
    reduced, factor = decode(data, header, 240, options)
    assert factor == 4 and reduced.shape[:2] == (350, 250)
    full = decode_source(data)
    for side, record in zip(options.scales, convert_image(data, options).records):
        image = decoded(record)
        # The shape is computed from the full size, not from the rounded reduced one.
        assert image.shape[:2] == rescaled_shape(1400, 1000, side)
        # libjpeg's DCT scaling is a different filter from area averaging (see convert.py).
        assert psnr(image, direct_rescale(full, side)) > 28.0


def test_baseline_jpeg_already_at_s_is_stored_byte_for_byte():
    data = jpeg(photo(8, 256, 300))
    result = convert_image(data, ConvertOptions(scales=(256, 320)))
    assert result.records[0] == (256, 300, data)
    assert "JPEG bytes kept at S=256" in result.notes
    assert result.records[1][2] != data and min(decoded(result.records[1]).shape[:2]) == 320


def test_progressive_jpeg_at_s_is_re_encoded_as_baseline():
    data = jpeg(photo(8, 256, 300), IMWRITE_JPEG_PROGRESSIVE=1)
    record = convert_image(data, ConvertOptions(scales=(256,))).records[0]
    assert record[2] != data and read_header(record[2]).jpeg_sof == 0xC0
    assert within_jpeg_tolerance(decoded(record), decode_source(data))


def test_small_image_is_upscaled_bicubic_and_counted():
    data = jpeg(photo(9, 100, 150))
    result = convert_image(data, ConvertOptions(scales=(128, 160)))
    assert [r[:2] for r in result.records] == [(128, 192), (160, 240)]
    assert {"upscaled to S=128", "upscaled to S=160", "smaller than the 224px crop"} <= set(result.notes)
    for side, record in zip((128, 160), result.records):
        assert within_jpeg_tolerance(decoded(record), direct_rescale(decode_source(data), side))


def test_grayscale_jpeg_becomes_three_equal_channels():
    gray = cv2.cvtColor(photo(10, 64, 80), cv2.COLOR_BGR2GRAY)
    data = jpeg(gray)
    image = decoded(convert_image(data, ConvertOptions(scales=(64,))).records[0])
    assert np.abs(image.astype(int) - image[:, :, :1]).max() <= 2  # B = G = R up to JPEG chroma noise
    assert psnr(image[:, :, 1], cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)) > 38
    assert "grayscale converted to BGR" in convert_image(data, ConvertOptions(scales=(64,))).notes


def decode_only(data: bytes, side: int = 8) -> np.ndarray:
    image, _ = decode(data, read_header(data), side, ConvertOptions(scales=(side,)))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    return image


def test_palette_png_decodes_to_its_bgr_colours():
    indices = np.array([[0, 1, 2, 1]], np.uint8)
    palette = [[255, 0, 0], [0, 128, 0], [10, 20, 30]]  # RGB
    image = decode_only(png(indices, colour_type=3, palette=palette))
    assert image[0].tolist() == [[0, 0, 255], [0, 128, 0], [30, 20, 10], [0, 128, 0]]


def test_palette_png_with_transparency_is_composited_over_white():
    indices = np.array([[0, 1]], np.uint8)
    image = decode_only(png(indices, colour_type=3, palette=[[255, 0, 0], [0, 0, 255]], transparency=[0, 255]))
    assert image[0].tolist() == [[255, 255, 255], [255, 0, 0]]


def test_16_bit_png_is_rounded_to_8_bits():
    rgb = np.array([[[1000, 40000, 65535], [128, 385, 0]]], np.uint16)
    image = decode_only(png(rgb, colour_type=2, bit_depth=16))
    expected = np.rint(rgb[:, :, ::-1] / 257.0).astype(int)  # [[4, 156, 255], [0, 1, 0]] reversed
    assert image.tolist() == expected.tolist()


def test_rgba_png_is_composited_over_white():
    rgba = np.array([[[200, 10, 20, 0], [200, 10, 20, 255], [200, 10, 20, 128]]], np.uint8)
    image = decode_only(png(rgba, colour_type=6))
    a = 128 / 255
    assert image[0, 0].tolist() == [255, 255, 255]
    assert image[0, 1].tolist() == [20, 10, 200]
    assert image[0, 2].tolist() == [round(20 * a + 255 * (1 - a)), round(10 * a + 255 * (1 - a)),
                                    round(200 * a + 255 * (1 - a))]


def test_16_bit_gray_alpha_png_is_composited_and_rounded():
    gray_alpha = np.array([[[0, 65535], [0, 0], [30000, 65535]]], np.uint16)
    image = decode_only(png(gray_alpha, colour_type=4, bit_depth=16))
    assert image[0].tolist() == [[0, 0, 0], [255, 255, 255], [117, 117, 117]]  # 30000 / 257 = 116.7


def test_cmyk_jpeg_decodes_to_its_colours_in_bgr():
    # Adobe CMYK stores 255 - ink; with no black ink (stored K = 255) the stored C, M, Y are R, G, B.
    stored = np.zeros((16, 32, 4), np.uint8)
    stored[:, :, 3] = 255
    stored[:, :16, :3] = (255, 0, 0)     # red
    stored[:, 16:, :3] = (0, 0, 255)     # blue
    image = decode_only(cmyk_jpeg(stored), side=16)
    assert np.abs(image[8, 4].astype(int) - [0, 0, 255]).max() <= 3
    assert np.abs(image[8, 28].astype(int) - [255, 0, 0]).max() <= 3


@pytest.mark.parametrize("orientation,rotation", [
    (3, cv2.ROTATE_180), (6, cv2.ROTATE_90_CLOCKWISE), (8, cv2.ROTATE_90_COUNTERCLOCKWISE)])
def test_exif_orientation_is_applied(orientation, rotation):
    plain = jpeg(photo(11, 60, 100))
    upright = cv2.rotate(decode_source(plain), rotation)
    image = decode_only(with_exif_orientation(plain, orientation), side=60)
    assert np.array_equal(image, upright)


def test_exif_orientation_is_applied_when_decoding_reduced():
    plain = jpeg(photo(12, 400, 600))
    data = with_exif_orientation(plain, 6)
    result = convert_image(data, ConvertOptions(scales=(100,)))
    assert result.records[0][:2] == (150, 100)  # portrait after the rotation
    upright = cv2.rotate(decode_source(plain), cv2.ROTATE_90_CLOCKWISE)
    assert within_jpeg_tolerance(decoded(result.records[0]), direct_rescale(upright, 100))
    assert "EXIF orientation applied" in result.notes


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    bomb = png_bomb(20000)

    def no_decoding(*args):
        raise AssertionError("the bomb reached the decoder")

    monkeypatch.setattr(convert.cv2, "imdecode", no_decoding)
    with pytest.raises(BadImage) as info:
        convert_image(bomb, ConvertOptions(scales=(256,)))
    assert info.value.reason == TOO_MANY_PIXELS
    assert "400000000 pixels" in info.value.detail and "--max-pixels" in info.value.detail


def test_pixel_limit_is_configurable():
    data = jpeg(photo(13, 60, 80))
    assert convert_image(data, ConvertOptions(scales=(32,), max_pixels=4800)).records
    with pytest.raises(BadImage) as info:
        convert_image(data, ConvertOptions(scales=(32,), max_pixels=4799))
    assert info.value.reason == TOO_MANY_PIXELS


def test_pca_sample_is_seeded_by_image_position_not_by_call_order():
    data = jpeg(photo(14, 100, 120))
    options = ConvertOptions(scales=(100,), pca_pixels_per_image=50, seed=3)
    first, again = convert_image(data, options, 7), convert_image(data, options, 7)
    other = convert_image(data, options, 8)
    assert first.pca_count == 50 and np.array_equal(first.pca_outer, again.pca_outer)
    assert not np.array_equal(first.pca_outer, other.pca_outer)
    every = convert_image(data, ConvertOptions(scales=(100,), pca_pixels_per_image=10**6))
    assert every.pca_count == every.num_pixels == 100 * 120


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(BadImage) as info:
        read_image_file(str(tmp_path / "nope.jpg"))
    assert info.value.reason == convert.MISSING_FILE
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(BadImage) as info:
        read_image_file(str(tmp_path / "folder.jpg"))
    assert info.value.reason == convert.NOT_A_FILE


@pytest.mark.parametrize("height,width,side", [(375, 500, 256), (333, 500, 256), (520, 400, 270),
                                               (320, 480, 250), (300, 301, 299), (375, 500, 320),
                                               (600, 800, 300), (900, 700, 128)])
def test_shrink_is_opencvs_area_averaging_exactly(height, width, side):
    """The issue allows speed from cores and reduced decoding, not from lower fidelity: the
    stored image is exactly what Caffe's transformer computes (INTER_AREA)."""
    image = photo(height + width, height, width)
    new_h, new_w = rescaled_shape(height, width, side)
    assert min(new_h, new_w) == side
    exact = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    assert np.array_equal(convert.rescale(image, side), exact)


def test_pca_sample_positions_are_uniform_and_independent_per_image():
    from data_prep.convert import sample_positions
    draws = [sample_positions(10, 100, 3, image) for image in range(3000)]
    assert all(d.min() >= 0 and d.max() < 10 for d in draws)
    counts = np.bincount(np.concatenate(draws), minlength=10)
    # 300,000 uniform draws over 10 values: each count is 30,000 +- 164 (one sd).
    assert np.all(np.abs(counts - 30_000) < 5 * 164), counts
    big = [sample_positions(1 << 40, 64, 0, image) for image in range(200)]
    # Neighbouring images (and seeds) draw unrelated streams, not shifted copies of one.
    assert len(np.unique(np.concatenate(big))) == 200 * 64
    assert not np.intersect1d(sample_positions(1 << 40, 64, 1, 0), big[0]).size
    assert np.array_equal(sample_positions(87296, 100, 5, 9), sample_positions(87296, 100, 5, 9))
