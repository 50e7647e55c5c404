"""One benchmark runner, alone in its own process: ``python -m googlenet.infer.bench_worker JOB OUT``.

The parent (``googlenet bench``, ``infer.bench.run_job``) writes JOB (JSON) and the tensors it
names; this process builds only the runtime that job needs (so no other runtime's thread pool
exists here), checks agreement with the fp32 logits the parent computed, warms up, times
``repeats`` calls per batch size and writes OUT (JSON): timings, its PID, the load average before
and after, setup time, agreement, notes, or the reason the runner does not apply here.

Runners: ours (``{"kind": "ours", "variant", "mode"}``: ``fast.prepare`` on our model) and the
peers a user would pick without this package (``{"kind": "peer", "mode"}``), all on
``torchvision.models.googlenet`` holding the same weights as our torchvision variant:

    eager    torchvision's model, eager fp32 (the reference row)
    compile  torch.compile(model), inductor's defaults
    eager_bf16, compile_bf16   the same in channels_last under bf16 autocast (as a GPU user
             runs it; CPUs with native bf16 too)
    ort      onnxruntime on torch.onnx's export of it, fp32
    ov       OpenVINO: openvino.convert_model(model), INFERENCE_PRECISION_HINT f32
    ov_bf16  the same with INFERENCE_PRECISION_HINT bf16 (native bf16 CPUs only)
    ov_int8  nncf.quantize of that OpenVINO model on the same calibration images as ours

``python -m googlenet.infer.bench_worker --serve JOB`` builds the runner once and times blocks on
request (``serve``): the paired comparison of two finalists.

``python -m googlenet.infer.bench_worker --probe`` prints the runtimes' versions and OpenVINO's
CPU capabilities as JSON (so that the parent never imports them).
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from .modes import PEERS, TORCH_PEERS  # torchvision's model in another runtime -> its precision class


def probe() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("onnxruntime", "onnx", "openvino", "nncf"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        import openvino as ov

        out["openvino_cpu_capabilities"] = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception as e:  # noqa: BLE001  a probe reports, it does not fail
        out["openvino_cpu_capabilities"] = f"unavailable: {type(e).__name__}: {e}"
    return out


def _peer(mode: str, tv: nn.Module, calibration: torch.Tensor, *, image_size: int,
          threads: int, device: torch.device,
          notes: list[str]) -> Callable[[torch.Tensor], torch.Tensor] | str:
    """A peer runner on torchvision's model, or the reason it does not apply here."""
    example = torch.zeros(2, 3, image_size, image_size)
    if mode in TORCH_PEERS:
        tv = tv.to(device)
        if mode.endswith("_bf16"):
            from ..models.graph import native_bf16

            if not native_bf16(device):
                return f"no native bf16 on this {device.type}"
            tv = tv.to(memory_format=torch.channels_last)
        net = torch.compile(tv) if mode.startswith("compile") else tv
        if mode.startswith("compile"):
            notes.append("torch.compile(model), default settings")
        if not mode.endswith("_bf16"):
            return net

        def bf16(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return net(x.contiguous(memory_format=torch.channels_last))

        return bf16
    if device.type != "cpu":
        return f"{mode} is a CPU runtime"
    if mode == "ort":
        import tempfile

        import onnxruntime as ort

        from ..interop.export import export_onnx

        program = torch.export.export(tv, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(program, Path(tmp) / "tv.onnx", example=example)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    from ..interop import openvino as ovi

    why = ovi.available()
    if why is not None:
        return why
    if mode == "ov_bf16" and not ovi.native_bf16():
        return "no native bf16 on this CPU (OpenVINO lists no BF16 capability)"
    ov_model = ovi.convert(tv, example)
    if mode == "ov_int8":
        from .fast import calibration_batches

        ov_model = ovi.quantize(ov_model, calibration_batches(calibration))
        notes.append(f"NNCF-quantized on {len(calibration)} images")
    return ovi.OVRunner(ov_model, PEERS[mode], threads=threads, hint="auto")


def _build(job: dict[str, Any], data: dict[str, torch.Tensor], notes: list[str]
           ) -> tuple[Callable[[torch.Tensor], torch.Tensor] | str, str]:
    """(runner or the reason it does not apply, precision)."""
    from . import fast
    from .bench import bf16_conv_probe, torchvision_reference
    from ..models.registry import model_from_config

    saved = torch.load(job["model_file"], weights_only=True)
    model = model_from_config(saved["config"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    r = job["runner"]
    if r["kind"] == "peer":
        fn = _peer(r["mode"], torchvision_reference(model), data["calibration"],
                   image_size=job["image_size"], threads=job["threads"],
                   device=torch.device(job.get("device", "cpu")), notes=notes)
        return fn, PEERS[r["mode"]]
    mode, device = r["mode"], torch.device(job.get("device", "cpu"))
    why = fast.applies(model, mode, device)
    if why is None and mode == "bf16" and not fast.native_bf16(device) and not job.get("force_bf16"):
        p = bf16_conv_probe(device)
        why = (f"no native bf16 on this {device.type}: one 3x3 conv runs at {p['bf16']:.1f} "
               f"GFLOP/s in bf16 vs {p['fp32']:.1f} in fp32 (--force-bf16 to time it anyway)")
    if why is not None:
        return why, fast.MODES[mode].precision
    runner = fast.prepare(model, mode, device=device, calibration=data["calibration"],
                          image_size=job["image_size"], threads=job["threads"])
    notes.extend(runner.notes)
    return runner, runner.precision


def _time(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch: int,
          repeats: int, warmup: int, device: torch.device) -> list[float]:
    x = inputs[:batch]
    if len(x) < batch:
        x = x.repeat((batch + len(x) - 1) // len(x), 1, 1, 1)[:batch]
    x = x.to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        for _ in range(warmup):  # first-call allocations; compilation for a new shape
            fn(x)
        sync()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x)
            sync()
            times.append(time.perf_counter() - t)
    return times


def _setup(job: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, torch.Tensor]]:
    """(the result so far, the runner or None where it does not apply, the job's tensors)."""
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    job["threads"] = torch.get_num_threads()
    out: dict[str, Any] = {"pid": os.getpid(), "load_before": list(os.getloadavg()),
                           "threads": job["threads"]}
    data = torch.load(job["inputs_file"], weights_only=True)
    notes: list[str] = []
    t0 = time.perf_counter()
    fn, precision = _build(job, data, notes)
    out.update(precision=precision, notes=notes)
    if isinstance(fn, str):
        out["skipped"] = fn
        return out, None, data
    out["setup_s"] = time.perf_counter() - t0
    return out, fn, data


def run(job: dict[str, Any]) -> dict[str, Any]:
    from ..metrics.agreement import agreement

    out, fn, data = _setup(job)
    if fn is None:
        return out
    device = torch.device(job.get("device", "cpu"))
    with torch.inference_mode():  # agreement with fp32 eager, also the first call of each shape
        logits = torch.cat([fn(b.to(device)).float().cpu() for b in data["check"].split(32)])
    if "reference_logits" in data:
        out["agreement"] = agreement(data["reference_logits"], logits).to_dict()
    out["timings"] = {str(b): _time(fn, data["check"], b, job["repeats"], job["warmup"], device)
                      for b in job["batch_sizes"]}
    out["load_after"] = list(os.getloadavg())
    return out


def _cpu_seconds() -> float:
    return time.process_time()  # all threads, user + system, nanosecond clock


def serve(job: dict[str, Any]) -> int:
    """Build the runner once, then time blocks on request, for a paired comparison
    (``infer.paired.head_to_head``): the parent alternates two such processes, so slow drifts
    of the machine hit both sides alike.

    Protocol, one JSON object per line: this process answers on its original stdout (which
    library output can no longer reach: fd 1 is pointed at stderr) and reads stdin. First
    ``{"ready": ...}`` (or ``{"skipped"|"error": ...}``, then exit); then for each
    ``{"batch": B, "repeats": N, "warmup": W}`` the block's timings with this process's CPU
    seconds when the request arrived and when the block ended (the parent checks with them that
    an idle process used no CPU while the other was timed); ``{"quit": true}`` or EOF ends it."""
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def say(msg: dict[str, Any]) -> None:
        answer.write(json.dumps(msg) + "\n")
        answer.flush()

    try:
        out, fn, data = _setup(job)
    except Exception as e:  # noqa: BLE001  reported to the parent
        say({"error": f"{type(e).__name__}: {e}"[:300]})
        return 0
    if fn is None:
        say(out)
        return 0
    device = torch.device(job.get("device", "cpu"))
    say({"ready": True, **out})
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        cpu_at_request = _cpu_seconds()
        times = _time(fn, data["check"], int(req["batch"]), int(req["repeats"]),
                      int(req.get("warmup", 1)), device)
        say({"times": times, "cpu_at_request": cpu_at_request, "cpu_at_end": _cpu_seconds(),
             "load": os.getloadavg()[0]})
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--probe"]:
        print(json.dumps(probe()))
        return 0
    if len(argv) == 2 and argv[0] == "--serve":
        return serve(json.loads(Path(argv[1]).read_text()))
    if len(argv) != 2:
        print("usage: python -m googlenet.infer.bench_worker JOB.json OUT.json | --serve JOB.json"
              " | --probe",
              file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    try:
        result = run(job)
    except Exception as e:  # noqa: BLE001  reported to the parent, which keeps the other rows
        import traceback

        traceback.print_exc()
        result = {"pid": os.getpid(), "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                  if str(e) else type(e).__name__}
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
