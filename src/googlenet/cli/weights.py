"""``googlenet weights``: the known pretrained weights (``list``) and fetching them into the
cache, verified (``download``)."""

from __future__ import annotations

import argparse
import json
import sys

from ..sources.registry import CACHE_ENV, WEIGHTS, cache_dir, cached_file, download, get


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Known pretrained weights (googlenet.sources.registry). Downloads go to "
                     f"--cache, else ${CACHE_ENV}, else ~/.cache/googlenet, and are verified "
                     "against the recorded hashes before use; --weights NAME then uses the "
                     "cached file without network.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the known weights, their accuracy and whether cached")
    ls.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ls.add_argument("--cache", default=None, metavar="DIR", help=f"cache folder (default ${CACHE_ENV} "
                                                                  "or ~/.cache/googlenet)")
    dl = sub.add_parser("download", help="download NAME into the cache and verify it")
    dl.add_argument("name", metavar="NAME", help=f"one of: {', '.join(WEIGHTS)} (or an alias)")
    dl.add_argument("--cache", default=None, metavar="DIR", help=f"cache folder (default ${CACHE_ENV} "
                                                                  "or ~/.cache/googlenet)")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")


def _table(cache) -> str:
    header = ["name", "variant", "loader", "top-1", "top-5", "params", "size", "cached", "url"]
    rows = []
    for w in WEIGHTS.values():
        rows.append([w.name, w.variant, w.loader, f"{w.metrics['top1']:.3f}".rstrip("0").rstrip("."),
                     f"{w.metrics['top5']:.3f}".rstrip("0").rstrip("."), f"{w.num_params:,}",
                     f"{w.size_mb:.1f} MB" if w.size_mb else "",
                     "yes" if cached_file(w, cache).is_file() else "no", w.url])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cs: "  ".join(c.ljust(n) for c, n in zip(cs, widths)).rstrip()  # noqa: E731
    out = [line(header), "  ".join("-" * n for n in widths), *map(line, rows), ""]
    for w in WEIGHTS.values():
        hashes = ", ".join(f"{k} {v}" for k, v in w.hashes().items())
        aliases = f" (also: {', '.join(w.aliases)})" if w.aliases else ""
        out += [f"{w.name}{aliases}: {w.description}",
                f"  accuracy: {w.metrics_source}; license: {w.license}; {hashes}"]
    out.append(f"cache: {cache_dir(cache)}")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.json:
            doc = {"cache": str(cache_dir(args.cache)),
                   "weights": [{**w.to_dict(), "cached": cached_file(w, args.cache).is_file()}
                               for w in WEIGHTS.values()]}
            print(json.dumps(doc, indent=1))
        else:
            print(_table(args.cache), end="")
        return 0
    w = get(args.name)
    path = download(w, args.cache, progress=not args.no_progress)
    print(f"{w.name}: {path} (verified: {', '.join(w.hashes())})", file=sys.stderr)
    print(path)
    return 0
