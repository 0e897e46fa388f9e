"""Any picture of a digit as an MNIST-like input, and a test digit as a picture: the image
handling of predict.py and infer.py (Pillow and numpy only, no network code).

MNIST's digits are white on black, grey levels in [0, 1], the digit's box at most 20x20
pixels and its centre of mass at the centre of the 28x28 image (LeCun et al.'s description
of the data set). ``load_digit`` turns a user's PNG or JPG into the same:

1. grey levels: colour is converted to grey (ITU-R 601 luma, Pillow's ``L``); an image with
   transparency (a drawing exported from an app) takes its alpha channel as the ink;
2. white on black: when the border of the image is mostly light, the grey levels are inverted;
   then the background level (the median of the border) is taken off and the brightest pixel
   scaled to 1 (again after step 3's resizing);
3. 20x20 box, centred: the digit's bounding box (pixels above 0.1) is resized so that its
   longer side is 20 pixels, and placed in a 28x28 black image with its centre of mass at the
   centre.

A 28x28 greyscale image with a dark border is already MNIST-like and is taken as it is, so a
test digit written by ``save_test_digit`` gives back that test image exactly.

    python -m utils.digits --index 0 --out images/mnist_test_0.png   # the demo digit (a 7)
"""
import argparse
import os
import warnings

import numpy as np

from utils.errors import UserError

SIDE = 28  # MNIST's images are 28x28
BOX = 20  # ... with the digit's bounding box at most 20x20 pixels
INK = 0.1  # grey level above which a pixel belongs to the digit's bounding box
HOW = ("grey, white digit on black, scaled to [0, 1]; the digit's box resized to 20x20 and "
       "centred by its centre of mass in 28x28, as MNIST's; a 28x28 grey image with a dark "
       "border is taken as it is")


def read_image(path, option="--image"):
    """The picture at ``path`` as a Pillow image (fully read); refused with one line naming
    ``option`` when it is missing, a folder, or not an image Pillow can decode."""
    from PIL import Image, UnidentifiedImageError
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a folder: give an image file (PNG or JPG)")
    if not os.path.isfile(path):
        raise UserError(f"{option} {path} not found; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.copy()
    except (UnidentifiedImageError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as err:
        raise UserError(f"{option} {path} is not an image that can be read "
                        f"({str(err).splitlines()[0][:120]}); give a PNG or JPG file") from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated or damaged files
        raise UserError(f"{option} {path} could not be decoded as an image "
                        f"({str(err).splitlines()[0][:120] or type(err).__name__}); give a "
                        "complete PNG or JPG file") from None


def grey_levels(image):
    """[H, W] float32 in [0, 1]: the alpha channel when the image has transparency, else
    the luma."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"), dtype=np.float32)[..., 3] / 255.0
        if alpha.min() < 1.0:
            return alpha
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greys: scale, not clip
        values = np.asarray(image, dtype=np.float64)
        top = values.max()
        return (values / top if top > 0 else values).astype(np.float32)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def border(grey):
    """The pixels of the image's outermost rows and columns."""
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def mnist_like(grey, path="image", option="--image"):
    """[SIDE * SIDE] float32: ``grey`` [H, W] (levels in [0, 1]) as an MNIST digit (steps 2-3
    of the module's description)."""
    from PIL import Image
    grey = np.asarray(grey, dtype=np.float32)
    if np.median(border(grey)) > 0.5:  # dark ink on a light background
        grey = 1.0 - grey
    if grey.shape == (SIDE, SIDE):
        return np.clip(grey, 0.0, 1.0).reshape(-1)
    grey = grey - np.median(border(grey))
    top = grey.max()
    if top <= INK:
        raise UserError(f"{option} {path} shows no digit (an image of one grey level); give "
                        "a picture of a digit")
    grey = np.clip(grey / top, 0.0, 1.0)
    rows, cols = np.nonzero(grey > INK)
    digit = grey[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = BOX / max(digit.shape)
    height = max(1, int(round(digit.shape[0] * scale)))
    width = max(1, int(round(digit.shape[1] * scale)))
    resized = Image.fromarray(digit, mode="F").resize((width, height), Image.BILINEAR)
    digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    digit /= digit.max()  # resizing blurs the strokes: their brightest pixel is 1 again
    out = np.zeros((SIDE, SIDE), np.float32)
    # centre of mass at the image's centre, the box kept inside the image
    mass = digit.sum()
    ys, xs = np.indices(digit.shape)
    top_row = int(round(SIDE / 2 - (ys * digit).sum() / mass))
    left_col = int(round(SIDE / 2 - (xs * digit).sum() / mass))
    top_row = min(max(top_row, 0), SIDE - height)
    left_col = min(max(left_col, 0), SIDE - width)
    out[top_row:top_row + height, left_col:left_col + width] = digit
    return out.reshape(-1)


def load_digit(path, n_pixels=SIDE * SIDE, option="--image"):
    """[1, n_pixels] float32: the picture at ``path`` as the model's input (``HOW``)."""
    if n_pixels != SIDE * SIDE:
        raise UserError(f"the model takes images of {n_pixels} pixels; only {SIDE}x{SIDE} "
                        "MNIST-like inputs are made from pictures")
    return mnist_like(grey_levels(read_image(path, option)), path, option)[None, :]


def save_test_digit(data_dir, index, path):
    """Test image ``index`` of the split in ``data_dir`` as a 28x28 greyscale PNG at
    ``path`` (its pixel values exactly); returns its label."""
    from data_maker import load_split
    from utils.paddle_save_image import save_image
    data = load_split(data_dir, parts=("test",))
    if not 0 <= index < len(data["x_test"]):
        raise UserError(f"--index {index}: the split in {data_dir} has test images "
                        f"0-{len(data['x_test']) - 1}")
    save_image(data["x_test"][index:index + 1], path, nrow=1, padding=0, scale=1)
    return int(data["y_test"][index])


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write an MNIST test digit as a PNG (the "
                                     "demo input of predict.py and infer.py).")
    parser.add_argument("--data_dir", default="data", help="folder of mnist_split.npz")
    parser.add_argument("--index", type=int, default=0, help="which test image (default 0)")
    parser.add_argument("--out", default="images/mnist_test_0.png", help="the PNG to write")
    args = parser.parse_args(argv)
    label = save_test_digit(args.data_dir, args.index, args.out)
    print(f"wrote {args.out}: test image {args.index}, a {label}")
    return {"path": args.out, "label": label}


if __name__ == "__main__":
    from utils.errors import run_cli
    run_cli(main)
