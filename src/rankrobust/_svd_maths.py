"""The private maths of rankrobust.svd: the float64 Gram route and the truncated route.

Truncated SVD (randomized subspace iteration + float64 Rayleigh-Ritz). For X (H x W) and a
target rank k, with m = k + p columns (p = oversampling):

    Q_0 = orth(X Omega),  Omega ~ N(0, 1)^{W x m}  (fixed seed: the result is deterministic)
    Q_i = orth(X orth(X^T Q_{i-1})),  i = 1..q     (re-orthonormalised at every half step)
    B = Q_q^T X (m x W),  B B^T = V_B diag(lambda) V_B^T  (eigh in float64)
    s_i = sqrt(lambda_i),  u_i = Q_q w_i,  v_i = B^T w_i / s_i,  i = 1..k   (w_i = V_B[:, i]).

Why this shape: the error of the top-k Ritz triplets decays like (s_{m+1} / s_k)^(2q), so on
photographs, whose spectra decay slowly (s_33 / s_1 ~ 2.5e-2 at 224x224), a wide subspace
(p = 32) with q = 6 iterations keeps L_k and H_k within ~1e-4 of LAPACK for every k <= 32
(bench/bench_svd.py, tests/test_svd.py), where p = 16 with q = 6 only reaches ~4e-3. Nearly
equal s_k, s_{k+1} are separated exactly by the m x m Ritz problem, not by iterating.
Everything but the m x m solve is batched matmul, which is what makes the method GPU-friendly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

# Defaults chosen from the measurements in bench/bench_svd.py (max error at 224x224, k <= 32).
OVERSAMPLE = 32
POWER_ITERS = 6
SEED = 0


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (no-op for None)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def gram_factors(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of float64 x (..., H, W) with H >= W via eigh of the W x W Gram matrix X^T X.

    Eigenvectors V of X^T X are the right singular vectors; X V = U diag(S), so
    s_i = ||X v_i|| and u_i = X v_i / s_i. Columns with s_i = 0 are set to zero, which does not
    change any reconstruction (s_i u_i v_i^T = X v_i v_i^T holds for every i).
    """
    gram = x.mT @ x
    _, V = torch.linalg.eigh(gram)  # ascending eigenvalues
    XV = x @ V
    S = torch.linalg.vector_norm(XV, dim=-2)
    S, order = torch.sort(S, dim=-1, descending=True)
    V = torch.gather(V, -1, order.unsqueeze(-2).expand_as(V))
    XV = torch.gather(XV, -1, order.unsqueeze(-2).expand_as(XV))
    tiny = torch.finfo(x.dtype).tiny
    safe = torch.where(S > tiny, S, torch.ones_like(S))
    U = torch.where((S > tiny).unsqueeze(-2), XV / safe.unsqueeze(-2), torch.zeros_like(XV))
    return U, S, V.mT


def orthonormalize(y: Tensor, cholesky: bool | None = None) -> Tensor:
    """An orthonormal basis Q (..., n, m) of the columns of y (..., n, m), n >= m.

    Householder QR (robust to rank deficiency) on CPU. On CUDA, where batched QR is slow,
    shifted CholeskyQR2 in float64 (Fukaya et al. 2020): Y^T Y + eps I = L L^T,
    Q = Y L^{-T}, done twice. The shift keeps Cholesky defined for rank-deficient Y (e.g. a
    flat image); the columns it cannot make orthonormal are then ~0 and add nothing to Q Q^T X.
    """
    if cholesky is None:
        cholesky = y.is_cuda
    if not cholesky:
        return torch.linalg.qr(y).Q
    q = y.to(torch.float64)
    eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device)
    for _ in range(2):
        gram = q.mT @ q
        scale = gram.diagonal(dim1=-2, dim2=-1).amax(-1).clamp_min(1e-300)
        chol = torch.linalg.cholesky(gram + 1e-13 * scale[..., None, None] * eye)
        q = torch.linalg.solve_triangular(chol.mT, q, upper=True, left=False)
    return q.to(y.dtype)


def truncated_svd(
    x: Tensor,
    k: int,
    oversample: int = OVERSAMPLE,
    power_iters: int = POWER_ITERS,
    seed: int = SEED,
    cholesky: bool | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Top-k singular triplets (U (..., H, k), S (..., k), Vh (..., k, W)) of x (..., H, W).

    x must be float32 or float64 (the dtype of the matmuls); the Ritz problem is solved in
    float64 and the factors are returned in float64. Requires k + oversample <= min(H, W).
    """
    m = k + oversample
    g = torch.Generator(device=x.device).manual_seed(seed)
    omega = torch.randn(x.shape[-1], m, generator=g, device=x.device, dtype=x.dtype)
    q = orthonormalize(x @ omega, cholesky)
    for _ in range(power_iters):
        z = orthonormalize(x.mT @ q, cholesky)
        q = orthonormalize(x @ z, cholesky)
    b = (q.mT @ x).to(torch.float64)  # (..., m, W)
    lam, w = torch.linalg.eigh(b @ b.mT)  # ascending
    w = w[..., :, -k:].flip(-1)  # top k, descending
    s = lam[..., -k:].flip(-1).clamp_min(0).sqrt()
    u = q.to(torch.float64) @ w
    # s_i v_i = B^T w_i exactly; dividing by a tiny s_i gives a poor v_i, but zeroing those
    # columns leaves s_i u_i v_i^T within rounding of the true (tiny) term.
    bw = b.mT @ w
    tiny = torch.finfo(torch.float64).tiny
    safe = torch.where(s > tiny, s, torch.ones_like(s))
    v = torch.where((s > tiny)[..., None, :], bw / safe[..., None, :], torch.zeros_like(bw))
    return u, s, v.mT


def flops(h: int, w: int, k: int, oversample: int = OVERSAMPLE, power_iters: int = POWER_ITERS):
    """Floating-point operations of :func:`truncated_svd` for one H x W matrix (leading terms).

    Matmuls with X: 2 H W m each, 2q + 2 of them (X Omega, q times X^T Q and X Z, Q^T X);
    Householder QR + forming Q of an n x m block: 4 n m^2 - 4/3 m^3, 2q + 1 of them;
    B B^T: 2 m^2 W; eigh with vectors: ~9 m^3; U = Q W_k and B^T W_k: 2 (H + W) m k.
    """
    m = k + oversample
    matmul = (2 * power_iters + 2) * 2 * h * w * m
    qr = (power_iters + 1) * (4 * h * m * m) + power_iters * (4 * w * m * m)
    qr -= (2 * power_iters + 1) * (4 * m**3) // 3
    ritz = 2 * m * m * w + 9 * m**3 + 2 * (h + w) * m * k
    return {"matmul": matmul, "orthonormalize": qr, "ritz": ritz, "total": matmul + qr + ritz}
