"""A fault-injecting HTTP proxy on loopback, between cloudmerge and the S3
server (or moto's SQS and SNS): with a seeded random choice per request it
answers 503 SlowDown or 500 InternalError itself, resets the connection without
answering ("reset": the request never reaches the server), forwards the request
and then resets instead of answering ("lost": the request took effect, its
answer is lost), or forwards the request and cuts the response body short;
otherwise it forwards faithfully. The Host header is passed through unchanged,
so SigV4 signatures still verify.

    with FaultProxy("http://127.0.0.1:5000", rate=0.3, seed=1) as proxy:
        ... use proxy.url as the endpoint ...
        proxy.injected     # Counter of faults by kind
        proxy.by_service   # Counter of faults by (service, kind), service "s3", "sqs" or "sns"

`rate` may be changed while the proxy runs (0 turns faults off); `rates`
({"sqs": 0.1, ...}) overrides it per service.
"""
import collections
import http.client
import http.server
import random
import socket
import struct
import sys
import threading
import urllib.parse

KINDS = ("503", "500", "reset", "truncate")  # also "corrupt": one byte of a GET body flipped, length kept; "lost"


def service_of(command, path, headers, body):
    """Which AWS API a request is for: SQS speaks AWS JSON (X-Amz-Target:
    AmazonSQS.<Action>), SNS the query protocol (POST Action=Publish&...);
    everything else here is S3."""
    target = headers.get("X-Amz-Target") or ""
    if target.startswith("AmazonSQS."):
        return "sqs"
    if command == "POST" and path.rstrip("/") == "" and b"Action=" in body[:200]:
        return "sns"
    return "s3"


class FaultProxy:
    def __init__(self, upstream, rate=0.3, seed=0, kinds=KINDS, methods=None, max_faults=None, rates=None):
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port)
        self.rate, self.kinds, self.methods, self.max_faults = rate, kinds, methods, max_faults
        self.rates = dict(rates or {})
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected = collections.Counter()
        self.by_service = collections.Counter()
        self.forwarded = 0
        # Called as on_request(method, path, headers) before each request is forwarded (tests use it
        # to change the world at a chosen moment, e.g. replace an object in the middle of a read).
        self.on_request = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service = service_of(self.command, self.path, self.headers, body)
                fault = proxy._choose(self.command, service)
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
                if proxy.on_request is not None:
                    proxy.on_request(self.command, self.path, self.headers)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "proxy-connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                with proxy.lock:
                    proxy.forwarded += 1
                if fault == "lost":  # it took effect upstream; the client never learns
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
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
                    proxy._uncount("corrupt", service)  # nothing to corrupt
                if fault == "truncate" and len(data) > 1 and self.command != "HEAD":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "truncate":
                    proxy._uncount("truncate", service)  # nothing to cut
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

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A client that gave up (or was killed) mid-answer is part of the game, not an error.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _choose(self, method, service):
        with self.lock:
            if self.methods and method not in self.methods:
                return None
            if self.max_faults is not None and sum(self.injected.values()) >= self.max_faults:
                return None
            if self.rng.random() >= self.rates.get(service, self.rate):
                return None
            kind = self.rng.choice(self.kinds)
            self.injected[kind] += 1
            self.by_service[service, kind] += 1
            return kind

    def _uncount(self, kind, service):
        with self.lock:
            self.injected[kind] -= 1
            self.by_service[service, kind] -= 1

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
