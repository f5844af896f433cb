"""Table 1, Table 2 and the Sec. 3.1 recipe as prototxt_gen.table derives them (no Caffe needed)."""
import pytest

from prototxt_gen import table

# Table 2 / PAPER.md: weights + biases, 1000 classes
PAPER_PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
                "D": 138_357_544, "E": 143_667_240}
PAPER_GMADDS = {"A": 7.61, "B": 11.31, "C": 11.77, "D": 15.47, "E": 19.63}
WEIGHT_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19, "B-5x5": 8}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_param_count_formula_is_table_2(name):
    assert table.param_count(table.CONFIGS[name]) == PAPER_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PAPER_GMADDS))
def test_multiply_adds_are_the_papers(name):
    assert round(table.multiply_adds(table.CONFIGS[name]) / 1e9, 2) == PAPER_GMADDS[name]


def test_depths_and_b5x5_replaces_each_pair_of_b():
    assert {n: c.weight_layers for n, c in table.CONFIGS.items()} == WEIGHT_LAYERS
    b, b5 = table.CONFIGS["B"], table.CONFIGS["B-5x5"]
    for pair, single in zip(b.stacks, b5.stacks):
        assert len(pair) == 2 and len(single) == 1
        assert single[0].kernel == 5 and single[0].pad == 2 and single[0].channels == pair[0].channels


def test_c_has_1x1_convs_without_padding_and_lrn_only_in_a_lrn():
    c = table.conv_layers(table.CONFIGS["C"])
    ones = [layer.name for layer in c if layer.kernel == 1]
    assert ones == ["conv3_3", "conv4_3", "conv5_3"]
    assert all(layer.pad == 0 for layer in c if layer.kernel == 1)
    assert [n for n, cfg in table.CONFIGS.items() if cfg.lrn] == ["A-LRN"]
    # Caffe divides alpha by local_size; AlexNet's formula does not
    assert table.lrn_caffe_alpha() == pytest.approx(5e-4)


def test_feature_maps_and_fc6_kernel():
    d = table.CONFIGS["D"]
    assert table.feature_map_sizes(d, 224) == [112, 56, 28, 14, 7]
    assert table.feature_map_sizes(d, 256)[-1] == 8
    assert table.feature_map_sizes(d, 384)[-1] == 12
    assert table.fc6_kernel(d) == 7
    assert [f.in_features for f in table.fc_layers(d)] == [512 * 7 * 7, 4096, 4096]


def test_aliases_and_unknown_names():
    assert table.resolve("vgg16") is table.CONFIGS["D"]
    assert table.resolve("VGG19") is table.CONFIGS["E"]
    with pytest.raises(table.UnknownConfig) as err:
        table.resolve("F")
    assert "A-LRN" in str(err.value) and "B-5x5" in str(err.value)


def test_only_deeper_nets_start_from_a_and_map_a_s_layers_by_shape():
    assert [n for n, c in table.CONFIGS.items() if table.initialised_from_a(c)] == ["B", "C", "D", "E"]
    a_convs = {c.name: c for c in table.conv_layers(table.CONFIGS["A"])}
    for name in "BCDE":
        mapping = table.layers_from_a(table.CONFIGS[name])
        assert mapping == {"conv1_1": "conv1_1", "conv2_1": "conv2_1", "conv3_1": "conv3_1",
                           "conv3_2": "conv3_2", "fc6": "fc6", "fc7": "fc7", "fc8": "fc8"}
        target = {c.name: c for c in table.conv_layers(table.CONFIGS[name])}
        for dst, src in mapping.items():
            if dst.startswith("conv"):
                t, s = target[dst], a_convs[src]
                assert (t.kernel, t.in_channels, t.out_channels) == (s.kernel, s.in_channels, s.out_channels)
    assert table.layers_from_a(table.CONFIGS["A-LRN"]) == {}
    assert table.layers_from_a(table.CONFIGS["B-5x5"]) == {}


def test_regimes_of_sec_3_1_and_their_single_test_scale():
    first, second, third = table.regimes(table.PAPER)
    assert (first.name, first.train_scale, first.test_scale, first.base_lr, first.start_from) == \
        ("S256", (256, 256), 256, 1e-2, None)
    assert (second.name, second.train_scale, second.test_scale, second.base_lr, second.start_from) == \
        ("S384", (384, 384), 384, 1e-3, "S256")
    assert (third.name, third.train_scale, third.test_scale, third.start_from) == \
        ("S256-512", (256, 512), 384, "S384")
    assert third.jittered and not first.jittered
    # training only ever downsamples: the jittered regime reads the top of its range
    assert table.PAPER.lmdb_scale_for(512) == 512 and table.PAPER.lmdb_scale_for(300) == 384
    with pytest.raises(ValueError):
        table.PAPER.lmdb_scale_for(600)


def test_recipe_numbers():
    r = table.PAPER_RECIPE
    assert (r.batch, r.momentum, r.weight_decay, r.dropout, r.base_lr, r.gamma, r.lr_drops, r.max_iter) == \
        (256, 0.9, 5e-4, 0.5, 1e-2, 0.1, 3, 370_000)


@pytest.mark.parametrize("gpus,batch,expect", [
    (4, None, (64, 1)), (1, None, (256, 1)), (8, None, (32, 1)), (1, 32, (32, 8)), (4, 16, (16, 4)),
    (2, 128, (128, 1)), (0, None, (256, 1)), (0, 64, (64, 4)),
])
def test_batch_split_keeps_256(gpus, batch, expect):
    split = table.batch_split(gpus, batch)
    assert (split.batch, split.iter_size) == expect and split.effective == 256


@pytest.mark.parametrize("gpus,batch,fragment", [
    (3, None, "GPUS=3"), (4, 48, "does not divide"), (1, 512, "does not divide"), (-1, None, "non-negative"),
    (2, 0, "positive"),
])
def test_batch_split_refuses_what_cannot_make_256(gpus, batch, fragment):
    with pytest.raises(table.BatchSplitError, match=fragment):
        table.batch_split(gpus, batch)


def test_test_batch_covers_the_validation_set_exactly():
    assert table.test_batch(50_000, 64) == (50, 1000)
    assert table.test_batch(50_000, 256) == (250, 200)
    assert table.test_batch(7, 4) == (1, 7)
    batch, iters = table.test_batch(10_000, 32)
    assert batch * iters == 10_000 and batch <= 32


def test_gaussian_gain_shows_why_std_is_0_01():
    gains_literal = table.gaussian_gain(table.CONFIGS["A"], 0.1)
    gains_ours = table.gaussian_gain(table.CONFIGS["A"], 0.01)
    assert max(gains_literal) == pytest.approx(4608 * 0.01 / 2)  # explodes
    assert max(gains_ours) < 1  # shrinks


def test_mini_profile_changes_only_the_size_and_length_knobs():
    from dataclasses import fields
    mini, paper = table.MINI, table.PAPER
    changed = {f.name for f in fields(table.Profile) if getattr(mini, f.name) != getattr(paper, f.name)}
    assert changed <= {"name", "models_dir", "solvers_dir", "width_divisor", "fc_width", "num_classes", "crop",
                       "single_scales", "jitter", "data_dir", "val_images", "deploy_batch", "recipe", "schedule"}
    recipe_changes = {f.name for f in fields(table.Recipe) if getattr(mini.recipe, f.name) != getattr(paper.recipe, f.name)}
    # batch is a size too: with 1/21 of ILSVRC's images, 256 would leave 234 steps an epoch
    assert recipe_changes == {"max_iter", "batch"}
    assert mini.recipe.batch < paper.recipe.batch and paper.recipe.batch % mini.recipe.batch == 0
    assert mini.models_dir == "models/mini" and mini.solvers_dir == "solvers/mini"
    assert table.param_count(table.CONFIGS["D"], mini) < table.param_count(table.CONFIGS["D"]) / 100


def test_reduced_profile_changes_only_sizes():
    tiny = table.Profile(name="tiny", models_dir="m", solvers_dir="s", width_divisor=16, fc_width=32,
                         num_classes=10, crop=32, single_scales=(32, 48), jitter=(32, 64))
    d = table.CONFIGS["D"]
    assert [c.out_channels for c in table.conv_layers(d, tiny)][:3] == [4, 4, 8]
    assert table.fc6_kernel(d, tiny) == 1
    assert [r.name for r in table.regimes(tiny)] == ["S32", "S48", "S32-64"]
    assert table.regimes(tiny)[2].test_scale == 48
    assert table.layers_from_a(d, tiny) == table.layers_from_a(d)
