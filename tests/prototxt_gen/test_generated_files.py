"""The files the generator writes: parse with caffe_pb2, carry the recipe, reproduce the committed
ones byte for byte, and refuse bad input without leaving half-written files."""
import os
import re
from pathlib import Path

import pytest
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from data_prep.stats import Pca, Stats, save_stats
from prototxt_gen import cli, generate, render, table
from prototxt_gen.generate import Options

REPO = Path(__file__).resolve().parents[2]
PAPER_CONFIGS = list(table.CONFIGS)


def parse(path: Path, message):
    msg = message()
    text_format.Parse(path.read_text(), msg)
    return msg


def net(path):
    return parse(path, caffe_pb2.NetParameter)


def solver(path):
    return parse(path, caffe_pb2.SolverParameter)


def by_name(net_param, name, phase=None):
    for layer in net_param.layer:
        if layer.name == name and (phase is None or any(r.phase == phase for r in layer.include)):
            return layer
    raise KeyError(name)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """`vgg-net --all` with the defaults, into an empty root."""
    root = tmp_path_factory.mktemp("regen")
    assert cli.main(["--all", "--root", str(root), "--quiet"]) == 0
    return root


def generated_paths():
    return sorted(path for config in table.CONFIGS.values()
                  for path in generate.files_for(config, table.PAPER, Options()))


def test_committed_files_are_what_the_generator_writes(regenerated):
    paths = generated_paths()
    assert len(paths) == 9 * len(PAPER_CONFIGS)
    for rel in paths:
        committed = REPO / rel
        assert committed.is_file(), f"{rel} is not committed (run `make nets`)"
        assert committed.read_bytes() == (regenerated / rel).read_bytes(), f"{rel} differs: run `make nets`"


def test_no_stale_generated_files_are_committed():
    expected = set(generated_paths())
    committed = {str(p.relative_to(REPO)) for p in (REPO / "solvers").glob("*.prototxt")}
    for config in PAPER_CONFIGS:
        model = REPO / "models" / config
        committed |= {str(p.relative_to(REPO)) for pattern in ("train_val*.prototxt", "deploy*.prototxt", "readme.md")
                      for p in model.glob(pattern)}
    assert committed <= expected, f"stale: {sorted(committed - expected)}"


def test_mini_profile_files_never_overwrite_the_papers(tmp_path):
    paper = set(generated_paths())
    mini = {path for config in table.CONFIGS.values()
            for path in generate.files_for(config, table.MINI, Options(gpus=0))}
    assert len(mini) == len(paper) and not mini & paper
    assert all(path.startswith(("models/mini/", "solvers/mini/")) for path in mini)
    assert cli.main(["D", "--profile", "mini", "--gpus", "0", "--root", str(tmp_path), "--quiet"]) == 0
    lo, hi = table.MINI.jitter
    tv = net(tmp_path / f"models/mini/D/train_val_S{lo}-{hi}.prototxt")
    t = by_name(tv, "data", caffe_pb2.TRAIN)
    assert (t.transform_param.crop_size, t.transform_param.smallest_side_min, t.transform_param.smallest_side_max) \
        == (table.MINI.crop, lo, hi)
    assert t.data_param.source == f"data/mini/train/S{hi}_lmdb" and t.data_param.batch_size == table.MINI.recipe.batch
    assert by_name(tv, "fc8").inner_product_param.num_output == 10
    assert "Not the paper's network" in (tmp_path / "models/mini/D/readme.md").read_text()


def test_every_file_parses_with_caffe_pb2(regenerated):
    for rel in generated_paths():
        path = regenerated / rel
        if rel.startswith("solvers/"):
            s = solver(path)
            assert (regenerated / s.net).is_file(), f"{rel}: net {s.net} missing"
        elif rel.endswith(".prototxt"):
            assert len(net(path).layer) > 10


def test_layer_names_follow_the_authors(regenerated):
    e = net(regenerated / "models/E/deploy.prototxt")
    names = [layer.name for layer in e.layer]
    convs = [f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for i in range(1, n + 1)]
    assert [n for n in names if n.startswith("conv")] == convs
    assert [n for n in names if n.startswith("pool")] == [f"pool{b}" for b in range(1, 6)]
    assert names[-8:] == ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", "prob"]
    a_lrn = net(regenerated / "models/A-LRN/train_val.prototxt")
    lrn = by_name(a_lrn, "norm1")
    assert lrn.bottom == ["conv1_1"] and by_name(a_lrn, "pool1").bottom == ["norm1"]
    assert (lrn.lrn_param.local_size, lrn.lrn_param.beta, lrn.lrn_param.k) == (5, 0.75, 2)
    assert lrn.lrn_param.alpha == pytest.approx(5e-4)


def test_deploy_input_and_dense_fc_as_convolutions(regenerated):
    for config in PAPER_CONFIGS:
        deploy = net(regenerated / f"models/{config}/deploy.prototxt")
        dense = net(regenerated / f"models/{config}/deploy_dense.prototxt")
        assert list(deploy.layer[0].input_param.shape[0].dim) == [10, 3, 224, 224]
        assert deploy.layer[-1].type == "Softmax" and deploy.layer[-1].bottom == ["fc8"]
        assert [layer.type for layer in deploy.layer if layer.name in ("fc6", "fc7", "fc8")] == ["InnerProduct"] * 3
        fcs = [by_name(dense, n) for n in ("fc6", "fc7", "fc8")]
        assert [layer.type for layer in fcs] == ["Convolution"] * 3
        assert [layer.convolution_param.kernel_size[0] for layer in fcs] == [7, 1, 1]
        assert [layer.convolution_param.num_output for layer in fcs] == [4096, 4096, 1000]
        assert dense.layer[-1].type == "Softmax" and dense.layer[-1].top == ["prob"]
        # deploy files have no fillers (as the authors'); same names as the FC net otherwise
        assert not any(layer.param for layer in deploy.layer)
        assert [layer.name for layer in deploy.layer] == [layer.name for layer in dense.layer]


@pytest.mark.parametrize("regime,train_lmdb,smin,smax,val_lmdb,q", [
    ("", "S256", 256, 256, "S256", 256),
    ("_S384", "S384", 384, 384, "S384", 384),
    ("_S256-512", "S512", 256, 512, "S384", 384),
])
def test_train_val_transform_per_regime(regenerated, regime, train_lmdb, smin, smax, val_lmdb, q):
    tv = net(regenerated / f"models/D/train_val{regime}.prototxt")
    train, test = by_name(tv, "data", caffe_pb2.TRAIN), by_name(tv, "data", caffe_pb2.TEST)
    assert train.data_param.source == f"data/ilsvrc12/train/{train_lmdb}_lmdb"
    assert test.data_param.source == f"data/ilsvrc12/val/{val_lmdb}_lmdb"
    assert train.data_param.backend == caffe_pb2.DataParameter.LMDB
    t = train.transform_param
    assert (t.crop_size, t.mirror, t.smallest_side_min, t.smallest_side_max) == (224, True, smin, smax)
    assert list(t.mean_value) == pytest.approx([103.939, 116.779, 123.68])
    assert list(t.color_shift_eigval) == pytest.approx(Pca().eigenvalues)
    assert list(t.color_shift_eigvec) == pytest.approx([v for row in Pca().eigenvectors_rgb for v in row])
    assert t.color_shift_std == pytest.approx(0.1)
    v = test.transform_param
    assert (v.crop_size, v.mirror, v.smallest_side_test) == (224, False, q)
    assert v.smallest_side_min == q and not v.HasField("smallest_side_max") and not v.color_shift_eigval
    for name, k in (("accuracy_top1", 1), ("accuracy_top5", 5)):
        acc = by_name(tv, name)
        assert acc.type == "Accuracy" and acc.accuracy_param.top_k == k and acc.top == [name]
        assert [r.phase for r in acc.include] == [caffe_pb2.TEST]
    loss = by_name(tv, "loss")
    assert loss.type == "SoftmaxWithLoss" and list(loss.bottom) == ["fc8", "label"]
    for drop in ("drop6", "drop7"):
        assert by_name(tv, drop).dropout_param.dropout_ratio == pytest.approx(0.5)
    conv = by_name(tv, "conv3_2")
    assert conv.convolution_param.weight_filler.type == "gaussian"
    assert conv.convolution_param.weight_filler.std == pytest.approx(0.01)
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (1, 0)]


def test_solvers_carry_the_recipe_and_the_chain(regenerated):
    prefixes = []
    for config in PAPER_CONFIGS:
        stages = [solver(regenerated / f"solvers/{config}{suffix}.prototxt") for suffix in ("", "_S384", "_S256-512")]
        for s, lr, tv in zip(stages, (1e-2, 1e-3, 1e-3), ("", "_S384", "_S256-512")):
            assert s.net == f"models/{config}/train_val{tv}.prototxt"
            assert s.base_lr == pytest.approx(lr)
            assert (s.lr_policy, s.plateau_metric, s.plateau_max_drops) == ("plateau", "accuracy_top1", 3)
            assert s.gamma == pytest.approx(0.1) and s.momentum == pytest.approx(0.9)
            assert s.weight_decay == pytest.approx(5e-4) and s.max_iter == 370_000 and s.iter_size == 1
            assert list(s.test_iter) == [1000]  # 1000 x 50 = the 50,000 validation images
            prefixes.append(s.snapshot_prefix)
    files = [p + "_iter_" for p in prefixes]
    assert len(set(files)) == len(files) == 3 * len(PAPER_CONFIGS)
    assert not any(a != b and b.startswith(a) for a in files for b in files)


def test_multistep_alternative_and_init_options(tmp_path):
    assert cli.main(["D", "--root", str(tmp_path), "--lr-policy", "multistep", "--init", "xavier", "--quiet"]) == 0
    s = solver(tmp_path / "solvers/D.prototxt")
    assert s.lr_policy == "multistep" and list(s.stepvalue) == [92500, 185000, 277500]
    assert not s.HasField("plateau_metric")
    filler = by_name(net(tmp_path / "models/D/train_val.prototxt"), "conv1_1").convolution_param.weight_filler
    assert filler.type == "xavier" and filler.variance_norm == caffe_pb2.FillerParameter.AVERAGE
    run_line = next(line for line in (tmp_path / "solvers/D.prototxt").read_text().splitlines()
                    if line.startswith("# Run from"))
    assert "-weights" not in run_line  # Glorot init: deeper nets need no net A (Sec. 3.1's note)
    assert cli.main(["vgg16", "--root", str(tmp_path), "--gaussian-std", "0.02", "--quiet"]) == 0
    filler = by_name(net(tmp_path / "models/D/train_val.prototxt"), "fc8").inner_product_param.weight_filler
    assert filler.type == "gaussian" and filler.std == pytest.approx(0.02)


@pytest.mark.parametrize("flags,batch,iter_size,test_batch,devices", [
    ([], 64, 1, 50, " -gpu 0,1,2,3"), (["--gpus", "1", "--batch", "32"], 32, 8, 25, " -gpu 0"),
    (["--gpus", "8"], 32, 1, 25, " -gpu 0,1,2,3,4,5,6,7"), (["--gpus", "1"], 256, 1, 250, " -gpu 0"),
    (["--gpus", "0", "--batch", "16"], 16, 16, 16, ".caffemodel"),  # CPU: no -gpu
])
def test_multi_gpu_batch_split_in_the_files(tmp_path, flags, batch, iter_size, test_batch, devices):
    assert cli.main(["E", "--root", str(tmp_path), "--quiet"] + flags) == 0
    tv = net(tmp_path / "models/E/train_val_S384.prototxt")
    assert by_name(tv, "data", caffe_pb2.TRAIN).data_param.batch_size == batch
    assert by_name(tv, "data", caffe_pb2.TEST).data_param.batch_size == test_batch
    text = (tmp_path / "solvers/E_S384.prototxt").read_text()
    s = solver(tmp_path / "solvers/E_S384.prototxt")
    assert s.iter_size == iter_size and s.test_iter[0] * test_batch == 50_000
    run_line = next(line for line in text.splitlines() if line.startswith("# Run from"))
    assert run_line.endswith(devices)


def test_stats_json_and_val_lmdb_drive_the_files(tmp_path):
    lmdb = pytest.importorskip("lmdb")
    data = tmp_path / "mydata"
    (data / "train").mkdir(parents=True)
    stats = Stats(mean_bgr=(101.5, 112.25, 120.125),
                  pca=Pca(eigenvalues=(0.3, 0.02, 0.001),
                          eigenvectors_rgb=((0.6, 0.6, 0.52915026), (0.7071068, 0.0, -0.7071068),
                                            (0.3, -0.8, 0.5196152))),
                  num_images=3, num_pixels=300, measured=True)
    save_stats(stats, data / "train" / "stats.json")
    val = data / "val" / "S256_lmdb"
    val.mkdir(parents=True)
    with lmdb.open(str(val), map_size=1 << 20) as env, env.begin(write=True) as txn:
        for i in range(14):
            txn.put(b"%08d" % i, b"x")
    assert cli.main(["A", "--root", str(tmp_path), "--data", "mydata", "--quiet"]) == 0
    tv = net(tmp_path / "models/A/train_val.prototxt")
    t = by_name(tv, "data", caffe_pb2.TRAIN)
    assert t.data_param.source == "mydata/train/S256_lmdb"
    assert list(t.transform_param.mean_value) == pytest.approx(stats.mean_bgr)
    assert list(t.transform_param.color_shift_eigval) == pytest.approx(stats.pca.eigenvalues)
    assert list(t.transform_param.color_shift_eigvec) == pytest.approx(
        [v for row in stats.pca.eigenvectors_rgb for v in row])
    assert list(by_name(tv, "data", caffe_pb2.TEST).transform_param.mean_value) == pytest.approx(stats.mean_bgr)
    # 14 validation images: batch 14 (<= 64) once
    assert by_name(tv, "data", caffe_pb2.TEST).data_param.batch_size == 14
    assert list(solver(tmp_path / "solvers/A.prototxt").test_iter) == [1]
    assert "measured, from `mydata/train/stats.json`" in (tmp_path / "models/A/readme.md").read_text()
    # a test pass over part of the LMDB would read other images at each pass: refused, nothing written
    before = (tmp_path / "solvers/A.prototxt").read_text()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["A", "--root", str(tmp_path), "--data", "mydata", "--val-images", "10", "--quiet"])
    assert exit_.value.code == 2
    assert (tmp_path / "solvers/A.prototxt").read_text() == before
    assert cli.main(["A", "--root", str(tmp_path), "--data", "mydata", "--val-images", "14", "--quiet"]) == 0


def test_unknown_config_exits_2_listing_the_valid_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["F", "--root", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown config 'F'" in err and all(n in err for n in PAPER_CONFIGS + ["vgg16"])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("flags,fragment", [
    (["--gpus", "3"], "GPUS=3"), (["--gpus", "4", "--batch", "48"], "does not divide"),
    (["--gpus", "-1"], "non-negative"), (["--batch", "x"], "not an integer"), (["--init", "he"], "invalid choice"),
    (["--root", "/nonexistent/dir"], "not a directory"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags, fragment):
    args = ["D", "--root", str(tmp_path)] + flags if "--root" not in flags else ["D"] + flags
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    assert fragment in capsys.readouterr().err.strip().splitlines()[-1]
    assert not any(tmp_path.iterdir())


def test_bad_stats_file_writes_nothing_and_keeps_what_was_there(tmp_path, capsys):
    assert cli.main(["D", "--root", str(tmp_path), "--quiet"]) == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    (tmp_path / "broken.json").write_text("{not json")
    assert cli.main(["D", "--root", str(tmp_path), "--stats", str(tmp_path / "broken.json"), "--gpus", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a stats.json" in err[0]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "broken.json"} == before


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.prototxt"
    target.write_text("old\n")

    def fail(src, dst):
        raise OSError(28, "No space left on device", str(dst))
    monkeypatch.setattr(render.os, "replace", fail)
    with pytest.raises(OSError):
        render.write_all({target: "new\n"})
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.prototxt"]


def test_validation_catches_what_caffe_would_reject():
    with pytest.raises(render.GenerationError, match="not a valid NetParameter"):
        render.check_net('layer { name: "x" type: "ReLU" no_such_field: 1 }', "t")
    with pytest.raises(render.GenerationError, match="reads 'nowhere'"):
        render.check_net('layer { name: "x" type: "ReLU" bottom: "nowhere" top: "x" }', "t")


def test_templates_are_thin():
    """No arithmetic and no per-config branches: the numbers come from table.py."""
    for template in (REPO / "templates").glob("*.j2"):
        text = template.read_text()
        for expression in re.findall(r"{{(.*?)}}", text) + re.findall(r"{%(.*?)%}", text):
            stripped = re.sub(r'"[^"]*"', "", expression)
            assert not re.search(r"[0-9]\s*[-+*/%]|[-+*/%]\s*[0-9]|\w\s+[+*/%]\s+\w", stripped), \
                f"{template.name}: arithmetic in {expression.strip()!r}"
            assert not re.search(r"\bconfig\b|\bname\s*==", stripped), \
                f"{template.name}: per-config branch in {expression.strip()!r}"


def test_module_entry_point_help():
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-m", "prototxt_gen", "--help"], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [str(REPO)] + os.environ.get("PYTHONPATH", "").split(os.pathsep))})
    assert run.returncode == 0 and "--gpus" in run.stdout and "vgg16" in run.stdout
