import pytest

from evaluation.scales import ScaleError, format_test_scales, parse_test_scales, parse_train_scale, regime_in_name


@pytest.mark.parametrize("train, single, multi", [
    # Table 3 / Table 4 rows of the paper.
    ("256", 256, (224, 256, 288)),
    ("384", 384, (352, 384, 416)),
    ("[256;512]", 384, (256, 384, 512)),
    ("256-512", 384, (256, 384, 512)),
    ("S256-512", 384, (256, 384, 512)),   # prototxt_gen.table's regime names
    ("S384", 384, (352, 384, 416)),
    ("300-400", 350, (300, 350, 400)),    # not a listed regime: the table's rule still applies
])
def test_test_scales_follow_the_training_scale(train, single, multi):
    scale = parse_train_scale(train)
    assert scale.default_test_scales(multi_scale=False) == (single,)
    assert scale.default_test_scales(multi_scale=True) == multi


def test_labels_are_written_as_in_the_tables():
    assert parse_train_scale("256").label == "256"
    assert parse_train_scale("256:512").label == "[256;512]"
    assert format_test_scales([512, 256, 384]) == "{256,384,512}"
    assert format_test_scales((384,)) == "384"


@pytest.mark.parametrize("bad", ["", "abc", "512-256", "0", "256-384-512"])
def test_bad_training_scales_are_rejected(bad):
    with pytest.raises(ScaleError):
        parse_train_scale(bad)


def test_test_scales_parse_and_reject_bad_input():
    assert parse_test_scales("256 384,512") == (256, 384, 512)
    assert parse_test_scales(["256", "384 512"]) == (256, 384, 512)
    for bad in ("", "256 x", "256 256", "-3"):
        with pytest.raises(ScaleError):
            parse_test_scales(bad)


def test_regimes_of_prototxt_gen_match_and_snapshots_name_them():
    from prototxt_gen import table

    for regime in table.regimes(table.PAPER):
        scale = parse_train_scale(regime.name)
        assert (scale.lo, scale.hi, scale.test_scale) == (*regime.train_scale, regime.test_scale)
    assert regime_in_name("vgg_D_S256-512_iter_370000.caffemodel").label == "[256;512]"
    assert regime_in_name("vgg_E_S384_iter_10000.caffemodel").label == "384"
    assert regime_in_name("VGG_ILSVRC_16_layers.caffemodel") is None
