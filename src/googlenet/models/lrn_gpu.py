"""The paper's LRN on a GPU: one fused Triton kernel for the forward and one for the backward.

Why: torch's ``local_response_norm`` is pad + avg_pool3d + pow + div, each a pass over memory
and each differentiated op by op; on an H200 it made the faithful ``paper`` variant train at
0.61x the speed of ``bn`` (benchmarks/results/gpu.md). LRN is memory-bound, so the floor is one
read of x and one write of y forward, and one read of x and of the gradient and one write
backward; these kernels do that, keeping the shifted channel neighbours in cache:

    forward   y_c = x_c * s_c^-beta,   s_c = k + alpha/size * sum_{c' in [c-before, c+after]} x_c'^2
    backward  dx_i = g_i s_i^-beta - (2 alpha beta/size) x_i sum_{j in [i-after, i+before]} g_j x_j s_j^(-beta-1)

(before = size // 2, after = (size - 1) // 2, zero padding outside [0, C): Caffe's
ACROSS_CHANNELS LRN and ``torch.nn.LocalResponseNorm``). The backward loads x at the
size + before + after channel offsets around each channel once, squares them once, and forms the
size window sums s_j it needs from those squares, so nothing but x is saved from the forward.

Layouts: any tensor (N, C, *) whose spatial dims collapse into one stride (contiguous and
channels_last both do; anything else is made contiguous first). Computed in float32 for
float16/bfloat16/float32 input, stored in the input's dtype. Tested on the CPU through Triton's
interpreter (``TRITON_INTERPRET=1``, tests/test_lrn.py) and against torch's on the GPU
(benchmarks/gpu_bench.py).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["lrn_triton", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _lrn_fwd(x_ptr, y_ptr, P, S, C, sN, sC, sS, coef, beta, k,
             BEFORE: tl.constexpr, AFTER: tl.constexpr,
             BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)  # positions n * S + s
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pmask = p < P
    base = (p // S) * sN + (p % S) * sS
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for d in tl.static_range(-BEFORE, AFTER + 1):
        cc = c + d
        m = pmask[:, None] & ((cc >= 0) & (cc < C))[None, :]
        v = tl.load(x_ptr + base[:, None] + cc[None, :] * sC, mask=m, other=0.0).to(tl.float32)
        acc += v * v
    m = pmask[:, None] & (c < C)[None, :]
    offs = base[:, None] + c[None, :] * sC
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    s = k + coef * acc
    y = x * tl.exp2(-beta * tl.log2(s))
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _lrn_bwd(x_ptr, g_ptr, dx_ptr, P, S, C, sN, sC, sS, coef, beta, k, gcoef,
             BEFORE: tl.constexpr, AFTER: tl.constexpr,
             BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pmask = p < P
    base = (p // S) * sN + (p % S) * sS
    m0 = pmask[:, None] & (c < C)[None, :]
    offs = base[:, None] + c[None, :] * sC
    x0 = tl.load(x_ptr + offs, mask=m0, other=0.0).to(tl.float32)
    g0 = tl.load(g_ptr + offs, mask=m0, other=0.0).to(tl.float32)
    u = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)  # sum over j of g_j x_j s_j^(-beta-1)
    scale0 = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)  # s_i^-beta
    # j = c + dj for dj in [-AFTER, BEFORE]; s_j sums x^2 over [j - BEFORE, j + AFTER].
    for dj in tl.static_range(-AFTER, BEFORE + 1):
        acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
        for e in tl.static_range(-BEFORE, AFTER + 1):
            cc = c + dj + e
            m = pmask[:, None] & ((cc >= 0) & (cc < C))[None, :]
            v = tl.load(x_ptr + base[:, None] + cc[None, :] * sC, mask=m, other=0.0).to(tl.float32)
            acc += v * v
        s = k + coef * acc
        sb = tl.exp2(-beta * tl.log2(s))  # s^-beta
        if dj == 0:
            scale0 = sb
        cj = c + dj
        mj = pmask[:, None] & ((cj >= 0) & (cj < C))[None, :]
        oj = base[:, None] + cj[None, :] * sC
        xj = tl.load(x_ptr + oj, mask=mj, other=0.0).to(tl.float32)
        gj = tl.load(g_ptr + oj, mask=mj, other=0.0).to(tl.float32)
        u += gj * xj * sb / s
    dx = g0 * scale0 - gcoef * x0 * u
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=m0)


def _geometry(x: Tensor) -> tuple[Tensor, int, int, int, int, int, int]:
    """x viewed as (N, C, S): (x, N, C, S, stride N, stride C, stride S); x made contiguous when
    its spatial dims do not collapse into one stride."""
    n, c = x.shape[0], x.shape[1]
    spatial = x.shape[2:]
    s = 1
    for d in spatial:
        s *= d
    strides = x.stride()[2:]
    # Collapsible: each spatial dim's stride is the next one's times its size (size-1 dims free).
    dims = [(size, st) for size, st in zip(spatial, strides) if size != 1]
    ok = all(dims[i][1] == dims[i + 1][1] * dims[i + 1][0] for i in range(len(dims) - 1))
    if not ok:
        x = x.contiguous()
        strides = x.stride()[2:]
        dims = [(size, st) for size, st in zip(spatial, strides) if size != 1]
    s_stride = dims[-1][1] if dims else 1
    return x, n, c, s, x.stride(0), x.stride(1), s_stride


def _blocks(c: int, s_c: int) -> tuple[int, int]:
    """(BLOCK_P, BLOCK_C), 1024 elements a program: wide along channels when they are the
    contiguous dimension (channels_last), else wide along positions."""
    if s_c == 1:
        bc = min(64, triton.next_power_of_2(c))
        return 1024 // bc, bc
    return 128, 8


class _LRNTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
        xg, n, c, s, sn, sc, ss = _geometry(x)
        y = torch.empty_like(xg)
        bp, bc = _blocks(c, sc)
        grid = (triton.cdiv(n * s, bp), triton.cdiv(c, bc))
        _lrn_fwd[grid](xg, y, n * s, s, c, sn, sc, ss, alpha / size, beta, k,
                       BEFORE=size // 2, AFTER=(size - 1) // 2, BLOCK_P=bp, BLOCK_C=bc)
        ctx.save_for_backward(xg)
        ctx.lrn = (size, alpha, beta, k)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        (x,) = ctx.saved_tensors
        size, alpha, beta, k = ctx.lrn
        # The gradient in x's layout (it usually is: the next layer's gradient follows it).
        g = grad_out if grad_out.stride() == x.stride() else torch.empty_like(x).copy_(grad_out)
        x, n, c, s, sn, sc, ss = _geometry(x)
        dx = torch.empty_like(x)
        bp, bc = _blocks(c, sc)
        grid = (triton.cdiv(n * s, bp), triton.cdiv(c, bc))
        _lrn_bwd[grid](x, g, dx, n * s, s, c, sn, sc, ss, alpha / size, beta, k,
                       2.0 * alpha * beta / size, BEFORE=size // 2, AFTER=(size - 1) // 2,
                       BLOCK_P=bp, BLOCK_C=bc)
        return dx, None, None, None, None


def lrn_triton(x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
    """LRN of ``x`` (N, C, *) by the Triton kernels (CUDA tensors; any device under Triton's
    interpreter)."""
    return _LRNTriton.apply(x, int(size), float(alpha), float(beta), float(k))
