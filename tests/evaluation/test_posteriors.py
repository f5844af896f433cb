"""Top-k error, posterior averaging and ensembles on small hand-computed examples."""
import csv
import io

import numpy as np
import pytest

from evaluation import posteriors as post
from evaluation.metrics import topk_correct, topk_error
from evaluation.report import build_rows, write_report

IMAGES = ("a.jpg", "b.jpg", "c.jpg", "d.jpg")
LABELS = np.array([2, 0, 6, 1])
# Model 1, seven classes.
P1 = np.array([
    [.10, .10, .50, .10, .10, .05, .05],  # label 2 ranks 1st              -> top-1 and top-5 right
    [.05, .40, .30, .10, .05, .05, .05],  # label 0: 3 classes higher      -> top-1 wrong, top-5 right
    [.30, .20, .20, .10, .10, .06, .04],  # label 6: 6 classes higher      -> both wrong
    [.20, .30, .10, .10, .10, .10, .10],  # label 1 ranks 1st              -> both right
])
# Model 2.
P2 = np.array([
    [.60, .10, .10, .05, .05, .05, .05],  # label 2 ties 2nd                -> top-1 wrong
    [.80, .05, .05, .04, .02, .02, .02],  # label 0 ranks 1st
    [.04, .30, .30, .10, .10, .10, .06],  # label 6: 6 classes higher
    [.40, .10, .10, .10, .10, .10, .10],  # label 1 ties with 5 below .40  -> top-1 wrong
])


def run(probs, model="D", protocol=post.DENSE, q=384, train="[256;512]", seconds=2.0, images=IMAGES,
        labels=LABELS, skipped=(), flip=True):
    return post.Posteriors(model=model, train_scale=train, protocol=protocol, scales=(q,), images=tuple(images),
                           labels=np.asarray(labels), probs=np.asarray(probs, dtype=np.float32),
                           skipped=tuple(skipped), seconds=seconds, flip=flip)


def test_topk_error_by_hand():
    assert topk_correct(P1, LABELS, 1).tolist() == [True, False, False, True]
    assert topk_error(P1, LABELS, 1) == pytest.approx(50.0)
    assert topk_error(P1, LABELS, 5) == pytest.approx(25.0)
    # Ties count for the label, as Caffe's Accuracy layer counts them: image 1 of P2 has
    # label 0 first; image 3 has its label 1 tied with five classes behind one higher.
    assert topk_correct(P2, LABELS, 1).tolist() == [False, True, False, False]
    assert topk_correct(P2, LABELS, 5).tolist() == [True, True, False, True]
    assert topk_error(P1[:0], LABELS[:0], 1) != topk_error(P1[:0], LABELS[:0], 1)  # nan for no images
    with pytest.raises(ValueError):
        topk_error(P1, np.array([0, 1, 2, 7]), 1)


def test_ensemble_averages_posteriors_by_hand():
    ens = post.ensemble([run(P1, model="D"), run(P2, model="E")])
    np.testing.assert_allclose(ens.probs, (P1 + P2) / 2, rtol=1e-6)
    # Averages: image 0: class 2 .30 vs class 0 .35 -> top-1 wrong; image 1: class 0 .425 first;
    # image 2: label 6 at .05 below six classes; image 3: class 1 .20 vs class 0 .30 -> wrong.
    assert topk_correct(ens.probs, ens.labels, 1).tolist() == [False, True, False, False]
    assert topk_error(ens.probs, ens.labels, 5) == pytest.approx(25.0)
    assert ens.model == "D/[256;512] + E/[256;512]" and ens.seconds == 4.0
    with pytest.raises(post.PosteriorsError, match="twice"):
        post.ensemble([run(P1), run(P2)])


def test_average_aligns_images_and_counts_skipped():
    # The second run lists the images in another order and could not read d.jpg.
    order = [2, 0, 1]
    other = run(P2[order], images=[IMAGES[i] for i in order], labels=LABELS[order], skipped=["d.jpg"], q=512)
    avg = post.multi_scale([run(P1), other])
    assert avg.images == IMAGES[:3] and avg.skipped == ("d.jpg",) and avg.num_listed == 4
    assert avg.scales == (384, 512)
    np.testing.assert_allclose(avg.probs, (P1[:3] + P2[:3]) / 2, rtol=1e-6)
    bad = run(P2, labels=[2, 0, 6, 0], q=512)
    with pytest.raises(post.PosteriorsError, match="labels"):
        post.multi_scale([run(P1), bad])
    with pytest.raises(post.PosteriorsError, match="twice"):
        post.multi_scale([run(P1), run(P2)])


def test_npz_round_trip(tmp_path):
    original = run(P1, skipped=["x.jpg"], flip=False)
    path = post.save(original, tmp_path / original.file_name())
    assert path.name == "D__S256-512__dense-noflip__Q384.npz"
    loaded = post.load(path)
    assert (loaded.model, loaded.train_scale, loaded.protocol, loaded.scales, loaded.images, loaded.skipped,
            loaded.flip, loaded.seconds) == ("D", "[256;512]", post.DENSE, (384,), IMAGES, ("x.jpg",), False, 2.0)
    np.testing.assert_array_equal(loaded.probs, original.probs)
    np.testing.assert_array_equal(loaded.labels, LABELS)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(post.PosteriorsError, match="not a posteriors file"):
        post.load(tmp_path / "junk.npz")
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


def test_report_tables_by_hand(tmp_path):
    runs = [run(P1, protocol=post.DENSE, q=256), run(P2, protocol=post.DENSE, q=512),
            run(P2, protocol=post.MULTICROP, q=384, seconds=6.0),
            run(P1, model="E", protocol=post.DENSE, q=384), run(P1, model="E", protocol=post.MULTICROP, q=384)]
    rows = build_rows(runs)
    assert [r.table for r in rows] == [3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 5, 5, 6, 6, 6]
    table4 = rows[5].values()
    assert (table4["test_Q"], table4["method"]) == ("{256,512}", "dense")
    # D dense over {256, 512} = (P1 + P2) / 2, the ensemble example above.
    assert table4["top1_error_pct"] == pytest.approx(75.0) and table4["top5_error_pct"] == pytest.approx(25.0)
    assert table4["images_per_s"] == pytest.approx(4 / 4.0)
    combined = rows[8].values()
    assert combined["method"] == post.COMBINED and combined["test_Q"] == "{256,384,512}"
    # D multi-crop & dense = ((P1 + P2) / 2 + P2) / 2: image 3 -> class 0 .35 vs class 1 .15.
    np.testing.assert_allclose(rows[8].result.probs, ((P1 + P2) / 2 + P2) / 2, rtol=1e-6)
    assert combined["top1_error_pct"] == pytest.approx(75.0)
    ensemble_dense = rows[12].values()
    assert ensemble_dense["models"] == "D/[256;512] + E/[256;512]"
    np.testing.assert_allclose(rows[12].result.probs, ((P1 + P2) / 2 + P1) / 2, rtol=1e-6)

    write_report(runs, tmp_path)
    table = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert len(table) == len(rows) and table[5]["top1_error_pct"] == "75.0000"
    text = (tmp_path / "report.md").read_text()
    assert "## Table 5: dense vs multi-crop evaluation" in text and "| D | [256;512] | {256,384,512} |" in text
    assert "4 images scored, 0 skipped" in text


def test_report_rejects_duplicate_scales():
    with pytest.raises(post.PosteriorsError, match="same test scale"):
        build_rows([run(P1), run(P2)])
