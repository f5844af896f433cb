"""Photograph-like test images for the data-preparation tests and benchmark.

Natural images have an amplitude spectrum falling roughly as 1/f, correlated colour channels
and sharp edges; JPEG's cost and error depend on exactly these. The images here have all
three (random-phase 1/f noise, a luminance-dominated colour mix, a few opaque shapes), so
decoding, rescaling and re-encoding them behave as they would on photographs, without
shipping any.
"""
from __future__ import annotations

import cv2
import numpy as np


def natural_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGR uint8 image of the given size."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequency = np.hypot(fx, fy)
    frequency[0, 0] = 1.0
    # 1/f, rolled off at the top of the band as a lens's blur rolls photographs off.
    amplitude = np.exp(-(frequency / 0.25) ** 2) / frequency
    amplitude[0, 0] = 0.0
    planes = []
    for _ in range(3):
        phase = rng.uniform(0.0, 2.0 * np.pi, amplitude.shape)
        plane = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(height, width))
        planes.append(plane / plane.std())
    luminance, chroma_a, chroma_b = planes
    mix = np.stack([luminance + 0.35 * chroma_a, luminance - 0.2 * chroma_b, luminance + 0.3 * chroma_b], axis=2)
    base = rng.uniform(70.0, 170.0, size=3)
    image = np.clip(base + rng.uniform(25.0, 45.0) * mix, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            radius = int(rng.integers(max(2, min(height, width) // 16), max(3, min(height, width) // 3)))
            cv2.circle(image, centre, radius, colour, thickness=-1, lineType=cv2.LINE_AA)
        else:
            corner = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.rectangle(image, centre, corner, colour, thickness=-1)
    # Texture on the shapes too: nothing in a photograph is perfectly flat.
    texture = rng.uniform(6.0, 12.0) * luminance[:, :, None]
    return np.clip(image + texture, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, extension: str = ".jpg", quality: int = 90) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if extension in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(extension, image, params)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {extension}")
    return buffer.tobytes()
