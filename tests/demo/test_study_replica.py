"""demo/study/replica.py: the PyTorch replica of the demo's chain agrees with the Caffe side it stands for."""
import gzip
import json
import math
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.torch_vgg import build  # noqa: E402
from demo.study import replica  # noqa: E402
from prototxt_gen import table  # noqa: E402

D, A = table.CONFIGS["D"], table.CONFIGS["A"]


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 48), ("t10k", 24)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_xavier_matches_caffes_average_variance_norm():
    torch.manual_seed(0)
    net = build(D, table.MINI)
    replica.xavier_(net)
    conv = net.conv3_2  # 32 -> 32 channels, 3x3 at width / 8
    fan_in = fan_out = 32 * 9
    bound = math.sqrt(3.0 / ((fan_in + fan_out) / 2))
    assert conv.weight.abs().max().item() <= bound
    assert conv.weight.abs().max().item() > 0.9 * bound  # uniform over the whole range, not a narrower one
    assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0
    fc7 = net.fc7
    assert fc7.weight.abs().max().item() <= math.sqrt(3.0 / table.MINI.fc_width)


def test_dense_net_is_the_training_net_at_the_crop_and_a_score_map_above_it():
    torch.manual_seed(0)
    net = build(D, table.MINI).eval()
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        dense = replica.dense_scores(net, x, table.MINI, D)
        assert dense.shape == (4, 10, 1, 1)
        assert torch.allclose(dense[:, :, 0, 0], net(x), atol=1e-5)
        assert replica.dense_scores(net, torch.randn(2, 3, 32, 32), table.MINI, D).shape == (2, 10, 1, 1)
        # stride 32: a 64-px input scores a 2x2 map, each cell the net on a 28-px window's worth
        assert replica.dense_scores(net, torch.randn(2, 3, 64, 64), table.MINI, D).shape == (2, 10, 2, 2)


def test_dense_fc6_is_a_convolution_over_pool5_when_the_crop_leaves_a_larger_map():
    profile = replace(table.MINI, crop=64)  # pool5 2x2: fc6 a 2x2 convolution
    torch.manual_seed(0)
    net = build(D, profile).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(replica.dense_scores(net, x, profile, D)[:, :, 0, 0], net(x), atol=1e-5)
        assert replica.dense_scores(net, torch.randn(1, 3, 96, 96), profile, D).shape == (1, 10, 2, 2)


def test_d_starts_from_the_layers_of_a_that_section_3_1_names():
    torch.manual_seed(0)
    a_net, d_net = build(A, table.MINI), build(D, table.MINI)
    before = {name: p.clone() for name, p in d_net.state_dict().items()}
    copied = replica.copy_from_a(d_net, a_net, D)
    assert copied == sorted(table.layers_from_a(D))
    assert {"conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"} == set(copied)
    for name, value in d_net.state_dict().items():
        layer = name.split(".")[0]
        if layer in copied:
            assert torch.equal(value, a_net.state_dict()[name]), name
        else:
            assert torch.equal(value, before[name]), name


def test_plateau_drops_as_patch_0006_does():
    plateau = replica.Plateau(patience=2, min_delta=0.001, max_drops=2)
    accuracies = [0.50, 0.60, 0.6005, 0.59, 0.61, 0.61, 0.60, 0.62, 0.62, 0.62, 0.62, 0.62]
    drops = [i for i, acc in enumerate(accuracies) if plateau.drop_after(acc)]
    # 0.6005 is within min_delta of 0.60: not an improvement; the count restarts after a drop
    assert drops == [3, 6]
    assert plateau.drops == 2  # max_drops reached: 0.62 flat afterwards drops no more


def test_training_batches_are_mirrored_or_plain_windows_of_the_rescaled_images(mnist_dir):
    data = replica.Data(str(mnist_dir), "cpu")
    gen = torch.Generator().manual_seed(1)
    images, labels = data.batch(gen, 32, 28, 32, 28)
    assert images.shape == (32, 3, 28, 28)
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    rescaled = {s: replica.rescale(data.raw["train"], s).astype(np.float32) - data.mean for s in range(28, 33)}
    mirrored = 0
    for image, label in zip(images[:, 0].numpy(), labels.numpy()):
        found = None
        for s, stack in rescaled.items():
            for k in np.flatnonzero(data.train_labels.numpy() == label):
                for top in range(s - 27):
                    for left in range(s - 27):
                        window = stack[k, top:top + 28, left:left + 28]
                        if np.array_equal(window, image):
                            found = "plain"
                        elif np.array_equal(window[:, ::-1], image):
                            found = "mirrored"
                        if found:
                            break
                    if found:
                        break
                if found:
                    break
            if found:
                break
        assert found, "a crop that is no window of any rescaled image of its label"
        mirrored += found == "mirrored"
    assert 0 < mirrored < 32


def test_a_short_trial_runs_the_whole_chain_and_scores_every_set_of_scales(mnist_dir, tmp_path):
    trials = tmp_path / "trials.jsonl"
    trials.write_text(json.dumps(dict(name="tiny", a_its=1, d_its=1, batch=16, qs=[28, 30, 32],
                                      j_its=1, j_scale=[28, 32], j_qs=[28, 32])) + "\n")
    out = tmp_path / "out.jsonl"
    assert replica.main([str(trials), "--out", str(out), "--source", str(mnist_dir)]) == 0
    (result,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(result["D"]) == {"28", "30", "32", "28,30", "28,32", "30,32", "28,30,32"}
    assert set(result["J"]) == {"28", "32", "28,32"}
    assert all(0.0 <= v <= 1.0 for v in result["D"].values())
    # 16 steps of 16 images are one iteration of 256: validated before the first step and after the last
    assert [entry[0] for entry in result["d_log"]] == [0, 1]
    assert result["d_log"][0][2] == table.MINI.recipe.base_lr
    assert result["j_log"][0][2] == table.MINI.recipe.finetune_lr


def test_a_trials_file_that_is_not_json_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "trials.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(SystemExit) as exit_info:
        replica.main([str(bad), "--out", str(tmp_path / "out.jsonl")])
    assert exit_info.value.code != 0
    assert "cannot read trials" in capsys.readouterr().err


def test_missing_fashion_mnist_is_a_one_line_error(tmp_path, capsys):
    trials = tmp_path / "trials.jsonl"
    trials.write_text(json.dumps(dict(name="t", d_its=1)) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        replica.main([str(trials), "--out", str(tmp_path / "out.jsonl"), "--source", str(tmp_path / "none")])
    assert exit_info.value.code != 0
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("trial, message", [
    (dict(name="t"), "missing d_its"),
    (dict(name="t", d_its=1, d_scle=[28, 32]), "unknown d_scle"),
    (dict(name="t", d_its=1, j_its=1), "j_its needs j_scale and j_qs"),
    ([1, 2], "not a JSON object"),
])
def test_an_unrunnable_trial_is_refused_before_any_trial_runs(tmp_path, capsys, trial, message):
    trials = tmp_path / "trials.jsonl"
    trials.write_text(json.dumps(dict(name="ok", d_its=1)) + "\n" + json.dumps(trial) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        replica.main([str(trials), "--out", str(tmp_path / "out.jsonl"), "--source", str(tmp_path / "none")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "trial 2: " + message in err and "not found" not in err  # refused before the data are read
    assert not (tmp_path / "out.jsonl").exists()
