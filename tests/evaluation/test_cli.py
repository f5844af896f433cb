"""vgg-eval end to end: runs, saved posteriors, the report again from them, bad input."""
import csv
import subprocess
import sys

import pytest

from evaluation import posteriors as post
from evaluation.cli import main
from evaluation.metrics import topk_error


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return tiny_model(3)


def run_args(tiny, photo_root, photo_list, out, *extra):
    return ["run", "--model", str(tiny / "deploy_dense.prototxt"), "--weights", str(tiny / "tiny.caffemodel"),
            "--root", str(photo_root), "--list", str(photo_list), "--out", str(out), "--quiet", *extra]


def one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vgg-eval: error: "), err
    for word in words:
        assert word in err[0], err[0]
    return err[0]


def test_run_writes_posteriors_and_the_tables(tiny, photo_root, photo_list, tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(run_args(tiny, photo_root, photo_list, out, "--scales", "224 256", "--train-scale", "256")) == 0
    files = sorted(p.name for p in (out / "posteriors").iterdir())
    assert files == ["tiny__S256__dense__Q224.npz", "tiny__S256__dense__Q256.npz",
                     "tiny__S256__multicrop__Q224.npz", "tiny__S256__multicrop__Q256.npz"]
    run = post.load(out / "posteriors" / "tiny__S256__dense__Q256.npz")
    assert run.images == ("val/chelsea.png", "val/coffee.png", "val/rocket.jpg", "val/astronaut.png")
    assert run.skipped == ("val/corrupt.jpg", "val/missing.jpg") and run.protocol == post.DENSE
    assert run.scales == (256,) and run.flip and run.train_scale == "256" and run.probs.shape == (4, 10)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["table"] for r in rows] == ["3"] * 4 + ["4"] * 2 + ["5"] * 3
    dense_256 = next(r for r in rows if r["table"] == "3" and r["method"] == "dense" and r["test_Q"] == "256")
    assert float(dense_256["top1_error_pct"]) == pytest.approx(topk_error(run.probs, run.labels, 1), abs=1e-4)
    assert (dense_256["images_scored"], dense_256["images_skipped"]) == ("4", "2")
    assert float(dense_256["images_per_s"]) > 0
    report = (out / "report.md").read_text()
    assert "- tiny/256: 4 images scored, 2 skipped" in report
    assert "| tiny | 256 | {224,256} | multi-crop & dense |" in report


def test_report_from_saved_runs_gives_ensembles(tiny, photo_root, photo_list, tmp_path, capsys):
    for name in ("one", "two"):
        args = run_args(tiny, photo_root, photo_list, tmp_path / name, "--scales", "256", "--name", name,
                        "--train-scale", "[256;512]", "--limit", "3")
        assert main(args) == 0
    assert main(["report", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "both")]) == 0
    rows = list(csv.DictReader((tmp_path / "both" / "results.csv").open()))
    ensembles = [r for r in rows if r["table"] == "6"]
    assert [r["method"] for r in ensembles] == ["dense", "multi-crop", "multi-crop & dense"]
    assert ensembles[0]["models"] == "one/[256;512] + two/[256;512]"
    # Same weights twice: the ensemble's posteriors are the model's own.
    single = next(r for r in rows if r["table"] == "5" and r["models"] == "one" and r["method"] == "dense")
    assert ensembles[0]["top5_error_pct"] == single["top5_error_pct"]
    assert (ensembles[0]["images_scored"], ensembles[0]["images_skipped"]) == ("2", "1")


def test_weights_that_do_not_fit_name_the_layer(tiny, tiny_model, photo_root, photo_list, tmp_path, capsys, caffe):
    from eval_fixtures import tiny_net_text

    (tmp_path / "wide.prototxt").write_text(tiny_net_text(dense=False, fc=12))
    net = caffe.Net(str(tmp_path / "wide.prototxt"), caffe.TEST)
    net.save(str(tmp_path / "wide.caffemodel"))
    args = run_args(tiny, photo_root, photo_list, tmp_path / "out", "--scales", "256")
    args[args.index("--weights") + 1] = str(tmp_path / "wide.caffemodel")
    assert main(args) == 1
    one_line_error(capsys, "'fc6'", "does not fit")
    # A caffemodel without conv3_1.
    from caffe.proto import caffe_pb2

    model = caffe_pb2.NetParameter()
    model.ParseFromString((tiny / "tiny.caffemodel").read_bytes())
    kept = [layer for layer in model.layer if layer.name != "conv3_1"]
    del model.layer[:]
    model.layer.extend(kept)
    (tmp_path / "partial.caffemodel").write_bytes(model.SerializeToString())
    args[args.index("--weights") + 1] = str(tmp_path / "partial.caffemodel")
    assert main(args) == 1
    one_line_error(capsys, "'conv3_1'", "missing")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, words", [
    (("--list", "nope.txt"), ["image list not found"]),
    (("--root", "/nonexistent"), ["image root not found"]),
    (("--scales", "256 abc"), ["test scales"]),
    (("--model", "Z"), ["neither a prototxt file nor a config"]),
    (("--mean", "1 2"), ["--mean"]),
    (("--num-classes", "7"), ["'fc8'", "does not fit"]),
])
def test_bad_input_is_one_line_and_exit_1(tiny, photo_root, photo_list, tmp_path, capsys, change, words):
    args = run_args(tiny, photo_root, photo_list, tmp_path / "out", "--scales", "256")
    key, value = change
    if key in args:
        args[args.index(key) + 1] = value
    else:
        args += [key, value]
    assert main(args) == 1
    one_line_error(capsys, *words)


def test_scales_follow_the_snapshot_name_or_must_be_given(tiny, photo_root, photo_list, tmp_path, capsys):
    assert main(run_args(tiny, photo_root, photo_list, tmp_path / "a")) == 1
    one_line_error(capsys, "--scales", "--train-scale")
    snapshot = tmp_path / "vgg_tiny_S224_iter_10.caffemodel"
    snapshot.write_bytes((tiny / "tiny.caffemodel").read_bytes())
    args = run_args(tiny, photo_root, photo_list, tmp_path / "b", "--protocol", "dense", "--single-scale",
                    "--limit", "1")
    args[args.index("--weights") + 1] = str(snapshot)
    assert main(args) == 0
    assert [p.name for p in (tmp_path / "b" / "posteriors").iterdir()] == ["tiny__S224__dense__Q224.npz"]


def test_labels_outside_the_classes_are_refused(tiny, photo_root, tmp_path, capsys):
    (tmp_path / "list.txt").write_text("val/chelsea.png 10\n")
    args = run_args(tiny, photo_root, tmp_path / "list.txt", tmp_path / "out", "--scales", "256")
    assert main(args) == 1
    one_line_error(capsys, "label 10", "10 classes")


def test_module_entry_point_and_argparse_errors(repo_root):
    result = subprocess.run([sys.executable, "-m", "evaluation", "run", "--help"], capture_output=True,
                            text=True, cwd=repo_root)
    assert result.returncode == 0 and "--protocol" in result.stdout and "--batch-size" in result.stdout
    assert "--num-classes" in result.stdout and "--mean" in result.stdout
    result = subprocess.run([sys.executable, "-m", "evaluation", "run", "--protocol", "three"],
                            capture_output=True, text=True, cwd=repo_root)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_caffe_net_command_writes_the_net_and_dense_weights(tiny, tmp_path, capsys):
    args = ["caffe-net", "--model", str(tiny / "deploy_dense.prototxt"), "--weights", str(tiny / "tiny.caffemodel"),
            "--scale", "384", "--source", str(tmp_path / "val_lmdb"), "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "test_dense_Q384.prototxt").is_file() and (tmp_path / "tiny_dense.caffemodel").is_file()
    assert f"caffe test -model {tmp_path / 'test_dense_Q384.prototxt'} -weights {tmp_path / 'tiny_dense.caffemodel'}" in out
    assert "smallest_side_test: 384" in (tmp_path / "test_dense_Q384.prototxt").read_text()
