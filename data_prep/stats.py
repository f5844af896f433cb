"""The training-set statistics the recipe needs (Sec. 2.1 and 3.1), as one JSON file.

Sec. 2.1: "The only pre-processing we do is subtracting the mean RGB value, computed on the
training set, from each pixel." Sec. 3.1: the crops are augmented with the random RGB colour
shift of Krizhevsky et al. (2012), which needs the eigen-decomposition of the training
pixels' 3x3 RGB covariance.

stats.json (written by data_prep, read by prototxt_gen):
    {
      "num_images": int, "num_pixels": int,          # what the mean was computed over
      "mean_rgb": [r, g, b], "mean_bgr": [b, g, r],  # exact mean pixel, 0-255 scale
      "pca": {
        "eigenvalues": [l1, l2, l3],                 # descending; covariance of pixels scaled to [0, 1]
        "eigenvectors_rgb": [[r, g, b], x3],         # row i: unit eigenvector of eigenvalues[i]
        "sample_pixels": int, "seed": int            # the seeded sample they came from
      }
    }
The [0, 1] scale is the convention of the AlexNet lighting implementations (fb.resnet.torch):
the shift added to a 0-255 pixel is 255 * sum_i alpha_i * eigenvalues[i] * eigenvectors_rgb[i].
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The authors' published ImageNet mean pixel, Caffe's BGR order (VGG model zoo page).
DEFAULT_MEAN_BGR = (103.939, 116.779, 123.68)
# ImageNet RGB PCA as used for AlexNet lighting (fb.resnet.torch), [0, 1] pixel scale.
DEFAULT_PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
DEFAULT_PCA_EIGENVECTORS_RGB = (
    (-0.5675, -0.5808, -0.5836),
    (0.7192, -0.0045, -0.6948),
    (0.4009, -0.8140, 0.4203),
)


@dataclass(frozen=True)
class Pca:
    eigenvalues: tuple[float, float, float] = DEFAULT_PCA_EIGENVALUES
    eigenvectors_rgb: tuple[tuple[float, float, float], ...] = DEFAULT_PCA_EIGENVECTORS_RGB
    sample_pixels: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Stats:
    mean_bgr: tuple[float, float, float] = DEFAULT_MEAN_BGR
    pca: Pca = field(default_factory=Pca)
    num_images: int = 0
    num_pixels: int = 0
    # False for the published defaults, so tools can say which they used.
    measured: bool = False

    @property
    def mean_rgb(self) -> tuple[float, float, float]:
        return tuple(reversed(self.mean_bgr))

    def to_json(self) -> dict:
        pca = asdict(self.pca)
        pca["eigenvalues"] = list(pca["eigenvalues"])
        pca["eigenvectors_rgb"] = [list(v) for v in pca["eigenvectors_rgb"]]
        return {"num_images": self.num_images, "num_pixels": self.num_pixels,
                "mean_rgb": list(self.mean_rgb), "mean_bgr": list(self.mean_bgr), "pca": pca}


class StatsError(ValueError):
    pass


def load_stats(path: str | os.PathLike | None) -> Stats:
    """stats.json at path; the published defaults when path is None."""
    if path is None:
        return Stats()
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        pca = raw["pca"]
        stats = Stats(
            mean_bgr=tuple(float(v) for v in raw["mean_bgr"]),
            pca=Pca(eigenvalues=tuple(float(v) for v in pca["eigenvalues"]),
                    eigenvectors_rgb=tuple(tuple(float(c) for c in row) for row in pca["eigenvectors_rgb"]),
                    sample_pixels=int(pca.get("sample_pixels", 0)), seed=int(pca.get("seed", 0))),
            num_images=int(raw["num_images"]), num_pixels=int(raw["num_pixels"]), measured=True)
    except FileNotFoundError:
        raise StatsError(f"statistics file not found: {path}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StatsError(f"{path}: not a stats.json ({exc.__class__.__name__}: {exc})") from None
    if len(stats.mean_bgr) != 3 or len(stats.pca.eigenvalues) != 3 or \
            any(len(row) != 3 for row in stats.pca.eigenvectors_rgb) or len(stats.pca.eigenvectors_rgb) != 3:
        raise StatsError(f"{path}: mean and PCA must be 3-channel")
    return stats


def save_stats(stats: Stats, path: str | os.PathLike) -> None:
    """Write atomically: a reader never sees a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(stats.to_json(), f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; stats are for everyone who trains
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
