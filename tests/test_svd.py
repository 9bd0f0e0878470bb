"""Tests of rankrobust.svd: maths on synthetic data and against numpy on real CIFAR-10 images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

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
    assert factorize(xu8).reconstruct().dtype == torch.float32


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("k", [0, -1, 33, 2.5, 2.0, True, False, "3", None])
def test_bad_ranks_raise(rand_images: torch.Tensor, k: object) -> None:
    fac = factorize(rand_images)
    with pytest.raises(ConfigError, match=r"1 <= rank <= 32"):
        fac.low_rank(k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"1 <= rank <= 32"):
        fac.high_rank(k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"1 <= rank <= 32"):
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
    with pytest.raises(ConfigError):
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
    assert bnd.tag == "band-2-9" and low.tag == "low-4"
    unclamped = RankTransform("low", rank=4, clamp=False)
    assert torch.allclose(unclamped.apply(fac), fac.low_rank(4), atol=1e-6)


def test_rank_transform_identity_and_full_rank(rand_images: torch.Tensor) -> None:
    ident = RankTransform("low", rank=None)
    assert ident(rand_images) is rand_images and ident.tag == "identity"
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
