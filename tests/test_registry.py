"""The weights registry: downloads from a loopback HTTP server the test runs (no network) land
in the cache only when their hashes match, interrupted downloads leave no final file and resume,
a cached file is used offline, and ``googlenet weights list`` shows every record."""

from __future__ import annotations

import dataclasses
import hashlib
import types
import http.server
import json
import threading
import urllib.error
import urllib.request

import pytest

from googlenet import cli
from googlenet.errors import UserError
from googlenet.sources import load_weights, registry
from googlenet.sources.registry import BVLC_GOOGLENET, TORCHVISION_IMAGENET, WEIGHTS

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    payload = PAYLOAD
    cut_next = 0  # requests still to cut off midway
    ranges = True  # honour Range requests
    log: list

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.log = []


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self):  # noqa: N802
        srv, data = self.server, self.server.payload
        rng = self.headers.get("Range")
        srv.log.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng and srv.ranges else 0
        if start >= len(data) and start:
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        body = data[start:]
        if srv.cut_next:
            srv.cut_next -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server():
    srv = _Server()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _entry(srv, **kw) -> registry.KnownWeights:
    """A record for the test file, served by ``srv`` (or at ``url=``)."""
    url = f"http://127.0.0.1:{srv.server_address[1]}/tiny.bin" if srv else ""
    fields = dict(name="tiny", url=url, filename="tiny.bin",
                  sha256=hashlib.sha256(PAYLOAD).hexdigest(), sha1=hashlib.sha1(PAYLOAD).hexdigest())
    return dataclasses.replace(BVLC_GOOGLENET, **{**fields, **kw})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv(registry.CACHE_ENV, str(d))
    return d


def test_registry_records():
    assert set(WEIGHTS) == {"bvlc", "imagenet"}
    assert dict(BVLC_GOOGLENET.metrics) == {"top1": 68.7, "top5": 88.9}
    assert BVLC_GOOGLENET.url == "http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel"
    assert BVLC_GOOGLENET.sha1 == "405fc5acd08a3bb12de8ee5e23a96bec22f08204"
    assert dict(TORCHVISION_IMAGENET.metrics) == {"top1": 69.778, "top5": 89.530}
    assert TORCHVISION_IMAGENET.sha256 in TORCHVISION_IMAGENET.url  # the hash in its file name
    assert registry.lookup("caffe:bvlc") is BVLC_GOOGLENET
    assert registry.lookup("caffe:imagenet") is None and registry.lookup("caffe:x.caffemodel") is None
    assert registry.lookup("torchvision:imagenet") is TORCHVISION_IMAGENET
    with pytest.raises(UserError, match="nope: not a known weights name; known: bvlc, imagenet"):
        registry.get("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        BVLC_GOOGLENET.url = "x"  # type: ignore[misc]


def test_registry_matches_torchvision_and_the_models():
    from torchvision.models import GoogLeNet_Weights

    from googlenet.models.summary import build_meta_model

    tv = GoogLeNet_Weights.IMAGENET1K_V1
    assert TORCHVISION_IMAGENET.url == tv.url
    assert TORCHVISION_IMAGENET.num_params == tv.meta["num_params"]
    m = tv.meta["_metrics"]["ImageNet-1K"]
    assert (m["acc@1"], m["acc@5"]) == (TORCHVISION_IMAGENET.metrics["top1"],
                                        TORCHVISION_IMAGENET.metrics["top5"])
    assert TORCHVISION_IMAGENET.category_names() == list(tv.meta["categories"])
    for w in WEIGHTS.values():
        model = build_meta_model(variant=w.variant, aux_logits=False)
        assert sum(p.numel() for p in model.parameters()) == w.num_params, w.name


def test_download_verifies_and_caches(server, cache):
    w = _entry(server)
    path = registry.download(w, progress=False)
    assert path == cache / "tiny.bin" and path.read_bytes() == PAYLOAD
    assert not (cache / "tiny.bin.part").exists()
    # an explicit cache folder wins over the environment
    other = cache.parent / "other"
    assert registry.download(w, other, progress=False) == other / "tiny.bin"


def test_wrong_hash_deletes_and_says_so(server, cache):
    w = _entry(server, sha1="0" * 40)
    with pytest.raises(UserError, match=r"fails verification: sha1 .* \(expected 0{40}\); deleted"):
        registry.download(w, progress=False)
    assert list(cache.iterdir()) == []
    w = _entry(server, sha1=None, sha256="deadbeef")  # a prefix, as torchvision's file names
    with pytest.raises(UserError, match=r"sha256 .* \(expected deadbeef\.\.\.\)"):
        registry.download(w, progress=False)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("ranges", [True, False], ids=["resume", "restart"])
def test_interrupted_download_leaves_no_final_file(server, cache, ranges):
    server.cut_next, server.ranges = 1, ranges
    w = _entry(server)
    with pytest.raises(UserError, match="interrupted after .*run it again to resume"):
        registry.download(w, progress=False)
    assert not (cache / "tiny.bin").exists()
    part = cache / "tiny.bin.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    path = registry.download(w, progress=False)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert server.log[0] is None and server.log[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_foreign_part_file_is_replaced(server, cache):
    cache.mkdir()
    (cache / "tiny.bin.part").write_bytes(b"x" * (len(PAYLOAD) + 10))  # longer: server says 416
    assert registry.download(_entry(server), progress=False).read_bytes() == PAYLOAD


def test_unwritable_cache(tmp_path, server):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write the weights cache there.*--cache DIR"):
        registry.download(_entry(server), blocker / "cache", progress=False)


def test_file_url_and_corrupt_cache(tmp_path, cache):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    w = _entry(None, url=src.as_uri())
    path = registry.download(w, progress=False)
    assert path.read_bytes() == PAYLOAD
    path.write_bytes(b"corrupt")  # a damaged cache file is fetched again, not used
    assert registry.download(w, progress=False).read_bytes() == PAYLOAD


def test_offline_uses_the_cache(server, cache, monkeypatch):
    w = _entry(server)
    registry.download(w, progress=False)

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert registry.download(w, progress=False).read_bytes() == PAYLOAD
    (cache / "tiny.bin").unlink()
    with pytest.raises(UserError, match="cannot download .*no network.*offline"):
        registry.download(w, progress=False)


def _tiny_caffemodel(path):
    from googlenet.interop import caffe
    from googlenet.models.googlenet import GoogLeNet

    model = GoogLeNet(variant="paper", num_classes=3, aux_logits=False)
    caffe.write_caffemodel(path, caffe.caffe_layers(model))
    return model


@pytest.mark.parametrize("spec", ["bvlc", "caffe:bvlc"])
def test_load_weights_bvlc_through_the_registry(tmp_path, cache, monkeypatch, spec):
    """``load_weights('bvlc')``: the cached file is verified and converted, offline."""
    _tiny_caffemodel(tmp_path / "m.caffemodel")
    data = (tmp_path / "m.caffemodel").read_bytes()
    sha1 = hashlib.sha1(data).hexdigest()
    monkeypatch.setattr(registry, "BVLC_GOOGLENET", dataclasses.replace(BVLC_GOOGLENET, sha1=sha1))
    monkeypatch.setattr(registry, "WEIGHTS", {"bvlc": registry.BVLC_GOOGLENET,
                                              "imagenet": TORCHVISION_IMAGENET})
    cache.mkdir()
    (cache / BVLC_GOOGLENET.filename).write_bytes(data)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("used the network"))
    lw = load_weights(spec)
    assert lw.model.num_classes == 3 and lw.metadata["bvlc_release"] is True
    assert lw.metadata["sha1"] == sha1


def test_imagenet_prefers_our_verified_cache(cache, monkeypatch):
    import torch

    from googlenet.interop import torchvision as tvi

    calls = []
    stand_in = types.SimpleNamespace(model=None)  # load_weights reads .model off the result
    monkeypatch.setattr(tvi, "load_torchvision_imagenet",
                        lambda path=None: calls.append(path) or stand_in)
    cache.mkdir()
    f = cache / TORCHVISION_IMAGENET.filename
    torch.save({"x": torch.zeros(1)}, f)  # hash prefix 1378be20 will not match
    load_weights("imagenet")
    assert calls == [None]  # not verified: torchvision's own cache/download path
    w = dataclasses.replace(TORCHVISION_IMAGENET, sha256=hashlib.sha256(f.read_bytes()).hexdigest())
    registry.load_known(w)
    assert calls == [None, f]


def test_weights_cli(server, cache, capsys, monkeypatch):
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for w in WEIGHTS.values():
        line = next(ln for ln in out.splitlines() if ln.startswith(w.name + " "))
        assert w.url in line and f"{w.num_params:,}" in line
        assert f"{w.metrics['top1']:g}" in line and f"{w.metrics['top5']:g}" in line
    assert "68.7" in out and "88.9" in out and "69.778" in out and "89.53" in out
    assert cli.main(["weights", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cache"] == str(cache)
    assert {d["name"]: d["metrics"] for d in doc["weights"]} == {
        "bvlc": {"top1": 68.7, "top5": 88.9}, "imagenet": {"top1": 69.778, "top5": 89.53}}
    assert all(d["cached"] is False for d in doc["weights"])

    from googlenet.cli import weights as cli_weights

    monkeypatch.setattr(cli_weights, "get", lambda name: _entry(server))
    assert cli.main(["weights", "download", "tiny", "--cache", str(cache), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "tiny.bin")
    assert (cache / "tiny.bin").read_bytes() == PAYLOAD


def test_weights_cli_unknown_name(capsys):
    assert cli.main(["weights", "download", "nope"]) == 2
    assert "nope: not a known weights name" in capsys.readouterr().err
