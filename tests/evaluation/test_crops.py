import numpy as np
import pytest

from evaluation.crops import crop_positions, grid_offsets, multi_crops


def test_grid_offsets_span_the_side_corners_included():
    assert grid_offsets(256).tolist() == [0, 8, 16, 24, 32]
    assert grid_offsets(224).tolist() == [0, 0, 0, 0, 0]
    # 384 - 224 = 160 -> 0, 40, 80, 120, 160; 341 - 224 = 117 -> 29.25, 58.5, 87.75
    assert grid_offsets(384).tolist() == [0, 40, 80, 120, 160]
    assert grid_offsets(341).tolist() == [0, 29, 59, 88, 117]
    with pytest.raises(ValueError):
        grid_offsets(223)


def test_crops_are_the_5x5_grid_and_their_mirror_images():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(256, 341, 3), dtype=np.uint8)
    positions = crop_positions(256, 341)
    assert len(positions) == 25
    assert {positions[0], positions[4], positions[20], positions[24]} == {(0, 0), (0, 117), (32, 0), (32, 117)}
    assert positions == [(y, x) for y in (0, 8, 16, 24, 32) for x in (0, 29, 59, 88, 117)]
    crops = multi_crops(image)
    assert crops.shape == (50, 224, 224, 3)
    for i, (y, x) in enumerate(positions):
        np.testing.assert_array_equal(crops[i], image[y:y + 224, x:x + 224])
        # The flip is the true mirror image of the same window ...
        np.testing.assert_array_equal(crops[25 + i], image[y:y + 224, x:x + 224][:, ::-1])
    # ... and the set of flipped crops is the grid of the mirrored image.
    mirrored = image[:, ::-1]
    for (y, x), flipped in zip(positions, crops[25:]):
        np.testing.assert_array_equal(flipped, mirrored[y:y + 224, 341 - 224 - x:341 - x])
