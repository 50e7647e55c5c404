"""The training input pipeline on the GPU (``--loader gpu``): the loader workers read file bytes
and draw each sample's augmentation; JPEGs are decoded in batches by nvJPEG and augmented as
tensors on the device.

Why: on a GPU the CPU decode and augmentation in the loader workers is the wall: the workers
of one machine cannot feed a large GPU what it trains on synthetic data (the figures: section
"gpu_pipeline" of benchmarks/results/notes.md, and benchmarks/results/gpu.md).

Split of the work:

- worker (``EncodedImages``, a view of an image folder): reads the file; a JPEG it can hand to
  nvJPEG (RGB or greyscale, no EXIF rotation) goes as its bytes, anything else (PNG, CMYK, rotated
  phone photos) is decoded on the CPU as today (``imaging.load_image``) and goes as pixels. It
  then draws the sample's augmentation (``AugmentParams.draw``) from torch's CPU generator, which
  the engine seeds per sample (engine/sampling.py): the same draws for the same (seed, epoch,
  index), so runs repeat and resume exactly as with the CPU loader.
- device (``GpuAugment``, called by the engine one batch ahead on a side CUDA stream):
  ``torchvision.io.decode_jpeg(list, device="cuda")`` decodes the batch; per sample the random crop
  is resized with its interpolation; then flips, the photometric distortions (in each sample's
  random order), PCA lighting and normalisation run on the whole batch.

The same code runs on CPU tensors (``torchvision.io.decode_jpeg`` on the CPU), which is how its
semantics are tested without a GPU (tests/test_gpu_pipeline.py). Against the CPU loader
(``data/transforms.py``: PIL, then tensors) the draws are the same kinds from the same ranges;
pixel values differ by the resampling implementations (PIL vs torch) and by the photometric
steps running on float instead of 8-bit images.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ..models.choices import LOADERS  # plain data (the command line's --help), re-exported
from .imaging import ImageError, check_regular_file, load_image

__all__ = ["LOADERS", "AugmentParams", "EncodedImages", "GpuAugment", "encoded_collate",
           "split_payloads", "is_jpeg_folder", "N_PARAMS"]

JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_SUFFIXES = (".jpg", ".jpeg")

# One sample's augmentation, as a float vector (drawn in a worker, applied on the device):
_INTERP, _CROP, _FLIP, _ORDER, _FACTORS, _PCA = 0, slice(1, 5), 5, slice(6, 10), slice(10, 14), slice(14, 17)
N_PARAMS = 17
_IDENTITY_FACTORS = (1.0, 1.0, 1.0, 0.0)  # brightness, contrast, saturation, hue: no change

# AlexNet's PCA lighting basis, as data/transforms.PCALighting (ImageNet RGB, [0, 1] pixels).
_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                        [-0.5808, -0.0045, -0.8140],
                        [-0.5836, -0.6948, 0.4203]])


@dataclass(frozen=True)
class AugmentParams:
    """The §6 training augmentation's settings (the config's), and the per-sample draw."""

    size: int
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    interpolations: tuple[str, ...]
    hflip: float
    brightness: float
    contrast: float
    saturation: float
    hue: float
    pca_lighting: float

    def draw(self, width: int, height: int) -> torch.Tensor:
        """The augmentation of one (width x height) image, from torch's CPU generator, with
        torchvision's own samplers: RandomResizedCrop's crop (area fraction in crop_scale, aspect
        ratio log-uniform in crop_ratio, 10 tries then the central crop) and ColorJitter's order
        and factors."""
        from torchvision import transforms as T

        interp = int(torch.randint(len(self.interpolations), ())) if len(self.interpolations) > 1 else 0
        box = T.RandomResizedCrop.get_params(torch.empty(0, height, width), list(self.crop_scale),
                                             list(self.crop_ratio))  # (top, left, h, w)
        flip = float(torch.rand(1) < self.hflip) if self.hflip > 0 else 0.0
        order, factors = [0.0, 1.0, 2.0, 3.0], list(_IDENTITY_FACTORS)
        ranges = self._jitter_ranges()
        if ranges is not None:
            idx, *drawn = T.ColorJitter.get_params(*ranges)
            order = idx.tolist()
            factors = [d if f is None else float(f) for f, d in zip(drawn, _IDENTITY_FACTORS)]
        pca = (torch.randn(3) * self.pca_lighting).tolist() if self.pca_lighting > 0 else [0.0] * 3
        return torch.tensor([interp, *box, flip, *order, *factors, *pca], dtype=torch.float32)

    def _jitter_ranges(self) -> Optional[tuple[Any, ...]]:
        """ColorJitter's (brightness, contrast, saturation, hue) ranges, made once."""
        cached = self.__dict__.get("_ranges", False)
        if cached is False:
            from torchvision import transforms as T

            cached = None
            if self.brightness or self.contrast or self.saturation or self.hue:
                j = T.ColorJitter(self.brightness, self.contrast, self.saturation, self.hue)
                cached = (j.brightness, j.contrast, j.saturation, j.hue)
            object.__setattr__(self, "_ranges", cached)  # a cache on a frozen dataclass
        return cached


def is_jpeg_folder(files: Sequence[str], sample: int = 64) -> bool:
    """Whether an image folder is JPEG data (most of an even sample of its files are .jpg/.jpeg):
    what ``--loader auto`` reads on a GPU."""
    if not files:
        return False
    step = max(1, len(files) // sample)
    picked = list(files)[::step][:sample]
    return sum(str(f).lower().endswith(JPEG_SUFFIXES) for f in picked) * 2 > len(picked)


def _header(data: bytes) -> tuple[int, int, bool]:
    """(width, height, nvjpeg_can_decode) of JPEG bytes, from the header only: nvJPEG takes
    baseline and progressive RGB/greyscale JPEGs; EXIF-rotated ones, CMYK/YCCK and anything over
    Pillow's decompression-bomb limit go to the CPU decode (which refuses the bombs, naming them)."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
        ok = (im.format == "JPEG" and im.mode in ("RGB", "L") and orientation in (0, 1)
              and w * h <= (Image.MAX_IMAGE_PIXELS or w * h))
    return w, h, ok


class EncodedImages(torch.utils.data.Dataset):
    """An image folder dataset (``datasets.FolderImageDataset``) as the GPU pipeline's input: item
    i is ``(payload, params, label, i)``, payload a uint8 tensor holding either the JPEG bytes
    (1-D) or the decoded (3, H, W) pixels. A file that cannot be read is replaced by the next
    readable one and recorded in ``skipped``, as the CPU loader does."""

    def __init__(self, folder: Any, params: AugmentParams) -> None:
        self.folder, self.params = folder, params
        self.classes, self.targets, self.files = folder.classes, folder.targets, folder.files
        self.name, self.split = folder.name, folder.split

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.folder.skipped

    def __len__(self) -> int:
        return len(self.folder)

    def _read(self, i: int) -> tuple[torch.Tensor, int, int]:
        path = self.files[i]
        if path.lower().endswith(JPEG_SUFFIXES):
            try:
                with open(check_regular_file(path), "rb") as f:
                    data = f.read()
                if data[:3] == JPEG_MAGIC:
                    w, h, ok = _header(data)
                    if ok:
                        return torch.frombuffer(bytearray(data), dtype=torch.uint8), w, h
            except OSError:
                pass  # the CPU decode below names the problem
            except Exception:  # noqa: BLE001  a header PIL cannot parse: the CPU decode decides
                pass
        img = load_image(path)  # ImageError naming the file when it cannot be used
        t = torch.from_numpy(_rgb_array(img)).permute(2, 0, 1).contiguous()  # (3, H, W) uint8
        return t, img.width, img.height

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        for k in range(min(len(self), 16)):
            j = (i + k) % len(self)
            try:
                payload, w, h = self._read(j)
                return payload, self.params.draw(w, h), self.targets[j], j
            except ImageError as e:
                if self.folder.strict:
                    raise
                self.folder.skipped.append((self.files[j], str(e)))
                warnings.warn(f"skipping unreadable image: {e}", stacklevel=2)
        raise ImageError(f"{self.name}: 16 consecutive images from index {i} cannot be read; "
                         f"first: {self.files[i]}")


def _rgb_array(img: Image.Image) -> Any:
    import numpy as np

    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy


def encoded_collate(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor],
                                                torch.Tensor, torch.Tensor, torch.Tensor]:
    """Items -> ``(bytes, sizes, pixels, params, labels, index)``: every JPEG's bytes in ONE flat
    uint8 tensor (``sizes[i]`` bytes for sample i, in order; -1 for a sample decoded on the CPU,
    whose (3, H, W) tensor is next in ``pixels``). One tensor instead of one per image: the
    loader moves each tensor from a worker through its own shared-memory segment, and pins each
    one, which for 256 small tensors cost more than decoding them."""
    payloads, params, labels, index = zip(*batch)
    jpeg = [p for p in payloads if p.dim() == 1]
    flat = torch.cat(jpeg) if jpeg else torch.zeros(0, dtype=torch.uint8)
    sizes = torch.tensor([p.numel() if p.dim() == 1 else -1 for p in payloads], dtype=torch.int64)
    pixels = [p for p in payloads if p.dim() == 3]
    return (flat, sizes, pixels, torch.stack(params), torch.tensor(labels, dtype=torch.int64),
            torch.tensor(index, dtype=torch.int64))


def split_payloads(flat: torch.Tensor, sizes: torch.Tensor,
                   pixels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``encoded_collate``'s packing undone: each sample's bytes (a view) or pixels."""
    out, offset, k = [], 0, 0
    for n in sizes.tolist():
        if n < 0:
            out.append(pixels[k])
            k += 1
        else:
            out.append(flat[offset:offset + n])
            offset += n
    return out


class GpuAugment:
    """Decodes and augments an ``encoded_collate`` batch on ``device`` -> ``((N, 3, S, S)
    normalised float32, labels)``, in channels_last when asked."""

    def __init__(self, params: AugmentParams, mean: Sequence[float], std: Sequence[float], *,
                 files: Sequence[str] = (), channels_last: bool = True) -> None:
        from .preprocess import _INTERP

        self.params = params
        self.modes = [_INTERP[m] for m in params.interpolations]
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.files = list(files)
        self.channels_last = channels_last
        self.cpu_decoded = 0  # JPEGs nvJPEG refused, decoded by Pillow instead
        self.skipped: list[tuple[str, str]] = []  # (file, why): bytes nothing could decode

    # -- decoding ---------------------------------------------------------------------------------

    def decode(self, payloads: Sequence[torch.Tensor], index: Sequence[int],
               device: torch.device) -> list[Optional[torch.Tensor]]:
        """(3, H, W) uint8 images on ``device``: JPEG bytes through nvJPEG in one batched call
        (one by one, then Pillow, for a batch it refuses), pixels copied over; None for bytes
        nothing can decode (the file changed after the dataset was opened), which are named."""
        from torchvision.io import ImageReadMode, decode_jpeg

        out: list[Optional[torch.Tensor]] = [None] * len(payloads)
        jpeg = [i for i, p in enumerate(payloads) if p.dim() == 1]
        for i, p in enumerate(payloads):
            if p.dim() == 3:
                out[i] = p.to(device, non_blocking=True)
        if jpeg:
            dev = device if device.type == "cuda" else "cpu"
            try:
                with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec instead
                    warnings.simplefilter("ignore", DeprecationWarning)
                    decoded = decode_jpeg([payloads[i] for i in jpeg], mode=ImageReadMode.RGB,
                                          device=dev)
                for i, img in zip(jpeg, decoded):
                    out[i] = img
            except RuntimeError:  # one bad stream fails the whole batched call
                for i in jpeg:
                    out[i] = self._decode_one(payloads[i], int(index[i]), dev)
        return out

    def _decode_one(self, data: torch.Tensor, index: int, device: Any) -> Optional[torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            pass
        try:
            with Image.open(io.BytesIO(data.numpy().tobytes())) as im:
                arr = _rgb_array(im)
            self.cpu_decoded += 1
            return torch.from_numpy(arr).permute(2, 0, 1).contiguous().to(device)
        except Exception as e:  # noqa: BLE001  any decoder failure: this file is skipped
            name = self.files[index] if index < len(self.files) else f"image {index}"
            self.skipped.append((name, f"{name}: cannot be decoded ({type(e).__name__})"))
            warnings.warn(f"skipping unreadable image: {name}", stacklevel=2)
            return None

    # -- augmenting -------------------------------------------------------------------------------

    def _crop_resize(self, img: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """One sample: its random crop, resized to S x S with its interpolation, float in [0, 1]."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        top, left, h, w = (int(v) for v in p[_CROP].tolist())
        x = img[:, top:top + h, left:left + w].float().div_(255.0)  # (3, h, w)
        size = [self.params.size, self.params.size]
        mode = self.modes[int(p[_INTERP])]
        if mode == InterpolationMode.BOX:  # PIL's box filter; tensors have area averaging
            x = F.interpolate(x[None], size=size, mode="area")[0]
        else:
            x = TF.resize(x, size, interpolation=mode, antialias=mode != InterpolationMode.NEAREST)
        return x.clamp_(0.0, 1.0) if mode == InterpolationMode.BICUBIC else x

    def _photometric(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """ColorJitter's four steps in each sample's own order (samples sharing a step at a
        position go together), with torchvision's formulas; per-sample factors broadcast, since
        torchvision's functional ops take one factor per call."""
        from torchvision.transforms.v2 import functional as TF

        order, factors = params[:, _ORDER].long(), params[:, _FACTORS]
        enabled = [self.params.brightness, self.params.contrast, self.params.saturation,
                   self.params.hue]
        f = factors.to(x.device, non_blocking=True).view(-1, 4, 1, 1, 1)
        for pos in range(4):
            for op in range(4):
                if not enabled[op]:
                    continue
                sel = (order[:, pos] == op).nonzero().flatten()  # CPU: no device sync
                if not len(sel):
                    continue
                idx = sel.to(x.device, non_blocking=True)
                xs, fs = x.index_select(0, idx), f[idx, op]
                if op == 0:  # brightness: blend with black
                    xs = (xs * fs).clamp_(0.0, 1.0)
                elif op == 1:  # contrast: blend with the mean grey level of the image
                    m = TF.rgb_to_grayscale(xs).mean(dim=(-3, -2, -1), keepdim=True)
                    xs = (fs * xs + (1.0 - fs) * m).clamp_(0.0, 1.0)
                elif op == 2:  # saturation: blend with the image's grey version
                    xs = (fs * xs + (1.0 - fs) * TF.rgb_to_grayscale(xs)).clamp_(0.0, 1.0)
                else:  # hue: a rotation in HSV, one sample at a time (one factor per call)
                    xs = torch.stack([TF.adjust_hue(xs[k], float(factors[i, 3]))
                                      for k, i in enumerate(sel.tolist())])
                x = x.index_copy(0, idx, xs)
        return x

    def __call__(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        flat, sizes, pixels, params, labels, index = batch
        images = self.decode(split_payloads(flat, sizes, pixels), index.tolist(), device)
        good = [i for i, img in enumerate(images) if img is not None]
        if not good:
            raise ImageError(f"no image of a batch could be decoded (first: "
                             f"{self.skipped[-1][0] if self.skipped else '?'})")
        if len(good) < len(images):  # an unreadable sample is replaced by a readable one
            pick = torch.tensor([i if images[i] is not None else good[0] for i in range(len(images))])
            images = [images[i] for i in pick.tolist()]
            params, labels = params[pick], labels[pick]
        x = torch.stack([self._crop_resize(img, p) for img, p in zip(images, params)])  # (N, 3, S, S)
        if self.params.hflip > 0:
            flip = params[:, _FLIP].bool().to(device, non_blocking=True).view(-1, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        x = self._photometric(x, params)
        if self.params.pca_lighting > 0:
            rgb = (params[:, _PCA] * _EIGVAL) @ _EIGVEC.T  # (N, 3)
            x = x + rgb.to(device, non_blocking=True).view(-1, 3, 1, 1)
        x = (x - self.mean.to(device)) / self.std.to(device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels.to(device, non_blocking=True)
