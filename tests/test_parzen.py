"""The Parzen-window estimator (utils/parzen_ll.py): closed forms, a float64 reference,
numerical stability and the small helpers around it."""
import math
import os
import sys
import tracemalloc

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from benchmarks.bench_parzen import mnist_like  # noqa: E402
from utils.parzen_ll import (cross_validate_sigma, log_mean_exp,  # noqa: E402
                             mean_and_standard_error, parzen_log_likelihood,
                             parzen_log_likelihood_direct, select_sigma, squared_distances)

SIGMAS = np.logspace(-1.0, -0.3, 20)  # the grid eval.py cross-validates (reference)


def gaussian_log_density(x, mean, sigma):
    """log N(x; mean, sigma^2 I) written out by hand."""
    d = x.shape[-1]
    sq = np.sum((np.asarray(x, np.float64) - np.asarray(mean, np.float64)) ** 2, axis=-1)
    return -sq / (2 * sigma ** 2) - d / 2 * math.log(2 * math.pi) - d * math.log(sigma)


@pytest.fixture(scope="module")
def mnist_data():
    """300 points and 2,000 samples of MNIST-like 784-d images (sparse, mostly 0 or ~1)."""
    rng = np.random.default_rng(7)
    return mnist_like(300, rng), mnist_like(2000, rng)


@pytest.fixture(scope="module")
def direct_ll(mnist_data):
    x, samples = mnist_data
    return parzen_log_likelihood_direct(x, samples, SIGMAS)


# ---- closed forms ---------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.7])
def test_one_centre_is_a_gaussian_density(sigma):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(25, 12))
    centre = rng.uniform(0, 1, size=(1, 12))
    expected = gaussian_log_density(x, centre[0], sigma)
    fast = parzen_log_likelihood(x, centre, sigma)
    direct = parzen_log_likelihood_direct(x, centre, sigma)
    assert fast.shape == (25,)
    np.testing.assert_allclose(direct, expected, rtol=1e-12, atol=1e-9)
    # float32 distances: absolute error ~ 1e-6 * d / sigma^2
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-3)


def test_two_equal_centres_equal_one():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(10, 20))
    centre = rng.uniform(0, 1, size=(1, 20))
    one = parzen_log_likelihood(x, centre, [0.2, 0.5])
    two = parzen_log_likelihood(x, np.repeat(centre, 2, axis=0), [0.2, 0.5])
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-4)
    np.testing.assert_allclose(parzen_log_likelihood_direct(x, np.repeat(centre, 2, axis=0), 0.2),
                               gaussian_log_density(x, centre[0], 0.2), rtol=1e-12)


def test_mixture_of_two_centres_by_hand():
    x = np.array([[0.0, 0.0], [1.0, 2.0]])
    centres = np.array([[0.0, 1.0], [3.0, 0.0]])
    sigma = 0.8
    expected = np.log(0.5 * np.exp(gaussian_log_density(x, centres[0], sigma))
                      + 0.5 * np.exp(gaussian_log_density(x, centres[1], sigma)))
    np.testing.assert_allclose(parzen_log_likelihood(x, centres, sigma), expected, atol=1e-5)


# ---- agreement with float64 on realistic data -----------------------------------------------
def test_agrees_with_float64_direct_on_mnist_like_data(mnist_data, direct_ll):
    x, samples = mnist_data
    fast = parzen_log_likelihood(x, samples, SIGMAS)
    assert fast.shape == (len(SIGMAS), len(x)) and fast.dtype == np.float64
    err = np.abs(fast - direct_ll)
    worst_sigma = SIGMAS[err.max(axis=1).argmax()]
    assert err.max() < 0.01, f"max error {err.max():.4f} nats at sigma {worst_sigma:.3f}"
    # the mean LL chooses the same sigma either way
    assert np.argmax(fast.mean(axis=1)) == np.argmax(direct_ll.mean(axis=1))


def test_direct_matches_the_formula_written_out(mnist_data, direct_ll):
    x, samples = mnist_data
    for i, k in [(3, 0), (250, 19)]:
        # one point, one sigma: log of the mean of the 2,000 Gaussian densities, by hand
        logs = gaussian_log_density(x[i], samples, SIGMAS[k])
        top = logs.max()
        expected = top + math.log(np.mean(np.exp(logs - top)))
        assert direct_ll[k, i] == pytest.approx(expected, abs=1e-8)


def test_translation_invariance_from_centring(mnist_data):
    # the Parzen LL depends only on differences; shifting both sets by 100 per pixel makes
    # ||x||^2 ~ 8e6, where an uncentred float32 expansion loses whole units of distance
    x, samples = mnist_data
    x, samples = x[:30], samples[:500]
    base = parzen_log_likelihood(x, samples, SIGMAS[[0, -1]])
    shifted = parzen_log_likelihood(x + 100, samples + 100, SIGMAS[[0, -1]])
    np.testing.assert_allclose(shifted, base, rtol=0, atol=0.01)


def test_chunking_and_threads_do_not_change_the_result(mnist_data):
    x, samples = mnist_data
    x = x[:40]
    by_blocks = {b: parzen_log_likelihood(x, samples, SIGMAS, block_size=b, n_threads=1)
                 for b in (1, 7, 64, 1000)}
    # BLAS may sum a block of another height in another order (a 1-row block is a
    # matrix-vector product; OpenBLAS also picks kernels by the matrix shape): the results then
    # differ by float32 rounding (~1e-3 nats at sigma 0.1), never by a misplaced row, which
    # would move them by whole nats
    for b in (1, 7, 1000):
        np.testing.assert_allclose(by_blocks[b], by_blocks[64], rtol=0, atol=5e-3)
    # threads change only which worker computes a block, not the arithmetic
    for b in (1, 7, 64):
        threaded = parzen_log_likelihood(x, samples, SIGMAS, block_size=b, n_threads=2)
        np.testing.assert_array_equal(threaded, by_blocks[b])


def test_memory_stays_bounded_by_the_block():
    # 2,000 x 5,000 distances would be 40 MB in float32 (80 MB in float64, per sigma); blocks of
    # 100 rows need ~2 MB each plus a [64, 5000] scratch, per thread
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(2000, 16)).astype(np.float32)
    samples = rng.uniform(size=(5000, 16)).astype(np.float32)
    tracemalloc.start()
    try:
        ll = parzen_log_likelihood(x, samples, SIGMAS, block_size=100, n_threads=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ll.shape == (len(SIGMAS), 2000)
    assert peak < 12e6, f"peak {peak / 1e6:.1f} MB"


def test_default_block_size_bounds_memory_and_shares_work():
    from utils.parzen_ll import BLOCK_BYTES, default_block_size
    assert default_block_size(10000, 10000, 2) * 10000 * 4 <= BLOCK_BYTES
    assert default_block_size(1000, 10000, 2) == 500       # both threads get rows
    assert default_block_size(3, 10, 2) == 2
    assert default_block_size(10, 10**9, 1) == 1           # never 0 rows


def test_progress_reports_every_row_once():
    rng = np.random.default_rng(2)
    x, samples = rng.uniform(size=(23, 5)), rng.uniform(size=(9, 5))
    seen = []
    parzen_log_likelihood(x, samples, 0.5, block_size=5, n_threads=2, progress=seen.append)
    assert seen == [5, 10, 15, 20, 23]


# ---- log-mean-exp ---------------------------------------------------------------------------
def test_log_mean_exp_is_stable_for_huge_negative_values():
    a = np.array([[-1e4, -1e4 - 1.0, -1e4 - 2.0], [-5e3, -5e3, -5e3]])
    with np.errstate(divide="ignore"):
        naive = np.log(np.mean(np.exp(a), axis=1))
    assert np.all(np.isneginf(naive))  # the case the stable form exists for
    expected = np.array([-1e4 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3), -5e3])
    np.testing.assert_allclose(log_mean_exp(a, axis=1), expected, rtol=1e-14)


def test_log_mean_exp_large_positive_and_axis():
    a = np.array([[1000.0, 1000.0], [0.0, math.log(3.0)]])
    np.testing.assert_allclose(log_mean_exp(a, axis=1), [1000.0, math.log(2.0)], rtol=1e-14)
    # columns [1000, 0] and [1000, log 3]: exp(-1000) is negligible next to exp(0)
    np.testing.assert_allclose(log_mean_exp(a, axis=0), [1000.0 + math.log(0.5)] * 2,
                               rtol=1e-14)
    assert np.isneginf(log_mean_exp(np.array([-np.inf, -np.inf])))


def test_tiny_sigma_far_points_stay_finite():
    # every exp(-d / 2 sigma^2) underflows in float64; the LL must still be exact
    x = np.array([[0.0, 0.0]])
    centres = np.array([[3.0, 4.0], [6.0, 8.0]])  # distances^2 25 and 100
    sigma = 0.01
    expected = gaussian_log_density(x, centres[0], sigma) + math.log(0.5)
    ll = parzen_log_likelihood(x, centres, sigma)
    assert np.all(np.isfinite(ll))
    np.testing.assert_allclose(ll, expected, rtol=1e-6)
    np.testing.assert_allclose(parzen_log_likelihood_direct(x, centres, sigma), expected,
                               rtol=1e-12)


# ---- distances --------------------------------------------------------------------------------
def test_distances_are_clamped_at_zero_for_identical_points():
    x = np.random.default_rng(3).uniform(0, 1, size=(50, 784)).astype(np.float32)
    # the float32 expansion itself goes negative on the diagonal: the case the clamp is for
    x_c = x - x.mean(axis=0)
    norms = np.einsum("ij,ij->i", x_c, x_c)
    raw = norms[:, None] + norms[None, :] - 2 * (x_c @ x_c.T)
    assert np.any(np.diag(raw) < 0)
    d = squared_distances(x, x)
    assert d.shape == (50, 50) and d.dtype == np.float32
    assert np.all(d >= 0)
    assert np.all(np.diag(d) < 1e-3)  # float32 rounding at ||x_c||^2 ~ 65
    exact = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(d, exact, rtol=1e-5, atol=1e-3)


def test_point_on_a_centre_never_beats_the_gaussian_peak():
    # centres: x itself and a far point (weight exp(-huge) = 0). A negative distance from
    # rounding would push the LL above the mixture's maximum, log(1/2) + log N(0; 0, sigma^2 I)
    x = np.random.default_rng(4).uniform(0, 1, size=(40, 784)).astype(np.float32)
    top = math.log(0.5) - 784 * math.log(0.1 * math.sqrt(2 * math.pi))
    far = 3 + np.random.default_rng(5).uniform(0, 1, size=x.shape).astype(np.float32)
    ll = np.array([parzen_log_likelihood(x[i:i + 1], np.stack([x[i], far[i]]), 0.1)[0]
                   for i in range(len(x))])
    assert np.all(ll <= top)
    # here centring cannot shrink the norms (||x_c||^2 ~ 1800): float32 rounding of the
    # distance ~ 1e-3, i.e. ~ 0.05 nats at sigma = 0.1
    np.testing.assert_allclose(ll, top, rtol=0, atol=0.1)


# ---- sigma selection and summaries -----------------------------------------------------------
def test_select_sigma_picks_the_argmax():
    sigmas = [0.1, 0.2, 0.3, 0.4]
    assert select_sigma([-5.0, 3.0, 2.9, -1.0], sigmas) == (0.2, 1)
    assert select_sigma([1.0, 1.0, 0.0, 0.0], sigmas) == (0.1, 0)  # ties: the first
    with pytest.raises(ValueError):
        select_sigma([1.0, 2.0], sigmas)
    with pytest.raises(ValueError):
        select_sigma([1.0, np.nan, 0.0, 0.0], sigmas)


def test_cross_validate_sigma_matches_direct(mnist_data, direct_ll):
    x, samples = mnist_data
    result = cross_validate_sigma(samples, x, SIGMAS)
    best = int(np.argmax(direct_ll.mean(axis=1)))
    assert result["index"] == best and result["sigma"] == pytest.approx(SIGMAS[best])
    np.testing.assert_allclose(result["valid_ll"], direct_ll.mean(axis=1), atol=0.01)
    # the curve is not flat: a wrong sigma costs real log-likelihood
    assert max(result["valid_ll"]) - min(result["valid_ll"]) > 10


def test_mean_and_standard_error_by_hand():
    ll = [1.0, 2.0, 4.0, 5.0]
    mean, se = mean_and_standard_error(ll)
    # mean 3; population variance (4 + 1 + 1 + 4) / 4 = 2.5; se = sqrt(2.5) / sqrt(4)
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(math.sqrt(2.5) / 2.0)


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), []])
def test_bad_sigma_is_refused(bad):
    with pytest.raises(ValueError, match="sigma"):
        parzen_log_likelihood(np.zeros((2, 3)), np.zeros((2, 3)), bad)


def test_mismatched_dimensions_are_refused():
    with pytest.raises(ValueError, match="features"):
        parzen_log_likelihood(np.zeros((2, 3)), np.zeros((2, 4)), 0.1)
