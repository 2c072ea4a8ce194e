"""The local notification sink: where Alertmanager's notifications go when no real receiver is set.

    python grafana/alert-sink/sink.py [--host 0.0.0.0] [--http-port 9095] [--smtp-port 2525]

It accepts what Alertmanager's integrations send, answers as the real services do, prints one
JSON line per notification on stdout (`docker compose logs alert-sink`, and Loki through the
collector's container log tail), and keeps the last 1000 for `GET /notifications`:

* HTTP POST to any path: Slack (`/slack/<receiver>`: 200 "ok"), PagerDuty Events API v2
  (`/pagerduty...`: 202 with a dedup key), webhooks (`/deadmansswitch`, anything else: 200);
* SMTP on --smtp-port (no TLS, no AUTH): e-mail, parsed into subject, recipients and bodies.

`GET /notifications?after=<id>` returns the kept notifications as JSON (newest last), each with
its id, the receive time (unix seconds), channel, path and payload; `DELETE /notifications`
empties the list; `GET /healthz` answers 200. Drills and tests read it to time notifications.
Standard library only: it runs in the plain Python image.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import socketserver
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 10 * 1024 * 1024
KEEP = 1000


class Store:
    """The kept notifications, shared by the HTTP and SMTP threads."""

    def __init__(self) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._lock = threading.Lock()
        self._next = 1

    def add(self, channel: str, path: str, payload: Any) -> dict[str, Any]:
        with self._lock:
            item = {
                "id": self._next,
                "received_at": time.time(),
                "channel": channel,
                "path": path,
                "payload": payload,
            }
            self._next += 1
            self._items.append(item)
        print(json.dumps(_log_line(item), ensure_ascii=False), flush=True)
        return item

    def after(self, last_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [i for i in self._items if i["id"] > last_id]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _alert_names(payload: Any) -> list[str]:
    if isinstance(payload, dict) and isinstance(payload.get("alerts"), list):
        return sorted({a.get("labels", {}).get("alertname", "?") for a in payload["alerts"]})
    return []


def _log_line(item: dict[str, Any]) -> dict[str, Any]:
    payload = item["payload"]
    line: dict[str, Any] = {
        "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item["received_at"])),
        "log.level": "info",
        "message": f"{item['channel']} notification received",
        "sink.id": item["id"],
        "sink.channel": item["channel"],
        "sink.path": item["path"],
    }
    if item["channel"] == "slack" and isinstance(payload, dict):
        attachments = payload.get("attachments") or [{}]
        line["sink.title"] = attachments[0].get("title")
    elif item["channel"] == "pagerduty" and isinstance(payload, dict):
        line["sink.title"] = (payload.get("payload") or {}).get("summary")
        line["sink.event_action"] = payload.get("event_action")
    elif item["channel"] == "email" and isinstance(payload, dict):
        line["sink.title"] = payload.get("subject")
        line["sink.to"] = payload.get("to")
    else:
        line["sink.alerts"] = _alert_names(payload)
        line["sink.status"] = payload.get("status") if isinstance(payload, dict) else None
    return line


def _channel(path: str) -> str:
    if path.startswith("/slack"):
        return "slack"
    if path.startswith("/pagerduty"):
        return "pagerduty"
    return "webhook"


class HttpHandler(BaseHTTPRequestHandler):
    """Slack, PagerDuty and webhook notifications in; the kept list out."""

    server_version = "trawl-alert-sink"
    store: Store

    def log_message(self, format: str, *args: Any) -> None:
        return  # one JSON line per notification is the only output

    def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._reply(200, b"ok", "text/plain")
        elif url.path == "/notifications":
            after = int(parse_qs(url.query).get("after", ["0"])[0] or 0)
            self._reply(200, json.dumps(self.store.after(after)).encode())
        else:
            self._reply(404, b'{"error": "not found"}')

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path == "/notifications":
            self.store.clear()
            self._reply(204, b"")
        else:
            self._reply(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, b'{"error": "too large"}')
            return
        raw = self.rfile.read(length)
        try:
            payload: Any = json.loads(raw or b"null")
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        path = urlsplit(self.path).path
        channel = _channel(path)
        item = self.store.add(channel, path, payload)
        if channel == "pagerduty":
            key = payload.get("dedup_key") if isinstance(payload, dict) else None
            body = {"status": "success", "message": "Event processed", "dedup_key": key}
            self._reply(202, json.dumps(body).encode())
        elif channel == "slack":
            self._reply(200, b"ok", "text/plain")
        else:
            self._reply(200, json.dumps({"id": item["id"]}).encode())


def _parse_mail(data: bytes, mail_from: str, rcpt: list[str]) -> dict[str, Any]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    bodies: dict[str, str] = {}
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("text/plain", "text/html") and kind not in bodies:
            bodies[kind] = part.get_content()  # type: ignore[attr-defined]
    return {
        "from": mail_from,
        "to": rcpt,
        "subject": str(msg.get("Subject", "")),
        "text": bodies.get("text/plain", ""),
        "html": bodies.get("text/html", ""),
    }


class SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough ESMTP for Alertmanager's Go client: EHLO, MAIL, RCPT, DATA, RSET, QUIT."""

    timeout = 60
    store: Store

    def _send(self, *lines: str) -> None:
        self.wfile.write(b"".join(line.encode() + b"\r\n" for line in lines))

    def handle(self) -> None:
        self.mail_from, self.rcpt = "", []
        self._send("220 alert-sink ESMTP")
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb == "QUIT":
                self._send("221 Bye")
                return
            self._command(verb, line)

    def _command(self, verb: str, line: str) -> None:
        argument = line.split(":", 1)[-1].strip().strip("<>")
        if verb == "EHLO":
            self._send("250-alert-sink", "250-8BITMIME", f"250 SIZE {MAX_BODY}")
        elif verb == "HELO":
            self._send("250 alert-sink")
        elif verb == "MAIL":
            self.mail_from, self.rcpt = argument, []
            self._send("250 OK")
        elif verb == "RCPT":
            self.rcpt.append(argument)
            self._send("250 OK")
        elif verb == "DATA":
            self._send("354 End data with <CR><LF>.<CR><LF>")
            mail = _parse_mail(self._read_data(), self.mail_from, self.rcpt)
            self.store.add("email", "smtp", mail)
            self._send("250 OK: queued")
        elif verb in ("RSET", "NOOP"):
            if verb == "RSET":
                self.mail_from, self.rcpt = "", []
            self._send("250 OK")
        else:
            self._send("502 Command not implemented")

    def _read_data(self) -> bytes:
        lines: list[bytes] = []
        size = 0
        while True:
            raw = self.rfile.readline(65536)
            if not raw or raw in (b".\r\n", b".\n"):
                return b"".join(lines)
            if raw.startswith(b".."):
                raw = raw[1:]
            size += len(raw)
            if size <= MAX_BODY:
                lines.append(raw)


class _SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=9095)
    parser.add_argument("--smtp-port", type=int, default=2525)
    args = parser.parse_args(argv)
    store = Store()
    smtp_cls = type("Smtp", (SmtpHandler,), {"store": store})
    http_cls = type("Http", (HttpHandler,), {"store": store})
    smtp = _SMTPServer((args.host, args.smtp_port), smtp_cls)
    threading.Thread(target=smtp.serve_forever, name="smtp", daemon=True).start()
    http = ThreadingHTTPServer((args.host, args.http_port), http_cls)
    http.daemon_threads = True
    print(
        json.dumps(
            {
                "log.level": "info",
                "message": "alert sink listening",
                "sink.http": f"{args.host}:{args.http_port}",
                "sink.smtp": f"{args.host}:{args.smtp_port}",
            }
        ),
        flush=True,
    )
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        http.server_close()
        smtp.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
