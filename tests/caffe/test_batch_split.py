"""Sec. 3.3: multi-GPU training splits each batch of 256 into GPU batches and averages their
gradients, so "the result is exactly the same as training on a single GPU".

Caffe averages gradients over the ranks of `caffe train -gpu 0,1,2,3` the same way it averages
them over `iter_size` within one solver (each sub-batch's gradient is scaled by 1/iter_size, or
1/num_ranks, before the update). This checks that equivalence on the CPU: one SGD step with a
batch of 256 and one with 4 sub-batches of 64 (iter_size 4) give the same weights.
"""
import caffe
import numpy as np

NET = """
name: "split"
layer {{ name: "data" type: "MemoryData" top: "data" top: "label"
  memory_data_param {{ batch_size: {batch} channels: 3 height: 8 width: 8 }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 4 kernel_size: 3 pad: 1
    weight_filler {{ type: "gaussian" std: 0.1 }} bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  inner_product_param {{ num_output: 5 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }}
"""

SOLVER = """
net: "{net}"
base_lr: 0.1 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"
iter_size: {iter_size} max_iter: 10 display: 0 snapshot: 0 random_seed: 1
solver_mode: CPU
"""


def one_step(tmp_path, batch, iter_size, data, labels, init):
    net_file = tmp_path / f"net_{batch}.prototxt"
    net_file.write_text(NET.format(batch=batch))
    solver_file = tmp_path / f"solver_{batch}.prototxt"
    solver_file.write_text(SOLVER.format(net=net_file, iter_size=iter_size))
    solver = caffe.SGDSolver(str(solver_file))
    for name, blobs in init.items():
        for blob, value in zip(solver.net.params[name], blobs):
            blob.data[...] = value
    solver.net.set_input_arrays(data, labels)
    # Two steps: the second one also checks that the momentum history agrees.
    solver.step(2)
    return {name: [b.data.copy() for b in blobs] for name, blobs in solver.net.params.items()}


def problem(seed):
    """512 random samples (two steps of 256) and initial weights shared by both runs."""
    caffe.set_mode_cpu()
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(512, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 5, size=512).astype(np.float32)
    init = {"conv1": [rng.normal(0, 0.1, (4, 3, 3, 3)), np.full(4, 0.1)],
            "fc": [rng.normal(0, 0.1, (5, 64)), np.zeros(5)]}
    return data, labels, init


def test_batch_256_equals_4_x_64_with_iter_size(tmp_path):
    data, labels, init = problem(0)
    whole = one_step(tmp_path, 256, 1, data, labels, init)
    split = one_step(tmp_path, 64, 4, data, labels, init)
    for name in whole:
        for w, s, start in zip(whole[name], split[name], init[name]):
            # The weights moved, and the same way: float32 sums in another order, hence 1e-5.
            assert np.abs(w - start).max() > 1e-3
            np.testing.assert_allclose(s, w, rtol=1e-5, atol=1e-6)


def test_split_differs_without_iter_size(tmp_path):
    """The control: a batch of 64 without iter_size is a different (noisier) step."""
    data, labels, init = problem(1)
    whole = one_step(tmp_path, 256, 1, data, labels, init)
    small = one_step(tmp_path, 64, 1, data, labels, init)
    assert np.abs(whole["fc"][0] - small["fc"][0]).max() > 1e-4
