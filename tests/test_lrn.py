"""googlenet.models.lrn.LocalResponseNorm: the same function as torch.nn.LocalResponseNorm (values,
input gradients, memory format, dtypes), with a hand-written backward; and a drop-in for the
paper GoogLeNet's norm1/norm2.

Shapes are tiny. The batch slicing that large inputs go through is exercised by shrinking the
slice size (``_CHUNK_ELEMS``), so the tiny inputs are cut into several slices of samples and into
row slices of one sample.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from googlenet.models import lrn as lrn_mod
from googlenet.models.lrn import LocalResponseNorm, local_response_norm

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
# (alpha, beta, k, input scale): Caffe's parameters on inputs large enough that the
# normalisation is far from 1 (alpha/size * window sum ~ 1), plus the other pow paths.
PARAMS = [(1e-4, 0.75, 1.0, 100.0), (0.5, 0.75, 1.0, 1.0), (0.3, 0.6, 2.0, 1.0),
          (0.2, 0.5, 1.0, 1.0), (0.2, 1.0, 0.5, 1.0)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| relative to max |b|."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def _input(shape, fmt="nchw", dtype=torch.float32, scale=1.0) -> torch.Tensor:
    x = torch.randn(shape, dtype=torch.float64) * scale
    if len(shape) == 4:
        x = x.contiguous(memory_format=FORMATS[fmt])
    return x.to(dtype).requires_grad_()


def _fwd_bwd(module: nn.Module, x: torch.Tensor, g: torch.Tensor):
    x = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    y = module(x)
    (gx,) = torch.autograd.grad(y, x, g)
    return y, gx


@pytest.fixture(params=[None, 40], ids=["one-slice", "many-slices"])
def chunk(request, monkeypatch):
    """Tiny slices (40 elements) cut a (3, C, 5, 4) input into several samples' slices or, when a
    sample is larger than that, into row slices of each sample."""
    if request.param is not None:
        monkeypatch.setattr(lrn_mod, "_CHUNK_ELEMS", request.param)
    return request.param


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("channels", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("size", [1, 3, 4, 5])
def test_matches_torch_lrn(size, channels, fmt, chunk):
    """Forward and input gradient equal torch's within 1e-6 (float32) and within 1e-6 of a float64
    reference; our float64 equals torch's float64 to ~1e-13. The output keeps the input's
    strides."""
    for alpha, beta, k, scale in PARAMS:
        x = _input((3, channels, 5, 4), fmt, scale=scale)
        g = torch.randn(x.shape, dtype=torch.float64).contiguous(memory_format=FORMATS[fmt])
        ref = nn.LocalResponseNorm(size, alpha, beta, k)
        ours = LocalResponseNorm(size, alpha, beta, k)
        y64, gx64 = _fwd_bwd(ref, x.double(), g)  # torch's, in float64: the truth
        y, gx = _fwd_bwd(ours, x, g.float())
        yr, gxr = _fwd_bwd(ref, x, g.float())
        what = f"size {size}, C {channels}, {fmt}, alpha {alpha} beta {beta} k {k}"
        assert y.dtype == gx.dtype == torch.float32
        assert y.stride() == x.stride() and gx.stride() == x.stride(), what
        assert _rel(y, yr) <= 1e-6 and _rel(gx, gxr) <= 1e-6, what
        assert _rel(y, y64) <= 1e-6 and _rel(gx, gx64) <= 1e-6, what
        # The normalisation does something here (a wrong window would show).
        assert _rel(y64, x.double()) > 1e-2, what
        y_, gx_ = _fwd_bwd(ours, x.double(), g)
        assert _rel(y_, y64) <= 1e-13 and _rel(gx_, gx64) <= 1e-13, what


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size,channels", [(5, 7), (4, 6), (3, 2), (5, 3)])
def test_gradcheck(size, channels, fmt, chunk):
    x = _input((2, channels, 3, 3), fmt, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: local_response_norm(t, size, 0.5, 0.75, 1.0), (x,))
    assert torch.autograd.gradcheck(lambda t: local_response_norm(t, size, 0.3, 0.6, 2.0), (x,))


@pytest.mark.parametrize("shape", [(2, 6, 7), (2, 6, 3, 2, 2)], ids=["3d", "5d"])
def test_other_ranks(shape, chunk):
    x = _input(shape)
    g = torch.randn(shape)
    y, gx = _fwd_bwd(LocalResponseNorm(5, 0.5), x, g)
    yr, gxr = _fwd_bwd(nn.LocalResponseNorm(5, 0.5), x, g)
    assert y.shape == shape and _rel(y, yr) <= 1e-6 and _rel(gx, gxr) <= 1e-6


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input(dtype, fmt, chunk):
    """bf16/fp16 in, same dtype and strides out, computed in float32: the result is torch's
    float32 result on the same (rounded) input, rounded. (torch's own LRN computes in the low
    precision, and on CPU has no bf16 avg_pool3d for 4-D input in some versions.)"""
    x32 = _input((3, 7, 5, 4), fmt)
    g32 = torch.randn(x32.shape).contiguous(memory_format=FORMATS[fmt])
    x, g = x32.detach().to(dtype), g32.to(dtype)
    y, gx = _fwd_bwd(LocalResponseNorm(5, alpha=0.5), x, g)
    assert y.dtype == gx.dtype == dtype and y.stride() == x.stride() == gx.stride()
    yr, gxr = _fwd_bwd(nn.LocalResponseNorm(5, alpha=0.5), x.float(), g.float())
    tol = 2 ** -8 if dtype == torch.bfloat16 else 2 ** -11  # one rounding of the result
    assert _rel(y, yr) <= tol and _rel(gx, gxr) <= tol
    assert _rel(y, yr) > 0 and _rel(y, yr.to(dtype)) == 0  # exactly the rounded float32 result


def test_autocast_bf16():
    """Under CPU autocast a conv hands LRN bf16; LRN keeps bf16, is close to the float32
    network, and gradients flow back to the conv's weights."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    norm = LocalResponseNorm(5, alpha=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        y = norm(h)
    assert h.dtype == y.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.float().square().sum().backward()
    grad_bf16 = conv.weight.grad.clone()
    conv.zero_grad()
    y32 = nn.LocalResponseNorm(5, alpha=0.5)(conv(x))
    y32.square().sum().backward()
    assert _rel(y, y32) <= 2e-2 and _rel(grad_bf16, conv.weight.grad) <= 5e-2


def test_module_contract():
    """Same constructor, attributes, repr and (empty) state dict as torch's; no parameters."""
    ours, ref = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0), nn.LocalResponseNorm(5)
    assert isinstance(ours, nn.Module) and isinstance(ours, nn.LocalResponseNorm)
    assert repr(ours) == repr(ref) == "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)"
    assert ours.state_dict() == {} and list(ours.parameters()) == [] and list(ours.buffers()) == []
    ours.load_state_dict(ref.state_dict(), strict=True)
    with pytest.raises(ValueError, match="3D or higher"):
        ours(torch.randn(4, 5))
    with torch.no_grad():  # no autograd graph, same values
        x = torch.randn(2, 6, 3, 3)
        assert _rel(ours(x), ref(x)) <= 1e-6
    with torch.inference_mode():
        assert _rel(ours(x), ref(x)) <= 1e-6


def test_double_backward_is_refused():
    x = _input((1, 4, 2, 2), dtype=torch.float64)
    (gx,) = torch.autograd.grad(LocalResponseNorm(3, 0.5)(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


def test_traced_and_scripted_forms_match():
    """TorchScript, jit.trace and FX keep working (TorchScript and jit.trace run torch's
    composite; FX records a call to local_response_norm)."""
    m = LocalResponseNorm(5, alpha=0.5)
    x = torch.randn(2, 7, 3, 3)
    want = nn.LocalResponseNorm(5, alpha=0.5)(x)
    fx = torch.fx.symbolic_trace(m)
    assert any(n.target is local_response_norm for n in fx.graph.nodes)
    assert _rel(fx(x), want) <= 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.script/trace are deprecated in recent torch
        scripted = torch.jit.script(m)
        traced = torch.jit.trace(m, x)
    assert _rel(scripted(x), want) <= 1e-6 and _rel(traced(x), want) <= 1e-6


def _swap(model: nn.Module) -> None:
    """Put torch's own nn.LocalResponseNorm back where the model has ours (the reference)."""
    for name in ("norm1", "norm2"):
        m = getattr(model, name)
        assert type(m) is LocalResponseNorm  # the paper variant uses ours
        setattr(model, name, nn.LocalResponseNorm(m.size, m.alpha, m.beta, m.k))


@pytest.mark.parametrize("fmt", FORMATS)
def test_swapped_into_googlenet(fmt):
    """The paper GoogLeNet (with our LRN) gives the logits it gives with torch's
    nn.LocalResponseNorm in norm1/norm2 (eval mode); in training mode (dropout off) the loss
    gradients agree too."""
    from googlenet.models.googlenet import GoogLeNet

    mf = FORMATS[fmt]
    # Inputs ~100 so the LRNs (alpha 1e-4) really normalise: alpha/size * window sum ~ 1.
    x = (100 * torch.randn(2, 3, 64, 64)).contiguous(memory_format=mf)
    model = GoogLeNet(variant="paper", num_classes=10).eval().to(memory_format=mf)
    with torch.no_grad():
        want = model(x)
        _swap(model)
        got = model(x)
    assert want.abs().max() > 0.1
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
    # No state-dict entries either way: a torch-LRN model's weights load strictly.
    model.load_state_dict(GoogLeNet(variant="paper", num_classes=10).state_dict())

    grads = []
    for swap in (False, True):
        torch.manual_seed(1)
        m = GoogLeNet(variant="paper", num_classes=10, dropout=0.0, aux_dropout=0.0)
        m.train().to(memory_format=mf)
        if swap:
            _swap(m)
        out = m(x)
        (out.logits.square().mean() + 0.3 * out.aux1.square().mean()).backward()
        grads.append(torch.cat([m.conv1.conv.weight.grad.flatten(),
                                m.conv2.conv.weight.grad.flatten()]))
    assert grads[0].abs().max() > 0
    assert _rel(grads[1], grads[0]) <= 1e-4



# -- the GPU path (models/lrn_gpu.py) and the compiled form ------------------------------------

_TRITON_CHECK = r'''
import os, sys
os.environ["TRITON_INTERPRET"] = "1"  # Triton's interpreter: the kernels run on CPU tensors
import torch, torch.nn.functional as F
from googlenet.models.lrn_gpu import lrn_triton
torch.manual_seed(0)
worst = 0.0
cases = [((2, 7, 5, 6), "nchw"), ((2, 7, 5, 6), "cl"), ((1, 70, 3, 3), "cl"), ((2, 3, 4), "nchw"),
         ((2, 1, 3, 3), "nchw"), ((2, 6, 4, 4), "strided")]
for shape, fmt in cases:
    for size, (alpha, beta, k, scale) in ((5, (1e-4, 0.75, 1.0, 100.0)), (4, (0.3, 0.6, 2.0, 1.0)),
                                          (1, (0.2, 1.0, 0.5, 1.0))):
        base = torch.randn(shape, dtype=torch.float64) * scale
        if fmt == "cl":
            base = base.contiguous(memory_format=torch.channels_last)
        if fmt == "strided":  # a spatial slice: dims that do not collapse into one stride
            base = torch.randn(2, 6, 4, 8, dtype=torch.float64)[..., ::2] * scale
        x = base.float().requires_grad_(True)
        y = lrn_triton(x, size, alpha, beta, k)
        g = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, g)
        xr = base.clone().requires_grad_(True)
        yr = F.local_response_norm(xr, size, alpha, beta, k)
        (gr,) = torch.autograd.grad(yr, xr, g.double())
        rel = max(((y.double() - yr).abs().max() / yr.abs().max()).item(),
                  ((gx.double() - gr).abs().max() / gr.abs().max()).item())
        assert y.dtype == torch.float32 and gx.shape == x.shape
        if fmt != "strided":
            assert y.stride() == x.stride(), (shape, fmt, y.stride(), x.stride())
        worst = max(worst, rel)
# bf16 in, bf16 out, computed in float32: within bf16 rounding of the float64 result
xb = (torch.randn(2, 9, 3, 3) * 30).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
yb = lrn_triton(xb, 5, 1e-4, 0.75, 1.0)
ref = F.local_response_norm(xb.double(), 5, 1e-4, 0.75, 1.0)
assert yb.dtype == torch.bfloat16 and ((yb.double() - ref).abs() / ref.abs().clamp_min(1e-3)).max() < 1e-2
print("worst", worst)
'''


def test_triton_kernels_match_torch_in_the_interpreter(tmp_path):
    """The CUDA path's Triton kernels (forward and backward, every layout, window sizes odd and
    even, Caffe's parameters and others) equal torch's to float32 rounding. CI has no GPU:
    Triton's interpreter runs the same kernels on CPU tensors, in a subprocess (it is switched
    on by an environment variable read at import)."""
    pytest.importorskip("triton")
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _TRITON_CHECK], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    worst = float(proc.stdout.split("worst")[-1])
    assert worst < 2e-6, worst


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [1, 4, 5])
def test_compiled_form_is_the_same_function(size, fmt):
    """What torch.compile traces (shifted channel slices) equals torch's LRN, values and input
    gradients, and the dispatcher picks it while compiling (but not while exporting)."""
    x = _input((2, 7, 5, 4), fmt, torch.float64, scale=3.0)
    g = torch.randn(2, 7, 5, 4, dtype=torch.float64)
    y = lrn_mod._lrn_shifted(x, size, 0.3, 0.75, 1.0)
    (gx,) = torch.autograd.grad(y, x, g)
    xr = x.detach().clone().requires_grad_()
    yr = torch.nn.functional.local_response_norm(xr, size, 0.3, 0.75, 1.0)
    (gr,) = torch.autograd.grad(yr, xr, g)
    assert _rel(y, yr) < 1e-12 and _rel(gx, gr) < 1e-12


def test_dispatch_while_compiling_and_exporting(monkeypatch):
    calls = []
    monkeypatch.setattr(lrn_mod, "_lrn_shifted", lambda *a: calls.append("shifted") or a[0])
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    local_response_norm(torch.randn(1, 3, 2, 2), 5)
    assert calls == ["shifted"]
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    local_response_norm(torch.randn(1, 3, 2, 2), 5)  # exporting: torch's own composite
    assert calls == ["shifted"]


def test_compiles_with_the_fused_form():
    """torch.compile of a conv + LRN (CPU inductor here; Triton on a GPU): the same outputs and
    input gradients as eager."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), LocalResponseNorm(5, 1e-2, 0.75, 1.0))
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    ref = model(x)
    (gref,) = torch.autograd.grad(ref.sum(), x)
    out = torch.compile(model)(x)
    (gout,) = torch.autograd.grad(out.sum(), x)
    assert _rel(out, ref) < 1e-5 and _rel(gout, gref) < 1e-5
