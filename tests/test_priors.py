"""The priors (priors.py): shapes, moments, component assignment, log_prob against closed forms,
the Paddle-driven draws train.py uses, and the label-routing statistic."""
import math

import numpy as np
import paddle
import pytest

from priors import (UNLABELED, GaussianMixturePrior, GaussianPrior, PaddleRandom,
                    SwissRollPrior, component_accuracy, prior_fit)

N = 20000  # samples for moment checks: standard errors of ~1% of a std


def rng(seed=0):
    return np.random.default_rng(seed)


# ---- Gaussian -----------------------------------------------------------------------------
def test_gaussian_shape_and_moments():
    prior = GaussianPrior(dim=3, std=2.0)
    z = prior.sample(N, rng())
    assert z.shape == (N, 3)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=5 * 2.0 / math.sqrt(N))
    np.testing.assert_allclose(z.std(axis=0), 2.0, rtol=0.03)
    np.testing.assert_allclose(np.corrcoef(z.T)[np.triu_indices(3, 1)], 0.0, atol=0.04)
    with pytest.raises(ValueError, match="no components"):
        prior.sample(4, rng(), labels=np.zeros(4, int))


def test_gaussian_log_prob_is_the_product_of_1d_normal_densities():
    prior = GaussianPrior(dim=4, std=0.7)
    z = rng(1).normal(size=(6, 4))
    direct = [sum(math.log(math.exp(-0.5 * (v / 0.7) ** 2) / (0.7 * math.sqrt(2 * math.pi)))
                  for v in row) for row in z]
    np.testing.assert_allclose(prior.log_prob(z), direct, rtol=1e-12)
    assert prior.log_prob(np.zeros((1, 4)))[0] == pytest.approx(-4 * math.log(0.7 * math.sqrt(
        2 * math.pi)))


def test_paddle_draws_of_the_gaussian_are_the_trainers_former_draws():
    # train.py used to call paddle.normal(0.0, std, [n, latent_dim]) itself; the default run
    # must see the same numbers (and a resumed run the same stream) through the prior.
    paddle.seed(123)
    before = paddle.normal(0.0, 5.0, [100, 8]).numpy()
    after_before = paddle.rand([3]).numpy()  # the generator's state after that draw
    paddle.seed(123)
    through_prior = GaussianPrior(8, 5.0).sample(100, PaddleRandom())
    assert through_prior.dtype == np.float32
    np.testing.assert_array_equal(through_prior, before)
    np.testing.assert_array_equal(paddle.rand([3]).numpy(), after_before)


def test_percentile_grid_spans_the_gaussian():
    grid = GaussianPrior(2, 5.0).percentile_grid(5)
    assert grid.shape == (25, 2)
    q95 = 5.0 * 1.6448536269514722
    np.testing.assert_allclose(grid[0], [-q95, q95], rtol=1e-9)  # top left: z1 low, z2 high
    np.testing.assert_allclose(grid[-1], [q95, -q95], rtol=1e-9)
    np.testing.assert_allclose(grid[12], [0.0, 0.0], atol=1e-12)  # the middle is the mean


# ---- Mixture of Gaussians -------------------------------------------------------------------
def mixture(**kw):
    return GaussianMixturePrior(**{"n_components": 10, "radius": 1.4, "radial_std": 0.5,
                                   "tangential_std": 0.05, **kw})


def test_mixture_components_are_evenly_spaced_petals():
    prior = mixture()
    np.testing.assert_allclose(np.linalg.norm(prior.means, axis=1), 1.4)
    angles = np.arctan2(prior.means[:, 1], prior.means[:, 0]) % (2 * np.pi)
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(10) / 10, atol=1e-12)
    np.testing.assert_array_equal(prior.assign(prior.means), np.arange(10))


@pytest.mark.parametrize("k", [0, 3, 7])
def test_mixture_labelled_samples_have_their_components_moments(k):
    prior = mixture()
    z = prior.sample(N, rng(k), labels=np.full(N, k))
    assert z.shape == (N, 2)
    angle = 2 * np.pi * k / 10
    radial, tangential = np.array([np.cos(angle), np.sin(angle)]), np.array(
        [-np.sin(angle), np.cos(angle)])
    np.testing.assert_allclose(z.mean(axis=0), 1.4 * radial, atol=5 * 0.5 / math.sqrt(N))
    cov = np.cov(z.T)
    expected = 0.25 * np.outer(radial, radial) + 0.0025 * np.outer(tangential, tangential)
    np.testing.assert_allclose(cov, expected, atol=0.02 * 0.25)
    # nearly all are assigned to their own component (a few near the centre are not)
    assert np.mean(prior.assign(z) == k) > 0.97


def test_mixture_unlabelled_rows_come_from_all_components_evenly():
    prior = mixture()
    labels = np.full(N, UNLABELED)
    labels[:N // 2] = 4  # the first half labelled 4, the rest unlabelled
    z = prior.sample(N, rng(), labels)
    assigned = prior.assign(z)
    assert np.mean(assigned[:N // 2] == 4) > 0.97
    counts = np.bincount(assigned[N // 2:], minlength=10) / (N // 2)
    np.testing.assert_allclose(counts, 0.1, atol=0.015)
    np.testing.assert_allclose(prior.sample(N, rng()).mean(axis=0), 0.0, atol=0.03)
    with pytest.raises(ValueError, match="labels must be in"):
        prior.sample(3, rng(), labels=np.array([0, 10, 1]))
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        prior.sample(3, rng(), labels=np.array([0, 1]))


def gaussian_log_density(z, mean, cov):
    """The textbook multivariate normal log-density, with numpy's inverse and determinant."""
    d = z - mean
    return (-0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
            - 0.5 * np.log(np.linalg.det(2 * np.pi * cov)))


def test_mixture_log_prob_against_the_closed_form():
    prior = mixture()
    z = rng(2).normal(0.0, 1.5, (50, 2))
    densities = []
    for k in range(10):
        r, t = prior.radial[k], prior.tangential[k]
        cov = 0.25 * np.outer(r, r) + 0.0025 * np.outer(t, t)
        densities.append(np.exp(gaussian_log_density(z, prior.means[k], cov)))
    direct = np.log(np.mean(densities, axis=0))
    np.testing.assert_allclose(prior.log_prob(z), direct, rtol=1e-9)
    # one component: the mixture is that Gaussian
    single = GaussianMixturePrior(1, radius=2.0, radial_std=0.3, tangential_std=0.1)
    np.testing.assert_allclose(
        single.log_prob(z), gaussian_log_density(z, [2.0, 0.0], np.diag([0.09, 0.01])),
        rtol=1e-9)


def test_mixture_density_integrates_to_one():
    prior = mixture(tangential_std=0.2)  # wide enough for a 0.02 grid to resolve it
    step = 0.02
    axis = np.arange(-4.0, 4.0, step) + step / 2
    z1, z2 = np.meshgrid(axis, axis)
    mass = np.exp(prior.log_prob(np.stack([z1.ravel(), z2.ravel()], axis=1))).sum() * step ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_component_grid_walks_the_components_axes():
    prior = mixture()
    grid = prior.component_grid(2, 5)
    assert grid.shape == (25, 2)
    np.testing.assert_allclose(grid[12], prior.means[2], atol=1e-12)  # the centre cell
    radial_offsets = (grid - prior.means[2]) @ prior.radial[2]
    assert radial_offsets[0] > 0 > radial_offsets[-1]  # top row outermost
    np.testing.assert_array_equal(prior.assign(grid), 2)


# ---- Swiss roll ---------------------------------------------------------------------------
def test_swiss_roll_shape_and_moments():
    prior = SwissRollPrior(10, radius=3.0, turns=2.0)
    z = prior.sample(N, rng())
    assert z.shape == (N, 2)
    u = (np.linalg.norm(z, axis=1) / 3.0) ** 2  # |z|^2 = radius^2 u with u ~ U(0, 1)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert u.mean() == pytest.approx(0.5, abs=0.01)
    assert u.var() == pytest.approx(1 / 12, abs=0.005)
    # on the curve: the angle is 2 pi turns sqrt(u)
    angle = 2 * np.pi * 2.0 * np.sqrt(u)
    np.testing.assert_allclose(z, 3.0 * np.sqrt(u)[:, None] * np.stack(
        [np.cos(angle), np.sin(angle)], axis=1), atol=1e-9)


def test_swiss_roll_sections_and_assignment():
    prior = SwissRollPrior(10)
    labels = rng(1).integers(0, 10, N)
    z = prior.sample(N, rng(), labels)
    u = (np.linalg.norm(z, axis=1) / prior.radius) ** 2
    np.testing.assert_array_equal(np.floor(u * 10 + 1e-9).astype(int), labels)
    assert np.mean(prior.assign(z) == labels) > 0.995  # only points at a section's very edge
    unlabelled = prior.assign(prior.sample(N, rng(2), np.full(N, UNLABELED)))
    np.testing.assert_allclose(np.bincount(unlabelled, minlength=10) / N, 0.1, atol=0.01)
    walk = prior.walk(30)
    assert np.all(np.diff(np.linalg.norm(walk, axis=1)) > 0)  # from the centre outwards
    np.testing.assert_array_equal(prior.assign(walk), np.repeat(np.arange(10), 3))
    with pytest.raises(NotImplementedError, match="no density"):
        prior.log_prob(z)


# ---- shared behaviour ----------------------------------------------------------------------
@pytest.mark.parametrize("prior", [GaussianPrior(2, 1.0), mixture(), SwissRollPrior(10)],
                         ids=["gaussian", "gmm", "swiss_roll"])
def test_samples_are_a_function_of_the_generator_state(prior):
    np.testing.assert_array_equal(prior.sample(50, rng(7)), prior.sample(50, rng(7)))
    assert not np.array_equal(prior.sample(50, rng(7)), prior.sample(50, rng(8)))
    paddle.seed(11)
    first = prior.sample(50, PaddleRandom())
    paddle.seed(11)
    np.testing.assert_array_equal(prior.sample(50, PaddleRandom()), first)
    assert first.shape == (50, 2)


@pytest.mark.parametrize("prior", [mixture(), SwissRollPrior(10)], ids=["gmm", "swiss_roll"])
def test_component_accuracy_on_synthetic_codes(prior):
    labels = np.arange(5000) % 10
    codes = prior.sample(5000, rng(3), labels)
    assert component_accuracy(prior, codes, labels) > 0.97
    # the same codes with their labels shuffled: chance
    shuffled = rng(4).permutation(labels)
    assert abs(component_accuracy(prior, codes, shuffled) - 0.1) < 0.03
    # codes collapsed onto one component: right for one class in ten
    assert component_accuracy(prior, np.repeat(codes[:1], 5000, axis=0), labels) == \
        pytest.approx(0.1)


# ---- how closely codes follow a prior -------------------------------------------------------
def test_prior_fit_tells_matched_codes_from_a_lump():
    mixture = GaussianMixturePrior(10, 1.4, 0.5, 0.05)
    reference = mixture.sample(N, rng(1))
    matched = prior_fit(mixture, mixture.sample(N, rng(2)), reference)
    assert matched["share_distance"] < 0.02
    assert matched["code_log_prob"] == pytest.approx(matched["prior_sample_log_prob"], abs=0.05)
    lump = prior_fit(mixture, np.tile(mixture.means[3], (100, 1)), reference)
    assert lump["component_share"][3] == 1.0 and lump["share_distance"] == pytest.approx(0.9)

    gaussian = GaussianPrior(2, 5.0)
    crowded = prior_fit(gaussian, 0.3 * gaussian.sample(N, rng(2)), gaussian.sample(N, rng(1)))
    assert "share_distance" not in crowded  # no components
    assert crowded["code_log_prob"] > crowded["prior_sample_log_prob"] + 0.5
    roll = SwissRollPrior(10, 3.0, 2.0)
    assert set(prior_fit(roll, roll.sample(100, rng(2)), None)) == {"component_share",
                                                                    "share_distance"}
