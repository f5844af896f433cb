"""Small LMDBs and a tiny size profile, so Caffe can build every generated net and solver fast.

A module of its own (not conftest) so tests can import it by a name no other area uses."""
from pathlib import Path

import numpy as np

from prototxt_gen import table
from prototxt_gen.generate import Options

# The same table and generators with only the size knobs changed (widths / 16, FC 32, crop 32).
TINY = table.Profile(name="tiny", models_dir="models/tiny", solvers_dir="solvers/tiny", width_divisor=16,
                     fc_width=32, num_classes=10, crop=32, single_scales=(32, 48), jitter=(32, 64),
                     data_dir="data/tiny", val_images=4, deploy_batch=2)
TINY_OPTIONS = Options(gpus=1, batch=4)


def make_lmdb(path: Path, smallest_side: int, count: int, num_classes: int, seed: int = 0) -> None:
    """`count` encoded JPEG Datums whose smallest side is `smallest_side`, as `make data` stores them."""
    import cv2
    import lmdb
    from caffe.proto import caffe_pb2

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    with lmdb.open(str(path), map_size=1 << 30) as env, env.begin(write=True) as txn:
        for i in range(count):
            h, w = (smallest_side, smallest_side * 5 // 4) if i % 2 else (smallest_side * 4 // 3, smallest_side)
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            ok, jpeg = cv2.imencode(".jpg", image)
            assert ok
            datum = caffe_pb2.Datum(channels=3, height=h, width=w, label=i % num_classes, encoded=True,
                                    data=jpeg.tobytes())
            txn.put(b"%08d_img%d.jpg" % (i, i), datum.SerializeToString())


def make_dataset(root: Path, profile: table.Profile, count: int) -> None:
    for split in ("train", "val"):
        for scale in profile.lmdb_scales:
            make_lmdb(root / profile.data_dir / split / f"S{scale}_lmdb", scale, count, profile.num_classes)
