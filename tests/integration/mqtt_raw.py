"""A tiny raw-bytes MQTT 3.1.1 / 5.0 client for wire-level conformance tests.

Every packet is built by hand here, so a test can send exactly the bytes it
means (including bytes no library would send), and every packet read back is
parsed by this module alone, independently of ward's codec and of paho.
All reads have timeouts; nothing here can hang a test.
"""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# v5 property identifiers (MQTT 5.0 section 2.2.2.2).
PFI, EXPIRY, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION = 0x01, 0x02, 0x03, 0x08, 0x09
SUB_ID, SESSION_EXPIRY, ASSIGNED_ID, KEEP_ALIVE = 0x0B, 0x11, 0x12, 0x13
AUTH_METHOD, AUTH_DATA, REQ_PROBLEM, WILL_DELAY, REQ_RESPONSE = 0x15, 0x16, 0x17, 0x18, 0x19
RESPONSE_INFO, SERVER_REF, REASON_STRING, RECEIVE_MAX = 0x1A, 0x1C, 0x1F, 0x21
ALIAS_MAX, ALIAS, MAX_QOS, RETAIN_AVAIL, USER_PROP, MAX_PACKET = 0x22, 0x23, 0x24, 0x25, 0x26, 0x27
WILDCARD_AVAIL, SUB_ID_AVAIL, SHARED_AVAIL = 0x28, 0x29, 0x2A

_PROP_KIND = {
    PFI: "b", EXPIRY: "i", CONTENT_TYPE: "s", RESPONSE_TOPIC: "s", CORRELATION: "d",
    SUB_ID: "v", SESSION_EXPIRY: "i", ASSIGNED_ID: "s", KEEP_ALIVE: "h", AUTH_METHOD: "s",
    AUTH_DATA: "d", REQ_PROBLEM: "b", WILL_DELAY: "i", REQ_RESPONSE: "b",
    RESPONSE_INFO: "s", SERVER_REF: "s", REASON_STRING: "s", RECEIVE_MAX: "h",
    ALIAS_MAX: "h", ALIAS: "h", MAX_QOS: "b", RETAIN_AVAIL: "b", USER_PROP: "p",
    MAX_PACKET: "i", WILDCARD_AVAIL: "b", SUB_ID_AVAIL: "b", SHARED_AVAIL: "b",
}


class Closed(Exception):
    """The peer closed the connection (EOF or reset)."""


# ---------------------------------------------------------------- encoding

def varint(n):
    """MQTT variable byte integer (1.5.5 / 2.2.3)."""
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if n == 0:
            return bytes(out)


def utf8(text):
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("!H", len(raw)) + raw


def binary(data):
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return struct.pack("!H", len(raw)) + raw


def encode_props(items):
    """`items` is a list of (identifier, value) in wire order; a user property
    value is a (name, value) pair. Returns the length-prefixed block."""
    body = bytearray()
    for pid, value in items or ():
        body += varint(pid)
        kind = _PROP_KIND[pid]
        if kind == "b":
            body.append(value)
        elif kind == "h":
            body += struct.pack("!H", value)
        elif kind == "i":
            body += struct.pack("!I", value)
        elif kind == "v":
            body += varint(value)
        elif kind == "s":
            body += utf8(value)
        elif kind == "d":
            body += binary(value)
        else:
            body += utf8(value[0]) + utf8(value[1])
    return varint(len(body)) + bytes(body)


def frame(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + bytes(body)


def connect(client_id="", v5=False, clean=True, keepalive=60, will=None, username=None,
            password=None, props=None, level=None, name="MQTT", flags_extra=0):
    """CONNECT. `will` is a dict: topic, payload, qos, retain, props (v5)."""
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if v5:
            payload += encode_props(will.get("props"))
        payload += utf8(will["topic"]) + binary(will.get("payload", b""))
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += binary(password)
    body = utf8(name) + bytes([level if level is not None else (5 if v5 else 4)])
    body += bytes([flags | flags_extra]) + struct.pack("!H", keepalive)
    if v5:
        body += encode_props(props)
    return frame(CONNECT, 0, body + payload)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, v5=False,
            props=None):
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", pid)
    if v5:
        body += encode_props(props)
    payload = payload.encode() if isinstance(payload, str) else payload
    return frame(PUBLISH, flags, body + payload)


def ack(ptype, pid, rc=None, v5=False, props=None):
    """PUBACK, PUBREC, PUBREL or PUBCOMP (PUBREL carries flags 0b0010)."""
    body = struct.pack("!H", pid)
    if v5 and (rc or props):
        body += bytes([rc or 0])
        if props:
            body += encode_props(props)
    return frame(ptype, 2 if ptype == PUBREL else 0, body)


def subscribe(pid, filters, v5=False, props=None, flags=2):
    """`filters` is a list of (filter, options byte) or plain filter strings
    (QoS 0). Options: QoS | NL 0x04 | RAP 0x08 | retain handling << 4."""
    body = struct.pack("!H", pid)
    if v5:
        body += encode_props(props)
    for f in filters:
        topic, opts = (f, 0) if isinstance(f, str) else f
        body += utf8(topic) + bytes([opts])
    return frame(SUBSCRIBE, flags, body)


def unsubscribe(pid, filters, v5=False, props=None):
    body = struct.pack("!H", pid)
    if v5:
        body += encode_props(props)
    for f in filters:
        body += utf8(f)
    return frame(UNSUBSCRIBE, 2, body)


def disconnect(rc=None, v5=False, props=None):
    if not v5 or (rc is None and not props):
        return frame(DISCONNECT, 0, b"")
    return frame(DISCONNECT, 0, bytes([rc or 0]) + (encode_props(props) if props else b""))


ack_packet = ack


def pingreq():
    return frame(PINGREQ, 0, b"")


# ---------------------------------------------------------------- decoding

def read_varint(data, i):
    mult, value = 1, 0
    for _ in range(4):
        b = data[i]
        i += 1
        value += (b & 127) * mult
        if not b & 128:
            return value, i
        mult *= 128
    raise ValueError("variable byte integer longer than 4 bytes")


def _read_str(data, i):
    n = struct.unpack_from("!H", data, i)[0]
    return bytes(data[i + 2:i + 2 + n]), i + 2 + n


def decode_props(data, i):
    """Returns (list of (id, value) in wire order, next index)."""
    length, i = read_varint(data, i)
    end, out = i + length, []
    while i < end:
        pid, i = read_varint(data, i)
        kind = _PROP_KIND[pid]
        if kind == "b":
            value, i = data[i], i + 1
        elif kind == "h":
            value, i = struct.unpack_from("!H", data, i)[0], i + 2
        elif kind == "i":
            value, i = struct.unpack_from("!I", data, i)[0], i + 4
        elif kind == "v":
            value, i = read_varint(data, i)
        elif kind == "s":
            raw, i = _read_str(data, i)
            value = raw.decode("utf-8")
        elif kind == "d":
            value, i = _read_str(data, i)
        else:
            k, i = _read_str(data, i)
            v, i = _read_str(data, i)
            value = (k.decode(), v.decode())
        out.append((pid, value))
    if i != end:
        raise ValueError("property block overruns its length")
    return out, end


class Packet:
    """One received packet. Common fields: type, flags, body. Decoded fields
    by type: rc, session_present, pid, topic, payload, qos, retain, dup,
    codes (SUBACK/UNSUBACK), props (list of (id, value))."""

    def __init__(self, ptype, flags, body, v5):
        self.type, self.flags, self.body = ptype, flags, bytes(body)
        self.props, self.rc, self.pid = [], None, None
        decoder = _DECODERS.get(ptype)
        if decoder:
            decoder(self, self.body, v5)

    def prop(self, pid, default=None):
        for k, v in self.props:
            if k == pid:
                return v
        return default

    def all(self, pid):
        return [v for k, v in self.props if k == pid]

    def __repr__(self):
        fields = {k: v for k, v in vars(self).items() if k not in ("body",) and v not in (None, [])}
        return "Packet(%r)" % fields


def _dec_connack(p, b, v5):
    p.session_present, p.rc = bool(b[0] & 1), b[1]
    if v5 and len(b) > 2:
        p.props, _ = decode_props(b, 2)


def _dec_publish(p, b, v5):
    p.qos, p.retain, p.dup = (p.flags >> 1) & 3, bool(p.flags & 1), bool(p.flags & 8)
    topic, i = _read_str(b, 0)
    p.topic = topic.decode("utf-8")
    if p.qos:
        p.pid, i = struct.unpack_from("!H", b, i)[0], i + 2
    if v5:
        p.props, i = decode_props(b, i)
    p.payload = b[i:]


def _dec_ack(p, b, v5):
    p.pid = struct.unpack_from("!H", b, 0)[0]
    p.rc = b[2] if len(b) > 2 else 0
    if v5 and len(b) > 3:
        p.props, _ = decode_props(b, 3)


def _dec_suback(p, b, v5):
    p.pid, i = struct.unpack_from("!H", b, 0)[0], 2
    if v5:
        p.props, i = decode_props(b, i)
    p.codes = list(b[i:])


def _dec_disconnect(p, b, v5):
    p.rc = b[0] if b else 0
    if len(b) > 1:
        p.props, _ = decode_props(b, 1)


_DECODERS = {
    CONNACK: _dec_connack, PUBLISH: _dec_publish, PUBACK: _dec_ack, PUBREC: _dec_ack,
    PUBREL: _dec_ack, PUBCOMP: _dec_ack, SUBACK: _dec_suback, UNSUBACK: _dec_suback,
    DISCONNECT: _dec_disconnect, AUTH: _dec_disconnect,
}


# ---------------------------------------------------------------- the client

class Client:
    """A raw connection. `v5` selects how received packets are parsed."""

    def __init__(self, port, v5=False, host="127.0.0.1", timeout=5.0):
        self.v5 = v5
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _take(self):
        """Returns one complete packet from the buffer, or None."""
        if len(self.buf) < 2:
            return None
        length, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 127) * mult
            i += 1
            if not b & 128:
                break
            mult *= 128
            if i > 4:
                raise ValueError("bad remaining length from the server")
        if len(self.buf) < i + length:
            return None
        head, body = self.buf[0], self.buf[i:i + length]
        del self.buf[:i + length]
        return Packet(head >> 4, head & 15, body, self.v5)

    def recv(self, timeout=3.0):
        """The next packet; None on timeout; raises Closed at EOF/reset."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._take()
            if p is not None:
                return p
            if self.eof:
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                self.eof = True
                continue
            if not chunk:
                self.eof = True
            self.buf += chunk

    def expect(self, ptype, timeout=3.0):
        p = self.recv(timeout)
        assert p is not None, "timed out waiting for packet type %d" % ptype
        assert p.type == ptype, "expected packet type %d, got %r" % (ptype, p)
        return p

    def packets_until_close(self, timeout=3.0):
        """Reads until the peer closes. Returns the packets read before the
        close, or raises AssertionError if the connection stays open."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                p = self.recv(max(left, 0.01))
            except Closed:
                return got
            if p is None:
                raise AssertionError("connection still open after %.1fs; got %r" % (timeout, got))
            got.append(p)

    def drain(self, timeout=0.3):
        """All packets arriving within `timeout` (stops early at a close)."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            try:
                p = self.recv(left)
            except Closed:
                return got
            if p is None:
                return got
            got.append(p)

    def collect(self, want, timeout=3.0, quiet=0.2, ack=True):
        """PUBLISHes until `want` arrived (or `timeout`), then any more that
        come within `quiet` seconds (to catch duplicates). Acknowledges each
        one completely unless ack=False. Other packets are dropped."""
        got, deadline = [], time.monotonic() + timeout
        while len(got) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                p = self.recv(left)
            except Closed:
                break
            if p is None:
                break
            self._collected(p, got, ack)
        for p in self.drain(quiet):
            self._collected(p, got, ack)
        return got

    def _collected(self, p, got, ack):
        """One packet seen by collect(): PUBLISHes are kept and answered
        (QoS 2: PUBREC now, PUBCOMP when the PUBREL comes), so that
        interleaved flows never block on each other."""
        if p.type == PUBLISH:
            got.append(p)
            if ack and p.qos == 1:
                self.send(ack_packet(PUBACK, p.pid))
            elif ack and p.qos == 2:
                self.send(ack_packet(PUBREC, p.pid))
        elif p.type == PUBREL and ack:
            self.send(ack_packet(PUBCOMP, p.pid))

    # Conveniences for the common flows.

    def handshake(self, client_id="", clean=True, keepalive=60, **kw):
        """Sends CONNECT and returns the CONNACK (asserting it accepted)."""
        self.send(connect(client_id, v5=self.v5, clean=clean, keepalive=keepalive, **kw))
        p = self.expect(CONNACK)
        assert p.rc == 0, "CONNACK refused: %r" % p
        return p

    def sub(self, filters, pid=1, props=None):
        self.send(subscribe(pid, filters, v5=self.v5, props=props))
        p = self.expect(SUBACK)
        assert p.pid == pid
        return p

    def pub(self, topic, payload=b"", qos=0, retain=False, pid=1, props=None):
        """Publishes and completes the QoS flow as a sender."""
        self.send(publish(topic, payload, qos, retain, pid=pid, v5=self.v5, props=props))
        if qos == 1:
            assert self.expect(PUBACK).pid == pid
        elif qos == 2:
            assert self.expect(PUBREC).pid == pid
            self.send(ack(PUBREL, pid))
            assert self.expect(PUBCOMP).pid == pid

    def ack_msg(self, p):
        """Acknowledges a received PUBLISH completely (QoS 1 or 2)."""
        if p.qos == 1:
            self.send(ack(PUBACK, p.pid))
        elif p.qos == 2:
            self.send(ack(PUBREC, p.pid))
            assert self.expect(PUBREL).pid == p.pid
            self.send(ack(PUBCOMP, p.pid))

    def ping_ok(self, timeout=3.0):
        """True if the connection still answers PINGREQ."""
        self.send(pingreq())
        return self.expect(PINGRESP, timeout) is not None


def connected(port, client_id="", v5=False, **kw):
    c = Client(port, v5=v5)
    c.handshake(client_id, **kw)
    return c
