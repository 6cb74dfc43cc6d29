"""A small raw MQTT 3.1.1 / 5.0 client for test_config_keys.py: exact packets
in, exact packets out, so a test sees the reason codes and CONNACK properties
a configuration key changes. Blocking sockets; every read has a deadline and a
deadline that passes is reported as such, never as a close."""
import socket
import struct
import time

import mqttwire

# MQTT 5 property identifiers and their wire types (2.2.2.2).
BYTE, U16, U32, VBI, STR, BIN, PAIR = range(7)
PROPS = {0x01: BYTE, 0x02: U32, 0x03: STR, 0x08: STR, 0x09: BIN, 0x0B: VBI, 0x11: U32,
         0x12: STR, 0x13: U16, 0x15: STR, 0x16: BIN, 0x17: BYTE, 0x18: U32, 0x19: BYTE,
         0x1A: STR, 0x1C: STR, 0x1F: STR, 0x21: U16, 0x22: U16, 0x23: U16, 0x24: BYTE,
         0x25: BYTE, 0x26: PAIR, 0x27: U32, 0x28: BYTE, 0x29: BYTE, 0x2A: BYTE}
RECEIVE_MAX, TOPIC_ALIAS_MAX, TOPIC_ALIAS = 0x21, 0x22, 0x23
MAX_QOS, RETAIN_AVAILABLE, MAX_PACKET_SIZE, SERVER_KEEP_ALIVE = 0x24, 0x25, 0x27, 0x13
CONNACK, PUBLISH, PUBACK, PUBREC, SUBACK, DISCONNECT = 2, 3, 4, 5, 9, 14


class Timeout(AssertionError):
    """Nothing arrived before the deadline: neither a packet nor a close."""


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(b)) + b


def vbi(n):
    out = b""
    while True:
        n, d = n >> 7, n & 127
        out += bytes([d | (128 if n else 0)])
        if not n:
            return out


def read_vbi(b, i):
    n, mult = 0, 1
    while True:
        n += (b[i] & 127) * mult
        mult *= 128
        i += 1
        if not b[i - 1] & 128:
            return n, i


def enc_props(props):
    out = b""
    for pid, val in (props or {}).items():
        t = PROPS[pid]
        out += bytes([pid]) + {BYTE: lambda v: bytes([v]), U16: lambda v: struct.pack("!H", v),
                               U32: lambda v: struct.pack("!I", v), VBI: vbi, STR: s,
                               BIN: s}[t](val)
    return vbi(len(out)) + out


def _str(b, i):
    ln = struct.unpack("!H", b[i:i + 2])[0]
    return b[i + 2:i + 2 + ln], i + 2 + ln


def dec_props(b, i):
    """Properties at b[i:] as {id: value}; returns (props, index after them)."""
    n, i = read_vbi(b, i)
    end, props = i + n, {}
    while i < end:
        pid, t = b[i], PROPS[b[i]]
        i += 1
        if t == BYTE:
            v, i = b[i], i + 1
        elif t == U16:
            v, i = struct.unpack("!H", b[i:i + 2])[0], i + 2
        elif t == U32:
            v, i = struct.unpack("!I", b[i:i + 4])[0], i + 4
        elif t == VBI:
            v, i = read_vbi(b, i)
        elif t == PAIR:
            k, i = _str(b, i)
            v, i = _str(b, i)
            v = (k, v)
        else:
            v, i = _str(b, i)
        if t == PAIR:
            props.setdefault(pid, []).append(v)
        else:
            props[pid] = v
    return props, end


class Client:
    def __init__(self, port, v5=True, host="127.0.0.1", sock=None):
        self.sock = sock or socket.create_connection((host, port), timeout=10)
        self.v5 = v5
        self.buf = b""

    def send(self, ptype, flags, body):
        self.sock.sendall(bytes([(ptype << 4) | flags]) + vbi(len(body)) + body)

    def read(self, timeout=10.0):
        """The next packet as (type, flags, body), or None when the broker
        closed the connection. Raises Timeout if neither happens in time."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    n, i = read_vbi(self.buf, 1)
                except IndexError:
                    n, i = None, 0
                if n is not None and len(self.buf) >= i + n:
                    head, body, self.buf = self.buf[0], self.buf[i:i + n], self.buf[i + n:]
                    return head >> 4, head & 15, body
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no packet and no close within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def expect(self, ptype, timeout=10.0):
        p = self.read(timeout)
        assert p is not None, "closed while waiting for packet type %d" % ptype
        assert p[0] == ptype, "wanted packet type %d, got %r" % (ptype, p)
        return p

    def connect(self, cid="", keepalive=60, props=None, will=None, user=None, pw=None,
                clean=True):
        """Sends CONNECT; returns (reason code, CONNACK properties) or None if
        the broker closed instead of answering. will = (topic, payload, qos, retain)."""
        if will:
            topic, msg, qos, retain = will
            will = {"topic": topic, "payload": msg, "qos": qos, "retain": retain}
        self.sock.sendall(mqttwire.connect(cid, v5=self.v5, clean=clean, keepalive=keepalive,
                                           will=will, username=user, password=pw,
                                           props=list((props or {}).items())))
        p = self.read()
        if p is None:
            return None
        assert p[0] == CONNACK, p
        rc = p[2][1]
        cprops = dec_props(p[2], 2)[0] if self.v5 and len(p[2]) > 2 else {}
        return rc, cprops

    def subscribe(self, filt, qos=0, pid=1):
        """Returns the SUBACK's reason codes (bytes), or None on close."""
        body = struct.pack("!H", pid) + (enc_props({}) if self.v5 else b"") + s(filt)
        self.send(8, 2, body + bytes([qos]))
        p = self.read()
        if p is None:
            return None
        assert p[0] == SUBACK, p
        i = dec_props(p[2], 2)[1] if self.v5 else 2
        return p[2][i:]

    def publish(self, topic, payload=b"", qos=0, retain=False, pid=1, props=None):
        body = s(topic) + (struct.pack("!H", pid) if qos else b"")
        body += (enc_props(props) if self.v5 else b"") + payload
        self.send(PUBLISH, (qos << 1) | int(retain), body)

    def ack_code(self, ptype, timeout=10.0):
        """Reads a PUBACK/PUBREC; its reason code (0 when absent)."""
        p = self.expect(ptype, timeout)
        return p[2][2] if len(p[2]) > 2 else 0

    def next_publish(self, timeout=10.0, ack=True):
        """(topic, payload, qos, retain, packet id) of the next PUBLISH."""
        while True:
            p = self.read(timeout)
            assert p is not None, "closed while waiting for a PUBLISH"
            t, flags, body = p
            if t != PUBLISH:
                continue
            ln = struct.unpack("!H", body[:2])[0]
            topic, i = body[2:2 + ln].decode(), 2 + ln
            qos, pid = (flags >> 1) & 3, None
            if qos:
                pid = struct.unpack("!H", body[i:i + 2])[0]
                i += 2
                if ack:
                    self.send(PUBACK if qos == 1 else PUBREC, 0, body[i - 2:i])
            if self.v5:
                i = dec_props(body, i)[1]
            return topic, body[i:], qos, bool(flags & 1), pid

    def closed_with(self, timeout=10.0):
        """Waits for the broker to end the connection. Returns the v5
        DISCONNECT reason code if one came first, else None (a bare close).
        Any other packet fails; no close in time raises Timeout."""
        p = self.read(timeout)
        if p is None:
            return None
        assert p[0] == DISCONNECT, "wanted a close, got %r" % (p,)
        rc = p[2][0] if p[2] else 0
        assert self.read(timeout) is None, "DISCONNECT not followed by a close"
        return rc

    def ping(self, timeout=10.0):
        """Sends PINGREQ and waits for the PINGRESP: the connection is alive
        and the broker has handled everything sent before. Returns the
        packets that arrived ahead of the PINGRESP."""
        self.send(12, 0, b"")
        before = []
        while True:
            p = self.read(timeout)
            assert p is not None, "closed while waiting for PINGRESP"
            if p[0] == 13:
                return before
            before.append(p)

    def close(self):
        self.sock.close()
