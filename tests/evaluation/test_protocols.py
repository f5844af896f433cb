"""Dense and multi-crop evaluation through small Caffe nets, on real photographs."""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from evaluation.crops import crop_positions, multi_crops
from evaluation.images import ListedImage, load_rescaled, to_net_input
from evaluation.nets import load_nets, resolve_model
from evaluation.posteriors import softmax
from evaluation.protocols import dense_posteriors, evaluate_dense, evaluate_multicrop, forward

MEAN = (103.939, 116.779, 123.68)


@pytest.fixture(scope="module")
def nets3(tiny_model):
    """3x3-conv tiny net (as VGG): FC deploy and dense deploy, one caffemodel."""
    folder = tiny_model(3)
    spec = resolve_model(str(folder / "deploy_dense.prototxt"))
    return load_nets(spec, folder / "tiny.caffemodel", need_dense=True, need_crop=True)


@pytest.fixture(scope="module")
def nets1(tiny_model):
    """1x1 convs: no zero padding, so a crop's border equals the image interior it came from,
    and the dense map must match the crops exactly (with 3x3 pad-1 convs it differs at crop
    borders: the boundary effect Sec. 4.3 mentions)."""
    folder = tiny_model(1)
    spec = resolve_model(str(folder / "deploy_dense.prototxt"))
    return load_nets(spec, folder / "tiny.caffemodel", need_dense=True, need_crop=True)


def photo(photo_root, name, side):
    return load_rescaled(photo_root / "val" / name, side)


def fc_scores(net, crops):
    return forward(net, to_net_input(crops, MEAN), "fc8").copy()


def test_dense_at_224_equals_the_fc_net(nets3, photo_root, tmp_path):
    image = photo(photo_root, "astronaut.png", 224)
    assert image.shape == (224, 224, 3)
    fc_prob = forward(nets3.crop, to_net_input(image, MEAN), "prob").copy()
    dense_prob = dense_posteriors(nets3.dense, to_net_input(image, MEAN))
    np.testing.assert_allclose(dense_prob, fc_prob, rtol=1e-4, atol=1e-7)
    # The whole protocol on a 224x224 file at Q=224, without the flip, gives the same.
    cv2.imwrite(str(tmp_path / "a.png"), image)
    scored = evaluate_dense(nets3.dense, [ListedImage("a.png", 0)], tmp_path, 224, MEAN, flip=False,
                            show_progress=False)
    np.testing.assert_allclose(scored.probs, fc_prob, rtol=1e-4, atol=1e-7)


def test_dense_score_map_cells_are_the_crops_at_stride_32(nets1, photo_root):
    square = photo(photo_root, "astronaut.png", 256)
    score_map = forward(nets1.dense, to_net_input(square, MEAN), "fc8").copy()
    assert score_map.shape == (1, 10, 2, 2)
    crops = [square[32 * i:32 * i + 224, 32 * j:32 * j + 224] for i in range(2) for j in range(2)]
    expected = fc_scores(nets1.crop, crops).reshape(2, 2, 10).transpose(2, 0, 1)
    np.testing.assert_allclose(score_map[0], expected, rtol=1e-4, atol=1e-5)
    # In general cell (i, j) is the crop at (32 i, 32 j): a 288 x 320 part of a real photo.
    image = photo(photo_root, "coffee.png", 288)[:, :320]
    score_map = forward(nets1.dense, to_net_input(image, MEAN), "fc8").copy()
    assert score_map.shape == (1, 10, 3, 4)
    for i in range(3):
        for j in range(4):
            crop_scores = fc_scores(nets1.crop, [image[32 * i:32 * i + 224, 32 * j:32 * j + 224]])[0]
            np.testing.assert_allclose(score_map[0, :, i, j], crop_scores, rtol=1e-4, atol=1e-5)


def test_dense_averages_the_map_then_softmax_then_the_flip(nets3, photo_root):
    listing = [ListedImage("val/chelsea.png", 3)]
    scored = evaluate_dense(nets3.dense, listing, photo_root, 256, MEAN, show_progress=False)
    image = photo(photo_root, "chelsea.png", 256)
    maps = [forward(nets3.dense, to_net_input(x, MEAN), "fc8").copy()[0] for x in (image, image[:, ::-1])]
    assert maps[0].shape[1:] == (2, 7)  # 256 x 385 -> pool5 8 x 13 (Caffe rounds pools up) -> 2 x 7
    expected = np.mean([softmax(m.mean(axis=(1, 2))) for m in maps], axis=0)
    np.testing.assert_allclose(scored.probs[0], expected, rtol=1e-5)
    # The order matters: soft-max per cell before the spatial average is another result.
    other = np.mean([softmax(m, axis=0).mean(axis=(1, 2)) for m in maps], axis=0)
    assert not np.allclose(other, expected, rtol=1e-3)


def test_dense_batches_equal_sizes_and_skips_unreadable(nets3, photo_root, photo_list):
    from evaluation.images import read_image_list

    listing = read_image_list(photo_list)
    # Twice the same photos: equal sizes share batches; the result does not depend on batching.
    listing = listing + listing
    one = evaluate_dense(nets3.dense, listing, photo_root, 256, MEAN, batch_size=1, show_progress=False)
    many = evaluate_dense(nets3.dense, listing, photo_root, 256, MEAN, batch_size=40, show_progress=False)
    assert one.images == many.images and len(one.images) == 8
    assert one.skipped == many.skipped == ("val/corrupt.jpg", "val/missing.jpg") * 2
    np.testing.assert_allclose(one.probs, many.probs, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(one.probs[:4], one.probs[4:], rtol=1e-6)
    assert one.labels.tolist() == [3, 1, 4, 0] * 2


def test_a_scale_below_the_crop_is_raised_to_it(nets3, photo_root):
    listing = [ListedImage("val/rocket.jpg", 4)]
    small = evaluate_dense(nets3.dense, listing, photo_root, 100, MEAN, show_progress=False)
    at_crop = evaluate_dense(nets3.dense, listing, photo_root, 224, MEAN, show_progress=False)
    np.testing.assert_allclose(small.probs, at_crop.probs, rtol=1e-6)
    crops = evaluate_multicrop(nets3.crop, listing, photo_root, 100, MEAN, show_progress=False)
    assert crops.probs.shape == (1, 10)


def test_multicrop_averages_the_50_crops(nets3, photo_root):
    listing = [ListedImage("val/chelsea.png", 3)]
    scored = evaluate_multicrop(nets3.crop, listing, photo_root, 256, MEAN, batch_size=7, show_progress=False)
    image = photo(photo_root, "chelsea.png", 256)
    crops = multi_crops(image)
    assert len(crops) == 50
    probs = np.concatenate([forward(nets3.crop, to_net_input(crops[i:i + 10], MEAN), "prob").copy()
                            for i in range(0, 50, 10)])
    np.testing.assert_allclose(scored.probs[0], probs.mean(axis=0), rtol=1e-5)
    # Mirror crops are scored as what they are: the net sees a different input.
    assert not np.allclose(probs[:25], probs[25:], rtol=1e-3)
    assert crop_positions(*image.shape[:2])[-1] == (32, 161)
    # Through the dense net (1x1 map on a crop) multi-crop gives the same posteriors.
    via_dense = evaluate_multicrop(nets3.dense, listing, photo_root, 256, MEAN, show_progress=False)
    np.testing.assert_allclose(via_dense.probs, scored.probs, rtol=1e-4)


def test_an_fc_deploy_path_finds_its_dense_sibling_or_is_converted(tiny_model, tmp_path):
    folder = tiny_model(3)
    spec = resolve_model(str(folder / "deploy.prototxt"))
    assert spec.fc is not None and spec.dense.layer[-2].type == "Convolution"
    alone = tmp_path / "alone.prototxt"
    alone.write_text((folder / "deploy.prototxt").read_text())
    converted = resolve_model(str(alone))
    assert converted.name == "alone"
    assert [(l.name, l.type) for l in converted.dense.layer] == [(l.name, l.type) for l in spec.dense.layer]
    fc6 = [next(l for l in s.dense.layer if l.name == "fc6").convolution_param for s in (converted, spec)]
    assert list(fc6[0].kernel_size) == list(fc6[1].kernel_size) == [7] and fc6[0].num_output == fc6[1].num_output
