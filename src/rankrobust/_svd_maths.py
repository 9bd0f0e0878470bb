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
Everything but the m x m solve is batched matmul, which is what makes the method GPU-friendly;
on CUDA, torch batches eigh only up to 32 x 32 (larger ones loop over the batch), so there the
m x m solve is a block Jacobi method whose 32 x 32 subproblems go to the batched eigh.
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


def _round_robin(n: int) -> list[list[tuple[int, int]]]:
    """A round-robin tournament of n (even) players: n - 1 rounds of n / 2 disjoint pairs."""
    rest, rounds = list(range(1, n)), []
    for _ in range(n - 1):
        line = [0, *rest]
        rounds.append([(line[i], line[n - 1 - i]) for i in range(n // 2)])
        rest = rest[-1:] + rest[:-1]
    return rounds


def jacobi_eigh(g: Tensor, block: int = 16, tol: float = 1e-13, max_sweeps: int = 12):
    """eigh of symmetric g (..., m, m) by parallel block Jacobi: (ascending eigenvalues, vectors).

    g is padded to nb * block (nb even) with eigenvalues below its own. Each round gathers
    nb / 2 disjoint pairs of blocks into 2 block x 2 block windows, diagonalises all windows
    with one batched eigh (on CUDA a single syevjBatched call when 2 block <= 32) and rotates
    g and the vectors by the block-diagonal result; a round-robin schedule over the blocks'
    identities makes every pair of blocks meet once per sweep. Sweeps stop once the
    off-diagonal Frobenius norm is below tol * ||g||_F (at most max_sweeps; on real Ritz
    matrices 3). The padding's (smallest) eigenpairs are dropped at the end.
    """
    m = g.shape[-1]
    nb = 2 * ((m + 2 * block - 1) // (2 * block))
    size, c, w = nb * block, nb // 2, 2 * block
    a = torch.zeros(*g.shape[:-2], size, size, dtype=g.dtype, device=g.device)
    a[..., :m, :m] = g
    fro = torch.linalg.matrix_norm(g)  # >= the spectral radius
    a.diagonal(dim1=-2, dim2=-1)[..., m:] = -(fro + 1.0)[..., None]  # padding: below all
    v = torch.eye(size, dtype=g.dtype, device=g.device).expand_as(a).clone()
    norm = float(fro.amax())
    where = list(range(nb))  # where[i]: the position (in blocks) of block i
    pos = torch.arange(size, device=g.device).view(nb, block)
    for _ in range(max_sweeps):
        for pairs in _round_robin(nb):
            perm = torch.cat([torch.cat([pos[where[i]], pos[where[j]]]) for i, j in pairs])
            a, v = a[..., perm, :][..., :, perm], v[..., :, perm]
            for p, (i, j) in enumerate(pairs):
                where[i], where[j] = 2 * p, 2 * p + 1
            windows = a.unflatten(-2, (c, w)).unflatten(-1, (c, w)).diagonal(dim1=-4, dim2=-2)
            windows = windows.movedim(-1, -3)  # (..., c, w, w)
            _, z = torch.linalg.eigh(windows)  # ascending
            # Give each position the eigenvector whose eigenvalue has the rank of its diagonal
            # entry, so the rotation stays close to the identity: sorting the eigenpairs
            # instead swaps columns back and forth, and cyclic Jacobi then stalls.
            rank = windows.diagonal(dim1=-2, dim2=-1).argsort(-1).argsort(-1)
            z = torch.gather(z, -1, rank.unsqueeze(-2).expand_as(z))
            rot = torch.zeros_like(a)
            rot.unflatten(-2, (c, w)).unflatten(-1, (c, w)).diagonal(dim1=-4, dim2=-2).copy_(
                z.movedim(-3, -1)
            )
            a, v = rot.mT @ a @ rot, v @ rot
        off = a - torch.diag_embed(a.diagonal(dim1=-2, dim2=-1))
        if nb == 2 or float(torch.linalg.matrix_norm(off).amax()) <= tol * norm:
            break
    lam, order = torch.sort(a.diagonal(dim1=-2, dim2=-1), dim=-1)
    v = torch.gather(v, -1, order.unsqueeze(-2).expand_as(v))
    return lam[..., size - m :], v[..., :m, size - m :]


def truncated_svd(
    x: Tensor,
    k: int,
    oversample: int = OVERSAMPLE,
    power_iters: int = POWER_ITERS,
    seed: int = SEED,
    cholesky: bool | None = None,
    jacobi: bool | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Top-k singular triplets (U (..., H, k), S (..., k), Vh (..., k, W)) of x (..., H, W).

    x must be float32 or float64 (the dtype of the matmuls); the Ritz problem is solved in
    float64 and the factors are returned in float64. Requires k + oversample <= min(H, W).
    ``cholesky`` / ``jacobi`` (default: on CUDA) pick CholeskyQR2 over Householder QR and
    :func:`jacobi_eigh` over torch.linalg.eigh for the m x m Ritz problem when m > 32.
    """
    m = k + oversample
    g = torch.Generator(device=x.device).manual_seed(seed)
    omega = torch.randn(x.shape[-1], m, generator=g, device=x.device, dtype=x.dtype)
    q = orthonormalize(x @ omega, cholesky)
    for _ in range(power_iters):
        z = orthonormalize(x.mT @ q, cholesky)
        q = orthonormalize(x @ z, cholesky)
    b = (q.mT @ x).to(torch.float64)  # (..., m, W)
    if jacobi is None:
        jacobi = x.is_cuda and m > 32
    lam, w = (jacobi_eigh if jacobi else torch.linalg.eigh)(b @ b.mT)  # ascending
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


def flops(
    h: int,
    w: int,
    k: int,
    oversample: int = OVERSAMPLE,
    power_iters: int = POWER_ITERS,
    jacobi_sweeps: int = 0,
    block: int = 16,
) -> dict[str, int]:
    """Floating-point operations of :func:`truncated_svd` for one H x W matrix (leading terms).

    Matmuls with X: 2 H W m each, 2q + 2 of them (X Omega, q times X^T Q and X Z, Q^T X);
    Householder QR + forming Q of an n x m block: 4 n m^2 - 4/3 m^3, 2q + 1 of them (CholeskyQR2
    costs about the same: 2 x (2 n m^2 Gram + n m^2 solve)); B B^T: 2 m^2 W; eigh with vectors:
    ~9 m^3, or with ``jacobi_sweeps`` > 0 block Jacobi (padded size P = nb block): per round
    nb / 2 window eighs of (2 block)^3 * 9 and 3 dense P^3 matmuls (x2 flops), nb - 1 rounds a
    sweep; U = Q W_k and B^T W_k: 2 (H + W) m k.
    """
    m = k + oversample
    matmul = (2 * power_iters + 2) * 2 * h * w * m
    qr = (power_iters + 1) * (4 * h * m * m) + power_iters * (4 * w * m * m)
    qr -= (2 * power_iters + 1) * (4 * m**3) // 3
    eig = 9 * m**3
    if jacobi_sweeps:
        nb = 2 * ((m + 2 * block - 1) // (2 * block))
        size = nb * block
        eig = jacobi_sweeps * (nb - 1) * ((nb // 2) * 9 * (2 * block) ** 3 + 6 * size**3)
    ritz = 2 * m * m * w + eig + 2 * (h + w) * m * k
    return {"matmul": matmul, "orthonormalize": qr, "ritz": ritz, "total": matmul + qr + ritz}
