"""The figures of train.py and eval.py: small functions taking arrays and a path, writing a PNG.

They draw on a ``matplotlib.figure.Figure`` directly instead of going through pyplot, so they
neither switch nor depend on the user's backend (a notebook importing train.py keeps its own)
and leave no open figures behind; PNGs are rendered by matplotlib's Agg canvas. Each figure
has a fixed size in inches at ``DPI``, so its pixel size is known (figsize * DPI).
"""
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from utils.files import atomic_write
from utils.log import read_loss_csv
from utils.paddle_save_image import save_image

DPI = 100
DIGIT_COLOURS = "tab10"  # ten clearly distinct colours, one per MNIST digit


def _save(fig, path):
    """Render ``fig`` to ``path`` (its format from the extension) through a temporary file
    renamed over it: a full disk leaves the earlier figure and a one-line error."""
    fig.tight_layout()
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=DPI))
    return path


# How plot_losses names each loss.csv column, and which panel draws it
LOSS_LABELS = {
    "d_loss": "D loss (discriminator)", "g_loss": "G loss (encoder as generator)",
    "d_y_loss": "D_y loss (categorical)", "g_y_loss": "G_y loss (categorical)",
    "recon_loss": "reconstruction BCE per pixel", "class_loss": "classification cross-entropy",
    "head_loss": "cluster heads' cost",
}
LOSS_PANELS = (("regularization phase", ("d_loss", "g_loss", "d_y_loss", "g_y_loss")),
               ("reconstruction and classification", ("recon_loss", "class_loss", "head_loss")))


def plot_losses(history, path):
    """The epoch means of train.py's losses (rows of loss.csv), a panel for the adversarial
    losses and one for the reconstruction and classification losses, each drawn when the
    model has them; the categorical models' validation error in a third panel."""
    epochs = [row["epoch"] for row in history]
    present = set(history[0]) if history else set()
    panels = [(title, [k for k in names if k in present]) for title, names in LOSS_PANELS]
    panels = [(title, names) for title, names in panels if names]
    if "valid_error" in present:
        panels.append(("error on the validation split (%)", ["valid_error"]))
    panels = panels or [("no losses yet", [])]
    fig = Figure(figsize=(5 * len(panels), 3.5))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, names) in zip(axes, panels):
        for name in names:
            scale = 100 if name == "valid_error" else 1
            ax.plot(epochs, [scale * row[name] for row in history],
                    label=LOSS_LABELS.get(name, name))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(names) > 1:
            ax.legend()
    return _save(fig, path)


def progress_epochs(n_epochs):
    """The epochs shown by ``plot_samples_by_epoch``: the first, a tenth of the way, halfway and
    the last (0, 20, 100, 199 of 200)."""
    return sorted({0, n_epochs // 10, n_epochs // 2, n_epochs - 1})


def plot_samples_by_epoch(images_dir, n_epochs, path):
    """train.py's sample grids images_dir/epoch{N}.png of ``progress_epochs`` side by side (the
    same prior samples decoded as training goes on); grids not written are left out. Returns
    the path, or None when there is no grid."""
    grids = [(f"{images_dir}/epoch{epoch}.png", f"epoch {epoch}")
             for epoch in progress_epochs(n_epochs)]
    grids = [(file, title) for file, title in grids if os.path.isfile(file)]
    if not grids:
        return None
    return plot_image_files([file for file, _ in grids], [title for _, title in grids], path)


def plot_image_files(files, titles, path, size=3.0):
    """Grey images (PNG files, e.g. grids written by train.py or plot.py) side by side, each
    under its title (which may hold several lines), ``size`` inches wide each."""
    from PIL import Image
    fig = Figure(figsize=(size * len(files),
                          size + 0.3 * max(title.count("\n") + 1 for title in titles)))
    axes = np.atleast_1d(fig.subplots(1, len(files)))
    for ax, file, title in zip(axes, files, titles):
        with Image.open(file) as image:
            ax.imshow(np.asarray(image.convert("L")), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title)
        ax.axis("off")
    return _save(fig, path)


def plot_error_curves(loss_files, labels, path, paper_error=None):
    """The validation error per epoch of categorical runs, one line per ``loss.csv`` (train.py's,
    column ``valid_error``), in percent; ``paper_error`` (a fraction) as a dashed line."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for file, label in zip(loss_files, labels):
        if not os.path.isfile(file):
            raise FileNotFoundError(f"{file} not found")
        rows = read_loss_csv(file)
        if not rows or "valid_error" not in rows[0]:
            raise ValueError(f"{file} has no valid_error column (not a categorical run's loss.csv)")
        ax.plot([r["epoch"] for r in rows], [100 * r["valid_error"] for r in rows], label=label)
    if paper_error is not None:
        ax.axhline(100 * paper_error, color="k", ls="--", lw=1,
                   label=f"paper (test): {100 * paper_error:.2f}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error on the 1,000 validation images (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_sigma_curve(sigmas, valid_ll, best_sigma, path):
    """eval.py's cross-validation of the Parzen window width."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    ax.semilogx(sigmas, valid_ll, "o-", ms=4)
    ax.axvline(best_sigma, color="C3", ls="--", label=f"chosen sigma = {best_sigma:.4f}")
    ax.set_xlabel("Parzen window width sigma")
    ax.set_ylabel("mean validation log-likelihood (nats)")
    ax.set_title("sigma cross-validation")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


# ---- latent space ------------------------------------------------------------------------
def principal_components(codes, k=2):
    """Project ``codes`` [n, d] on their first k principal components.

    Returns (points [n, k], explained [k]): the centred codes in the basis of the top right
    singular vectors, and the fraction of the total variance along each. Columns beyond the
    rank of the data are zeros. Each axis' sign is chosen so that its largest loading is
    positive, so the picture does not flip between platforms.
    """
    codes = np.asarray(codes, dtype=np.float64)
    centred = codes - codes.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:k]
    largest = vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)]
    vt = vt * np.sign(largest)[:, None]
    points = np.zeros((len(codes), k))
    points[:, :len(vt)] = centred @ vt.T
    variance = singular ** 2
    explained = np.zeros(k)
    if variance.sum() > 0:
        explained[:len(vt)] = variance[:k] / variance.sum()
    return points, explained


def latent_view(codes, labels):
    """What the latent scatter plot shows: (points [n, 2], axis labels, title).

    2-d codes are drawn as they are; higher-dimensional ones on their first two principal
    components; 1-d codes against their digit, one row per digit."""
    codes = np.asarray(codes, dtype=np.float64)
    dim = codes.shape[1]
    if dim == 2:
        return codes, ("z1", "z2"), "latent codes z (2-d)"
    if dim == 1:
        points = np.stack([codes[:, 0], np.asarray(labels, dtype=np.float64)], axis=1)
        return points, ("z", "digit"), "latent codes z (1-d), one row per digit"
    points, explained = principal_components(codes)
    return (points, (f"PC1 ({explained[0]:.0%} of the variance)",
                     f"PC2 ({explained[1]:.0%} of the variance)"),
            f"first two principal components of the {dim}-d codes "
            f"({explained.sum():.0%} of the variance)")


def plot_latent_scatter(codes, labels, path, background=None, title=None, heads=None):
    """Codes [n, d] of digits with ``labels`` [n], coloured by digit (see ``latent_view``).
    ``background``: 2-d points (samples of the prior) drawn in light grey underneath, for
    2-d codes; ``title`` replaces the default one; ``heads``: 2-d cluster heads [K, 2], drawn
    as black crosses on top (the points are then r = y W + z, so the axes say r1, r2)."""
    points, (xlabel, ylabel), default_title = latent_view(codes, labels)
    if heads is not None:
        xlabel, ylabel = "r1", "r2"
    title = title or default_title
    labels = np.asarray(labels)
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    colours = colormaps[DIGIT_COLOURS]
    if background is not None:
        background = np.asarray(background)
        ax.scatter(background[:, 0], background[:, 1], s=1, color="0.8", label="prior",
                   rasterized=True)
    for digit in np.unique(labels):
        chosen = labels == digit
        ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.6,
                   color=colours(int(digit) % 10), label=str(digit))
    if heads is not None:
        heads = np.asarray(heads)
        ax.scatter(heads[:, 0], heads[:, 1], s=60, marker="x", color="black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal", adjustable="datalim")  # circles look round, spirals undistorted
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(title="digit", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=4,
              frameon=False)
    return _save(fig, path)


def plot_interpolations(images, n_steps, path):
    """Decoded interpolations [n_pairs * n_steps, pixels] (the steps of one pair consecutive)
    as a grid with one row per pair, one column per step."""
    return save_image(images, path, nrow=n_steps)
