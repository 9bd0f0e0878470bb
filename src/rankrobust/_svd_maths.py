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

import functools
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


def orthonormalize(y: Tensor, cholesky: bool | None = None, infos: list | None = None) -> Tensor:
    """An orthonormal basis Q (..., n, m) of the columns of y (..., n, m), n >= m.

    Householder QR (robust to rank deficiency) on CPU. On CUDA, where batched QR is slow,
    shifted CholeskyQR2 in float64 (Fukaya et al. 2020): Y^T Y + eps I = L L^T,
    Q = Y L^{-T}, done twice. The shift keeps Cholesky defined for rank-deficient Y (e.g. a
    flat image); the columns it cannot make orthonormal are then ~0 and add nothing to Q Q^T X.
    The factorisation is `cholesky_ex`, which does not stop the host to check for failure (as
    `cholesky` does, a sync per call): its `info` tensors are appended to ``infos`` for the
    caller to check once (:func:`truncated_svd`); without ``infos`` a failure raises here.
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
        chol, info = torch.linalg.cholesky_ex(gram + 1e-13 * scale[..., None, None] * eye)
        if infos is None:
            if bool((info != 0).any()):
                raise torch.linalg.LinAlgError("CholeskyQR: the shifted Gram matrix is not PD")
        else:
            infos.append(info)
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


@functools.lru_cache(maxsize=64)
def _round_perms(nb: int, block: int, device: torch.device) -> tuple[tuple[Tensor, Tensor], ...]:
    """Per round of the tournament: the permutation that puts each pair of blocks side by side
    (window p = blocks i, j) and its inverse. Cached per device: building them is a host to
    device copy, which would wait for the GPU at every call."""
    pos = torch.arange(nb * block).view(nb, block)
    out = []
    for pairs in _round_robin(nb):
        perm = torch.cat([torch.cat([pos[i], pos[j]]) for i, j in pairs])
        out.append((perm.to(device), torch.argsort(perm).to(device)))
    return tuple(out)


def jacobi_eigh(
    g: Tensor,
    block: int = 16,
    tol: float = 1e-13,
    max_sweeps: int = 12,
    return_sweeps: bool = False,
):
    """eigh of symmetric g (..., m, m) by parallel block Jacobi: (ascending eigenvalues, vectors).

    g is padded to nb * block (nb even) with eigenvalues below its own. Each round gathers
    nb / 2 disjoint pairs of blocks into 2 block x 2 block windows, diagonalises all windows
    with one batched eigh (on CUDA a single syevjBatched call when 2 block <= 32) and rotates
    g and the vectors by the block-diagonal result; a round-robin schedule makes every pair of
    blocks meet once per sweep. Convergence is per matrix: a matrix stops once its off-diagonal
    Frobenius norm is below tol * its own ||g||_F (at most max_sweeps), and only the matrices
    still rotating are carried into the next sweep, so one slow matrix (a rank-2 image's) no
    longer costs the whole batch its sweeps (photo crops' Ritz matrices need 3). One host sync
    per sweep (which matrices remain) besides eigh's own error check. The padding's (smallest)
    eigenpairs are dropped at the end. With ``return_sweeps`` also the sweeps each matrix took.
    """
    m = g.shape[-1]
    batch = g.shape[:-2]
    nb = 2 * ((m + 2 * block - 1) // (2 * block))
    size, c, w = nb * block, nb // 2, 2 * block
    g = g.reshape(-1, m, m)
    n = g.shape[0]
    a_all = torch.zeros(n, size, size, dtype=g.dtype, device=g.device)
    a_all[:, :m, :m] = g
    fro = torch.linalg.matrix_norm(g)  # >= the spectral radius
    a_all.diagonal(dim1=-2, dim2=-1)[:, m:] = -(fro + 1.0)[:, None]  # padding: below all
    v_all = torch.eye(size, dtype=g.dtype, device=g.device).expand_as(a_all).clone()
    sweeps = torch.zeros(n, dtype=torch.int64, device=g.device)
    rounds = _round_perms(nb, block, g.device)
    active = torch.arange(n, device=g.device)
    a, v, limit = a_all, v_all, fro
    for _ in range(max_sweeps):
        for perm, inv in rounds:
            windows = a[:, perm][:, :, perm]
            windows = windows.unflatten(-2, (c, w)).unflatten(-1, (c, w))
            windows = windows.diagonal(dim1=-4, dim2=-2).movedim(-1, -3)  # (k, c, w, w)
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
            rot = rot[:, inv][:, :, inv]  # back to the blocks' own order
            a, v = rot.mT @ a @ rot, v @ rot
        sweeps[active] += 1
        a_all[active], v_all[active] = a, v
        if nb == 2:  # one window is the whole matrix: exact after one round
            break
        off = torch.linalg.matrix_norm(a - torch.diag_embed(a.diagonal(dim1=-2, dim2=-1)))
        still = off > tol * limit
        active, a, v, limit = active[still], a[still], v[still], limit[still]  # one sync
        if active.numel() == 0:
            break
    lam, order = torch.sort(a_all.diagonal(dim1=-2, dim2=-1), dim=-1)
    v_all = torch.gather(v_all, -1, order.unsqueeze(-2).expand_as(v_all))
    lam = lam[:, size - m :].reshape(*batch, m)
    vec = v_all[:, :m, size - m :].reshape(*batch, m, m)
    return (lam, vec, sweeps.reshape(batch)) if return_sweeps else (lam, vec)


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
    infos: list[Tensor] = []  # CholeskyQR's failure flags: checked once, at the end
    q = orthonormalize(x @ omega, cholesky, infos)
    for _ in range(power_iters):
        z = orthonormalize(x.mT @ q, cholesky, infos)
        q = orthonormalize(x @ z, cholesky, infos)
    if infos and bool(torch.stack(infos).ne(0).any()):  # the call's one sync for CholeskyQR
        # a shifted Gram matrix was not positive definite (not seen on images): Householder
        return truncated_svd(x, k, oversample, power_iters, seed, False, jacobi)
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
