"""rankrobust.bases against numpy.fft, scipy.fft and PyWavelets on real photos and CIFAR images."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import scipy.fft
import torch

from rankrobust import bases
from rankrobust.bases import BasisTransform, cutoff_range, decompose, energy_kept, high, low
from rankrobust.errors import ConfigError
from rankrobust.svd import factorize

TOL = 1e-5


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Three real 224x224 photos (float32, [0, 1])."""
    pytest.importorskip("skimage")
    from rankrobust.data.photos import center_crops

    return center_crops(224, ("astronaut", "coffee", "chelsea"))


def _fourier_ref(x: np.ndarray, r: int) -> np.ndarray:
    H, W = x.shape[-2:]
    ky, kx = np.fft.fftfreq(H) * H, np.fft.fftfreq(W) * W
    mask = ky[:, None] ** 2 + kx[None, :] ** 2 <= r**2
    return np.fft.ifft2(np.fft.fft2(x.astype(np.float64)) * mask).real


def _dct_ref(x: np.ndarray, r: int) -> np.ndarray:
    H, W = x.shape[-2:]
    c = scipy.fft.dctn(x.astype(np.float64), axes=(-2, -1), norm="ortho")
    mask = np.arange(H)[:, None] ** 2 + np.arange(W)[None, :] ** 2 <= r**2
    return scipy.fft.idctn(c * mask, axes=(-2, -1), norm="ortho")


def _wavelet_ref(x: np.ndarray, k: int, wavelet: str) -> np.ndarray:
    """pywt: J levels, the J - k finest detail levels zeroed, reconstructed."""
    J = bases.wavelet_levels(*x.shape[-2:], wavelet)
    coeffs = pywt.wavedec2(x.astype(np.float64), wavelet, mode="periodization", level=J)
    for i in range(1 + k, J + 1):  # coeffs[1] is the coarsest detail level
        coeffs[i] = tuple(np.zeros_like(d) for d in coeffs[i])
    return pywt.waverec2(coeffs, wavelet, mode="periodization")


def _svd_ref(x: np.ndarray, k: int) -> np.ndarray:
    u, s, vh = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    return (u[..., :k] * s[..., None, :k]) @ vh[..., :k, :]


REFS = {
    "fourier": (_fourier_ref, [0, 1, 3, 8, 40]),
    "dct": (_dct_ref, [0, 1, 5, 17, 100]),
    "wavelet": (lambda x, k: _wavelet_ref(x, k, "haar"), [0, 1, 3, 5]),
    "svd": (_svd_ref, [1, 4, 16]),
}


@pytest.mark.parametrize("basis", list(REFS))
def test_low_matches_reference_on_photos_and_cifar(basis, photos, cifar_images):
    ref, cutoffs = REFS[basis]
    for x in (photos, cifar_images[0][:16]):
        for k in cutoffs:
            k = min(k, cutoff_range(basis, *x.shape[-2:])[1])
            got = low(x, k, basis=basis)
            want = ref(x.numpy(), k)
            assert got.shape == x.shape and got.dtype == x.dtype
            np.testing.assert_allclose(got.numpy(), want, atol=TOL, rtol=0)
            # low + high = x, and the high-pass is the residual, unclamped
            np.testing.assert_allclose(
                (got + high(x, k, basis=basis)).numpy(), x.numpy(), atol=1e-6
            )


@pytest.mark.parametrize("wavelet", ["db2", "db3", "db4"])
def test_daubechies_match_pywavelets(wavelet, photos, cifar_images):
    assert np.allclose(bases.WAVELETS[wavelet], pywt.Wavelet(wavelet).dec_lo, atol=1e-15)
    for x in (photos[:1], cifar_images[0][:8]):
        J = bases.wavelet_levels(*x.shape[-2:], wavelet)
        assert J == min(pywt.dwt_max_level(224 if x.shape[-1] == 224 else 32, wavelet), 5)
        for k in range(J + 1):
            got = low(x, k, basis="wavelet", wavelet=wavelet).numpy()
            np.testing.assert_allclose(got, _wavelet_ref(x.numpy(), k, wavelet), atol=TOL)


def test_top_cutoff_is_identity_and_clamp(cifar_images):
    x = cifar_images[0][:8]
    for basis in bases.BASES:
        top = cutoff_range(basis, 32, 32)[1]
        assert torch.equal(low(x, top, basis=basis), x)
        assert torch.count_nonzero(high(x, top, basis=basis)) == 0
        lo = low(x, cutoff_range(basis, 32, 32)[0], basis=basis, clamp=True)
        assert lo.min() >= 0 and lo.max() <= 1
    # the svd basis is the existing Factorization, unclamped
    assert torch.allclose(low(x, 3), factorize(x).low_rank(3, clamp=False), atol=1e-6)
    # Fourier radius 0 and Haar with no detail level keep each channel's mean
    mean = x.mean((-2, -1), keepdim=True).expand_as(x)
    assert torch.allclose(low(x, 0, basis="fourier"), mean, atol=1e-6)
    assert torch.allclose(low(x, 0, basis="wavelet"), mean, atol=1e-6)


@pytest.mark.parametrize("basis", bases.BASES)
def test_energy_kept_monotone_and_matches_definition(basis, cifar_images, photos):
    for x in (cifar_images[0][:16], photos):
        cuts = bases.default_cutoffs(basis, *x.shape[-2:])
        dec = decompose(x, basis)
        e = torch.stack([dec.energy_kept(k) for k in cuts])  # (cutoffs, N)
        assert e.shape == (len(cuts), x.shape[0])
        assert torch.all(e[1:] >= e[:-1] - 1e-9), "energy kept must grow with k"
        assert torch.allclose(e[-1], torch.ones_like(e[-1]))
        assert torch.all((e > 0) & (e <= 1 + 1e-9))
        k = cuts[len(cuts) // 2]
        lo = low(x, k, basis=basis).double()
        want = (lo**2).sum((1, 2, 3)) / (x.double() ** 2).sum((1, 2, 3))
        assert torch.allclose(energy_kept(x, k, basis=basis), want, atol=1e-6)
    if basis == "svd":  # energy kept = share of sum s_i^2 in the top k (Eckart-Young)
        x = cifar_images[0][:16]
        s2 = factorize(x.double()).S ** 2
        want = s2[..., :4].sum((1, 2)) / s2.sum((1, 2))
        assert torch.allclose(energy_kept(x, 4), want.to(torch.float64), atol=1e-5)


def test_bad_cutoffs_and_bases_say_the_range():
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ConfigError, match=r"radius of the fourier basis .* 0 <= k <= 23"):
        low(x, 24, basis="fourier")
    with pytest.raises(ConfigError, match=r"1 <= k <= 32"):
        low(x, 0, basis="svd")
    with pytest.raises(ConfigError, match=r"0 <= k <= 5"):
        low(x, 6, basis="wavelet")
    with pytest.raises(ConfigError, match="basis='jpeg' is not valid"):
        low(x, 1, basis="jpeg")
    with pytest.raises(ConfigError, match="wavelet='sym9'"):
        low(x, 1, basis="wavelet", wavelet="sym9")
    with pytest.raises(ConfigError, match="cannot be decomposed"):
        low(torch.rand(1, 1, 33, 33), 0, basis="wavelet")
    with pytest.raises(ConfigError, match="integer"):
        low(x, 2.0, basis="dct")
    with pytest.raises(TypeError):
        low(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), 1, basis="fourier")


def test_basis_transform(cifar_images):
    x = cifar_images[0][:4]
    t = BasisTransform(mode="low", rank=4, basis="fourier")
    assert torch.allclose(t(x), low(x, 4, basis="fourier", clamp=True))
    h = BasisTransform(mode="high", rank=2, basis="wavelet", clamp=False)
    assert torch.allclose(h(x), high(x, 2, basis="wavelet"))
    svd = BasisTransform(mode="low", rank=4)  # basis svd = RankTransform exactly
    assert torch.equal(svd(x), factorize(x).low_rank(4, clamp=True))
    with pytest.raises(ConfigError, match="0 <= rank <= 23"):
        BasisTransform(mode="low", rank=30, basis="fourier").validate(32, (32, 32))
    with pytest.raises(ConfigError, match="band"):
        BasisTransform(mode="band", band=(0, 2), basis="dct")


EMPTY_ENTRIES = {
    "low": lambda x, b: low(x, 2, basis=b),
    "low-clamped": lambda x, b: low(x, 2, basis=b, clamp=True),
    "high": lambda x, b: high(x, 2, basis=b),
    "top-cutoff": lambda x, b: low(x, cutoff_range(b, 8, 8)[1], basis=b),
    "decompose": lambda x, b: decompose(x, b).low(1),
    "transform-low": lambda x, b: BasisTransform(mode="low", rank=2, basis=b)(x),
    "transform-high": lambda x, b: BasisTransform(mode="high", rank=2, basis=b)(x),
}


@pytest.mark.parametrize("entry", sorted(EMPTY_ENTRIES))
@pytest.mark.parametrize("basis", bases.BASES)
@pytest.mark.parametrize("shape", [(0, 3, 8, 8), (2, 0, 8, 8), (0, 8, 8)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_empty_batch_gives_an_empty_result_in_every_basis(entry, basis, shape, dtype):
    x = torch.rand(shape, dtype=dtype)
    out = EMPTY_ENTRIES[entry](x, basis)
    assert out.shape == x.shape and out.dtype == dtype


@pytest.mark.parametrize("basis", bases.BASES)
def test_energy_kept_of_an_empty_batch_names_x(basis):
    with pytest.raises(ConfigError, match="x: expected at least one image"):
        energy_kept(torch.rand(0, 3, 8, 8), 2, basis=basis)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_the_gpu_matches_cpu(cifar_images):
    x = cifar_images[0][:8]
    for basis in bases.BASES:
        k = bases.default_cutoffs(basis, 32, 32)[2]
        got = low(x.cuda(), k, basis=basis)
        assert got.is_cuda
        assert torch.allclose(got.cpu(), low(x, k, basis=basis), atol=1e-5)
