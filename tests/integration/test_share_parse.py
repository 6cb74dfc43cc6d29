"""One reading of "$share/" (issue 11 item 15): a shared-subscription filter
is parsed once (mqtt_share_split), the same way in MQTT 3.1.1 and 5, as
Mosquitto also offers shared subscriptions on 3.1.1. A malformed one
("$share/g", "$share//t") is refused on its own with SUBACK 0x8F (v5) or
0x80 (3.1.1; MQTT-3.9.3 has no other failure code), never granted and never
checked by the ACL as some other filter; a well-formed one is authorized on
the filter after the group. Wire level, with a raw client kept in this file."""
import socket
import struct
import time

import pytest

from conftest import free_port, wait_port

ACL = """rules = [
  {"permit": "deny", "action": "subscribe", "topics": ["secret/#"]}
]
"""


# ---- a raw MQTT client, just what these tests need -------------------------

def _s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(b)) + b


def _vbi(n):
    out = b""
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


class Raw:
    def __init__(self, port, v5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.v5 = v5
        self.buf = b""

    def send(self, ptype, flags, body):
        self.sock.sendall(bytes([(ptype << 4) | flags]) + _vbi(len(body)) + body)

    def _packet(self):
        if len(self.buf) < 2:
            return None
        n, mult, i = 0, 1, 1
        while i < len(self.buf) and i < 5:
            n += (self.buf[i] & 127) * mult
            mult *= 128
            if not self.buf[i] & 128:
                break
            i += 1
        if i >= len(self.buf) or len(self.buf) < i + 1 + n:
            return None
        head, body = self.buf[0], self.buf[i + 1:i + 1 + n]
        self.buf = self.buf[i + 1 + n:]
        return head >> 4, head & 15, body

    def read(self, timeout=3.0):
        """The next packet as (type, flags, body); None on close or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._packet()
            if p is not None:
                return p
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def props(self):
        return b"\x00" if self.v5 else b""

    def connect(self, cid):
        body = _s("MQTT") + bytes([5 if self.v5 else 4, 0x02]) + struct.pack("!H", 30)
        self.send(1, 0, body + self.props() + _s(cid))
        p = self.read()
        assert p and p[0] == 2 and p[2][1] == 0, p

    def subscribe(self, filters, pid=1):
        """SUBACK reason codes, one per filter (QoS 1 asked for each)."""
        body = struct.pack("!H", pid) + self.props()
        for f in filters:
            body += _s(f) + b"\x01"
        self.send(8, 2, body)
        p = self.read()
        assert p and p[0] == 9, "no SUBACK: %r" % (p,)
        assert struct.unpack("!H", p[2][:2])[0] == pid, p
        start = 2
        if self.v5:
            start += 1 + p[2][2]  # property length (small here)
        return list(p[2][start:])

    def unsubscribe(self, filters, pid=1):
        """UNSUBACK reason codes (v5), or [] (3.1.1 has none)."""
        self.send(10, 2, struct.pack("!H", pid) + self.props() + b"".join(_s(f) for f in filters))
        p = self.read()
        assert p and p[0] == 11, "no UNSUBACK: %r" % (p,)
        assert struct.unpack("!H", p[2][:2])[0] == pid, p
        return list(p[2][3 + p[2][2]:]) if self.v5 else []

    def publish(self, topic, payload):
        self.send(3, 0, _s(topic) + self.props() + payload)

    def next_publish(self, timeout=2.0):
        """(topic, payload) of the next QoS 0 PUBLISH, or None."""
        p = self.read(timeout)
        if p is None:
            return None
        assert p[0] == 3, p
        tl = struct.unpack("!H", p[2][:2])[0]
        i = 2 + tl + (2 if p[1] & 6 else 0)
        if self.v5:
            i += 1 + p[2][i]
        return p[2][2:2 + tl].decode(), p[2][i:]

    def close(self):
        self.sock.close()


# ---- set-up ------------------------------------------------------------------

@pytest.fixture
def guarded(ward_factory, tmp_path):
    """ward with an ACL that keeps secret/ from subscribers; all else allowed."""
    (tmp_path / "acl.conf").write_text(ACL)
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'auth {\n  allow_anonymous = true\n  no_match = allow\n'
                    '  acl = {include "acl.conf"}\n}\n' % port)
    w = ward_factory(["-c", str(conf), "--log-level", "info"], port=port, listen=False)
    w.start(wait=False)
    assert wait_port(port, proc=w.proc), w.read_log()
    return w


def client(w, cid, v5):
    c = Raw(w.port, v5)
    c.connect(cid)
    return c


VERSIONS = pytest.mark.parametrize("v5, denied, invalid", [(True, 0x87, 0x8F),
                                                           (False, 0x80, 0x80)],
                                   ids=["v5", "v311"])

MALFORMED = ["$share/g", "$share//t", "$share/", "$share/g/", "$share/+/t",
             "$share/g/$share/h/t"]


@VERSIONS
def test_acl_judges_the_filter_after_the_group(guarded, v5, denied, invalid):
    c = client(guarded, "acl-%d" % v5, v5)
    assert c.subscribe(["secret/x"]) == [denied]
    assert c.subscribe(["$share/g/secret/x"], pid=2) == [denied]
    assert c.subscribe(["$share/g/secret/#"], pid=3) == [denied]
    assert c.subscribe(["$share/g/public/x"], pid=4) == [1]
    assert c.subscribe(["public/x"], pid=5) == [1]
    c.close()


@VERSIONS
def test_malformed_share_refused_alone(guarded, v5, denied, invalid):
    # MQTT-4.8.2-1/2: a ShareName of at least one character without '/',
    # '+', '#', then '/' and a non-empty filter. Not a whole-packet error:
    # the filters next to it are answered as usual, and the connection stays.
    c = client(guarded, "bad-%d" % v5, v5)
    for pid, flt in enumerate(MALFORMED, start=10):
        codes = c.subscribe(["share/ok", flt, "$share/g/secret/x", "$share/g/share/ok"], pid=pid)
        assert codes == [1, invalid, denied, 1], (flt, [hex(x) for x in codes])
    assert c.subscribe(["share/again"], pid=99) == [1]
    # UNSUBSCRIBE takes them too: nothing was subscribed under them (v5
    # 0x11), while the well-formed share next to them is removed (0x00).
    codes = c.unsubscribe(["$share/g", "$share/g/share/ok", "$share//t"], pid=100)
    assert codes == ([0x11, 0x00, 0x11] if v5 else []), codes
    guarded.wait_log("SUBSCRIBE to '$share//t' refused: not a valid shared subscription")
    c.close()


@VERSIONS
def test_share_works_in_both_versions(guarded, v5, denied, invalid):
    # A well-formed share delivers to a member; a refused malformed one
    # delivers nothing (it was not indexed as a literal filter either).
    member = client(guarded, "member-%d" % v5, v5)
    assert member.subscribe(["$share/grp/news/t"]) == [1]
    stray = client(guarded, "stray-%d" % v5, v5)
    assert stray.subscribe(["$share/grp"]) == [invalid]
    pub = client(guarded, "pub-%d" % v5, v5)
    pub.publish("news/t", b"hello")
    assert member.next_publish() == ("news/t", b"hello")
    assert stray.next_publish(0.5) is None
    for c in (member, stray, pub):
        c.close()
