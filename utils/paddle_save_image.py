"""Save a batch of images as one PNG grid (like torchvision's save_image, for numpy arrays)."""
import math
import os

import numpy as np
from PIL import Image

from utils.files import atomic_write


def image_side(n_pixels):
    """Side of a square greyscale image with ``n_pixels`` pixels (28 for MNIST's 784)."""
    side = int(round(math.sqrt(n_pixels)))
    if side * side != n_pixels:
        raise ValueError(f"{n_pixels} pixels do not make a square image")
    return side


def make_grid(images, nrow=10, padding=2, pad_value=1.0):
    """images: [n, side*side] or [n, side, side] values in [0, 1] -> [H, W] float array."""
    images = np.asarray(images, dtype=np.float32)
    n = images.shape[0]
    side = images.shape[1] if images.ndim == 3 else image_side(images.shape[1])
    images = images.reshape(n, side, side)
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    cell = side + padding
    grid = np.full((nrows * cell + padding, ncol * cell + padding), pad_value, np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        top, left = padding + r * cell, padding + c * cell
        grid[top:top + side, left:left + side] = img
    return grid


def save_image(images, path, nrow=10, padding=2, scale=2):
    """Write ``images`` (values in [0, 1]) as a PNG grid, each pixel enlarged ``scale`` times."""
    grid = np.clip(make_grid(images, nrow, padding), 0.0, 1.0)
    pixels = (grid * 255.0 + 0.5).astype(np.uint8)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    image = Image.fromarray(pixels)  # uint8 [H, W] -> greyscale
    # through a temporary file renamed over ``path``: a full disk or an interruption leaves
    # the earlier image (or none), never half a PNG, and a one-line error
    atomic_write(path, lambda f: image.save(f, format=image_format(path)))
    return path


def image_format(path):
    """Pillow's name of the format ``path``'s extension asks for (PNG when it names none)."""
    extension = os.path.splitext(path)[1].lower()
    return Image.registered_extensions().get(extension, "PNG")
