"""`make net-time`: `caffe time` on a config's training net with its Data layers made Input."""
import pytest

from prototxt_gen import generate, table, timing

from netgen_helpers import TINY


def test_caffe_time_runs_forward_and_backward_of_the_training_net(tiny_root):
    train_val = tiny_root / generate.train_val_path(TINY, table.CONFIGS["D"], table.regimes(TINY)[0])
    times = timing.time_config(table.CONFIGS["D"], TINY, train_val, batch=2, iterations=2)
    assert set(times) == {"forward_ms", "backward_ms", "forward_backward_ms"}
    assert times["forward_ms"] > 0 and times["backward_ms"] > 0
    assert times["forward_backward_ms"] == pytest.approx(times["forward_ms"] + times["backward_ms"], rel=0.5)


def test_unknown_config_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        timing.main(["Z"])
    assert exit_.value.code == 2 and "unknown config 'Z'" in capsys.readouterr().err
