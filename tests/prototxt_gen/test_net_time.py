"""`make net-time`: `caffe time` on a config's training net with its Data layers made Input."""
import pytest

from prototxt_gen import generate, table, timing

from netgen_helpers import TINY


def test_caffe_time_runs_forward_and_backward_of_the_training_net(tiny_root):
    train_val = tiny_root / generate.train_val_path(TINY, table.CONFIGS["D"], table.regimes(TINY)[0])
    times = timing.time_config(table.CONFIGS["D"], TINY, train_val, batch=2, iterations=2)
    assert set(times) == {"forward_ms", "backward_ms", "forward_backward_ms"}
    assert all(isinstance(v, float) and v >= 0 for v in times.values())


def test_a_net_caffe_cannot_build_is_reported(tiny_root, tmp_path):
    broken = tmp_path / "train_val.prototxt"
    text = (tiny_root / generate.train_val_path(TINY, table.CONFIGS["A"], table.regimes(TINY)[0])).read_text()
    broken.write_text(text.replace('bottom: "pool4"', 'bottom: "no_such_blob"'))
    with pytest.raises(RuntimeError, match="caffe time failed"):
        timing.time_config(table.CONFIGS["A"], TINY, broken, batch=1, iterations=1)


def test_unknown_config_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        timing.main(["Z"])
    assert exit_.value.code == 2 and "unknown config 'Z'" in capsys.readouterr().err
