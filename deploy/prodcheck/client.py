"""A user's HTTPS session: log in, fill in forms (CSRF included), read pages and JSON.

The standard library only (urllib, http.cookiejar, html.parser); the site's CA verifies the
server, so a certificate that does not match fails here as it would in a browser.
"""

from __future__ import annotations

import http.cookiejar
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from typing import Any


class FormParser(HTMLParser):
    """The csrf token, the fields' current values (what a browser would send untouched) and,
    per <select>, its options' label -> value."""

    def __init__(self) -> None:
        super().__init__()
        self.csrf = ""
        self.defaults: dict[str, str] = {}
        self.selects: dict[str, dict[str, str]] = {}
        self._select: str | None = None
        self._multiple = False
        self._option: str | None = None
        self._label: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name") == "csrfmiddlewaretoken":
            self.csrf = a.get("value") or ""
        elif tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.defaults[a["name"] or ""] = a.get("value") or "on"
            elif kind not in ("submit", "button", "file"):
                self.defaults[a["name"] or ""] = a.get("value") or ""
        elif tag == "select":
            self._select = a.get("name") or ""
            self._multiple = "multiple" in a
            self.selects.setdefault(self._select, {})
        elif tag == "option" and self._select is not None:
            self._option = a.get("value") or ""
            self._label = []
            if "selected" in a:
                self.defaults[self._select] = self._option

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._label.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self._select is not None and self._option is not None:
            self.selects[self._select]["".join(self._label).strip()] = self._option
            self._option = None
        elif tag == "select" and self._select is not None:
            options = self.selects[self._select]
            if self._select not in self.defaults and options and not self._multiple:
                self.defaults[self._select] = next(iter(options.values()))  # what a browser sends
            self._select = None


class HttpError(RuntimeError):
    def __init__(self, status: int, url: str, body: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:500]}")
        self.status = status


class Session:
    def __init__(self, base_url: str, ca_file: str, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.jar = http.cookiejar.CookieJar()
        context = ssl.create_default_context(cafile=ca_file)
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), urllib.request.HTTPCookieProcessor(self.jar))
        self.last_url = ""

    def request(self, path: str, data: dict[str, Any] | bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, final URL, body); redirects followed; HTTP errors raise HttpError."""
        url = path if path.startswith("http") else self.base + path
        body = urllib.parse.urlencode(data, doseq=True).encode() if isinstance(data, dict) else data
        req = urllib.request.Request(url, data=body, headers={"Referer": self.last_url or self.base + "/", **(headers or {})})
        try:
            with self.opener.open(req, timeout=self.timeout) as resp:
                text = resp.read().decode("utf-8", errors="replace")
                self.last_url = resp.geturl()
                return resp.status, resp.geturl(), text
        except urllib.error.HTTPError as exc:
            raise HttpError(exc.code, url, exc.read().decode("utf-8", errors="replace")) from None

    def get(self, path: str) -> str:
        return self.request(path)[2]

    def json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def submit(self, form_path: str, fields: dict[str, Any], *, choose: dict[str, str | list[str]] | None = None,
               action: str | None = None) -> tuple[str, str]:
        """GET ``form_path``, fill ``fields`` (and <select>s by their visible label in ``choose``),
        POST to ``action`` (default the same path). Returns (final URL, body)."""
        page = self.get(form_path)
        parser = FormParser()
        parser.feed(page)
        data: dict[str, Any] = {**parser.defaults, "csrfmiddlewaretoken": parser.csrf, **fields}
        for name, labels in (choose or {}).items():
            options = parser.selects.get(name)
            if options is None:
                raise KeyError(f"{form_path}: no <select name={name!r}> (has {sorted(parser.selects)})")
            wanted = [labels] if isinstance(labels, str) else labels
            values = []
            for label in wanted:
                match = [v for text, v in options.items() if text == label or text.startswith(label)]
                if not match:
                    raise KeyError(f"{form_path}: {name} has no option {label!r} (has {list(options)[:20]})")
                values.append(match[0])
            data[name] = values if isinstance(labels, list) else values[0]
        self.last_url = self.base + form_path
        _, url, body = self.request(action or form_path, data)
        return url, body

    def login(self, username: str, password: str) -> None:
        url, body = self.submit("/login/", {"username": username, "password": password})
        if "/login/" in url:
            raise RuntimeError(f"login as {username} failed")

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "")
