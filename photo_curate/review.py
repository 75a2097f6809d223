"""`curate review`: the run's report served on 127.0.0.1 with controls that record decisions.

Only this machine can connect (127.0.0.1, a free port), and only with the random token in the
URL: every path starts with /<token>/. A decision or the apply is a POST of JSON with the
token again in the `X-Curate-Token` header; a plain HTML form of another site can set neither,
so a page elsewhere cannot make the browser record a decision (CSRF). The controls are a small
script added to the report as it is served; the report file itself stays as `curate report`
wrote it. Files served: the report and the thumbnail cache, nothing else of HOME.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from photo_curate import decisions
from photo_curate.errors import UserError
from photo_curate.home import Home

CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "script-src 'nonce-{nonce}'; connect-src 'self'; form-action 'none'"
)
CONTROLS = """<script nonce="%(nonce)s">
(() => {
  const token = %(token)s;
  async function post(what, body) {
    const r = await fetch(what, {method: "POST", headers: {"Content-Type": "application/json",
      "X-Curate-Token": token}, body: JSON.stringify(body)});
    return [r.ok, await r.text()];
  }
  function button(card, label, verdict, paths) {
    const b = document.createElement("button");
    b.textContent = label; b.className = "decide"; b.dataset.verdict = verdict;
    b.onclick = async () => {
      const [ok, text] = await post("decide", {verdict, paths});
      const out = card.querySelector(".decided") || card.appendChild(document.createElement("div"));
      out.className = "decided " + (ok ? "ok" : "refused"); out.textContent = text;
    };
    return b;
  }
  for (const card of document.querySelectorAll(".card[data-path]")) {
    const path = card.dataset.path, bar = document.createElement("div");
    bar.className = "controls";
    bar.append(button(card, "keep", "keep", [path]));
    const keeper = card.closest(".group")?.querySelector(".card.keeper[data-path]");
    if (keeper && keeper !== card)
      bar.append(button(card, "not a duplicate", "not-duplicate", [path, keeper.dataset.path]));
    bar.append(button(card, "ignore", "ignore", [path]), button(card, "remove", "remove", [path]));
    card.append(bar);
  }
  const apply = document.createElement("button");
  apply.id = "apply-reviewed"; apply.textContent = "Apply the reviewed plan (a new run first)";
  apply.onclick = async () => {
    const [ok, text] = await post("apply", {});
    document.getElementById("apply-result").textContent = text;
  };
  const box = document.createElement("div"); box.id = "review-bar";
  const result = document.createElement("pre"); result.id = "apply-result";
  box.append(apply, result); document.body.prepend(box);
})();
</script>"""


class Review:
    """The review server of one run of one HOME."""

    def __init__(self, home: Home, run_id: str, apply: Any):
        self.home, self.run_id, self.apply = home, run_id, apply
        self.token = secrets.token_urlsafe(24)
        handler = type("Handler", (_Handler,), {"review": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{self.token}/index.html"

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.server.serve_forever, daemon=True)
        t.start()
        return t

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def page(self) -> bytes:
        """The report, its thumbnails under this server's /<token>/thumbs/, with controls."""
        html = self.home.report_file(self.run_id).read_text(encoding="utf-8")
        to_thumbs = os.path.relpath(self.home.thumbnails, self.home.report_dir(self.run_id))
        html = html.replace(f'src="{to_thumbs}/', 'src="thumbs/')
        nonce = secrets.token_urlsafe(16)  # the report's policy runs no script; this one may
        html = re.sub(
            r'(<meta http-equiv="Content-Security-Policy" content=")[^"]*"',
            lambda m: m.group(1) + CSP.format(nonce=nonce) + '"', html, count=1,
        )  # fmt: skip
        script = CONTROLS % {"token": json.dumps(self.token), "nonce": nonce}
        return html.replace("</body>", script + "</body>", 1).encode("utf-8")

    def file(self, rel: str) -> Path | None:
        """A thumbnail (thumbs/<its path in the cache>), inside the cache only."""
        if not rel.startswith("thumbs/"):
            return None
        cache = self.home.thumbnails.resolve()
        target = (cache / rel.removeprefix("thumbs/")).resolve()
        return target if target.is_file() and cache in target.parents else None


class _Handler(BaseHTTPRequestHandler):
    review: Review

    def log_message(self, *args: Any) -> None:  # quiet: the terminal shows the URL only
        pass

    def _split(self) -> str | None:
        """The path after /<token>/, or None (the request is refused) without the token."""
        prefix = f"/{self.review.token}/"
        path = self.path.split("?", 1)[0]
        return path[len(prefix) :] if path.startswith(prefix) else None

    def _send(self, status: HTTPStatus, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")  # the token stays in this page
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        rest = self._split()
        if rest is None:
            self._send(HTTPStatus.FORBIDDEN, b"no token: open the URL curate review printed")
        elif rest in ("", "index.html"):
            self._send(HTTPStatus.OK, self.review.page(), "text/html; charset=utf-8")
        elif (f := self.review.file(rest)) is not None:
            self._send(HTTPStatus.OK, f.read_bytes(), "image/jpeg")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found")

    def do_POST(self) -> None:
        rest = self._split()
        if rest is None or self.headers.get("X-Curate-Token") != self.review.token:
            self._send(HTTPStatus.FORBIDDEN, b"refused: no token")
            return
        if self.headers.get_content_type() != "application/json":
            self._send(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"refused: JSON only")
            return
        try:
            size = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            body = json.loads(self.rfile.read(size) or b"{}")
            text = self._act(rest, body)
            self._send(HTTPStatus.OK, text.encode())
        except UserError as exc:
            self._send(HTTPStatus.BAD_REQUEST, str(exc).encode())
        except (ValueError, TypeError, KeyError) as exc:
            self._send(HTTPStatus.BAD_REQUEST, f"bad request: {exc}".encode())

    def _act(self, what: str, body: dict[str, Any]) -> str:
        if what == "decide":
            verdict, paths = str(body["verdict"]), [str(p) for p in body["paths"]]
            decision_id, named = decisions.decide(
                self.review.home, verdict, paths, body.get("kind"), body.get("note")
            )
            return f"decision {decision_id}: {verdict} on {', '.join(n.path for n in named)}"
        if what == "apply":
            return self.review.apply()
        raise KeyError(what)


def reviewed_apply(home: Home, run_id: str) -> str:
    """ "Apply the reviewed plan": a new run of the reviewed run's SOURCE with its recorded
    config, which honours every decision, then applies, as `curate run SOURCE --apply` does
    (a delete still needs a person at a terminal). Returns what the command printed."""
    import subprocess
    import sys
    import tempfile

    from photo_curate.runs import read_run

    run = read_run(home, run_id)
    if run is None:
        raise UserError(f"no run {run_id} in {home.root}")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as cfg:
        cfg.write(run.get("config") or "{}")
    try:
        p = subprocess.run(
            [sys.executable, "-c", "from photo_curate.cli import entry; entry()", "run",
             str(run["source"]), "--apply", "--home", str(home.root), "--config", cfg.name],
            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        Path(cfg.name).unlink(missing_ok=True)
    return (p.stdout + p.stderr).strip() or f"exit code {p.returncode}"
