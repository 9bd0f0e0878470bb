"""Tests of rankrobust.svd: maths on synthetic data and against numpy on real CIFAR-10 images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rankrobust import _svd_maths
from rankrobust.errors import ConfigError
from rankrobust.svd import (
    Factorization,
    RankTransform,
    band,
    factorize,
    high_rank,
    low_rank,
    validate_band,
    validate_rank,
)

ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def rand_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(5, 3, 32, 32, generator=g)


# --------------------------------------------------------------------------- synthetic


def test_factorization_shapes_and_order(rand_images: torch.Tensor) -> None:
    fac = factorize(rand_images)
    assert isinstance(fac, Factorization)
    assert fac.U.shape == (5, 3, 32, 32)
    assert fac.S.shape == (5, 3, 32)
    assert fac.Vh.shape == (5, 3, 32, 32)
    assert fac.full_rank == 32
    assert fac.singular_values is fac.S
    assert bool((fac.S[..., :-1] >= fac.S[..., 1:]).all())
    assert torch.allclose(fac.reconstruct(), rand_images, atol=ATOL)


@pytest.mark.parametrize("shape", [(2, 3, 8, 5), (4, 6), (2, 5, 9)])
def test_rectangular_and_unbatched(shape: tuple[int, ...]) -> None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    for method in ("svd", "gram"):
        fac = factorize(x, method=method)
        r = min(shape[-2:])
        assert fac.full_rank == r
        assert fac.U.shape == (*shape[:-1], r)
        assert fac.Vh.shape == (*shape[:-2], r, shape[-1])
        assert torch.allclose(fac.reconstruct(), x, atol=ATOL)
        assert torch.allclose(fac.low_rank(1) + fac.high_rank(1), x, atol=ATOL)


def test_low_plus_high_is_x_for_every_rank(rand_images: torch.Tensor) -> None:
    fac = factorize(rand_images)
    for k in range(1, 33):
        total = fac.low_rank(k, clamp=False) + fac.high_rank(k)
        assert torch.allclose(total, rand_images, atol=ATOL), k
    assert torch.allclose(fac.low_rank(32), rand_images, atol=ATOL)
    assert bool((fac.high_rank(32) == 0).all())


def test_clamp_only_on_low_rank() -> None:
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    fac = factorize(x)
    raw = fac.low_rank(2, clamp=False)
    clamped = fac.low_rank(2, clamp=True)
    assert raw.min() < 0 or raw.max() > 1  # a rank-2 approximation overshoots [0, 1]
    assert clamped.min() >= 0 and clamped.max() <= 1
    assert torch.equal(clamped, raw.clamp(0, 1))
    assert fac.high_rank(2).min() < 0  # residual is roughly zero-mean and not clamped
    assert torch.equal(low_rank(x, 2), clamped)  # helper clamps by default
    assert torch.allclose(low_rank(x, 2, clamp=False), raw, atol=ATOL)


def test_each_entry_point_clamps_l_k_as_the_docs_say() -> None:
    """README and docs/running.md: L_k as a test image is clamped to [0, 1] (svd.low_rank,
    RankTransform / transform=low, evaluate.rank_sweep and basis_sweep by default), while
    Factorization.low_rank(k) is the exact, unclamped L_k; H_k is never clamped."""
    import inspect
    from pathlib import Path

    from omegaconf import OmegaConf

    from rankrobust import bases, evaluate

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    fac = factorize(x)
    exact = fac.low_rank(2)
    assert exact.min() < 0 or exact.max() > 1  # unclamped by default: it leaves [0, 1]
    torch.testing.assert_close(exact + fac.high_rank(2), x, atol=ATOL, rtol=0)
    shown = exact.clamp(0, 1)
    assert torch.equal(fac.low_rank(2, clamp=True), shown)
    assert torch.equal(low_rank(x, 2), shown)
    torch.testing.assert_close(RankTransform("low", rank=2)(x), shown, atol=ATOL, rtol=0)
    torch.testing.assert_close(bases.low(x, 2, basis="svd"), exact, atol=ATOL, rtol=0)  # bases.md
    high = RankTransform("high", rank=2)(x)
    assert high.min() < 0
    for sweep in (evaluate.rank_sweep, evaluate.basis_sweep):
        assert inspect.signature(sweep).parameters["clamp"].default is True
    conf = Path(__file__).resolve().parents[1] / "conf" / "transform"
    clamps = {p.stem: OmegaConf.load(p).clamp for p in conf.glob("*.yaml")}
    assert clamps["low"] is True and clamps["high"] is False and clamps["band"] is False


def test_bands_compose_and_sum_to_x(rand_images: torch.Tensor) -> None:
    fac = factorize(rand_images)
    for a, b, c in [(0, 3, 10), (2, 7, 32), (0, 1, 32), (5, 6, 7)]:
        assert torch.allclose(fac.band(a, b) + fac.band(b, c), fac.band(a, c), atol=ATOL)
    edges = [0, 1, 4, 9, 16, 25, 32]
    total = sum(fac.band(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True))
    assert torch.allclose(total, rand_images, atol=ATOL)
    assert torch.allclose(fac.band(0, 5), fac.low_rank(5), atol=1e-6)
    assert torch.allclose(fac.band(5, 32), fac.high_rank(5), atol=1e-6)
    assert torch.allclose(band(rand_images, 5, 32), high_rank(rand_images, 5), atol=ATOL)


def test_rank_k_matrix_is_recovered_exactly() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 3, 20, 4, generator=g)
    b = torch.randn(2, 3, 4, 24, generator=g)
    x = a @ b  # rank 4
    fac = factorize(x)
    assert torch.allclose(fac.low_rank(4), x, atol=1e-4)
    assert float(fac.high_rank(4).abs().max()) < 1e-4
    assert float(fac.S[..., 4:].abs().max()) < 1e-4


def test_batched_equals_per_image(rand_images: torch.Tensor) -> None:
    fac = factorize(rand_images)
    for i in range(rand_images.shape[0]):
        one = factorize(rand_images[i])
        assert torch.allclose(one.S, fac.S[i], atol=1e-5)
        for k in (1, 7, 31):
            assert torch.allclose(one.low_rank(k), fac.low_rank(k)[i], atol=ATOL)
            assert torch.allclose(one.high_rank(k), fac.high_rank(k)[i], atol=ATOL)
        for c in range(3):  # and per channel
            ch = factorize(rand_images[i, c])
            assert torch.allclose(ch.low_rank(5), fac.low_rank(5)[i, c], atol=ATOL)


def test_indexing_and_cat(rand_images: torch.Tensor) -> None:
    fac = factorize(rand_images)
    part = fac[1:3]
    assert part.shape == (2, 3, 32, 32) and len(part) == 2
    assert torch.equal(part.low_rank(6), fac.low_rank(6)[1:3])
    whole = Factorization.cat([fac[:2], fac[2:]])
    assert whole.shape == rand_images.shape
    assert torch.equal(whole.low_rank(6), fac.low_rank(6))


def test_gram_matches_svd(rand_images: torch.Tensor) -> None:
    svd = factorize(rand_images, method="svd")
    gram = factorize(rand_images, method="gram")
    assert torch.allclose(gram.S, svd.S, atol=1e-4)
    for k in (1, 4, 16, 32):
        assert torch.allclose(gram.low_rank(k), svd.low_rank(k), atol=1e-4)
    gram64 = factorize(rand_images, method="gram", dtype=torch.float64)
    assert gram64.S.dtype == torch.float64
    assert gram64.reconstruct().dtype == torch.float32  # results in the input dtype
    assert torch.allclose(gram64.reconstruct(), rand_images, atol=1e-6)


def test_gram_handles_zero_singular_values() -> None:
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, :, 0] = 1.0  # rank 1: seven singular values are exactly zero
    for shape in [(2, 1, 8, 8), (2, 1, 8, 5)]:
        xs = x[..., : shape[-1]]
        fac = factorize(xs, method="gram")
        assert bool(torch.isfinite(fac.U).all())
        assert torch.allclose(fac.reconstruct(), xs, atol=1e-6)
        assert torch.allclose(fac.low_rank(1), xs, atol=1e-6)
    wide = factorize(x[..., :5].mT.contiguous(), method="gram")  # H < W path
    assert torch.allclose(wide.reconstruct(), x[..., :5].mT, atol=1e-6)


def test_dtypes() -> None:
    x64 = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    fac = factorize(x64)
    assert fac.S.dtype == torch.float64
    assert fac.low_rank(3).dtype == torch.float64
    assert torch.allclose(fac.reconstruct(), x64, atol=1e-12)
    x16 = torch.rand(2, 3, 8, 8).to(torch.bfloat16)
    assert factorize(x16).low_rank(3).dtype == torch.bfloat16
    xu8 = (torch.rand(2, 3, 8, 8) * 255).to(torch.uint8)
    with pytest.raises(TypeError, match="uint8: divide by 255"):  # 0..255 is not [0, 1]
        factorize(xu8)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("k", [0, -1, 33, 2.5, 2.0, True, False, "3", None])
def test_bad_ranks_raise(rand_images: torch.Tensor, k: object) -> None:
    fac = factorize(rand_images)
    with pytest.raises(ConfigError, match=r"1 <= rank <= 32"):
        fac.low_rank(k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"1 <= rank <= 32"):
        fac.high_rank(k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"1 <= k <= 32"):  # low_rank's argument is k
        low_rank(rand_images, k)  # type: ignore[arg-type]


def test_rank_message_names_image_size() -> None:
    with pytest.raises(ConfigError) as info:
        validate_rank(33, 32, shape=(32, 32))
    assert str(info.value) == (
        "rank=33 is out of range: for 32x32 images rank must be an integer with 1 <= rank <= 32"
    )
    with pytest.raises(ConfigError, match=r"train_rank=0 .* 1 <= train_rank <= 8"):
        validate_rank(0, 8, name="train_rank")


def test_good_ranks_accepted() -> None:
    assert validate_rank(1, 32) == 1
    assert validate_rank(32, 32) == 32
    got = validate_rank(np.int64(7), 32)
    assert got == 7 and type(got) is int


@pytest.mark.parametrize("ab", [(3, 3), (5, 2), (-1, 4), (0, 33), (1.5, 4), (True, 4), (0, None)])
def test_bad_bands_raise(rand_images: torch.Tensor, ab: tuple[object, object]) -> None:
    fac = factorize(rand_images)
    with pytest.raises(ConfigError, match=r"0 <= a < b <= 32"):
        fac.band(*ab)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"0 <= a < b <= 32"):
        validate_band(*ab, 32)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"0 <= a < b <= 32"):
        RankTransform("band", band=ab)(rand_images)  # type: ignore[arg-type]


def test_good_bands_accepted() -> None:
    assert validate_band(0, 32, 32) == (0, 32)
    assert validate_band(np.int32(3), 4, 32) == (3, 4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_raises(bad: float) -> None:
    x = torch.rand(2, 3, 8, 8)
    x[1, 2, 3, 4] = bad
    with pytest.raises(ConfigError, match="NaN or infinite"):
        factorize(x)
    with pytest.raises(ConfigError, match="NaN or infinite"):
        RankTransform("low", rank=2)(x)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ConfigError, match="at least 2 dims"):
        factorize(torch.rand(5))
    with pytest.raises(ConfigError, match="method"):
        factorize(torch.rand(4, 4), method="qr")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        factorize(np.zeros((4, 4)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- RankTransform


def test_rank_transform_modes(rand_images: torch.Tensor) -> None:
    fac = factorize(rand_images)
    low = RankTransform("low", rank=4)
    assert torch.equal(low(rand_images), low.apply(fac))
    assert torch.allclose(low(rand_images), fac.low_rank(4, clamp=True), atol=1e-6)
    high = RankTransform("high", rank=4)
    assert torch.allclose(high(rand_images), fac.high_rank(4), atol=1e-6)
    bnd = RankTransform("band", band=(2, 9))
    assert torch.allclose(bnd(rand_images), fac.band(2, 9), atol=1e-6)
    unclamped = RankTransform("low", rank=4, clamp=False)
    assert torch.allclose(unclamped.apply(fac), fac.low_rank(4), atol=1e-6)


def test_rank_transform_identity_and_full_rank(rand_images: torch.Tensor) -> None:
    ident = RankTransform("low", rank=None)
    assert ident(rand_images) is rand_images and ident.is_identity
    assert RankTransform("band", band=None).is_identity
    assert torch.equal(RankTransform("low", rank=32)(rand_images), rand_images)
    assert bool((RankTransform("high", rank=32)(rand_images) == 0).all())


def test_rank_transform_validation() -> None:
    with pytest.raises(ConfigError, match="mode"):
        RankTransform("middle", rank=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="integer"):
        RankTransform("low", rank=2.5)  # type: ignore[arg-type]
    t = RankTransform("high", rank=40)
    with pytest.raises(ConfigError, match=r"rank=40 is out of range: for 32x32 images"):
        t.validate(32, (32, 32))
    with pytest.raises(ConfigError, match=r"1 <= rank <= 32"):
        t(torch.rand(1, 3, 32, 32))
    RankTransform("high", rank=32).validate(32)


# --------------------------------------------------------------------------- real CIFAR-10


def test_cifar_fixture(cifar_images: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = cifar_images
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and float(x.std()) > 0.05
    assert y.shape == (64,) and int(y.min()) >= 0 and int(y.max()) <= 9


def test_cifar_singular_values_match_numpy(cifar_images: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = cifar_images
    fac = factorize(x)
    s_np = np.linalg.svd(x.double().numpy(), compute_uv=False)  # (N, 3, 32)
    np.testing.assert_allclose(fac.S.numpy(), s_np, rtol=0, atol=1e-4)
    gram = factorize(x, method="gram")
    np.testing.assert_allclose(gram.S.numpy(), s_np, rtol=0, atol=1e-4)


def test_cifar_eckart_young(cifar_images: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = cifar_images
    fac = factorize(x)
    x64 = x.double().numpy()
    s_np = np.linalg.svd(x64, compute_uv=False)
    for k in (1, 2, 4, 8, 16, 31):
        err = np.linalg.norm(x64 - fac.low_rank(k).double().numpy(), axis=(-2, -1))
        expected = np.sqrt((s_np[..., k:] ** 2).sum(-1))
        np.testing.assert_allclose(err, expected, rtol=1e-3, atol=2e-4)
        # best rank-k: no worse than numpy's own truncated SVD
        u, s, vh = np.linalg.svd(x64, full_matrices=False)
        ref = (u[..., :k] * s[..., None, :k]) @ vh[..., :k, :]
        np.testing.assert_allclose(fac.low_rank(k).numpy(), ref, atol=1e-4)


def test_cifar_decompositions(cifar_images: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = cifar_images
    fac = factorize(x)
    assert torch.allclose(fac.low_rank(32), x, atol=ATOL)
    assert torch.equal(fac.low_rank(32, clamp=True), fac.low_rank(32).clamp(0, 1))
    for k in (1, 5, 20):
        assert torch.allclose(fac.low_rank(k) + fac.high_rank(k), x, atol=ATOL)
    bands = [fac.band(a, b) for a, b in [(0, 2), (2, 8), (8, 32)]]
    assert torch.allclose(sum(bands), x, atol=ATOL)
    assert torch.allclose(fac.band(0, 2) + fac.band(2, 8), fac.band(0, 8), atol=ATOL)
    # batched equals per-image on real data
    for i in (0, 17, 63):
        assert torch.allclose(factorize(x[i]).low_rank(3), fac.low_rank(3)[i], atol=ATOL)
    # the energy of a natural image is concentrated in the top ranks
    energy = (fac.S**2).cumsum(-1) / (fac.S**2).sum(-1, keepdim=True)
    assert float(energy[..., 4].mean()) > 0.9
    assert math.isclose(float(energy[..., -1].min()), 1.0, rel_tol=1e-5)


def test_cifar_gram_matches_svd(cifar_images: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = cifar_images
    svd = factorize(x, method="svd")
    gram = factorize(x, method="gram")
    for k in (1, 8, 32):
        assert torch.allclose(gram.low_rank(k), svd.low_rank(k), atol=1e-4)
        assert torch.allclose(gram.high_rank(k), svd.high_rank(k), atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("size", [32, 128])  # 32: cuSOLVER svd; 128: the float64 Gram route
def test_gpu_path_matches_cpu_path(size: int) -> None:
    """'auto' on the GPU (svd up to 64x64, Gram in float64 above) agrees with the CPU SVD."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(8, 3, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear").clamp(0, 1)
    cpu, gpu = factorize(x), factorize(x.cuda())
    torch.testing.assert_close(gpu.singular_values.cpu(), cpu.singular_values, atol=1e-4, rtol=1e-4)
    for k in (1, 4, size // 2):
        torch.testing.assert_close(gpu.low_rank(k).cpu(), cpu.low_rank(k), atol=1e-3, rtol=0)
    assert (gpu.reconstruct().cpu() - x).abs().max() <= 1e-3


# --------------------------------------------------------------------------- truncated route

TRUNC_ATOL = 1e-3  # max abs pixel error (pixels in [0, 1]) allowed against float64 LAPACK


@pytest.fixture(scope="module")
def photos_224() -> torch.Tensor:
    """The 7 sample photos (scikit-image, matplotlib) resized and centre-cropped to 224x224."""
    pytest.importorskip("skimage")
    from rankrobust.data.photos import center_crops

    return center_crops(224)


def _numpy_low_ranks(x: torch.Tensor, ranks: range) -> dict[int, np.ndarray]:
    """L_k for k in ranks from a float64 LAPACK SVD (torch's gesdd: numpy's OpenBLAS threads
    take 10 s on shared cores), summed term by term in float64."""
    u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
    out, total = {}, torch.zeros(x.shape, dtype=torch.float64)
    for k in range(1, max(ranks) + 1):
        total += (u[..., :, k - 1 : k] * s[..., None, k - 1 : k]) @ vh[..., k - 1 : k, :]
        if k in ranks:
            out[k] = total.numpy().copy()
    return out


def test_truncated_matches_lapack_on_photos(photos_224: torch.Tensor) -> None:
    """L_k and H_k of real 224x224 photos within 1e-3 of a float64 SVD for every k <= 32."""
    x = photos_224
    x64 = x.double().numpy()
    ref = _numpy_low_ranks(x, range(1, 33))
    fac = factorize(x, max_rank=32)
    assert fac.x is x and fac.max_rank == 32 and fac.U.shape == (7, 3, 224, 32)  # truncated
    s_np = np.linalg.svd(x64[0, 0], compute_uv=False)  # the reference agrees with numpy's
    s_ref = torch.linalg.svd(x[0, 0].double())[1].numpy()
    np.testing.assert_allclose(s_ref, s_np, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fac.S[0, 0].double().numpy(), s_np[:32], rtol=0, atol=1e-3)
    for k in range(1, 33):
        low = fac.low_rank(k).double().numpy()
        high = fac.high_rank(k).double().numpy()
        assert np.abs(low - ref[k]).max() <= TRUNC_ATOL, k
        assert np.abs(high - (x64 - ref[k])).max() <= TRUNC_ATOL, k
    for a, b in [(0, 4), (4, 32), (10, 11)]:
        bnd = fac.band(a, b).double().numpy()
        assert np.abs(bnd - (ref[b] - (ref[a] if a else 0))).max() <= TRUNC_ATOL


def test_truncated_cuda_branches_on_photos(photos_224: torch.Tensor) -> None:
    """The CUDA defaults (shifted CholeskyQR2, block Jacobi Ritz solve), run here on the CPU."""
    x = photos_224[:3]
    ref = _numpy_low_ranks(x, range(1, 33))
    U, S, Vh = _svd_maths.truncated_svd(x, 32, cholesky=True, jacobi=True)
    for k in (1, 8, 31, 32):
        low = ((U[..., :k] * S[..., None, :k]) @ Vh[..., :k, :]).numpy()
        assert np.abs(low - ref[k]).max() <= TRUNC_ATOL, k


def test_rank_transform_uses_truncated_route(photos_224: torch.Tensor) -> None:
    x = photos_224[:2]
    ref = _numpy_low_ranks(x, range(8, 9))[8]
    low = RankTransform("low", rank=8)(x)  # max_rank "auto" -> 8: truncated at 224x224
    assert np.abs(low.double().numpy() - np.clip(ref, 0, 1)).max() <= TRUNC_ATOL
    high = RankTransform("high", rank=8)(x)
    assert np.abs(high.double().numpy() - (x.double().numpy() - ref)).max() <= TRUNC_ATOL
    full = RankTransform("low", rank=8, max_rank=None)(x)  # forced full factorisation
    assert float((full - low).abs().max()) <= TRUNC_ATOL
    bnd = RankTransform("band", band=(2, 8))(x)
    assert torch.allclose(bnd, factorize(x).band(2, 8), atol=TRUNC_ATOL)


def _smooth(n: int, size: int, seed: int) -> torch.Tensor:
    """Synthetic images with a photo-like decaying spectrum (upsampled low-frequency noise)."""
    low = torch.rand(n, 3, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic")
    return x.clamp(0, 1).contiguous()


def test_truncated_factorization_algebra() -> None:
    x = _smooth(3, 96, 5)
    fac = factorize(x, max_rank=8)  # 8 + 32 <= 96: truncated
    full = factorize(x)
    assert fac.x is x and fac.S.shape == (3, 3, 8) and fac.full_rank == 96
    assert torch.equal(fac.reconstruct(), x) and fac.reconstruct() is not x
    for k in range(1, 9):
        assert torch.allclose(fac.low_rank(k) + fac.high_rank(k), x, atol=1e-5)
        assert torch.allclose(fac.low_rank(k), full.low_rank(k), atol=1e-4), k
        assert torch.allclose(fac.high_rank(k), full.high_rank(k), atol=1e-4), k
    assert torch.allclose(fac.band(0, 3) + fac.band(3, 8), fac.low_rank(8), atol=1e-5)
    assert torch.equal(fac.low_rank(3, clamp=True), fac.low_rank(3).clamp(0, 1))
    again = factorize(x, max_rank=8)  # fixed seed: deterministic
    assert torch.equal(again.U, fac.U) and torch.equal(again.S, fac.S)
    part, whole = fac[1:], Factorization.cat([fac[:1], fac[1:]])
    assert part.max_rank == 8 and torch.equal(part.x, x[1:])
    assert torch.equal(part.high_rank(5), fac.high_rank(5)[1:])
    assert torch.equal(whole.high_rank(5), fac.high_rank(5)) and whole.max_rank == 8
    assert torch.equal(fac.to("cpu").high_rank(2), fac.high_rank(2))
    with pytest.raises(ConfigError, match="same max_rank"):
        Factorization.cat([fac, full])


def test_truncated_exact_low_rank_and_flat_images() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 64, 5, generator=g) @ torch.randn(2, 5, 80, generator=g)  # rank 5
    fac = factorize(x, max_rank=6, method="randomized")
    assert torch.allclose(fac.low_rank(5), x, atol=1e-4)
    assert float(fac.S[..., 5].abs().max()) < 1e-3
    flat = torch.full((2, 1, 64, 64), 0.5)
    for cholesky in (False, True):  # s_2.. = 0: no NaN, L_1 is the image
        U, S, Vh = _svd_maths.truncated_svd(flat, 4, cholesky=cholesky)
        assert bool(torch.isfinite(U).all() and torch.isfinite(Vh).all())
        low = (U[..., :1] * S[..., None, :1]) @ Vh[..., :1, :]
        assert torch.allclose(low.float(), flat, atol=1e-5)


def test_orthonormalize_both_branches() -> None:
    y = torch.randn(4, 50, 12, generator=torch.Generator().manual_seed(7))
    y[1, :, 3] = y[1, :, 2]  # rank deficient
    eye = torch.eye(12)
    for cholesky in (False, True):
        q = _svd_maths.orthonormalize(y, cholesky=cholesky)
        assert torch.allclose((q.mT @ q)[0], eye, atol=1e-5)
        # the span of y is kept: y is its own projection onto span(q)
        assert torch.allclose(q @ (q.mT @ y), y, atol=1e-4)


@pytest.mark.parametrize("m", [20, 40, 64])
def test_jacobi_eigh_matches_eigh(m: int) -> None:
    g = torch.Generator().manual_seed(m)
    a = torch.randn(3, m, m, generator=g, dtype=torch.float64)
    a = a + a.mT  # symmetric, indefinite
    lam, v = _svd_maths.jacobi_eigh(a)
    ref = torch.linalg.eigvalsh(a)
    assert lam.shape == (3, m) and v.shape == (3, m, m)
    assert torch.allclose(lam, ref, atol=1e-10)
    assert torch.allclose(v.mT @ v, torch.eye(m, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(v.mT @ a @ v, torch.diag_embed(lam), atol=1e-10)
    assert _svd_maths._round_robin(4) == [[(0, 3), (1, 2)], [(0, 2), (3, 1)], [(0, 1), (2, 3)]]


def test_jacobi_convergence_is_per_matrix(photos_224: torch.Tensor) -> None:
    """Ritz matrices of real photos stop after their own few sweeps, even batched with a dense
    random matrix that needs more (the batch maximum used to set everyone's sweeps)."""
    x = photos_224[:2].double()
    gen = torch.Generator().manual_seed(0)
    q = _svd_maths.orthonormalize(x @ torch.randn(224, 64, dtype=torch.float64, generator=gen))
    for _ in range(3):
        q = _svd_maths.orthonormalize(x @ _svd_maths.orthonormalize(x.mT @ q))
    b = q.mT @ x
    ritz = (b @ b.mT).reshape(-1, 64, 64)  # as truncated_svd builds them: 6 matrices
    hard = torch.randn(1, 64, 64, dtype=torch.float64, generator=gen)
    batch = torch.cat([ritz, hard + hard.mT])
    lam, v, sweeps = _svd_maths.jacobi_eigh(batch, return_sweeps=True)
    alone = _svd_maths.jacobi_eigh(ritz, return_sweeps=True)[2]
    assert torch.equal(sweeps[:-1], alone)  # the hard matrix costs the others nothing
    assert int(sweeps[:-1].max()) <= 3 < int(sweeps[-1]), sweeps.tolist()
    torch.testing.assert_close(lam, torch.linalg.eigvalsh(batch), atol=1e-9, rtol=0)
    torch.testing.assert_close(v.mT @ batch @ v, torch.diag_embed(lam), atol=1e-9, rtol=0)
    torch.testing.assert_close(v.mT @ v, torch.eye(64, dtype=torch.float64).expand_as(v))


def test_cholesky_qr_failure_falls_back_to_householder(monkeypatch) -> None:
    """cholesky_ex's failure flags are checked once per call; a failure redoes the call with
    Householder QR (and orthonormalize without a list of flags raises)."""
    x = _smooth(2, 96, 3)
    good = _svd_maths.truncated_svd(x, 8, cholesky=True)
    real = torch.linalg.cholesky_ex

    def failing(a, **kw):
        chol, info = real(a, **kw)
        return chol, torch.ones_like(info)

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failing)
    again = _svd_maths.truncated_svd(x, 8, cholesky=True)
    householder = _svd_maths.truncated_svd(x, 8, cholesky=False)
    for a, b in zip(again, householder, strict=True):
        assert torch.equal(a, b)  # the fallback route
    torch.testing.assert_close(again[1], good[1], atol=1e-4, rtol=0)
    with pytest.raises(torch.linalg.LinAlgError, match="CholeskyQR"):
        _svd_maths.orthonormalize(torch.randn(3, 20, 4), cholesky=True)


def test_max_rank_limits_ranks_and_bands() -> None:
    x = _smooth(2, 64, 8)
    for fac in (factorize(x, max_rank=6), factorize(x, max_rank=40)):  # truncated, full
        for call in (lambda f: f.low_rank(41), lambda f: f.high_rank(41), lambda f: f.band(3, 41)):
            with pytest.raises(ConfigError, match=f"max_rank={fac.max_rank}"):
                call(fac)
        assert fac.low_rank(fac.max_rank).shape == x.shape  # the limit itself is served
    with pytest.raises(ValueError, match=r"beyond max_rank=6 .* max_rank=7"):
        factorize(x, max_rank=6).high_rank(7)
    assert factorize(x, max_rank=40).U.shape[-1] == 64  # 40 + 32 > 64: the full route


@pytest.mark.parametrize("bad", [0, 65, 2.0, True, "8"])
def test_bad_max_rank_raises(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"max_rank.*1 <= max_rank <= 64"):
        factorize(torch.rand(2, 64, 64), max_rank=bad)  # type: ignore[arg-type]


def test_randomized_needs_max_rank_and_transform_max_rank() -> None:
    with pytest.raises(ConfigError, match="needs max_rank"):
        factorize(torch.rand(2, 64, 64), method="randomized")
    assert RankTransform("low", rank=4).needed_rank == 4
    assert RankTransform("band", band=(2, 9)).needed_rank == 9
    assert RankTransform("low").needed_rank is None
    with pytest.raises(ConfigError, match="max_rank='big'"):
        RankTransform("low", rank=4, max_rank="big")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_rank=3 is below the transform's rank 4"):
        RankTransform("low", rank=4, max_rank=3)(torch.rand(1, 3, 64, 64))
    x = _smooth(1, 64, 9)
    wide = RankTransform("high", rank=4, max_rank=16)(x)  # an explicit larger max_rank works
    assert torch.allclose(wide, factorize(x).high_rank(4), atol=1e-4)


def test_truncated_flop_count() -> None:
    f = _svd_maths.flops(224, 224, 32)
    m, q = 64, 6
    assert f["matmul"] == (2 * q + 2) * 2 * 224 * 224 * m
    assert f["total"] == f["matmul"] + f["orthonormalize"] + f["ritz"]
    assert 1e8 < f["total"] < 2e8


def test_sample_photos_and_crops() -> None:
    pytest.importorskip("skimage")
    from rankrobust.data.photos import SAMPLE_PHOTOS, random_crops, sample_photos

    one = sample_photos(("chelsea",))["chelsea"]
    assert one.shape == (3, 300, 451) and one.dtype == torch.float32
    assert 0.0 <= float(one.min()) and float(one.max()) <= 1.0 and float(one.std()) > 0.1
    crops = random_crops(4, 64, seed=1)
    assert crops.shape == (4, 3, 64, 64) and torch.equal(crops, random_crops(4, 64, seed=1))
    with pytest.raises(ValueError, match="not sample photos"):
        sample_photos(("lena",))
    assert len(SAMPLE_PHOTOS) == 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_truncated_matches_lapack(photos_224: torch.Tensor) -> None:
    x = photos_224
    ref = _numpy_low_ranks(x, range(1, 33))
    fac = factorize(x.cuda(), max_rank=32)
    for k in (1, 4, 16, 31, 32):
        assert np.abs(fac.low_rank(k).cpu().double().numpy() - ref[k]).max() <= TRUNC_ATOL, k
