"""A fault-injecting HTTP proxy on loopback, between cloudmerge and the S3
server: with a seeded random choice per request it answers 503 SlowDown or 500
InternalError itself, resets the connection without answering, or forwards the
request and cuts the response body short; otherwise it forwards faithfully.
The Host header is passed through unchanged, so SigV4 signatures still verify.

    with FaultProxy("http://127.0.0.1:5000", rate=0.3, seed=1) as proxy:
        ... use proxy.url as the endpoint ...
        proxy.injected  # Counter of faults by kind
"""
import collections
import http.client
import http.server
import random
import socket
import struct
import threading
import urllib.parse

KINDS = ("503", "500", "reset", "truncate")  # also "corrupt": one byte of a GET body flipped, length kept


class FaultProxy:
    def __init__(self, upstream, rate=0.3, seed=0, kinds=KINDS, methods=None, max_faults=None):
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port)
        self.rate, self.kinds, self.methods, self.max_faults = rate, kinds, methods, max_faults
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected = collections.Counter()
        self.forwarded = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._choose(self.command)
                if fault == "503":
                    return self._error(503, "SlowDown", "Please reduce your request rate.")
                if fault == "500":
                    return self._error(500, "InternalError", "We encountered an internal error. Please try again.")
                if fault == "reset":
                    # RST instead of FIN: SO_LINGER with a zero timeout.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "proxy-connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                with proxy.lock:
                    proxy.forwarded += 1
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                # A HEAD response has no body but the object's Content-Length.
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length if length is not None else str(len(data)))
                if fault == "corrupt" and self.command == "GET" and data and resp.status in (200, 206):
                    mid = len(data) // 2
                    data = data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1:]
                elif fault == "corrupt":
                    with proxy.lock:
                        proxy.injected["corrupt"] -= 1  # nothing to corrupt
                if fault == "truncate" and len(data) > 1 and self.command != "HEAD":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "truncate":
                    with proxy.lock:
                        proxy.injected["truncate"] -= 1  # nothing to cut
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _error(self, status, code, message):
                doc = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                       f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(doc)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(doc)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _choose(self, method):
        with self.lock:
            if self.methods and method not in self.methods:
                return None
            if self.max_faults is not None and sum(self.injected.values()) >= self.max_faults:
                return None
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(self.kinds)
            self.injected[kind] += 1
            return kind

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
