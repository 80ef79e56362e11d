"""Long-running processes keep their start-up heap out of the collector's full passes
(web/gc_tuning.py): the web process's p99 is otherwise set by 60-160 ms oldest-generation
collections over the Django, DRF and Channels objects made at start-up."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_process_freezes_its_start_up_heap_with_the_views_loaded():
    code = ("import gc, sys, web.asgi; "
            "print(gc.get_freeze_count(), 'api.views' in sys.modules, 'twins.views' in sys.modules)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "web.settings", "LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    frozen, api_views, twin_views = out.stdout.split()
    # Everything start-up made, URLconf and views included (a bare interpreter freezes nothing).
    assert int(frozen) > 50_000
    assert api_views == "True" and twin_views == "True"
