import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from evaluation.images import ImageListError, load_rescaled, read_image_list, to_net_input


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
    assert load_rescaled(photo_root / "val" / "corrupt.jpg", 256) is None
    assert load_rescaled(photo_root / "val" / "missing.jpg", 256) is None
    assert load_rescaled(photo_root / "val", 256) is None


@pytest.mark.parametrize("side, shape, interpolation", [
    (256, (256, 384, 3), cv2.INTER_AREA),    # 400 x 600 shrunk
    (512, (512, 768, 3), cv2.INTER_CUBIC),   # enlarged
    (400, (400, 600, 3), None),              # already at Q: the decoded pixels
])
def test_images_are_rescaled_to_smallest_side_q_as_training_images(photo_root, side, shape, interpolation):
    original = cv2.imread(str(photo_root / "val" / "coffee.png"))
    image = load_rescaled(photo_root / "val" / "coffee.png", side)
    assert image.shape == shape and image.dtype == np.uint8
    expected = original if interpolation is None else \
        cv2.resize(original, shape[1::-1], interpolation=interpolation)
    np.testing.assert_array_equal(image, expected)
    # The other side keeps the aspect ratio, rounded half up: 300 x 451 -> 256 x 385 (384.85).
    portrait = load_rescaled(photo_root / "val" / "chelsea.png", 256)
    assert portrait.shape == (256, 385, 3)


def test_net_input_is_mean_subtracted_nchw_bgr():
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30   # B, G, R
    image[1, 2] = (200, 100, 50)
    batch = to_net_input([image, image[:, ::-1]], mean_bgr=(1.0, 2.0, 3.0))
    assert batch.shape == (2, 3, 2, 3) and batch.dtype == np.float32
    assert batch[0, :, 0, 0].tolist() == [9.0, 18.0, 27.0]
    assert batch[0, :, 1, 2].tolist() == [199.0, 98.0, 47.0]
    assert batch[1, :, 1, 0].tolist() == [199.0, 98.0, 47.0]
