import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from evaluation.images import (ImageListError, load_image, read_image_list, rescale_smallest_side,
                               rescaled_size, to_net_input)


def test_list_parsing_keeps_paths_with_spaces(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("a/b.jpg 3\n\nmy dir/c d.png 0\n")
    images = read_image_list(path)
    assert [(i.path, i.label) for i in images] == [("a/b.jpg", 3), ("my dir/c d.png", 0)]
    assert len(read_image_list(path, limit=1)) == 1


@pytest.mark.parametrize("text, where", [("a.jpg 1\nb.jpg\n", ":2:"), ("a.jpg x\n", ":1:"), ("a.jpg -1\n", ":1:")])
def test_malformed_list_lines_are_named(tmp_path, text, where):
    path = tmp_path / "list.txt"
    path.write_text(text)
    with pytest.raises(ImageListError, match=where):
        read_image_list(path)


def test_missing_or_empty_list(tmp_path):
    with pytest.raises(ImageListError, match="not found"):
        read_image_list(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ImageListError, match="empty"):
        read_image_list(tmp_path / "empty.txt")


def test_unreadable_images_load_as_none(photo_root):
    assert load_image(photo_root / "val" / "corrupt.jpg") is None
    assert load_image(photo_root / "val" / "missing.jpg") is None
    image = load_image(photo_root / "val" / "chelsea.png")
    assert image.shape == (300, 451, 3) and image.dtype == np.uint8


@pytest.mark.parametrize("shape, side, expected", [
    ((375, 500), 256, (256, 341)),   # 341.33
    ((500, 375), 256, (341, 256)),
    ((300, 451), 224, (224, 337)),   # 336.75
    ((2, 3), 3, (3, 5)),             # 4.5 rounds half up
    ((256, 256), 256, (256, 256)),
])
def test_rescaled_size_keeps_the_aspect_ratio(shape, side, expected):
    assert rescaled_size(*shape, side) == expected


def test_rescale_uses_area_down_and_cubic_up(photo_root):
    image = load_image(photo_root / "val" / "coffee.png")  # 400 x 600
    down = rescale_smallest_side(image, 256)
    assert down.shape == (256, 384, 3)
    np.testing.assert_array_equal(down, cv2.resize(image, (384, 256), interpolation=cv2.INTER_AREA))
    up = rescale_smallest_side(image, 512)
    assert up.shape == (512, 768, 3)
    np.testing.assert_array_equal(up, cv2.resize(image, (768, 512), interpolation=cv2.INTER_CUBIC))
    assert rescale_smallest_side(image, 400) is image


def test_net_input_is_mean_subtracted_nchw_bgr():
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30   # B, G, R
    image[1, 2] = (200, 100, 50)
    batch = to_net_input([image, image[:, ::-1]], mean_bgr=(1.0, 2.0, 3.0))
    assert batch.shape == (2, 3, 2, 3) and batch.dtype == np.float32
    assert batch[0, :, 0, 0].tolist() == [9.0, 18.0, 27.0]
    assert batch[0, :, 1, 2].tolist() == [199.0, 98.0, 47.0]
    assert batch[1, :, 1, 0].tolist() == [199.0, 98.0, 47.0]
