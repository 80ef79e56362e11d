"""``python -m deploy.prodcheck [--python PY] [--short] [--keep]``: see deploy/prodcheck/__init__.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .run import Options, run
from .stack import CheckFailed


def pg_server_from_env() -> str:
    url = os.environ.get("PRODCHECK_PG_URL") or os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432"
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        return "postgres://postgres@127.0.0.1:5432"
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.prodcheck", description=__doc__)
    parser.add_argument("--python", default=sys.executable, help="the platform's interpreter (a runtime-only virtualenv)")
    parser.add_argument("--pg", default=pg_server_from_env(), help="PostgreSQL server URL; a database is created for the run and dropped")
    parser.add_argument("--redis-url", default="", help="a Redis database to use (default: a private redis-server for the run)")
    parser.add_argument("--work", default="", help="folder for the site (default: a new temporary folder)")
    parser.add_argument("--short", action="store_true", help="less traffic between the kills (the CI form)")
    parser.add_argument("--keep", action="store_true", help="keep the database and the folder")
    parser.add_argument("--chromium", default=os.environ.get("AIOT_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="aiot-prodcheck-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"production check in {work} (logs in {work / 'site' / 'logs'})", flush=True)
    opts = Options(python=args.python, pg_server=args.pg, redis_url=args.redis_url, work=work, short=args.short, keep=args.keep,
                   chromium=args.chromium)
    try:
        figures = run(opts)
    except CheckFailed as exc:
        print(f"PRODUCTION CHECK FAILED: {exc}", file=sys.stderr, flush=True)
        print(json.dumps({"ok": False, "error": str(exc)[:500]}))
        return 1
    ok = figures.get("lost", 1) == 0 and figures.get("duplicates", 1) == 0 and all(
        figures.get(k) for k in ("alert_opened", "scenario_done", "rollout_done", "fleet_page_live"))
    print(json.dumps({**figures, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
