"""``googlenet convert``: BVLC Caffe's bvlc_googlenet.caffemodel to safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..sources.registry import BVLC_GOOGLENET


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Convert BVLC Caffe's bvlc_googlenet.caffemodel (current or legacy V1 "
                     "format) to a .safetensors file of the paper variant, with Caffe's "
                     f"preprocessing and the ImageNet class names. Get the model from "
                     f"{BVLC_GOOGLENET.url} (about 53 MB; `googlenet weights download bvlc` "
                     f"fetches and verifies it).")
    p.add_argument("source_format", choices=["caffe"], help="format of the input model")
    p.add_argument("model", help="the binary .caffemodel file")
    p.add_argument("--out", default=None,
                   help="output .safetensors file; when omitted, MODEL with its suffix "
                        "changed to .safetensors")
    p.add_argument("--no-aux", action="store_true",
                   help="drop the auxiliary classifiers (loss1/loss2); they only matter for "
                        "fine-tuning")
    p.add_argument("--prototxt", default=None, metavar="FILE",
                   help="also write the matching deploy prototxt (for Caffe or OpenCV's DNN "
                        "module, which take the original .caffemodel and BGR input)")


def run(args: argparse.Namespace) -> int:
    from ..interop.caffe import caffe_prototxt, load_caffemodel
    from ..weights.io import atomic_write, check_writable_dir, save_weights

    src = Path(args.model)
    out = Path(args.out) if args.out else src.with_suffix(".safetensors")
    if out.suffix != ".safetensors":
        raise UserError(f"--out {out}: the output must be a .safetensors file")
    if out.resolve() == src.resolve():
        raise UserError(f"--out {out}: would overwrite the input")
    check_writable_dir(out.parent, "--out")  # before the conversion, not after
    if args.prototxt:
        check_writable_dir(Path(args.prototxt).parent, "--prototxt")
    lw = load_caffemodel(src, aux=False if args.no_aux else None, release_sha1=BVLC_GOOGLENET.sha1)
    info = lw.metadata
    save_weights(lw.model, out, class_names=lw.class_names, preprocess=lw.preprocess,
                 extra={k: info[k] for k in ("converted_from", "sha1", "caffe_name", "caffe_format",
                                             "bvlc_release")})
    print(f"{src}: {info['caffe_format']} format, {info['layers']} learnable layers, "
          f"{info['num_classes']} classes, aux heads {'kept' if info['aux_logits'] else 'none'}, "
          f"{info['parameters']:,} parameters")
    print(f"sha1 {info['sha1']}" + (" (BVLC's released bvlc_googlenet)" if info["bvlc_release"]
                                    else " (not BVLC's released file; converted anyway)"))
    if args.prototxt:
        text = caffe_prototxt(num_classes=info["num_classes"])
        atomic_write(args.prototxt, lambda tmp: Path(tmp).write_text(text))
        print(f"wrote {args.prototxt}")
    print(f"wrote {out}\n  use it: googlenet predict --weights {out} IMAGE.jpg")
    return 0
