"""Static files come from the web process (WhiteNoise): the platform's, the admin's and
Plotly.js, without a login and with cache headers; the embedded default needs no collectstatic."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT


def test_it_serves_the_admin_stylesheet_and_our_own_without_a_login(client):
    admin_css = client.get("/static/admin/css/base.css")
    ours = client.get("/static/css/app.css")
    assert admin_css.status_code == 200 and ours.status_code == 200
    assert b"body" in b"".join(admin_css.streaming_content)
    assert "max-age" in ours["Cache-Control"]


def test_the_admin_login_page_links_a_stylesheet_that_is_served(client):
    page = client.get("/admin/login/").content.decode()
    href = page.split('rel="stylesheet" href="', 1)[1].split('"', 1)[0]
    assert client.get(href).status_code == 200


def test_collectstatic_writes_hashed_compressed_files_including_plotly(tmp_path):
    env = {**os.environ, "STATIC_ROOT": str(tmp_path), "STATIC_STORAGE": "manifest"}
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    names = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert "vendor/plotly.min.js" in names and "vendor/plotly.min.js.gz" in names
    assert any(n.startswith("admin/css/base.") and n.endswith(".css") and n != "admin/css/base.css" for n in names), "hashed copies"
    assert "staticfiles.json" in names
    assert not any(n.startswith("vendor/") and "widgetbundle" in n for n in names), "only Plotly.js from the plotly package"
