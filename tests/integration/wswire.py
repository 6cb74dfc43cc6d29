"""A raw WebSocket client (RFC 6455) over socket + ssl, for the tests that
send what no WebSocket library will: unmasked, text, oversize and
fragmented frames, control frames between fragments, MQTT packets split
across frames or packed several to a frame, and broken upgrade requests.

Frames are built by `frame()`; the upgrade request by `request()`, any
header of which can be left out, changed or added. `upgrade()` sends a
request and reads the answer (a `Response`).

python3-websockets is not used for these: its client masks every frame,
sends text only as text, checks sizes and answers control frames itself,
so it cannot send most of the frames above.

`WSClient` is mqttwire's raw MQTT client carried in binary frames: every
flow of mqttwire.Client (`handshake`, `sub`, `pub`, `collect`, `ping`,
`expect_close` ...) works the same over WebSocket, each `send()` one
binary frame. It answers pings itself and keeps what else arrives:
`pongs` (their payloads), `close_frame` ((code, reason) of the server's
close frame, None before). `expect_ws_close()` waits for the server's close
frame and then for the TCP close. Server frames must be unmasked (RFC 6455
5.1): a masked one fails the test, and so does a text frame.
"""
import base64
import hashlib
import os
import socket
import struct
import time

import mqttwire

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WAIT = mqttwire.WAIT


def mask_bytes(payload, key):
    """payload XOR the repeated 4-byte key (RFC 6455 5.3)."""
    n = len(payload)
    if not n:
        return b""
    rep = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, key=None):
    """One frame. `length` overrides the length field (a frame that claims
    more than it carries); `mask=False` sends it unmasked, as no client may."""
    payload = bytes(payload)
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if mask:
        key = key or os.urandom(4)
        return head + key + mask_bytes(payload, key)
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def request(path="/mqtt", host="127.0.0.1", protocols=("mqtt",), key=None, version="13",
            method="GET", origin=None, extra=(), omit=(), http="HTTP/1.1"):
    """The upgrade request's bytes. `protocols`: the offered subprotocols
    (None or () for no header); `extra`: more "Name: value" lines; `omit`:
    header names (any case) to leave out."""
    key = key or new_key()
    heads = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
             ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    if protocols:
        heads.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    if origin:
        heads.append(("Origin", origin))
    skip = {o.lower() for o in omit}
    lines = ["%s %s %s" % (method, path, http)]
    lines += ["%s: %s" % (k, v) for k, v in heads if k.lower() not in skip]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Response:
    """An HTTP response head (status, reason, headers with lower-case names)
    and, for a refusal, its body (read until the server closed or
    Content-Length bytes came)."""

    def __init__(self, status, reason, headers, body=b""):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def __repr__(self):
        return "Response(%d %s, %r, %r)" % (self.status, self.reason, self.headers, self.body)


def _read_head(sock, deadline):
    """Reads until the blank line. Returns (Response without body, the
    bytes after the head); (None, bytes) if the server closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        assert left > 0, "no HTTP answer within the deadline; got %r" % data
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return None, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert parts[0].startswith("HTTP/1."), "not an HTTP answer: %r" % data
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers), rest


def connect_sock(port, host="127.0.0.1", tls=None, server_hostname="localhost", timeout=WAIT):
    """A TCP socket, or a TLS one when `tls` (an ssl.SSLContext) is given."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname=server_hostname)
    return s


def upgrade(port, req=None, host="127.0.0.1", tls=None, timeout=WAIT, keep=False):
    """Sends the upgrade request `req` (bytes; default a valid MQTT one) and
    reads the answer. A refusal's body is read to the server's close (or its
    Content-Length). Returns the Response, or (Response, socket, leftover
    bytes) with keep=True. A server that closes without answering gives a
    Response with status 0."""
    sock = connect_sock(port, host, tls, timeout=timeout)
    sock.sendall(req if req is not None else request())
    deadline = time.monotonic() + timeout
    r, rest = _read_head(sock, deadline)
    if r is None:
        sock.close()
        r = Response(0, "closed without an answer", {}, rest)
        return (r, None, b"") if keep else r
    if keep:
        return r, sock, rest
    want = int(r.headers.get("content-length", "-1"))
    while len(rest) != want and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        rest += chunk
    sock.close()
    r.body = rest
    return r


def closed_by_server(sock, timeout=WAIT):
    """Whether the server closes the connection within `timeout` (all
    bytes still arriving are read and dropped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


class WSClient(mqttwire.Client):
    """mqttwire's client over a WebSocket (see the module's text)."""

    def __init__(self, port, path="/mqtt", protocols=("mqtt",), v5=False, host="127.0.0.1",
                 tls=None, timeout=WAIT, req=None, headers=()):
        self.v5 = v5
        self.key = new_key()
        req = req or request(path, protocols=protocols, key=self.key, extra=headers)
        r, sock, rest = upgrade(port, req, host, tls, timeout, keep=True)
        assert r.status == 101, "upgrade refused: %r" % r
        if req is not None and b"Sec-WebSocket-Key: " + self.key.encode() in req:
            assert r.headers.get("sec-websocket-accept") == accept_for(self.key), r
        self.response = r
        self.protocol = r.headers.get("sec-websocket-protocol")
        self.sock = sock
        self.raw = bytearray(rest)
        self.buf = bytearray()
        self.eof = False
        self.pongs = []
        self.close_frame = None
        self._close_sent = False

    # ---- frames

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_frame(self, opcode, payload=b"", **kw):
        self.send_raw(frame(opcode, payload, **kw))

    def send(self, data):
        """One binary frame carrying `data` (mqttwire's flows send through this)."""
        self.send_frame(BINARY, data)

    def _parse(self):
        """One whole frame from self.raw: (fin, opcode, payload), or None."""
        b = self.raw
        if len(b) < 2:
            return None
        assert not b[1] & 0x80, "a masked frame from the server (RFC 6455 5.1): %r" % bytes(b[:16])
        n, i = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, i = struct.unpack_from("!H", b, 2)[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, i = struct.unpack_from("!Q", b, 2)[0], 10
        if len(b) < i + n:
            return None
        fin, opcode, payload = bool(b[0] & 0x80), b[0] & 0x0F, bytes(b[i:i + n])
        assert not b[0] & 0x70, "reserved bits set by the server: %r" % bytes(b[:2])
        del self.raw[:i + n]
        return fin, opcode, payload

    def _fill(self, deadline):
        """Reads more bytes. False on timeout; sets eof on the server's close."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.raw += chunk
        return True

    def recv_frame(self, timeout=WAIT):
        """The next frame as (fin, opcode, payload); None on timeout; raises
        mqttwire.Closed on the server's TCP close."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                return f
            if self.eof:
                raise mqttwire.Closed()
            if not self._fill(deadline):
                return None

    def _handle(self, f):
        """A frame that is not data: answered (ping, close) or kept (pong)."""
        fin, opcode, payload = f
        if opcode in (BINARY, CONT):
            self.buf += payload
        elif opcode == PING:
            self.send_frame(PONG, payload)
        elif opcode == PONG:
            self.pongs.append(payload)
        elif opcode == CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            self.close_frame = (code, payload[2:])
            if not self._close_sent:  # the client's half of the closing handshake
                self._close_sent = True
                self.send_frame(CLOSE, payload[:2])
        else:
            raise AssertionError("unexpected frame from the server: opcode %d %r" % (opcode,
                                                                                   payload))

    def recv(self, timeout=WAIT):
        """mqttwire.Client.recv over frames: the next MQTT packet; None on
        timeout; raises Closed once the server closed."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._take()
            if p is not None:
                return p
            if self.close_frame is not None and not self.raw and self.eof:
                raise mqttwire.Closed()
            try:
                f = self.recv_frame(max(deadline - time.monotonic(), 0))
            except mqttwire.Closed:
                if self.buf:
                    raise AssertionError("server closed inside a packet: %r" % bytes(self.buf))
                raise
            if f is None:
                return None
            self._handle(f)

    def expect_ws_close(self, timeout=WAIT):
        """Waits for the server's close frame (answering it) and then for the
        server to close TCP. Returns the close code (None for a close frame
        without one). MQTT packets before it are kept in self.buf."""
        deadline = time.monotonic() + timeout
        while self.close_frame is None:
            try:
                f = self.recv_frame(max(deadline - time.monotonic(), 0))
            except mqttwire.Closed:
                raise AssertionError("TCP closed without a close frame") from None
            assert f is not None, "no close frame within %.1fs" % timeout
            self._handle(f)
        assert closed_by_server(self.sock, max(deadline - time.monotonic(), 0.5)), \
            "the server did not close TCP after the closing handshake"
        return self.close_frame[0]

    def close_handshake(self, code=1000, reason=b"", timeout=WAIT):
        """Starts the closing handshake; returns the code the server echoed
        once it closed TCP too."""
        self._close_sent = True
        self.send_frame(CLOSE, close_payload(code, reason))
        return self.expect_ws_close(timeout)


def connected(port, client_id="", v5=False, **kw):
    """A WSClient that completed CONNECT / CONNACK (kw: WSClient's)."""
    c = WSClient(port, v5=v5, **kw)
    c.handshake(client_id)
    return c
