"""The raw MQTT 3.1.1 / 5.0 client for wire-level tests.

Packets are built by hand (module functions `connect`, `publish`,
`subscribe`, ... return bytes), so a test can send exactly the bytes it means,
including bytes no library would send. Packets read back are parsed here
alone, independently of ward's codec and of paho, and strictly: a string that
is not well-formed UTF-8 (or holds U+0000) raises ValueError.

Every wait has a deadline, and the three outcomes of a wait are kept apart:

    c.recv(t)          a Packet; None if nothing came within t seconds;
                       raises Closed if the server closed (EOF or reset)
    c.expect(TYPE, t)  the next packet, which must be TYPE (AssertionError on
                       a timeout, a close, or another packet)
    c.expect_close(t)  the packets read before the server closed; raises
                       AssertionError if the connection is still open after t
    c.expect_refusal(TYPE, codes, required)
                       a close, after at most one TYPE with a reason in codes

A timeout is never a close. To show that something did NOT arrive, do not
wait and see: `c.ping()` sends PINGREQ and returns every packet that arrived
before the PINGRESP. A server answers packets of one connection in order, so
whatever it had queued for this client by then is in that list. Make sure the
cause was handled first (the publisher got its PUBACK, or pinged too).

The flows: `connected(port, id, v5)` (CONNECT, CONNACK accepted),
`c.sub(filters)`, `c.unsub(filters)`, `c.pub(topic, payload, qos)` (completes
the sender's side), `c.collect(n)` (n PUBLISHes, acknowledged, plus any more
already queued; `collect(0)`: just those), `c.ack_msg(p)`, `c.disconnect()`
(DISCONNECT, then waits for the server's close), `c.close()` (an abnormal
close, as for a will). `c.send(bytes)` sends anything.

Typical use:

    sub = connected(port, "sub", v5=True)
    sub.sub([("a/#", 1)])
    connected(port, "pub", v5=True).pub("a/b", b"hi", qos=1)
    [p] = sub.collect(1)          # acknowledged; extra copies would show up
    assert p.payload == b"hi"
"""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
NAMES = {v: k for k, v in globals().items() if k.isupper() and isinstance(v, int)}

# v5 property identifiers (MQTT 5.0 section 2.2.2.2).
PFI, EXPIRY, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION = 0x01, 0x02, 0x03, 0x08, 0x09
SUB_ID, SESSION_EXPIRY, ASSIGNED_ID, KEEP_ALIVE = 0x0B, 0x11, 0x12, 0x13
AUTH_METHOD, AUTH_DATA, REQ_PROBLEM, WILL_DELAY, REQ_RESPONSE = 0x15, 0x16, 0x17, 0x18, 0x19
RESPONSE_INFO, SERVER_REF, REASON_STRING, RECEIVE_MAX = 0x1A, 0x1C, 0x1F, 0x21
ALIAS_MAX, ALIAS, MAX_QOS, RETAIN_AVAIL, USER_PROP, MAX_PACKET = 0x22, 0x23, 0x24, 0x25, 0x26, 0x27
WILDCARD_AVAIL, SUB_ID_AVAIL, SHARED_AVAIL = 0x28, 0x29, 0x2A

# b: byte, h: two-byte integer, i: four-byte integer, v: variable byte
# integer, s: UTF-8 string, d: binary data, p: string pair.
_PROP_KIND = {
    PFI: "b", EXPIRY: "i", CONTENT_TYPE: "s", RESPONSE_TOPIC: "s", CORRELATION: "d",
    SUB_ID: "v", SESSION_EXPIRY: "i", ASSIGNED_ID: "s", KEEP_ALIVE: "h", AUTH_METHOD: "s",
    AUTH_DATA: "d", REQ_PROBLEM: "b", WILL_DELAY: "i", REQ_RESPONSE: "b",
    RESPONSE_INFO: "s", SERVER_REF: "s", REASON_STRING: "s", RECEIVE_MAX: "h",
    ALIAS_MAX: "h", ALIAS: "h", MAX_QOS: "b", RETAIN_AVAIL: "b", USER_PROP: "p",
    MAX_PACKET: "i", WILDCARD_AVAIL: "b", SUB_ID_AVAIL: "b", SHARED_AVAIL: "b",
}

WAIT = 10.0  # default deadline of every wait: generous, costs nothing when the event comes


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


# ---------------------------------------------------------------- encoding

def vbi(n):
    """Variable Byte Integer (MQTT 1.5.5 / 2.2.3)."""
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if n == 0:
            return bytes(out)


def utf8(text):
    """A length-prefixed string; bytes are sent as given (for bad UTF-8)."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("!H", len(raw)) + raw


s = utf8  # the short name test_auth.py imports


def encode_props(items):
    """`items`: [(identifier, value), ...] in wire order; a user property's
    value is a (name, value) pair. Returns the length-prefixed block."""
    body = bytearray()
    for pid, value in items or ():
        body += vbi(pid)
        kind = _PROP_KIND[pid]
        if kind == "b":
            body.append(value)
        elif kind == "h":
            body += struct.pack("!H", value)
        elif kind == "i":
            body += struct.pack("!I", value)
        elif kind == "v":
            body += vbi(value)
        elif kind in ("s", "d"):
            body += utf8(value)
        else:
            body += utf8(value[0]) + utf8(value[1])
    return vbi(len(body)) + bytes(body)


def frame(ptype, flags, body):
    """Any packet: fixed header (type, flags, remaining length) + body."""
    return bytes([(ptype << 4) | flags]) + vbi(len(body)) + bytes(body)


def connect(client_id="", v5=False, clean=True, keepalive=60, will=None, username=None,
            password=None, props=None, level=None, name="MQTT", flags_extra=0):
    """CONNECT. `will`: dict with topic, payload, qos, retain, props (v5).
    `level` overrides the protocol level, `flags_extra` is OR-ed into the
    connect flags (to set reserved or inconsistent bits)."""
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if v5:
            payload += encode_props(will.get("props"))
        payload += utf8(will["topic"]) + utf8(will.get("payload", b""))
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)
    body = utf8(name) + bytes([level if level is not None else (5 if v5 else 4)])
    body += bytes([flags | flags_extra]) + struct.pack("!H", keepalive)
    if v5:
        body += encode_props(props)
    return frame(CONNECT, 0, body + payload)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, v5=False,
            props=None):
    """PUBLISH. `pid` is required for QoS > 0 (it may be 0, to test that)."""
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", pid)
    if v5:
        body += encode_props(props)
    payload = payload.encode() if isinstance(payload, str) else payload
    return frame(PUBLISH, flags, body + payload)


def ack(ptype, pid, rc=None, v5=False, props=None):
    """PUBACK, PUBREC, PUBREL or PUBCOMP (PUBREL gets its flags 0010)."""
    body = struct.pack("!H", pid)
    if v5 and (rc or props):
        body += bytes([rc or 0])
        if props:
            body += encode_props(props)
    return frame(ptype, 2 if ptype == PUBREL else 0, body)


def subscribe(pid, filters, v5=False, props=None, flags=2):
    """`filters`: [(filter, options byte)] or plain strings (QoS 0). Options:
    QoS | No Local 0x04 | Retain As Published 0x08 | Retain Handling << 4."""
    body = struct.pack("!H", pid)
    if v5:
        body += encode_props(props)
    for f in filters:
        topic, opts = (f, 0) if isinstance(f, (str, bytes)) else f
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
    """DISCONNECT; 3.1.1 (or v5 with no reason and no properties) is empty."""
    if not v5 or (rc is None and not props):
        return frame(DISCONNECT, 0, b"")
    return frame(DISCONNECT, 0, bytes([rc or 0]) + (encode_props(props) if props else b""))


ack_packet = ack  # for methods whose `ack` argument hides the function


def pingreq():
    return frame(PINGREQ, 0, b"")


# ---------------------------------------------------------------- decoding

def read_vbi(data, i):
    mult, value = 1, 0
    for _ in range(4):
        b = data[i]
        i += 1
        value += (b & 127) * mult
        if not b & 128:
            return value, i
        mult *= 128
    raise ValueError("variable byte integer longer than 4 bytes")


def _read_bin(data, i):
    n = struct.unpack_from("!H", data, i)[0]
    if i + 2 + n > len(data):
        raise ValueError("string overruns its packet")
    return bytes(data[i + 2:i + 2 + n]), i + 2 + n


def _read_str(data, i):
    """MQTT-1.5.4-1/2: well-formed UTF-8 (Python's strict codec refuses
    surrogates and overlong forms), no U+0000."""
    raw, i = _read_bin(data, i)
    text = raw.decode("utf-8")
    if "\x00" in text:
        raise ValueError("U+0000 in a string from the server: %r" % raw)
    return text, i


def decode_props(data, i):
    """Returns (list of (id, value) in wire order, next index)."""
    length, i = read_vbi(data, i)
    end, out = i + length, []
    while i < end:
        pid, i = read_vbi(data, i)
        kind = _PROP_KIND[pid]
        if kind == "b":
            value, i = data[i], i + 1
        elif kind == "h":
            value, i = struct.unpack_from("!H", data, i)[0], i + 2
        elif kind == "i":
            value, i = struct.unpack_from("!I", data, i)[0], i + 4
        elif kind == "v":
            value, i = read_vbi(data, i)
        elif kind == "s":
            value, i = _read_str(data, i)
        elif kind == "d":
            value, i = _read_bin(data, i)
        else:
            k, i = _read_str(data, i)
            v, i = _read_str(data, i)
            value = (k, v)
        out.append((pid, value))
    if i != end:
        raise ValueError("property block overruns its length")
    return out, end


class Packet:
    """One received packet: type, flags, body, and by type: rc (CONNACK,
    acks, DISCONNECT, AUTH), session_present (CONNACK), pid, topic, payload,
    qos, retain, dup (PUBLISH), codes (SUBACK, UNSUBACK), props (v5: a list of
    (id, value) in wire order; read with prop() and all())."""

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
        fields = {k: v for k, v in vars(self).items()
                  if k not in ("body", "type") and v not in (None, [])}
        if "payload" in fields and len(fields["payload"]) > 40:
            fields["payload"] = fields["payload"][:40] + b"..."
        return "%s%r" % (NAMES.get(self.type, self.type), fields)


def _dec_connack(p, b, v5):
    p.session_present, p.rc = bool(b[0] & 1), b[1]
    if v5 and len(b) > 2:
        p.props, _ = decode_props(b, 2)


def _dec_publish(p, b, v5):
    p.qos, p.retain, p.dup = (p.flags >> 1) & 3, bool(p.flags & 1), bool(p.flags & 8)
    p.topic, i = _read_str(b, 0)
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
    """One raw connection. `v5` selects how received packets are parsed and
    how the conveniences below build theirs."""

    def __init__(self, port, v5=False, host="127.0.0.1", timeout=WAIT):
        self.v5 = v5
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.next_pid = 0

    # ---- bytes and packets

    def send(self, data):
        """Sends bytes. A server that already closed is not an error here:
        the next read reports the close (so a test sees what came before it)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close(self):
        """Closes without DISCONNECT (for the server, an abnormal close)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def _take(self):
        """One complete packet from the buffer, or None."""
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

    def recv(self, timeout=WAIT):
        """The next packet; None if none came within `timeout`; raises
        Closed once the server closed and every packet before it was read."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._take()
            if p is not None:
                return p
            if self.eof:
                if self.buf:
                    raise AssertionError("server closed inside a packet: %r" % bytes(self.buf))
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

    def expect(self, ptype, timeout=WAIT):
        """The next packet, which must be of type `ptype`."""
        what = NAMES.get(ptype, ptype)
        try:
            p = self.recv(timeout)
        except Closed:
            raise AssertionError("connection closed while waiting for %s" % what) from None
        assert p is not None, "timed out after %.1fs waiting for %s" % (timeout, what)
        assert p.type == ptype, "expected %s, got %r" % (what, p)
        return p

    def expect_close(self, timeout=WAIT):
        """Waits for the server to close. Returns the packets read before the
        close; raises AssertionError if the connection is still open."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            try:
                p = self.recv(max(deadline - time.monotonic(), 0))
            except Closed:
                return got
            if p is None:
                raise AssertionError("connection still open after %.1fs; got %r" % (timeout, got))
            got.append(p)

    def expect_refusal(self, ptype, codes, required, timeout=WAIT):
        """Waits for the server to close. Before closing it may send one
        `ptype` (CONNACK or DISCONNECT) whose reason code is in `codes`; with
        `required` it must (MQTT 5.0 4.13.1 makes the reason a SHOULD; ward
        always gives it). `codes=()`: nothing may come before the close (a
        3.1.1 server has no DISCONNECT). Returns the packets before the close."""
        got = self.expect_close(timeout)
        assert len(got) <= 1 and all(p.type == ptype and p.rc in codes for p in got), \
            "expected a close, after at most one %s with a reason in %s; got %r" % (
                NAMES.get(ptype), ["0x%02X" % c for c in codes], got)
        if required and codes:
            assert got, "closed without the %s that says why" % NAMES.get(ptype)
        return got

    def ping(self, timeout=WAIT):
        """Sends PINGREQ and returns the packets that arrived before the
        PINGRESP: everything the server had queued for this client before it
        handled the PINGREQ. Fails on a close or when no PINGRESP comes."""
        self.send(pingreq())
        got = []
        while True:
            p = self.expect_any(timeout, "PINGRESP")
            if p.type == PINGRESP:
                return got
            got.append(p)

    def expect_any(self, timeout=WAIT, what="a packet"):
        try:
            p = self.recv(timeout)
        except Closed:
            raise AssertionError("connection closed while waiting for %s" % what) from None
        assert p is not None, "timed out after %.1fs waiting for %s" % (timeout, what)
        return p

    def collect(self, want, timeout=WAIT, ack=True):
        """Reads until `want` PUBLISHes arrived, then pings, so that any
        further PUBLISH already on its way (a duplicate, one that should have
        been dropped) is in the result too. Acknowledges each PUBLISH
        completely unless ack=False; other packets are dropped. Returns the
        PUBLISHes; fewer than `want` if the deadline passed or the server
        closed (the caller's assertion then shows what came)."""
        got, deadline = [], time.monotonic() + timeout
        while len(got) < want:
            try:
                p = self.recv(max(deadline - time.monotonic(), 0))
            except Closed:
                return got
            if p is None:
                return got
            self._collected(p, got, ack)
        for p in self.ping(timeout):
            self._collected(p, got, ack)
        return got

    def _collected(self, p, got, ack):
        """PUBLISHes are kept and answered (QoS 2: PUBREC now, PUBCOMP when
        the PUBREL comes), so that interleaved flows never block each other."""
        if p.type == PUBLISH:
            got.append(p)
            if ack and p.qos == 1:
                self.send(ack_packet(PUBACK, p.pid))
            elif ack and p.qos == 2:
                self.send(ack_packet(PUBREC, p.pid))
        elif p.type == PUBREL and ack:
            self.send(ack_packet(PUBCOMP, p.pid))

    # ---- the common flows

    def pid(self):
        """A fresh packet identifier for this connection."""
        self.next_pid = self.next_pid % 65535 + 1
        return self.next_pid

    def handshake(self, client_id="", clean=True, keepalive=60, **kw):
        """Sends CONNECT; returns the CONNACK, asserting that it accepted."""
        self.send(connect(client_id, v5=self.v5, clean=clean, keepalive=keepalive, **kw))
        p = self.expect(CONNACK)
        assert p.rc == 0, "CONNACK refused: %r" % p
        return p

    def sub(self, filters, pid=None, props=None):
        """SUBSCRIBE (filters as for `subscribe`); returns the SUBACK."""
        pid = pid or self.pid()
        self.send(subscribe(pid, filters, v5=self.v5, props=props))
        p = self.expect(SUBACK)
        assert p.pid == pid, p
        return p

    def unsub(self, filters, pid=None, props=None):
        """UNSUBSCRIBE; returns the UNSUBACK."""
        pid = pid or self.pid()
        self.send(unsubscribe(pid, filters, v5=self.v5, props=props))
        p = self.expect(UNSUBACK)
        assert p.pid == pid, p
        return p

    def pub(self, topic, payload=b"", qos=0, retain=False, pid=None, props=None):
        """Publishes and completes the sender's side of the QoS flow. Returns
        the PUBACK / PUBREC (QoS 1 / 2), or None for QoS 0."""
        pid = (pid or self.pid()) if qos else None
        self.send(publish(topic, payload, qos, retain, pid=pid, v5=self.v5, props=props))
        if qos == 1:
            p = self.expect(PUBACK)
            assert p.pid == pid, p
            return p
        if qos == 2:
            p = self.expect(PUBREC)
            assert p.pid == pid, p
            if p.rc < 0x80:
                self.send(ack(PUBREL, pid))
                assert self.expect(PUBCOMP).pid == pid
            return p
        return None

    def ack_msg(self, p):
        """Acknowledges a received PUBLISH completely (QoS 1 or 2)."""
        if p.qos == 1:
            self.send(ack(PUBACK, p.pid))
        elif p.qos == 2:
            self.send(ack(PUBREC, p.pid))
            assert self.expect(PUBREL).pid == p.pid
            self.send(ack(PUBCOMP, p.pid))

    def disconnect(self, rc=None, props=None, timeout=WAIT):
        """Sends DISCONNECT and waits until the server closed the connection,
        so the server has finished with it (its session state is final) before
        the test goes on. Returns the packets read before the close."""
        self.send(disconnect(rc, v5=self.v5, props=props))
        got = self.expect_close(timeout)
        self.close()
        return got


def connected(port, client_id="", v5=False, **kw):
    """A new Client that completed CONNECT / CONNACK."""
    c = Client(port, v5=v5)
    c.handshake(client_id, **kw)
    return c
