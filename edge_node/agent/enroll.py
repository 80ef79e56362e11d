"""``python -m edge_node.agent enroll --url URL --token TOKEN [--config node.toml] [--ca-file CA]``

Exchanges a one-time enrollment token for the node's identity at the platform's
``POST /api/enroll`` and writes it into node.toml (mode 600, atomic rename): node id, MQTT
username and password, the broker URL, and a ``[platform]`` table with the node's HTTP secret
and the platform's active model-signing public key. The platform's keyring (every trusted key
by id, the revoked ids, its version) is pinned in ``keyring.json`` beside node.toml (mode 600);
signed ``keyring`` commands update it later (edge_node/agent/keyring.py). Standard library
only (urllib, tomllib) besides ``cryptography`` for the key ids; TLS certificates are verified
unless ``--insecure`` is given explicitly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import ssl
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .const import KEYRING_FILE
from .files import write_atomic

EXIT_OK = 0
EXIT_ENROLL_ERROR = 4
ENROLL_PATH = "/api/enroll"
TIMEOUT_S = 30.0
MAX_RESPONSE_BYTES = 64 * 1024
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class EnrollError(RuntimeError):
    """Enrollment failed; the message says why (the platform's own message when it gave one)."""


# -- the HTTP exchange -------------------------------------------------------------------------
def request_enrollment(url: str, token: str, *, ca_file: str | None = None, insecure: bool = False, name: str = "", timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """POST the token; return the platform's JSON answer or raise EnrollError with its message."""
    endpoint = url.rstrip("/") + ENROLL_PATH
    if not endpoint.startswith(("http://", "https://")):
        raise EnrollError(f"--url must start with http:// or https://, got {url!r}")
    if endpoint.startswith("http://") and not insecure and not _loopback(endpoint):
        raise EnrollError(f"refusing plain HTTP to {url!r}: the answer holds this node's secrets. Use https:// "
                          "(or --insecure in a lab network)")
    context = None
    if endpoint.startswith("https://"):
        context = ssl.create_default_context(cafile=ca_file)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    body = json.dumps({"token": token, "name": name}).encode("utf-8")
    req = urllib.request.Request(endpoint, data=body, method="POST", headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:  # http(s) only: checked above
            raw = resp.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise EnrollError(f"enrollment refused ({exc.code}): {_error_message(exc)}") from None
    except urllib.error.URLError as exc:
        raise EnrollError(f"cannot reach {endpoint}: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise EnrollError(f"cannot reach {endpoint}: {exc}") from None
    if len(raw) > MAX_RESPONSE_BYTES:
        raise EnrollError("the platform's answer is too large")
    return _parse_answer(raw)


def _parse_answer(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw.decode("utf-8"))
        for key in ("node_id", "secret", "model_public_key"):
            if not isinstance(answer[key], str) or not answer[key]:
                raise ValueError(key)
        mqtt = answer["mqtt"]
        for key in ("url", "username", "password"):
            if not isinstance(mqtt[key], str) or not mqtt[key]:
                raise ValueError(f"mqtt.{key}")
        keys = answer.get("model_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, dict) and isinstance(k.get("key_id"), str)
                                                 and isinstance(k.get("public_key"), str) for k in keys):
            raise ValueError("model_keys")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EnrollError(f"unexpected answer from the platform (missing or bad {exc})") from None
    return answer


def pinned_keyring(answer: dict[str, Any], path: Path) -> Any:
    """The keyring the answer pins: its ``model_keys`` (each id checked against its key), or the
    one ``model_public_key`` of a platform from before key ids."""
    from .keyring import Keyring, KeyringError

    try:
        if answer.get("model_keys"):
            ring = Keyring.from_b64({k["key_id"]: k["public_key"] for k in answer["model_keys"]},
                                    answer.get("revoked_keys") or [], int(answer.get("keyring_version") or 0), path)
        else:
            ring = Keyring.from_pem(answer["model_public_key"])
            ring.path = path
    except (KeyringError, TypeError, ValueError) as exc:
        raise EnrollError(f"the platform's model-signing keys are unusable: {exc}") from None
    if not ring.keys:
        raise EnrollError("the platform's answer pins no model-signing key")
    return ring


def _loopback(endpoint: str) -> bool:
    """The platform on this very host: plain HTTP never leaves the machine."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(exc.read(MAX_RESPONSE_BYTES).decode("utf-8"))
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{exc.reason} (no JSON error: {err.__class__.__name__})"
    return str(exc.reason)


# -- writing the config ------------------------------------------------------------------------
def merge_identity(config: dict[str, Any], answer: dict[str, Any], platform_url: str, ca_file: str | None = None) -> dict[str, Any]:
    """``config`` (parsed node.toml, may be empty) with the enrolled identity written in.

    ``ca_file`` (the site CA that verified the platform) also becomes the broker's CA when the
    broker URL is mqtts:// and node.toml names none: one site CA signs both."""
    merged = dict(config)
    node = dict(merged.get("node", {}))
    node.pop("password_file", None)  # the new password must win over an old file
    node.update(id=answer["node_id"], username=answer["mqtt"]["username"], password=answer["mqtt"]["password"])
    broker = dict(merged.get("broker", {}))
    broker["url"] = answer["mqtt"]["url"]
    if ca_file and broker["url"].startswith("mqtts://") and not broker.get("ca_file"):
        broker["ca_file"] = str(Path(ca_file).resolve())
    platform = dict(merged.get("platform", {}))
    platform.update(url=platform_url.rstrip("/"), node_secret=answer["secret"], model_public_key=answer["model_public_key"])
    merged.update(node=node, broker=broker, platform=platform)
    # Tables first in a fixed order, the rest (filter, sources, ...) after, as they were.
    ordered = {k: merged[k] for k in ("node", "broker", "platform")}
    ordered.update({k: v for k, v in merged.items() if k not in ordered})
    return ordered


def _key(k: str) -> str:
    return k if BARE_KEY.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise EnrollError(f"cannot write a {type(v).__name__} value to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _emit(table: dict[str, Any], path: list[str], out: list[str], header: str | None) -> None:
    if header is not None:
        out.append("")
        out.append(header)
    for k, v in table.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            out.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        if isinstance(v, dict):
            sub = [*path, _key(k)]
            _emit(v, sub, out, f"[{'.'.join(sub)}]")
        elif _is_table_array(v):
            sub = [*path, _key(k)]
            for item in v:
                _emit(item, sub, out, f"[[{'.'.join(sub)}]]")


def dump_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for node.toml's shapes (tables, arrays of tables, scalars, lists)."""
    out: list[str] = ["# Written by `python -m edge_node.agent enroll`; holds secrets (mode 600)."]
    _emit(data, [], out, None)
    return "\n".join(out).strip() + "\n"


def enroll(url: str, token: str, config_path: str | Path, *, ca_file: str | None = None, insecure: bool = False, name: str = "") -> dict[str, Any]:
    """Enroll and write the identity into ``config_path`` (created if missing); return the answer."""
    config_path = Path(config_path)
    existing: dict[str, Any] = {}
    if config_path.exists():
        try:
            existing = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            # Checked before the token is spent: a broken config must not burn it.
            raise EnrollError(f"{config_path}: cannot read the existing config: {exc}") from None
    answer = request_enrollment(url, token, ca_file=ca_file, insecure=insecure, name=name)
    merged = merge_identity(existing, answer, url, ca_file)
    keyring_file = config_path.parent / str(merged["platform"].get("keyring_file") or KEYRING_FILE)
    ring = pinned_keyring(answer, keyring_file)
    # The keyring first: a node.toml with the new identity never meets an old keyring.
    ring.save()  # keys the node trusts: owner only, like the secret
    write_atomic(config_path, dump_toml(merged), 0o600)  # credentials: owner only
    return answer


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_node.agent enroll", description="Enroll this gateway with the platform")
    parser.add_argument("--url", required=True, help="the platform's URL, e.g. https://aiot.example.com")
    parser.add_argument("--token", help="the one-time enrollment token (or set AIOT_ENROLL_TOKEN)")
    parser.add_argument("--config", default="node.toml", help="node.toml to write (created or updated; default ./node.toml)")
    parser.add_argument("--ca-file", help="CA bundle to verify the platform's HTTPS certificate")
    parser.add_argument("--insecure", action="store_true", help="lab only: allow plain http:// to another host and do NOT verify the HTTPS certificate")
    parser.add_argument("--name", default="", help="a display name for this node")
    args = parser.parse_args(argv)
    token = args.token or os.environ.get("AIOT_ENROLL_TOKEN", "")
    if not token:
        print("enroll error: give --token or set AIOT_ENROLL_TOKEN", file=sys.stderr)
        return EXIT_ENROLL_ERROR
    try:
        answer = enroll(args.url, token, args.config, ca_file=args.ca_file, insecure=args.insecure, name=args.name)
    except EnrollError as exc:
        print(f"enroll error: {exc}", file=sys.stderr)
        return EXIT_ENROLL_ERROR
    except OSError as exc:
        print(f"enroll error: cannot write {args.config}: {exc}", file=sys.stderr)
        return EXIT_ENROLL_ERROR
    print(f"enrolled as node {answer['node_id']} (site {answer.get('site', '?')}); credentials written to {args.config} (mode 600)")
    return EXIT_OK
