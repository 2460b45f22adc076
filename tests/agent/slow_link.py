"""An HTTP proxy between a device agent and its control plane that can slow artifact
downloads to a trickle and hold back telemetry answers: the link a kill -9 lands in.

Every request is forwarded as it came (method, path, headers, body), so the device's
signatures still verify at the control plane behind it.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class SlowLink:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.download_bytes_per_s: float | None = None  # None: as fast as it goes
        self.hold_telemetry = False  # forward uploads, then keep their answers back
        self.telemetry_held = threading.Event()  # an upload was stored; its answer held
        self.release = threading.Event()
        self.downloads_started = threading.Event()
        link = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                link.forward(self)

            def do_POST(self) -> None:
                link.forward(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SlowLink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError:
            handler.send_error(502)
            return
        finally:
            upstream.close()
        if handler.path.startswith("/v1/telemetry") and self.hold_telemetry:
            self.telemetry_held.set()  # the control plane has stored it: the answer waits
            self.release.wait()
            return
        handler.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        rate = self.download_bytes_per_s
        if not handler.path.startswith("/v1/artifacts/") or rate is None:
            handler.wfile.write(data)
            return
        self.downloads_started.set()
        step = 1024
        for start in range(0, len(data), step):
            try:
                handler.wfile.write(data[start : start + step])
                handler.wfile.flush()
            except OSError:  # the device went away mid-download
                return
            time.sleep(step / rate)
