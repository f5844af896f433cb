"""Training curves read from Caffe's log text (demo/curves.py) and drawn as PNG."""
import cv2
import numpy as np

from demo import curves

LOG = """\
I1126 09:06:18.66 513 solver.cpp:347] Iteration 0, Testing net (#0)
I1126 09:06:24.80 513 solver.cpp:418]     Test net output #0: accuracy_top1 = 0.1
I1126 09:06:24.80 513 solver.cpp:418]     Test net output #1: accuracy_top5 = 0.503
I1126 09:06:24.80 513 solver.cpp:418]     Test net output #2: loss = 2.9684 (* 1 = 2.9684 loss)
I1126 09:06:25.38 513 solver.cpp:239] Iteration 0 (0 iter/s, 6.724s/50 iters), loss = 3.7121
I1126 09:06:25.38 513 solver.cpp:258]     Train net output #0: loss = 3.7121 (* 1 = 3.7121 loss)
I1126 09:06:25.38 513 sgd_solver.cpp:191] Iteration 0, lr = 0.01
I1126 09:06:33.94 513 solver.cpp:239] Iteration 50 (5.83908 iter/s, 8.563s/50 iters), loss = 2.16163
I1126 09:06:44.50 513 solver.cpp:347] Iteration 100, Testing net (#0)
I1126 09:06:44.50 513 solver.cpp:418]     Test net output #0: accuracy_top1 = 0.7
# resumed from the snapshot at iteration 50
I1126 09:07:00.00 600 solver.cpp:239] Iteration 50 (0 iter/s, 0.1s/50 iters), loss = 2.0
I1126 09:07:01.00 600 sgd_solver.cpp:191] Iteration 50, lr = 0.001
I1126 09:07:09.00 600 solver.cpp:347] Iteration 100, Testing net (#0)
I1126 09:07:09.00 600 solver.cpp:418]     Test net output #0: accuracy_top1 = 0.75
I1126 09:07:09.50 600 solver.cpp:327] Iteration 100, loss = nan
"""


def test_parse_keeps_the_last_value_of_each_iteration():
    c = curves.parse_log(LOG)
    assert c.loss[:2] == [(0, 3.7121), (50, 2.0)]
    assert c.loss[2][0] == 100 and np.isnan(c.loss[2][1])
    assert c.top1 == [(0, 0.1), (100, 0.75)]
    assert c.test["accuracy_top5"] == [(0, 0.503)]
    assert c.test["loss"] == [(0, 2.9684)]  # the test net's loss, not the training loss
    assert c.lr == [(0, 0.01), (50, 0.001)]
    assert c.final("accuracy_top1") == 0.75 and c.final("missing") is None


def test_png_has_both_panels(tmp_path):
    path = curves.write_png(curves.parse_log(LOG), "A test", tmp_path / "c.png", max_iter=200)
    image = cv2.imread(str(path))
    assert image.shape == (400, 960, 3)
    blue = (image[:, :, 0] > 150) & (image[:, :, 2] < 100)  # the loss line, left panel
    red = (image[:, :, 2] > 150) & (image[:, :, 0] < 100)  # the top-1 line, right panel
    assert blue[:, :480].sum() > 50 and blue[:, 480:].sum() == 0
    assert red[:, 480:].sum() > 50 and red[:, :480].sum() == 0


def test_an_empty_log_still_draws_and_says_so(tmp_path):
    path = curves.write_png(curves.parse_log(""), "nothing yet", tmp_path / "e.png")
    assert cv2.imread(str(path)) is not None
