"""Known pretrained weights, in the spirit of torchvision's ``Weights`` records
(``torchvision/models/_api.py``): one frozen record per released file with where it comes from,
its hashes, its preprocessing, its categories, its size and reported accuracy, its license, and
which variant of the network it loads into and how.

    googlenet weights list                  # the table below, with what is in the cache
    googlenet weights download bvlc         # into $GOOGLENET_CACHE or ~/.cache/googlenet
    googlenet predict --weights bvlc a.jpg  # cache first, then download

Downloads are verified before they are used: the file is written to ``NAME.part`` in the cache,
hashed, and only then renamed (atomically) to its final name, so the final name only ever holds
a complete, verified file. An interrupted download leaves the ``.part`` file, which the next run
resumes with an HTTP Range request when the server honours it (else it starts over); a file whose
hash is wrong is deleted. A cached file that verifies is used without any network access.

Why not ``torch.hub.download_url_to_file``: it checks only a SHA-256 prefix (BVLC publishes a
SHA-1), writes to a random ``*.partial`` name that it deletes on any error (so nothing can be
resumed, and a 53 MB download restarts from zero), and raises a bare RuntimeError on a hash
mismatch. The loop below is ``urllib.request`` plus those three things.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from ..errors import FileSystemError, UserError
from ..fileio import not_regular

if TYPE_CHECKING:  # no torch at import: `googlenet weights --help` lists WEIGHTS without it
    from ..data.preprocess import Preprocess
    from ..weights.records import LoadedWeights

__all__ = ["KnownWeights", "WEIGHTS", "BVLC_GOOGLENET", "TORCHVISION_IMAGENET",
           "BVLC_GOOGLENET_URL", "BVLC_GOOGLENET_SHA1", "CACHE_ENV", "lookup", "get", "cache_dir",
           "cached_file", "verify", "download", "fetch", "load_known"]

CACHE_ENV = "GOOGLENET_CACHE"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownWeights:
    """One released set of weights. ``sha256`` may be a prefix (torchvision publishes the first 8
    hex digits in the file name, as torch.hub's ``check_hash`` uses); any hash given must match."""

    name: str
    url: str
    filename: str  # name in the cache
    # Both may be given as a function that returns them, called when they are first needed.
    preprocess: Preprocess | Callable[[], Preprocess]
    categories: tuple[str, ...] | Callable[[], Sequence[str]]
    num_params: int  # inference model (no aux heads), weights + biases
    metrics: Mapping[str, float]  # ImageNet-1K val, single 224 center crop, as reported
    metrics_source: str
    license: str
    variant: str  # the googlenet variant it loads into
    loader: str  # "caffe" (interop.caffe converter) or "torchvision" (state dict, key renaming)
    sha256: Optional[str] = None
    sha1: Optional[str] = None
    size_mb: Optional[float] = None  # approximate, for the table
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not (self.sha256 or self.sha1):
            raise ValueError(f"{self.name}: a known file needs a sha256 (or prefix) or a sha1")
        if self.loader not in ("caffe", "torchvision"):
            raise ValueError(f"{self.name}: loader must be 'caffe' or 'torchvision'")
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    def category_names(self) -> list[str]:
        c = self.categories
        return list(c() if callable(c) else c)

    def preprocessing(self) -> Preprocess:
        p = self.preprocess
        return p() if callable(p) else p

    def hashes(self) -> dict[str, str]:
        return {k: v for k, v in (("sha256", self.sha256), ("sha1", self.sha1)) if v}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "aliases": list(self.aliases), "url": self.url,
                "filename": self.filename, **self.hashes(), "size_mb": self.size_mb,
                "variant": self.variant, "loader": self.loader, "num_params": self.num_params,
                "metrics": dict(self.metrics), "metrics_source": self.metrics_source,
                "num_categories": len(self.category_names()),
                "preprocess": self.preprocessing().to_dict(), "license": self.license,
                "description": self.description}


# Their preprocessing and categories live with the code that reads the files (interop/), which
# imports torch: fetched when first asked for.
def _caffe_preprocess() -> Preprocess:
    from ..interop.caffe import CAFFE_PREPROCESS

    return CAFFE_PREPROCESS


def _torchvision_preprocess() -> Preprocess:
    from ..interop.torchvision import TORCHVISION_PREPROCESS

    return TORCHVISION_PREPROCESS


def _imagenet_categories() -> list[str]:
    from ..interop.torchvision import imagenet_categories

    return imagenet_categories()


# BVLC's models/bvlc_googlenet/readme.md: the URL, the SHA-1, 68.7% / 88.9% (single center crop,
# ILSVRC2012 val), and "This model is released for unrestricted use."
BVLC_GOOGLENET = KnownWeights(
    name="bvlc", aliases=("bvlc_googlenet",),
    url="http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel",
    filename="bvlc_googlenet.caffemodel",
    sha1="405fc5acd08a3bb12de8ee5e23a96bec22f08204", size_mb=53.5,
    preprocess=_caffe_preprocess, categories=_imagenet_categories, num_params=6_998_552,
    metrics={"top1": 68.7, "top5": 88.9},
    metrics_source="BVLC model zoo readme (Caffe, single center crop, ILSVRC2012 val)",
    license="BVLC: released for unrestricted use",
    variant="paper", loader="caffe",
    description="BVLC Caffe bvlc_googlenet (Sergio Guadarrama): the paper's network with LRN and "
                "5x5 branches, converted from the .caffemodel by googlenet.interop.caffe")

# torchvision's GoogLeNet_Weights.IMAGENET1K_V1 (its meta: 69.778 / 89.530, 6,624,904 params).
TORCHVISION_IMAGENET = KnownWeights(
    name="imagenet", aliases=("torchvision", "torchvision:imagenet", "IMAGENET1K_V1"),
    url="https://download.pytorch.org/models/googlenet-1378be20.pth",
    filename="googlenet-1378be20.pth", sha256="1378be20", size_mb=49.7,
    preprocess=_torchvision_preprocess, categories=_imagenet_categories, num_params=6_624_904,
    metrics={"top1": 69.778, "top5": 89.530},
    metrics_source="torchvision GoogLeNet_Weights.IMAGENET1K_V1 meta (resize 256, crop 224)",
    license="BSD-3-Clause (torchvision); ImageNet terms of access apply to the training data",
    variant="torchvision", loader="torchvision",
    description="torchvision GoogLeNet_Weights.IMAGENET1K_V1: BatchNorm, 3x3 '5x5' branches, "
                "state dict loaded into the torchvision variant (same logits)")

WEIGHTS: Mapping[str, KnownWeights] = MappingProxyType(
    {w.name: w for w in (BVLC_GOOGLENET, TORCHVISION_IMAGENET)})

# Kept for callers of the former googlenet.interop.caffe constants.
BVLC_GOOGLENET_URL = BVLC_GOOGLENET.url
BVLC_GOOGLENET_SHA1 = BVLC_GOOGLENET.sha1


def lookup(name: str) -> Optional[KnownWeights]:
    """The record for a name or alias (also ``caffe:NAME`` for Caffe records), else None."""
    if name.startswith("caffe:"):
        w = lookup(name[len("caffe:"):])
        return w if w is not None and w.loader == "caffe" else None
    for w in WEIGHTS.values():
        if name == w.name or name in w.aliases:
            return w
    return None


def get(name: str) -> KnownWeights:
    w = lookup(name)
    if w is None:
        raise UserError(f"{name}: not a known weights name; known: {', '.join(WEIGHTS)} "
                        f"(`googlenet weights list`)", key="name")
    return w


def cache_dir(cache: Optional[str | os.PathLike] = None) -> Path:
    """``cache``, else $GOOGLENET_CACHE, else ~/.cache/googlenet."""
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "googlenet"


def cached_file(w: KnownWeights, cache: Optional[str | os.PathLike] = None) -> Path:
    return cache_dir(cache) / w.filename


def _digests(path: Path) -> dict[str, str]:
    hs = {"sha256": hashlib.sha256(), "sha1": hashlib.sha1()}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            for h in hs.values():
                h.update(chunk)
    return {k: h.hexdigest() for k, h in hs.items()}


def _mismatch(path: Path, w: KnownWeights) -> Optional[str]:
    """None if every hash of ``w`` matches the file, else what differs."""
    got = _digests(path)
    bad = [f"{k} {got[k]} (expected {v}{'...' if len(v) < len(got[k]) else ''})"
           for k, v in w.hashes().items() if not got[k].startswith(v.lower())]
    return "; ".join(bad) or None


def verify(path: str | os.PathLike, w: KnownWeights) -> bool:
    return _mismatch(Path(path), w) is None


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": "googlenet"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part is not a prefix the server knows: start over
            return None
        raise UserError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"cannot download {url} ({reason}); offline? Fetch the file elsewhere "
                        f"and put it in the cache, or pass its path") from None


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Fill ``part`` with the file at ``url``, resuming from what ``part`` already holds when the
    server answers a Range request with 206; any other answer restarts from byte 0."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    resp = _open(url, offset, timeout)
    if resp is None:
        offset, resp = 0, _open(url, 0, timeout)
    with resp:
        status = getattr(resp, "status", None)  # None for file:// URLs
        if offset and status != 206:
            offset = 0  # Range not honoured: the body is the whole file
        length = resp.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        done = offset
        with open(part, "ab" if offset else "wb") as f, tqdm(
                total=expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, disable=None if progress else True, desc=part.name[:-5]) as bar:
            try:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            except (OSError, ValueError, http.client.HTTPException) as e:  # reset, timeout,
                # IncompleteRead (the server closed the connection before Content-Length)
                raise UserError(f"download of {url} interrupted after {done:,} bytes ({e}); "
                                f"run it again to resume from {part}") from None
            f.flush()
            os.fsync(f.fileno())
    if expected is not None and done < expected:
        raise UserError(f"download of {url} interrupted after {done:,} of {expected:,} bytes; "
                        f"run it again to resume from {part}")


def download(w: KnownWeights, cache: Optional[str | os.PathLike] = None, *,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """The verified file of ``w`` in the cache: used as is when present and verified (no
    network), else downloaded to ``NAME.part``, verified, and renamed to ``NAME``."""
    final = cached_file(w, cache)
    part = final.with_name(final.name + ".part")
    for f in (final, part):  # a FIFO or a device there would block the hashing read forever
        why = not_regular(f) if os.path.exists(f) else None  # missing: downloaded below
        if why is not None:
            raise FileSystemError(f"{f}: {why}; remove it from the weights cache (or choose "
                                  f"another with --cache DIR or ${CACHE_ENV})")
    if final.is_file():
        bad = _mismatch(final, w)
        if bad is None:
            return final
        print(f"{final}: cached file fails verification ({bad}); downloading it again",
              file=sys.stderr)
        final.unlink()
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        part.touch()
    except OSError as e:  # a file where a folder should be, permission denied: exit 4
        raise FileSystemError(f"{final.parent}: cannot write the weights cache there "
                              f"({e.strerror or e}); choose another with --cache DIR or "
                              f"${CACHE_ENV}", key="cache") from None
    if not verify(part, w):  # a complete .part: only the rename was missed
        _transfer(w.url, part, timeout, progress)
    bad = _mismatch(part, w)
    if bad is not None:
        part.unlink()
        raise UserError(f"{w.url}: downloaded file fails verification: {bad}; deleted it. "
                        f"Run again; if it persists the file on the server has changed")
    os.replace(part, final)  # atomic: the final name only ever holds a verified file
    return final


def fetch(name: str, cache: Optional[str | os.PathLike] = None, **kw: Any) -> Path:
    """``download(get(name))``: the verified local file of a known name."""
    return download(get(name), cache, **kw)


def load_known(w: KnownWeights, cache: Optional[str | os.PathLike] = None) -> LoadedWeights:
    """A known record as a model: the cached file (verified) first, else a download.

    torchvision's weights without our cached copy go through torchvision's own download and cache
    ($TORCH_HOME/hub/checkpoints), as before this registry existed, so a file torchvision has
    already downloaded is used offline.
    """
    if w.loader == "torchvision":
        from ..interop.torchvision import load_torchvision_imagenet

        path = cached_file(w, cache)
        if path.is_file() and verify(path, w):
            return load_torchvision_imagenet(path)
        return load_torchvision_imagenet()
    from ..interop.caffe import load_caffemodel

    return load_caffemodel(download(w, cache), release_sha1=w.sha1)
