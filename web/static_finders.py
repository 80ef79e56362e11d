"""Plotly.js as the static file ``vendor/plotly.min.js``, taken from the installed plotly package.

Sites are often offline, so the browser never fetches Plotly from a CDN. A finder (rather than
the whole ``package_data`` folder in STATICFILES_DIRS) exposes this one file: ``collectstatic``
copies 4.6 MB instead of the package's 9.6 MB of data sets and widget bundles.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_DIR = Path(plotly.__file__).resolve().parent / "package_data"
PREFIX = "vendor"
FILES = ("plotly.min.js",)


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(PLOTLY_DIR))
        self.storage.prefix = PREFIX  # collectstatic puts the files under vendor/

    def check(self, **kwargs) -> list:
        from django.core.checks import Error

        missing = [name for name in FILES if not (PLOTLY_DIR / name).is_file()]
        return [Error(f"{PLOTLY_DIR / name} is missing: reinstall plotly", id="web.E001") for name in missing]

    def find(self, path: str, find_all: bool = False, **kwargs) -> str | list[str]:
        prefix, _, name = path.partition("/")
        if prefix == PREFIX and name in FILES:
            found = str(PLOTLY_DIR / name)
            return [found] if find_all else found
        return [] if find_all else ""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, FileSystemStorage]]:
        for name in FILES:
            yield name, self.storage
