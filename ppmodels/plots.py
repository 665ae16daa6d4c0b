"""Pictures a person looks at: image grids (matplotlib writes the PNG)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .files import atomic_write

CELL_PX = 64  # by default each image is drawn about this many pixels tall: 8x8 digits at 1:1 are specks
MAX_WIDTH_PX = 1600  # ... unless the grid would then be wider than a screen


def readable_zoom(image_size: int, grid_width: int) -> int:
    """The default ``zoom`` of a grid ``grid_width`` pixels wide of images ``image_size`` pixels tall: each image
    about :data:`CELL_PX` tall, the grid at most :data:`MAX_WIDTH_PX` wide, never below 1."""
    return max(1, min(math.ceil(CELL_PX / image_size), MAX_WIDTH_PX // grid_width))


def tile(images: np.ndarray, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Arrange ``(N, C, H, W)`` images (first channel shown; 3 channels as RGB) into one 2-D or RGB array."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[:, None]
    n, c, h, w = images.shape
    images = images.transpose(0, 2, 3, 1) if c == 3 else images[:, 0, :, :, None]
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, images.shape[-1]), dtype=np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = image
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def save_image_grid(images: np.ndarray, path: str | Path, ncol: int | None = None, zoom: int | None = None) -> Path:
    """Write a PNG grid of ``images`` (values in [0, 1], or rescaled to it) to ``path``, each pixel ``zoom`` x ``zoom``
    (``None``: :func:`readable_zoom`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    grid = tile(images, ncol)
    if zoom is None:
        zoom = readable_zoom(max(np.shape(images)[-2:]), grid.shape[1])
    lo, hi = float(grid.min()), float(grid.max())
    if lo < 0 or hi > 1:
        grid = (grid - lo) / (hi - lo or 1.0)
    if zoom > 1:  # nearest-neighbour: small images (8x8 digits) stay sharp
        grid = grid.repeat(zoom, axis=0).repeat(zoom, axis=1)
    path = Path(path)
    atomic_write(path, lambda tmp: plt.imsave(tmp, grid, cmap="gray", vmin=0, vmax=1, format="png"))
    return path


def save_class_maps(maps: dict[str, np.ndarray], path: str | Path, num_classes: int | None = None) -> Path:
    """Write class maps side by side (one panel per entry, its key the title) with one shared colour per class;
    pixels below 0 (no class, e.g. background) are black."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    k = num_classes or max(int(np.max(m)) + 1 for m in maps.values())
    colors = plt.get_cmap("tab20")(np.arange(k) % 20)
    fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 4.3), squeeze=False)
    for ax, (title, m) in zip(axes[0], maps.items()):
        ax.imshow(np.ma.masked_less(m, 0), cmap=ListedColormap(colors), vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
        ax.set_facecolor("black")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
