"""Top-1 and top-5 error (Sec. 4): "the proportion of incorrectly classified images" and
"the proportion of images such that the ground-truth category is outside the top-5
predicted categories".
"""
from __future__ import annotations

import numpy as np


def topk_correct(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per image: is the label among the k highest-scoring classes?

    Caffe's Accuracy layer rule: correct when fewer than k classes score strictly higher
    than the label, so a tie counts in the label's favour. `caffe test` and this agree.
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"expected (N, classes) scores and N labels, got {probs.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"a label is outside the {probs.shape[1]} classes of the scores")
    label_scores = probs[np.arange(len(labels)), labels]
    better = (probs > label_scores[:, None]).sum(axis=1)
    return better < k


def topk_error(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Error in percent over the images given (an empty set has no error rate: nan)."""
    correct = topk_correct(probs, labels, k)
    return float("nan") if correct.size == 0 else 100.0 * (1.0 - correct.mean())
