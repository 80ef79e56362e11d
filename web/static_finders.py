"""Plotly.js as the static file ``vendor/plotly.min.js``, taken from the installed plotly package.

Sites are often offline, so the browser never fetches Plotly from a CDN. A finder (rather than
the whole ``package_data`` folder in STATICFILES_DIRS) exposes this one file: ``collectstatic``
copies 4.6 MB instead of the package's 9.6 MB of data sets and widget bundles.

The package ships no partial build. The finder serves a copy under ``VAR_DIR`` with a gzipped
file beside it (made once per plotly version), so WhiteNoise sends 1.4 MB instead of 4.8 MB also
where static files come from the finders (the embedded default); ``collectstatic`` output is
compressed by WhiteNoise's storage anyway.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import plotly
from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

from edge_node.agent.files import write_atomic

PLOTLY_DIR = Path(plotly.__file__).resolve().parent / "package_data"
PREFIX = "vendor"
FILES = ("plotly.min.js",)


@lru_cache(maxsize=1)
def prepared_dir() -> Path:
    """``VAR_DIR/static-vendor/<plotly version>``: the bundle and its gzip, written atomically
    (several processes may start at once)."""
    out = Path(settings.VAR_DIR) / "static-vendor" / plotly.__version__
    for name in FILES:
        js, packed = out / name, out / f"{name}.gz"
        if not (js.is_file() and packed.is_file()):
            out.mkdir(parents=True, exist_ok=True)
            raw = (PLOTLY_DIR / name).read_bytes()
            write_atomic(js, raw, mode=0o644)
            write_atomic(packed, gzip.compress(raw, compresslevel=9, mtime=0), mode=0o644)
    return out


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(prepared_dir()))
        self.storage.prefix = PREFIX  # collectstatic puts the files under vendor/

    def check(self, **kwargs) -> list:
        from django.core.checks import Error

        missing = [name for name in FILES if not (PLOTLY_DIR / name).is_file()]
        return [Error(f"{PLOTLY_DIR / name} is missing: reinstall plotly", id="web.E001") for name in missing]

    def find(self, path: str, find_all: bool = False, **kwargs) -> str | list[str]:
        prefix, _, name = path.partition("/")
        if prefix == PREFIX and name in FILES:
            found = str(prepared_dir() / name)
            return [found] if find_all else found
        return [] if find_all else ""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, FileSystemStorage]]:
        for name in FILES:
            yield name, self.storage
            # listed too, so that WhiteNoise (which builds its file table from this list) knows
            # the compressed copy is there and sends it to browsers that accept gzip
            yield f"{name}.gz", self.storage
