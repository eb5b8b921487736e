# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""PNG overlays of a segmentation on its image: a few slices through the structures, for a quick visual check."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["pick_slices", "save_overlay"]


def _window(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, (0.5, 99.5))
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def pick_slices(*masks: np.ndarray | None, n: int = 3, depth: int | None = None) -> list[int]:
    """``n`` axial (last-axis) slice indices spread over where any mask is non-zero, else over the middle."""
    present = [m for m in masks if m is not None and m.any()]
    if present:
        z = np.nonzero(np.any(np.stack([m.any(axis=(0, 1)) for m in present]), axis=0))[0]
        lo, hi = int(z.min()), int(z.max())
    else:
        d = depth if depth is not None else (masks[0].shape[-1] if masks and masks[0] is not None else 1)
        lo, hi = d // 4, max(d // 4, (3 * d) // 4 - 1)
    if n == 1 or hi == lo:
        return [(lo + hi) // 2]
    return sorted({int(round(lo + (hi - lo) * i / (n - 1))) for i in range(n)})


def _edges(m: np.ndarray) -> np.ndarray:
    inner = m.copy()
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return m & ~inner


def save_overlay(
    path: str, image: np.ndarray, pred: np.ndarray | None = None, label: np.ndarray | None = None, n_slices: int = 3
) -> str:
    """Write a PNG of ``n_slices`` axial slices side by side: label outline in green, prediction outline in red.

    Arrays are 3D ``(X, Y, Z)`` in the same grid; the file is written atomically.
    """
    from PIL import Image

    from lightseg_monai.transforms import atomic_path

    if image.ndim != 3:
        raise ValueError(f"save_overlay expects 3D arrays, got image of shape {image.shape}.")
    for name, m in (("pred", pred), ("label", label)):
        if m is not None and m.shape != image.shape:
            raise ValueError(f"{name} shape {m.shape} differs from the image shape {image.shape}.")
    zs = pick_slices(label, pred, n=n_slices, depth=image.shape[-1])
    tiles = []
    for z in zs:
        g = _window(image[:, :, z])
        rgb = np.stack([g, g, g], axis=-1)
        if label is not None:
            rgb[_edges(label[:, :, z] > 0)] = (0, 255, 0)
        if pred is not None:
            rgb[_edges(pred[:, :, z] > 0)] = (255, 0, 0)
        tiles.append(np.rot90(rgb))  # RAS voxel axes -> radiological-looking display
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 4), (0, 0))) for t in tiles]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    strip = Image.fromarray(np.concatenate(tiles, axis=1))
    scale = max(1, -(-256 // h))  # at least 256 pixels high
    if scale > 1:
        strip = strip.resize((strip.width * scale, strip.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        strip.save(tmp, format="PNG")
    return path
