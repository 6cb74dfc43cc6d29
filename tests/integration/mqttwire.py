"""A raw MQTT 3.1.1 / 5.0 client for wire-level tests: packets are built by
hand (so tests can send what no library would) and read back parsed, with
timeouts everywhere. Independent of ward's own codec on purpose."""
import socket
import struct

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# property id -> kind
_KINDS = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "vbi",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte",
    0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
    0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
    0x28: "byte", 0x29: "byte", 0x2A: "byte",
}


def vbi(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack("!H", len(x)) + x


def props(items=()):
    """Encodes [(id, value), ...]; a pair value is (key, value)."""
    body = b""
    for pid, v in items:
        kind = _KINDS[pid]
        body += vbi(pid)
        if kind == "byte":
            body += bytes([v])
        elif kind == "u16":
            body += struct.pack("!H", v)
        elif kind == "u32":
            body += struct.pack("!I", v)
        elif kind == "vbi":
            body += vbi(v)
        elif kind in ("str", "bin"):
            body += s(v)
        else:
            body += s(v[0]) + s(v[1])
    return vbi(len(body)) + body


def parse_props(data, i):
    """Returns (dict of id -> value or list for repeatable, next index)."""
    mult, n = 1, 0
    while True:
        b = data[i]
        i += 1
        n += (b & 127) * mult
        mult *= 128
        if not b & 128:
            break
    end, out = i + n, {}
    while i < end:
        pid = data[i]
        i += 1
        kind = _KINDS[pid]
        if kind == "byte":
            v, i = data[i], i + 1
        elif kind == "u16":
            v, i = struct.unpack("!H", data[i:i + 2])[0], i + 2
        elif kind == "u32":
            v, i = struct.unpack("!I", data[i:i + 4])[0], i + 4
        elif kind == "vbi":
            mult, v = 1, 0
            while True:
                b = data[i]
                i += 1
                v += (b & 127) * mult
                mult *= 128
                if not b & 128:
                    break
        else:
            ln = struct.unpack("!H", data[i:i + 2])[0]
            v, i = data[i + 2:i + 2 + ln], i + 2 + ln
            if kind == "str":
                v = v.decode()
            if kind == "pair":
                ln2 = struct.unpack("!H", data[i:i + 2])[0]
                v = (v.decode(), data[i + 2:i + 2 + ln2].decode())
                i += 2 + ln2
        if pid in (0x26, 0x0B):
            out.setdefault(pid, []).append(v)
        else:
            out[pid] = v
    return out, end


class Packet:
    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, body

    def __repr__(self):
        return "Packet(type=%d, flags=%d, body=%r)" % (self.type, self.flags, self.body[:40])


class Msg:
    """A parsed PUBLISH."""

    def __init__(self, p, v5):
        b = p.body
        tl = struct.unpack("!H", b[:2])[0]
        self.topic = b[2:2 + tl].decode()
        i = 2 + tl
        self.qos = (p.flags >> 1) & 3
        self.retain = bool(p.flags & 1)
        self.dup = bool(p.flags & 8)
        self.pid = None
        if self.qos:
            self.pid = struct.unpack("!H", b[i:i + 2])[0]
            i += 2
        self.props = {}
        if v5:
            self.props, i = parse_props(b, i)
        self.payload = b[i:]

    def __repr__(self):
        return "Msg(%r, %r, q%d, r%d, d%d)" % (self.topic, self.payload, self.qos, self.retain,
                                             self.dup)


class Client:
    def __init__(self, port, v5=True, host="127.0.0.1", timeout=3):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.v5 = v5
        self.buf = b""
        self.pid = 0

    # -- bytes -------------------------------------------------------------
    def raw(self, data):
        self.sock.sendall(data)

    def send(self, ptype, flags, body):
        self.raw(bytes([(ptype << 4) | flags]) + vbi(len(body)) + body)

    def read(self, timeout=3):
        """The next packet, or None on close/timeout."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                mult, n, i = 1, 0, 1
                while i < len(self.buf) and i < 5:
                    n += (self.buf[i] & 127) * mult
                    mult *= 128
                    if not self.buf[i] & 128:
                        break
                    i += 1
                if i < len(self.buf) and len(self.buf) >= i + 1 + n:
                    head, body = self.buf[0], self.buf[i + 1:i + 1 + n]
                    self.buf = self.buf[i + 1 + n:]
                    return Packet(head >> 4, head & 15, body)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError, OSError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def closed(self, timeout=3):
        """True if the server closes the connection (after any packets)."""
        while True:
            p = self.read(timeout)
            if p is None:
                try:
                    self.sock.settimeout(0.2)
                    return self.sock.recv(1) == b""
                except socket.timeout:
                    return False
                except OSError:
                    return True

    def expect(self, ptype, timeout=3):
        p = self.read(timeout)
        assert p is not None, "expected packet type %d, got nothing" % ptype
        assert p.type == ptype, "expected packet type %d, got %r" % (ptype, p)
        return p

    # -- packets -----------------------------------------------------------
    def connect_packet(self, cid, clean=True, keepalive=60, user=None, pw=None, will=None,
                       cprops=(), level=None):
        flags = 0x02 if clean else 0
        payload = s(cid)
        if will:
            flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
            if self.v5:
                payload += props(will.get("props", ()))
            payload += s(will["topic"]) + s(will["payload"])
        if user is not None:
            flags |= 0x80
            payload += s(user)
        if pw is not None:
            flags |= 0x40
            payload += s(pw)
        lvl = level if level is not None else (5 if self.v5 else 4)
        body = s("MQTT") + bytes([lvl, flags]) + struct.pack("!H", keepalive)
        if self.v5:
            body += props(cprops)
        return body + payload

    def connect(self, cid="", **kw):
        """Sends CONNECT; returns (reason, session_present, props)."""
        self.send(CONNECT, 0, self.connect_packet(cid, **kw))
        p = self.expect(CONNACK)
        pr = {}
        if self.v5 and len(p.body) > 2:
            pr, _ = parse_props(p.body, 2)
        return p.body[1], bool(p.body[0] & 1), pr

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def publish(self, topic, payload=b"", qos=0, retain=False, dup=False, pid=None, pprops=()):
        payload = payload.encode() if isinstance(payload, str) else payload
        if qos and pid is None:
            pid = self.next_pid()
        body = s(topic) + (struct.pack("!H", pid) if qos else b"")
        if self.v5:
            body += props(pprops)
        self.send(PUBLISH, (qos << 1) | int(retain) | (8 if dup else 0), body + payload)
        return pid

    def publish_acked(self, topic, payload=b"", qos=1, **kw):
        """Publishes and completes the flow; returns the ack's reason code."""
        pid = self.publish(topic, payload, qos, **kw)
        p = self.expect(PUBACK if qos == 1 else PUBREC)
        assert struct.unpack("!H", p.body[:2])[0] == pid
        rc = p.body[2] if len(p.body) > 2 else 0
        if qos == 2 and rc < 0x80:
            self.send(PUBREL, 2, struct.pack("!H", pid))
            self.expect(PUBCOMP)
        return rc

    def subscribe(self, *filters, qos=1, opts=0, sprops=()):
        """Subscribes; returns the SUBACK codes as a list."""
        pid = self.next_pid()
        body = struct.pack("!H", pid) + (props(sprops) if self.v5 else b"")
        for f in filters:
            body += s(f) + bytes([qos | opts])
        self.send(SUBSCRIBE, 2, body)
        p = self.expect(SUBACK)
        assert struct.unpack("!H", p.body[:2])[0] == pid
        i = 2
        if self.v5:
            _, i = parse_props(p.body, 2)
        return list(p.body[i:])

    def unsubscribe(self, *filters):
        pid = self.next_pid()
        body = struct.pack("!H", pid) + (b"\x00" if self.v5 else b"")
        for f in filters:
            body += s(f)
        self.send(UNSUBSCRIBE, 2, body)
        p = self.expect(UNSUBACK)
        i = 2
        if self.v5:
            _, i = parse_props(p.body, 2)
        return list(p.body[i:])

    def message(self, timeout=2, ack=True):
        """The next PUBLISH as a Msg (acked for QoS 1/2 unless ack=False)."""
        while True:
            p = self.read(timeout)
            if p is None:
                return None
            if p.type == PUBREL:
                self.send(PUBCOMP, 0, p.body[:2])
                continue
            if p.type != PUBLISH:
                continue
            m = Msg(p, self.v5)
            if ack and m.qos == 1:
                self.send(PUBACK, 0, struct.pack("!H", m.pid))
            if ack and m.qos == 2:
                self.send(PUBREC, 0, struct.pack("!H", m.pid))
            return m

    def messages(self, n, timeout=2):
        out = []
        for _ in range(n):
            m = self.message(timeout)
            if m is None:
                break
            out.append(m)
        return out

    def disconnect(self, reason=0, dprops=()):
        try:
            body = (bytes([reason]) + props(dprops)) if self.v5 else b""
            self.send(DISCONNECT, 0, body)
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def disconnect_reason(self, timeout=8):
        """Reads until a DISCONNECT; returns its reason (None if none came)."""
        while True:
            p = self.read(timeout)
            if p is None:
                return None
            if p.type == DISCONNECT:
                return p.body[0] if p.body else 0
