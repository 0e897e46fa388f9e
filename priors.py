"""The priors p(z) the adversarial regularization pushes the codes onto (paper §2, Figures 2-4).

Small samplers, shared by train.py (prior samples of the discriminator phase), eval.py
(the Parzen window's samples), plot.py (the decoded manifolds) and the tests:

- ``GaussianPrior(dim, std)``: N(0, std^2 I) in any dimension (paper §3, Figures 2a, 7);
- ``GaussianMixturePrior``: 10 two-dimensional Gaussians placed evenly on a circle, each
  elongated along its radius, the petal shape of the paper's Figures 2b and 4a;
- ``SwissRollPrior``: a 2-d spiral cut into 10 equal sections, first section innermost
  (Figure 4c: "the first 10% of swiss roll is assigned to digit 0 and so on");
- ``CategoricalPrior(K)``: one-hot rows of the uniform Cat(K), the prior of the categorical
  code y of the semi-supervised and clustering AAEs (paper §5-6, Figure 8).

``sample(n, rng, labels=None)`` draws n codes. ``rng`` is a ``numpy.random.Generator`` or
``PaddleRandom()``; a prior uses only the three Generator methods ``normal``, ``random`` and
``integers``, and ``PaddleRandom`` provides them from Paddle's global generator, which
train.py seeds at every step (``paddle.seed(step_seed(...))``), so training stays a function
of (seed, step) and resumes exactly. With ``labels`` (ints, ``UNLABELED`` = -1 for "no label"),
row i comes from component / section ``labels[i]``, and from the whole prior where it is -1
(paper §2.3: positive samples of unlabelled points come from the full mixture).

``log_prob(z)`` is the exact log-density where one exists (Gaussian, mixture); ``assign(z)``
names the component / section a code is nearest to (for the label-routing statistic).
"""
import math

import numpy as np

UNLABELED = -1  # the label of a training image whose class is not given to the model


class PaddleRandom:
    """numpy-Generator-like draws from Paddle's global generator, returned as numpy arrays.

    Paddle's generator is what train.py seeds per step; drawing prior samples from it keeps the
    step a function of its seed. ``normal`` calls ``paddle.normal(loc, scale, shape)`` exactly
    as the trainer always has, so the default Gaussian prior consumes the same random numbers
    and gives the same float32 values as before priors were selectable."""

    def normal(self, loc, scale, size):
        import paddle
        return paddle.normal(float(loc), float(scale), list(_shape(size))).numpy()

    def random(self, size):
        import paddle
        return paddle.rand(list(_shape(size))).numpy()  # uniform on [0, 1)

    def integers(self, low, high, size):
        import paddle
        return paddle.randint(int(low), int(high), list(_shape(size)), dtype="int64").numpy()


def _shape(size):
    return (size,) if isinstance(size, (int, np.integer)) else tuple(size)


def _check_labels(labels, n, n_components):
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} samples")
    if labels.size and (labels.min() < UNLABELED or labels.max() >= n_components):
        raise ValueError(f"labels must be in [{UNLABELED}, {n_components - 1}], got "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def _components(n, rng, labels, n_components):
    """The component of each of n draws: ``labels`` where given, uniform where UNLABELED.
    All n are drawn first (the same number of draws whatever the labels), then replaced."""
    drawn = np.asarray(rng.integers(0, n_components, n), dtype=np.int64)
    if labels is None:
        return drawn
    labels = _check_labels(labels, n, n_components)
    return np.where(labels == UNLABELED, drawn, labels)


def _logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


# ---------------------------------------------------------------------------------------
class GaussianPrior:
    """N(0, std^2 I) in ``dim`` dimensions. No components: ``labels`` must be None."""

    n_components = 0

    def __init__(self, dim, std):
        if dim < 1 or not std > 0:
            raise ValueError(f"need dim >= 1 and std > 0, got {dim}, {std}")
        self.dim, self.std = int(dim), float(std)

    def sample(self, n, rng, labels=None):
        if labels is not None:
            raise ValueError("a Gaussian prior has no components to condition on")
        return rng.normal(0.0, self.std, (n, self.dim))  # [n, dim]

    def log_prob(self, z):
        z = np.asarray(z, dtype=np.float64)
        return (-0.5 * np.sum((z / self.std) ** 2, axis=-1)
                - self.dim * (math.log(self.std) + 0.5 * math.log(2 * math.pi)))

    def percentile_grid(self, n_steps, low=0.05, high=0.95):
        """Figure 2e: a [n_steps^2, 2] grid of codes at evenly spaced percentiles of each axis
        (2-d only), row-major: rows step through z2 from high to low, columns through z1."""
        if self.dim != 2:
            raise ValueError("a percentile grid needs a 2-d Gaussian")
        q = self.std * _normal_quantiles(np.linspace(low, high, n_steps))
        z1, z2 = np.meshgrid(q, q[::-1])
        return np.stack([z1.ravel(), z2.ravel()], axis=1)


class GaussianMixturePrior:
    """A mixture of ``n_components`` equally weighted 2-d Gaussians (paper Figures 2b, 4a).

    Component k has its mean at angle 2 pi k / K on a circle of ``radius`` and covariance
    R_k diag(radial_std^2, tangential_std^2) R_k^T, R_k the rotation by that angle: a petal
    pointing away from the origin."""

    dim = 2

    def __init__(self, n_components=10, radius=1.4, radial_std=0.5, tangential_std=0.05):
        if n_components < 1 or not (radius >= 0 and radial_std > 0 and tangential_std > 0):
            raise ValueError("need n_components >= 1, radius >= 0 and positive stds")
        self.n_components = int(n_components)
        self.radius, self.radial_std = float(radius), float(radial_std)
        self.tangential_std = float(tangential_std)
        angles = 2 * np.pi * np.arange(self.n_components) / self.n_components
        self.radial = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # [K, 2] unit
        self.tangential = np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # [K, 2]
        self.means = self.radius * self.radial  # [K, 2]

    def sample(self, n, rng, labels=None):
        k = _components(n, rng, labels, self.n_components)  # [n]
        eps = np.asarray(rng.normal(0.0, 1.0, (n, 2)), dtype=np.float64)  # [n, 2]
        return self.component_points(k, eps[:, 0] * self.radial_std,
                                     eps[:, 1] * self.tangential_std)

    def component_points(self, k, radial_offset, tangential_offset):
        """Codes at the given offsets along the radial and tangential axes of components k."""
        return (self.means[k] + np.asarray(radial_offset)[:, None] * self.radial[k]
                + np.asarray(tangential_offset)[:, None] * self.tangential[k])

    def component_log_probs(self, z):
        """log N(z; mu_k, Sigma_k) for every component: [n, K]."""
        d = np.asarray(z, dtype=np.float64)[:, None, :] - self.means[None]  # [n, K, 2]
        u = np.sum(d * self.radial[None], axis=-1) / self.radial_std  # [n, K]
        v = np.sum(d * self.tangential[None], axis=-1) / self.tangential_std
        return (-0.5 * (u ** 2 + v ** 2) - math.log(2 * math.pi)
                - math.log(self.radial_std * self.tangential_std))

    def log_prob(self, z):
        return _logsumexp(self.component_log_probs(z) - math.log(self.n_components), axis=1)

    def assign(self, z):
        """The most probable component of each code (equal weights: the highest density)."""
        return self.component_log_probs(z).argmax(axis=1)

    def component_grid(self, k, n_steps, low=0.05, high=0.95):
        """Figure 4b: [n_steps^2, 2] codes of component k at evenly spaced percentiles along
        its tangential (columns) and radial (rows, outermost first) axes."""
        q = _normal_quantiles(np.linspace(low, high, n_steps))
        t, r = np.meshgrid(q * self.tangential_std, q[::-1] * self.radial_std)
        return self.component_points(np.full(t.size, k), r.ravel(), t.ravel())


class SwissRollPrior:
    """A 2-d swiss roll (paper Figure 4c): the spiral z(u) = radius sqrt(u) (cos a, sin a),
    a = 2 pi turns sqrt(u), with u ~ U(0, 1); section k is u in [k/K, (k+1)/K), so the first
    section is innermost. |z|^2 = radius^2 u, so every section holds the same probability.

    There is no ``log_prob``: the distribution lives on a curve, a set of zero area, so it has
    no density with respect to area in the plane (it would be infinite on the curve and zero
    off it). ``assign`` uses the nearest point of the curve instead."""

    dim = 2

    def __init__(self, n_components=10, radius=3.0, turns=2.0, points_per_section=200):
        if n_components < 1 or not (radius > 0 and turns > 0):
            raise ValueError("need n_components >= 1 and positive radius and turns")
        self.n_components = int(n_components)
        self.radius, self.turns = float(radius), float(turns)
        # the curve at the centres of K * points_per_section equal steps of u: the nearest
        # of these is the nearest point of the curve up to half a step
        m = self.n_components * int(points_per_section)
        self._curve_u = (np.arange(m) + 0.5) / m
        self._curve = self.points(self._curve_u)  # [m, 2]

    def points(self, u):
        """The curve at parameters u in [0, 1] (u = 0 the centre, 1 the outer end)."""
        s = np.sqrt(np.asarray(u, dtype=np.float64))
        angle = 2 * np.pi * self.turns * s
        return self.radius * s[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)

    def sample(self, n, rng, labels=None):
        k = _components(n, rng, labels, self.n_components)
        within = np.asarray(rng.random(n), dtype=np.float64)  # position inside the section
        return self.points((k + within) / self.n_components)

    def log_prob(self, z):
        raise NotImplementedError("a swiss roll lives on a curve: it has no density in the "
                                  "plane (see the class docstring)")

    def nearest_u(self, z, block=2048):
        """The parameter u of the curve point nearest to each code (to half a grid step)."""
        z = np.asarray(z, dtype=np.float64)
        out = np.empty(len(z))
        for start in range(0, len(z), block):  # [block, m] distances at a time
            d = ((z[start:start + block, None, :] - self._curve[None]) ** 2).sum(axis=-1)
            out[start:start + block] = self._curve_u[d.argmin(axis=1)]
        return out

    def assign(self, z):
        return np.minimum((self.nearest_u(z) * self.n_components).astype(np.int64),
                          self.n_components - 1)

    def walk(self, n_steps):
        """Figure 4d: n_steps codes evenly spaced in u along the main axis of the roll."""
        return self.points((np.arange(n_steps) + 0.5) / n_steps)


class CategoricalPrior:
    """Cat(K) with equal probabilities, as one-hot rows: the prior the categorical code y of
    the semi-supervised and clustering AAEs is matched to (paper §5, §6, Figure 8)."""

    n_components = 0

    def __init__(self, n_categories):
        if n_categories < 2:
            raise ValueError(f"need at least 2 categories, got {n_categories}")
        self.dim = int(n_categories)

    def sample(self, n, rng, labels=None):
        if labels is not None:
            raise ValueError("a categorical prior has no components to condition on")
        k = np.asarray(rng.integers(0, self.dim, n), dtype=np.int64)  # [n]
        return np.eye(self.dim)[k]  # [n, K] one-hot


def _normal_quantiles(p):
    """The standard normal's inverse CDF at probabilities p (statistics.NormalDist)."""
    from statistics import NormalDist
    unit = NormalDist()
    return np.array([unit.inv_cdf(float(q)) for q in np.ravel(p)])


# ---------------------------------------------------------------------------------------
def build_prior(cfg):
    """The prior a Config asks for."""
    if cfg.prior == "gaussian":
        return GaussianPrior(cfg.latent_dim, cfg.std)
    if cfg.prior == "gmm":
        return GaussianMixturePrior(cfg.n_components, cfg.gmm_radius, cfg.gmm_radial_std,
                                    cfg.gmm_tangential_std)
    if cfg.prior == "swiss_roll":
        return SwissRollPrior(cfg.n_components, cfg.swiss_roll_radius, cfg.swiss_roll_turns)
    raise ValueError(f"unknown prior {cfg.prior!r}")


def component_accuracy(prior, codes, labels, assigned=None):
    """The fraction of codes whose nearest component / section (``prior.assign``) is their
    label's: how well label information routed each digit to its own part of the prior
    (chance: 1 / n_components). ``assigned``: ``prior.assign(codes)`` if already computed (the
    swiss roll's takes seconds)."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean((prior.assign(codes) if assigned is None else assigned) == labels))


def prior_fit(prior, codes, prior_samples, assigned=None):
    """How closely codes [n, d] follow the prior, two simple statistics:
    - ``component_share``: the fraction of codes whose nearest component / section
      (``prior.assign``) is each one, and ``share_distance``, its total variation distance
      from the prior's equal shares (0: every part used as the prior uses it; 0.9: all codes
      in one of 10). Mixture and swiss roll only.
    - ``code_log_prob``: the prior's mean log-density at the codes, next to
      ``prior_sample_log_prob``, the same at ``prior_samples`` [m, d] drawn from the prior:
      a matched code cloud scores about as high; higher, the codes crowd where the prior is
      densest; lower, they reach where it has little mass. Priors with a density only.
    ``assigned``: as in ``component_accuracy``.
    """
    fit = {}
    if hasattr(prior, "assign"):
        assigned = prior.assign(codes) if assigned is None else assigned
        share = np.bincount(assigned, minlength=prior.n_components) / len(codes)
        fit["component_share"] = share.tolist()
        fit["share_distance"] = float(0.5 * np.abs(share - 1 / prior.n_components).sum())
    if not isinstance(prior, SwissRollPrior):
        fit["code_log_prob"] = float(np.mean(prior.log_prob(codes)))
        fit["prior_sample_log_prob"] = float(np.mean(prior.log_prob(prior_samples)))
    return fit


SAMPLE_GRID_ROWS = 10


def grid_codes(prior, rng, label_columns=0, rows=SAMPLE_GRID_ROWS):
    """The codes decoded for a sample grid: (codes [n, d], the decoder's labels [n] or None,
    images per grid row).

    ``label_columns`` > 0 (a decoder that takes a class or category): a row per style drawn
    from the prior, a column per class (the paper's Figure 7). A prior with components: a
    column per component. Otherwise rows * rows samples of the prior."""
    if label_columns:
        styles = prior.sample(rows, rng)  # [rows, latent_dim]
        return (np.repeat(styles, label_columns, axis=0), np.tile(np.arange(label_columns), rows),
                label_columns)
    if prior.n_components:
        components = np.tile(np.arange(prior.n_components), rows)
        return prior.sample(len(components), rng, components), None, prior.n_components
    return prior.sample(rows * rows, rng), None, rows
