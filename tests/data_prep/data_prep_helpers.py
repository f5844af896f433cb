"""Helpers of the data_prep tests: photograph-like images on disk, LMDB readers."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from data_prep.synthetic import natural_image


def photo(seed: int, height: int, width: int) -> np.ndarray:
    return natural_image(np.random.default_rng(seed), height, width)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def jpeg(image: np.ndarray, quality: int = 92, **params) -> bytes:
    flags = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for key, value in params.items():
        flags += [getattr(cv2, key), value]
    ok, buffer = cv2.imencode(".jpg", image, flags)
    assert ok
    return buffer.tobytes()


def read_lmdb(path: Path, caffe_pb2) -> list[tuple[str, object]]:
    """(key, Datum) in key order, as Caffe's Data layer reads them."""
    import lmdb

    records = []
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            for key, value in txn.cursor():
                datum = caffe_pb2.Datum()
                datum.ParseFromString(value)
                records.append((key.decode(), datum))
    finally:
        env.close()
    return records


def decode_datum(datum) -> np.ndarray:
    """What Caffe's DataTransformer decodes (DecodeDatumToCVMatNative: IMREAD_ANYCOLOR)."""
    assert datum.encoded
    return cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_ANYCOLOR)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)



def within_jpeg_tolerance(stored: np.ndarray, exact: np.ndarray, quality: int = 95, slack_db: float = 1.0) -> bool:
    """Is `stored` (a decoded record) as close to `exact` as a JPEG of `exact` at `quality` is?

    JPEG's error depends on the image (busy, heavily downscaled images lose more), so the
    tolerance is measured: PSNR of JPEG(exact) against exact, less `slack_db`."""
    assert stored.shape == exact.shape, (stored.shape, exact.shape)
    ok, buffer = cv2.imencode(".jpg", exact, [cv2.IMWRITE_JPEG_QUALITY, quality])
    floor = psnr(cv2.imdecode(buffer, cv2.IMREAD_COLOR), exact) - slack_db
    return psnr(stored, exact) >= floor


def direct_rescale(source: np.ndarray, side: int) -> np.ndarray:
    """The test's own rescale of a decoded source to smallest side `side` (independent of
    data_prep): the other side rounded half up; area when shrinking, bicubic when enlarging."""
    h, w = source.shape[:2]
    if h <= w:
        new_h, new_w = side, int(np.floor(w * side / h + 0.5))
    else:
        new_h, new_w = int(np.floor(h * side / w + 0.5)), side
    if (new_h, new_w) == (h, w):
        return source
    interpolation = cv2.INTER_AREA if new_h < h else cv2.INTER_CUBIC
    return cv2.resize(source, (new_w, new_h), interpolation=interpolation)
