"""Small nets under the authors' layer names, for the evaluation tests (imported by name:
tests/evaluation is on sys.path under pytest's default import mode)."""
import numpy as np


# --------------------------------------------------------------------------- small nets

def tiny_net_text(dense: bool, kernel: int = 3, widths=(4, 8, 8, 8, 8), fc=16, classes=10, crop=224) -> str:
    """A five-block VGG-shaped net under the authors' layer names (conv{b}_1, pool{b}, fc6-8,
    prob): FC deploy, or its dense form (fc6 a 7x7 conv, fc7/fc8 1x1) when `dense`."""
    lines = ['name: "tiny"',
             f'layer {{ name: "input" type: "Input" top: "data" '
             f'input_param {{ shape {{ dim: 1 dim: 3 dim: {crop} dim: {crop} }} }} }}']
    bottom = "data"
    for block, width in enumerate(widths, 1):
        name = f"conv{block}_1"
        lines.append(f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
                     f'convolution_param {{ num_output: {width} pad: {kernel // 2} kernel_size: {kernel} }} }}')
        lines.append(f'layer {{ name: "relu{block}_1" type: "ReLU" bottom: "{name}" top: "{name}" }}')
        lines.append(f'layer {{ name: "pool{block}" type: "Pooling" bottom: "{name}" top: "pool{block}" '
                     f'pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}')
        bottom = f"pool{block}"
    for index, width in ((6, fc), (7, fc), (8, classes)):
        name = f"fc{index}"
        if dense:
            k = crop // 32 if index == 6 else 1
            lines.append(f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
                         f'convolution_param {{ num_output: {width} kernel_size: {k} }} }}')
        else:
            lines.append(f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
                         f'inner_product_param {{ num_output: {width} }} }}')
        if index != 8:
            lines.append(f'layer {{ name: "relu{index}" type: "ReLU" bottom: "{name}" top: "{name}" }}')
            lines.append(f'layer {{ name: "drop{index}" type: "Dropout" bottom: "{name}" top: "{name}" '
                         f'dropout_param {{ dropout_ratio: 0.5 }} }}')
        bottom = name
    lines.append('layer { name: "prob" type: "Softmax" bottom: "fc8" top: "prob" }')
    return "\n".join(lines) + "\n"


def randomize(net, seed: int = 0) -> None:
    """Deterministic random weights, scaled so scores stay O(1) and classes differ."""
    rng = np.random.default_rng(seed)
    for i, blobs in enumerate(net.params.values()):
        weights = blobs[0].data
        fan_in = int(np.prod(weights.shape[1:]))
        # He et al.'s std keeps activations' scale through ReLUs; mean-subtracted pixels are
        # O(60), so the first layer divides that out.
        std = np.sqrt(2.0 / fan_in) / (60.0 if i == 0 else 1.0)
        weights[...] = rng.normal(0, std, weights.shape)
        blobs[1].data[...] = rng.normal(0, 0.1, blobs[1].data.shape)
