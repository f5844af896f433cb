"""The PyTorch nets time the same architecture as our Caffe nets (Table 1, Sec. 2.1)."""
import os

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import torch_vgg
from bench.run import train_flops
from prototxt_gen import generate, table

# PAPER.md: exact learnable parameters (1000 classes) and multiply-adds at 224x224, Table 2
PAPER_PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
                "D": 138_357_544, "E": 143_667_240}
PAPER_GMACS = {"A": 7.61, "B": 11.31, "C": 11.77, "D": 15.47, "E": 19.63}


def meta_net(name, profile=table.PAPER):
    with torch.device("meta"):  # shapes only: no 500 MB of weights per config
        return torch_vgg.build(table.resolve(name), profile)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_counts_are_the_papers(name):
    assert torch_vgg.param_count(meta_net(name)) == PAPER_PARAMS[name]


@pytest.mark.parametrize("name", list(table.CONFIGS))
def test_every_config_matches_the_table(name):
    config = table.resolve(name)
    model = meta_net(name)
    assert torch_vgg.param_count(model) == table.param_count(config)
    assert torch_vgg.multiply_adds(model, 224) == table.multiply_adds(config)
    convs = [n for n, m in model.named_children() if isinstance(m, torch.nn.Conv2d)]
    assert convs == config.conv_names()
    assert [n for n, m in model.named_children() if isinstance(m, torch.nn.MaxPool2d)] == \
        [f"pool{b}" for b in range(1, 6)]
    assert [n for n, m in model.named_children() if isinstance(m, torch.nn.Dropout)] == ["drop6", "drop7"]


@pytest.mark.parametrize("name", sorted(PAPER_GMACS))
def test_multiply_adds_are_the_papers(name):
    assert round(torch_vgg.multiply_adds(meta_net(name), 224) / 1e9, 2) == PAPER_GMACS[name]


def test_lrn_only_in_a_lrn_right_after_conv1_1():
    names = [n for n, _ in meta_net("A-LRN").named_children()]
    assert names[:3] == ["conv1_1", "relu1_1", "norm1"]
    assert not any(isinstance(m, torch.nn.LocalResponseNorm) for m in meta_net("A").children())


@pytest.mark.parametrize("name", ["A", "D"])
def test_train_flops_formula_counts_what_autograd_runs(name):
    """bench.run's fwd+bwd FLOPs (conv1_1 computes no input gradient) = torch's own count."""
    with torch.device("meta"):
        model = torch_vgg.build(table.resolve(name))
        with FlopCounterMode(display=False) as counter:
            loss = torch.nn.functional.cross_entropy(model(torch.empty(1, 3, 224, 224)),
                                                     torch.zeros(1, dtype=torch.long))
            loss.backward()
    assert counter.get_total_flops() == train_flops(table.resolve(name))


@pytest.mark.parametrize("name", ["A-LRN", "C", "B-5x5"])
def test_same_outputs_as_the_caffe_deploy_net(name, mini_root):
    """Weights copied layer by layer give Caffe's fc8 scores (mini profile: widths / 8, 32x32 input)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    config = table.resolve(name)
    torch.manual_seed(0)
    model = torch_vgg.build(config, table.MINI).eval()
    net = caffe.Net(str(mini_root / generate.deploy_path(table.MINI, config)), caffe.TEST)
    for layer, module in model.named_children():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            net.params[layer][0].data[...] = module.weight.detach().numpy()
            net.params[layer][1].data[...] = module.bias.detach().numpy()
    # mean-subtracted pixels: large enough that LRN's alpha convention changes the scores
    data = np.random.default_rng(0).uniform(-128, 128, net.blobs["data"].data.shape).astype(np.float32)
    net.blobs["data"].data[...] = data
    net.forward()
    caffe_scores = net.blobs["fc8"].data
    with torch.no_grad():
        torch_scores = model(torch.from_numpy(data)).numpy()
    np.testing.assert_allclose(torch_scores, caffe_scores, rtol=1e-4, atol=1e-4 * np.abs(caffe_scores).max())


def test_timing_runs_a_training_step_and_an_inference_pass():
    result = torch_vgg.time_config(table.resolve("A"), batch=2, iterations=1, profile=table.MINI)
    assert result["config"] == "A" and result["threads"] >= 1
    for key in ("forward_ms", "backward_ms", "inference_ms"):
        assert result[key] > 0
    assert result["forward_backward_ms"] == pytest.approx(result["forward_ms"] + result["backward_ms"])


def test_cli_rejects_an_unknown_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        torch_vgg.main(["Z"])
    assert exit_info.value.code == 2
    assert "unknown config" in capsys.readouterr().err
