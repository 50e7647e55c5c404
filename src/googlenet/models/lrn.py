"""A fast Local Response Normalization (LRN across channels, as in AlexNet/GoogLeNet) for CPU.

Why: the faithful GoogLeNet (``variant="paper"``) has LRN after pool1 (64x56x56 at 224 px) and
after conv2 (192x56x56). ``torch.nn.LocalResponseNorm`` builds it from pad + avg_pool3d + pow +
div, and autograd differentiates each of those, which made the paper variant train far slower
than the BatchNorm variant on a CPU. Here the same function is a handful of elementwise passes
with a hand-written backward, several times faster, which brings the paper variant to the bn
variant's speed (``benchmarks/bench_lrn.py``; the figures, with the machine: section "lrn" of
benchmarks/results/notes.md).

What it matches: ``torch.nn.LocalResponseNorm(size, alpha, beta, k)`` (same constructor, no
parameters or buffers, so state dicts are interchangeable; it subclasses it, so
``isinstance(m, nn.LocalResponseNorm)`` still holds), i.e. Caffe's ACROSS_CHANNELS LRN:

    b_c = a_c / (k + alpha/size * sum_{c' in window(c)} a_{c'}^2) ** beta,
    window(c) = [c - size//2, c + (size-1)//2] clipped to [0, C) (zero padding),

on input (N, C, *) with at least 3 dimensions, in any memory format (the output and the input
gradient keep the input's strides, so channels_last stays channels_last). Results agree with
torch's to float32 rounding (~3e-7 relative), not bit for bit: the sums are taken in another order.

Backward, with s_j = k + alpha/size * window_sum_j and g = dL/db:

    dL/da_i = g_i s_i^-beta
              - (2 alpha beta / size) a_i sum_{j: i in window(j)} g_j a_j s_j^(-beta-1)

Only the input is saved; the backward recomputes s slice by slice, and the "transposed" window
sum over j in [i - (size-1)//2, i + size//2] is again a few shifted channel slices. Double
backward is refused (``once_differentiable``).

Dtypes: float32 and float64 are computed in their own precision; float16/bfloat16 input is
computed in float32 and the result rounded once (torch's computes in the low precision, and for
4-D bf16 input on CPU raises: avg_pool3d has no bf16 kernel). Under CPU ``torch.autocast`` the
output keeps the input's dtype (bf16 after an autocast conv), whereas torch's returns float32
there (its avg_pool3d is on autocast's float32 list); the values differ by that one rounding.

Other devices and modes: CUDA tensors run two fused Triton kernels (models/lrn_gpu.py, the
same function and gradient); under torch.compile the LRN is written as shifted channel slices,
which the compiler fuses. ``torch.nn.functional.local_response_norm`` runs under TorchScript,
torch.jit.trace, ONNX export and torch.export (so exported graphs hold torch's composite, which
googlenet.interop.onnx_lrn turns back into ONNX's LRN), for non-floating-point or empty input, and
on CUDA without Triton. FX symbolic tracing records a call to ``local_response_norm``
(``torch.fx.wrap``), which runs the fast path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["LocalResponseNorm", "local_response_norm"]

# The input is processed in slices of about this many elements, each slice going through ~10
# (forward) and ~17 (backward) elementwise ops on scratch buffers of the slice's size, which are
# allocated once per call and stay in the L3 cache; 1M elements was the fastest size measured on
# a quiet machine (slice sizes timed: section "lrn" of benchmarks/results/notes.md).
_CHUNK_ELEMS = 1 << 20


def _offsets(before: int, after: int, channels: int) -> list[int]:
    """The nonzero channel offsets of a window [c - before, c + after] that can touch a valid
    channel (offsets of ``channels`` or more never do)."""
    return ([d for d in range(1, min(after, channels - 1) + 1)]
            + [-d for d in range(1, min(before, channels - 1) + 1)])


def _neighbour(t: Tensor, d: int) -> tuple[Tensor, Tensor]:
    """(where, what): for offset d, the channels c of ``where`` that have a channel c + d, and
    those channels c + d of ``t``, as two views along dim 1 of equal shape."""
    c = t.shape[1]
    return (slice(0, c - d), slice(d, c)) if d > 0 else (slice(-d, c), slice(0, c + d))


def _window_sum(out: Tensor, src: Tensor, before: int, after: int) -> Tensor:
    """out[:, c] = sum of src[:, c'] for c' in [c - before, c + after] (zero outside [0, C)),
    along dim 1. ``out`` and ``src`` are different tensors of the same shape."""
    offsets = _offsets(before, after, src.shape[1])
    if not offsets:
        return out.copy_(src)
    # The first neighbour is added with out=, saving a full copy; the channels it does not
    # reach (the last d, or the first -d) get the centre term alone.
    d = offsets[0]
    where, what = _neighbour(src, d)
    rest = slice(where.stop, None) if d > 0 else slice(0, where.start)
    torch.add(src[:, where], src[:, what], out=out[:, where])
    out[:, rest].copy_(src[:, rest])
    for d in offsets[1:]:
        where, what = _neighbour(src, d)
        out[:, where].add_(src[:, what])
    return out


def _window_sum_sq(out: Tensor, x: Tensor, before: int, after: int, coef: float,
                   k: float) -> Tensor:
    """out = k + coef * (window sum of x^2), with no buffer for the squares: each term is an
    addcmul of x's channels with themselves."""
    torch.addcmul(torch.full((), k, dtype=out.dtype), x, x, value=coef, out=out)
    for d in _offsets(before, after, x.shape[1]):
        where, what = _neighbour(x, d)
        xd = x[:, what]
        out[:, where].addcmul_(xd, xd, value=coef)
    return out


def _neg_pow(base: Tensor, beta: float, out: Tensor, tmp: Tensor) -> Tensor:
    """out = base ** -beta for base > 0 (``tmp`` is scratch of the same shape). beta 0.75
    (Caffe's) avoids pow, ~6x slower than rsqrt here: x^-0.75 = x^-0.5 * sqrt(x^-0.5)."""
    if beta == 0.75:
        torch.rsqrt(base, out=out)
        return out.mul_(torch.sqrt(out, out=tmp))
    if beta == 0.5:
        return torch.rsqrt(base, out=out)
    if beta == 1.0:
        return torch.reciprocal(base, out=out)
    return torch.pow(base, -beta, out=out)


def _even_step(total: int, step: int) -> int:
    """The step that cuts ``total`` into as many pieces as ``step`` would, of equal size (so no
    small last piece pays the per-op overhead for little work)."""
    pieces = -(-total // step) if total else 1
    return -(-total // pieces) if total else 1


class _Slices:
    """The input in slices of about ``_CHUNK_ELEMS`` elements (whole samples when they are
    small enough, else rows of one sample along dim 2), plus scratch buffers laid out like the
    largest slice, reused for every slice."""

    def __init__(self, x: Tensor, cdtype: torch.dtype) -> None:
        n = x.shape[0]
        per_sample = x[0].numel() if n else 0
        if per_sample <= _CHUNK_ELEMS or x.shape[2] == 1:
            step = _even_step(n, max(1, _CHUNK_ELEMS // max(1, per_sample)))
            self.dim = 0
            self.ranges = [(i, min(n, i + step)) for i in range(0, n, step)]
            first = x.narrow(0, 0, min(n, step))
        else:
            rows = x.shape[2]
            step = _even_step(rows, max(1, _CHUNK_ELEMS // (per_sample // rows)))
            self.dim = 2
            self.ranges = [(b, h, min(rows, h + step)) for b in range(n)
                           for h in range(0, rows, step)]
            first = x.narrow(0, 0, 1).narrow(2, 0, min(rows, step))
        self.proto = first
        self.cdtype = cdtype

    def scratch(self) -> Tensor:
        """A scratch buffer laid out like the largest slice."""
        return torch.empty_like(self.proto, dtype=self.cdtype)

    def __iter__(self):
        """Yields a function that cuts the current slice out of a full-size tensor and one that
        cuts a scratch buffer down to the slice's shape."""
        for r in self.ranges:
            if self.dim == 0:
                i, j = r
                yield (lambda t, i=i, j=j: t.narrow(0, i, j - i)), \
                      (lambda t, j=j, i=i: t.narrow(0, 0, j - i))
            else:
                b, h0, h1 = r
                yield (lambda t, b=b, h0=h0, h1=h1: t.narrow(0, b, 1).narrow(2, h0, h1 - h0)), \
                      (lambda t, h0=h0, h1=h1: t.narrow(2, 0, h1 - h0))


class _LRNFunction(torch.autograd.Function):
    """Saves only the input: the backward recomputes the window sums and scales slice by slice
    (cheaper than writing, page-faulting and re-reading two more full-size tensors, and it keeps
    the training memory of an LRN layer at torch's minimum: its input and output)."""

    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
        # Low-precision input is computed in float32, slice by slice (no full-size copy).
        cdtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        before, after = size // 2, (size - 1) // 2
        out = torch.empty_like(x)
        slices = _Slices(x, cdtype)
        a, b = slices.scratch(), slices.scratch()
        xw = slices.scratch() if cdtype != x.dtype else None
        for cut, fit in slices:
            xs = cut(x) if xw is None else fit(xw).copy_(cut(x))
            s = _window_sum_sq(fit(a), xs, before, after, alpha / size, k)
            sc = _neg_pow(s, beta, out=fit(b), tmp=s)  # s is no longer needed
            if xw is None:
                torch.mul(xs, sc, out=cut(out))
            else:
                cut(out).copy_(xs.mul_(sc))
        ctx.save_for_backward(x)
        ctx.lrn = (size, alpha, beta, k)
        return out

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable
    def backward(ctx, grad_out: Tensor):
        (x,) = ctx.saved_tensors
        size, alpha, beta, k = ctx.lrn
        cdtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        before, after = size // 2, (size - 1) // 2
        coef = 2.0 * alpha * beta / size
        grad_in = torch.empty_like(x)
        slices = _Slices(x, cdtype)
        a, b, c = slices.scratch(), slices.scratch(), slices.scratch()
        low = cdtype != x.dtype
        xw, gw = (slices.scratch(), slices.scratch()) if low else (None, None)
        for cut, fit in slices:
            xs = fit(xw).copy_(cut(x)) if low else cut(x)
            g = fit(gw).copy_(cut(grad_out)) if low else cut(grad_out)
            sa, sb, sc_ = fit(a), fit(b), fit(c)
            s = _window_sum_sq(sa, xs, before, after, alpha / size, k)  # sa = s
            scale = _neg_pow(s, beta, out=sb, tmp=sc_)  # sb = s^-beta
            ratio = torch.div(scale, s, out=sc_)  # s^(-beta-1)
            t = torch.mul(g, xs, out=sa).mul_(ratio)  # g_j a_j s_j^(-beta-1)
            # The transposed window: j with i in window(j), i.e. j in [i - after, i + before].
            u = _window_sum(sc_, t, after, before)
            if low:
                cut(grad_in).copy_(scale.mul_(g).addcmul_(xs, u, value=-coef))
            else:  # written straight into the gradient
                torch.mul(scale, g, out=cut(grad_in)).addcmul_(xs, u, value=-coef)
        return grad_in, None, None, None, None


def _use_reference() -> bool:
    """True where the autograd.Functions should not be used, so that tracing and exporting see
    torch's own composite (traceable, exportable, and rewritten into ONNX's LRN op by
    googlenet.interop.onnx_lrn): torch.jit.trace, the TorchScript-based ONNX export, and
    torch.export (which the dynamo-based ONNX exporter goes through). TorchScript is handled in
    ``LocalResponseNorm.forward`` and FX symbolic tracing by ``torch.fx.wrap`` below (the graph
    calls ``local_response_norm``)."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)()
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or exporting


def _lrn_shifted(x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
    """The same function as size shifted channel slices of the zero-padded squares: what
    torch.compile gets, since its compiler fuses this (forward and the backward it derives) into
    one kernel each, where torch's avg_pool3d form stays several."""
    before, after = size // 2, (size - 1) // 2
    c = x.shape[1]
    sq = (x * x).flatten(2)  # (N, C, S)
    sq = F.pad(sq, (0, 0, before, after))  # (N, C + size - 1, S)
    win = sq[:, 0:c]
    for d in range(1, size):
        win = win + sq[:, d:d + c]
    return x * (k + (alpha / size) * win.view_as(x)).pow(-beta)


_GPU_KERNEL: "object | None | bool" = False  # models.lrn_gpu.lrn_triton once looked up


def _gpu_kernel():
    """The Triton LRN (models/lrn_gpu.py), or None where Triton is not installed."""
    global _GPU_KERNEL
    if _GPU_KERNEL is False:
        try:
            from .lrn_gpu import lrn_triton
        except ImportError:  # no Triton (CPU-only builds of torch, some platforms)
            lrn_triton = None
        _GPU_KERNEL = lrn_triton
    return _GPU_KERNEL


def local_response_norm(x: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Functional form: same result as ``torch.nn.functional.local_response_norm``.

    Floating-point CPU tensors take the sliced CPU path above, CUDA tensors the fused Triton
    kernels (models/lrn_gpu.py), torch.compile a form its compiler fuses; anything else (and
    tracing and exporting) runs torch's."""
    # TorchScript (a scripted FX graph calls this function) compiles only this branch, but
    # parses the whole body: hence repr() below rather than an f-string's !r.
    if torch.jit.is_scripting():
        return F.local_response_norm(x, size, alpha, beta, k)
    if _use_reference():
        return F.local_response_norm(x, size, alpha, beta, k)
    if x.dim() < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {x.dim()} dimensions)")
    if int(size) < 1:
        raise ValueError(f"size must be a positive integer, got {repr(size)}")
    if x.numel() == 0 or not x.is_floating_point():
        return F.local_response_norm(x, size, alpha, beta, k)
    if torch.compiler.is_compiling():
        return _lrn_shifted(x, int(size), float(alpha), float(beta), float(k))
    if x.device.type == "cpu":
        return _LRNFunction.apply(x, int(size), float(alpha), float(beta), float(k))
    if x.device.type == "cuda" and x.dtype in (torch.float16, torch.bfloat16, torch.float32):
        kernel = _gpu_kernel()
        if kernel is not None:
            return kernel(x, size, alpha, beta, k)
    return F.local_response_norm(x, size, alpha, beta, k)


# FX symbolic tracing records a call to local_response_norm instead of tracing into it.
torch.fx.wrap("local_response_norm")


class LocalResponseNorm(nn.LocalResponseNorm):
    """Drop-in for ``torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)``, several
    times faster on CPU (forward and backward). See the module docstring.

    Subclasses ``nn.LocalResponseNorm`` (an ``nn.Module`` with no parameters or buffers) for its
    constructor, attributes (size, alpha, beta, k) and ``isinstance`` checks; only ``forward``
    differs. Under TorchScript it runs torch's implementation.
    """

    def extra_repr(self) -> str:
        return "{size}, alpha={alpha}, beta={beta}, k={k}".format(**self.__dict__)

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)
        return self._fast(input)

    @torch.jit.unused
    def _fast(self, input: Tensor) -> Tensor:
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)
