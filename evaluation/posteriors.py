"""Per-image soft-max posteriors of one evaluation run, and their averages (Sec. 4.2-4.4).

Every combination in the paper averages soft-max class posteriors:
* multi-scale (Sec. 4.2): "averaging the resulting class posteriors" over the test scales Q;
* multi-crop & dense (Sec. 4.3): "we assess the complementarity of the two approaches by
  averaging their soft-max outputs";
* ensembles (Sec. 4.4): "combine the outputs of several models by averaging their soft-max
  class posteriors".

So one run (model, protocol, one test scale Q) is saved as an npz of posteriors, and every
multi-scale, combined or ensemble result is an average of saved runs, computed without
running a net again. Averages are taken level by level, with equal weight at each level:
over the scales of a (model, protocol), then over the protocols of a model, then over the
models; with the paper's equal numbers of scales this is the plain mean of all parts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import replacing

DENSE = "dense"
MULTICROP = "multi-crop"
COMBINED = "multi-crop & dense"
PROTOCOLS = (DENSE, MULTICROP)
FORMAT_VERSION = 1


class PosteriorsError(ValueError):
    pass


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    shifted = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


@dataclass(frozen=True)
class Posteriors:
    """Posteriors of the images scored by one run or one average of runs.

    model: e.g. "D", or "D + E" for an ensemble; train_scale: the paper's label of the
    training S ("256", "[256;512]"; "" when unknown); protocol: DENSE, MULTICROP or COMBINED;
    scales: the test scales Q averaged over; skipped: listed images that were not scored
    (unreadable, or missing from a part of an average); seconds: wall time of the runs.
    """
    model: str
    train_scale: str
    protocol: str
    scales: tuple[int, ...]
    images: tuple[str, ...]
    labels: np.ndarray
    probs: np.ndarray
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0
    flip: bool = True
    weights: str = ""
    members: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.probs.ndim != 2 or self.probs.shape[0] != len(self.images) or len(self.labels) != len(self.images):
            raise PosteriorsError(
                f"{self.key}: {len(self.images)} images, {len(self.labels)} labels, probs {self.probs.shape}")

    @property
    def key(self) -> str:
        """The model as the tables name it: 'D', or 'D/[256;512]' when S is known."""
        return f"{self.model}/{self.train_scale}" if self.train_scale else self.model

    @property
    def num_scored(self) -> int:
        return len(self.images)

    @property
    def num_listed(self) -> int:
        return len(self.images) + len(self.skipped)

    @property
    def images_per_second(self) -> float:
        return self.num_scored / self.seconds if self.seconds > 0 else float("nan")

    def file_name(self) -> str:
        """One file per (model, training S, protocol, test scales)."""
        train = "S" + self.train_scale.strip("[]").replace(";", "-") if self.train_scale else "S-unknown"
        protocol = {DENSE: "dense", MULTICROP: "multicrop", COMBINED: "combined"}.get(self.protocol, self.protocol)
        scales = "-".join(map(str, sorted(self.scales)))
        name = f"{self.model}__{train}__{protocol}{'' if self.flip else '-noflip'}__Q{scales}.npz"
        return re.sub(r"[^A-Za-z0-9_.+\-]", "_", name)


def save(posteriors: Posteriors, path: str | Path) -> Path:
    """Write an npz atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    with replacing(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, format_version=FORMAT_VERSION, model=posteriors.model,
                 train_scale=posteriors.train_scale, protocol=posteriors.protocol,
                 scales=np.asarray(posteriors.scales, dtype=np.int64),
                 images=np.asarray(posteriors.images, dtype=str),
                 labels=np.asarray(posteriors.labels, dtype=np.int64),
                 probs=np.asarray(posteriors.probs, dtype=np.float32),
                 skipped=np.asarray(posteriors.skipped, dtype=str),
                 seconds=float(posteriors.seconds), flip=bool(posteriors.flip),
                 weights=posteriors.weights, members=np.asarray(posteriors.members, dtype=str))
    return path


def load(path: str | Path) -> Posteriors:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if int(npz["format_version"]) != FORMAT_VERSION:
                raise PosteriorsError(f"{path}: posteriors format {int(npz['format_version'])}, "
                                      f"this version reads {FORMAT_VERSION}")
            return Posteriors(
                model=str(npz["model"]), train_scale=str(npz["train_scale"]), protocol=str(npz["protocol"]),
                scales=tuple(int(q) for q in npz["scales"]), images=tuple(str(s) for s in npz["images"]),
                labels=npz["labels"].astype(np.int64), probs=npz["probs"].astype(np.float32),
                skipped=tuple(str(s) for s in npz["skipped"]), seconds=float(npz["seconds"]),
                flip=bool(npz["flip"]), weights=str(npz["weights"]),
                members=tuple(str(s) for s in npz["members"]))
    except FileNotFoundError:
        raise PosteriorsError(f"posteriors file not found: {path}") from None
    except PosteriorsError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, KeyError, ValueError, ...
        raise PosteriorsError(f"{path}: not a posteriors file ({exc.__class__.__name__}: {exc})") from None


def average(parts: Sequence[Posteriors], **fields) -> Posteriors:
    """Equal-weight mean of the parts' posteriors over the images all of them scored.

    fields: the result's model, train_scale, protocol, scales (defaults: the first part's).
    Labels must agree; images scored by some parts only are counted as skipped.
    """
    if not parts:
        raise PosteriorsError("nothing to average")
    num_classes = {p.probs.shape[1] for p in parts}
    if len(num_classes) != 1:
        raise PosteriorsError(f"cannot average posteriors over different class counts {sorted(num_classes)}: "
                              + ", ".join(p.key for p in parts))
    first = parts[0]
    common = set(first.images).intersection(*(p.images for p in parts[1:]))
    images = tuple(image for image in first.images if image in common)
    listed = set().union(*(set(p.images) | set(p.skipped) for p in parts))
    probs = np.zeros((len(images), num_classes.pop()), dtype=np.float64)
    labels = None
    for part in parts:
        index = {image: i for i, image in enumerate(part.images)}
        rows = np.fromiter((index[image] for image in images), dtype=np.int64, count=len(images))
        if labels is None:
            labels = part.labels[rows]
        elif not np.array_equal(labels, part.labels[rows]):
            raise PosteriorsError(f"{part.key} ({part.protocol}) labels the images differently from {first.key}")
        probs += part.probs[rows]
    probs /= len(parts)
    defaults = dict(model=first.model, train_scale=first.train_scale, protocol=first.protocol,
                    scales=tuple(sorted(set().union(*(p.scales for p in parts)))))
    defaults.update(fields)
    return Posteriors(images=images, labels=labels, probs=probs.astype(np.float32),
                      skipped=tuple(sorted(listed - common)), seconds=sum(p.seconds for p in parts),
                      flip=all(p.flip for p in parts), weights="; ".join(dict.fromkeys(p.weights for p in parts)),
                      members=tuple(dict.fromkeys(m for p in parts for m in (p.members or (p.key,)))),
                      **defaults)


def multi_scale(runs: Sequence[Posteriors]) -> Posteriors:
    """Sec. 4.2: one model and protocol, posteriors averaged over the test scales."""
    _require_same(runs, "key", "multi-scale")
    _require_same(runs, "protocol", "multi-scale")
    scales = [q for run in runs for q in run.scales]
    if len(set(scales)) != len(scales):
        raise PosteriorsError(f"{runs[0].key} {runs[0].protocol}: a test scale appears twice in {sorted(scales)}")
    return average(runs)


def combine_protocols(dense: Posteriors, multicrop: Posteriors) -> Posteriors:
    """Sec. 4.3: multi-crop & dense, one model."""
    _require_same([dense, multicrop], "key", "multi-crop & dense")
    return average([multicrop, dense], protocol=COMBINED)


def ensemble(models: Sequence[Posteriors]) -> Posteriors:
    """Sec. 4.4: several models, one protocol (each already averaged over its scales)."""
    _require_same(models, "protocol", "an ensemble")
    keys = [m.key for m in models]
    if len(set(keys)) != len(keys):
        raise PosteriorsError(f"an ensemble lists a model twice: {keys}")
    return average(models, model=" + ".join(keys), train_scale="")


def _require_same(parts: Sequence[Posteriors], attribute: str, what: str) -> None:
    values = list(dict.fromkeys(getattr(p, attribute) for p in parts))
    if len(values) != 1:
        raise PosteriorsError(f"{what} needs one {attribute}, got {values}")

