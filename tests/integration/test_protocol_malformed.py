"""Malformed and hostile input, byte by byte: each case gets the specific
reason (v5) or a plain close (3.1.1), a log line on ward's side, and never
disturbs another client, which keeps publishing and receiving throughout."""
import socket
import struct

import pytest

import mqttwire as w

V5_CONNECT = w.s("MQTT") + bytes([5, 2]) + b"\x00\x3c\x00" + w.s("bad")
V3_CONNECT = w.s("MQTT") + bytes([4, 2]) + b"\x00\x3c" + w.s("bad")

# (name, bytes after a successful CONNECT, acceptable v5 DISCONNECT reasons)
CASES = [
    ("remaining length of five bytes", b"\x30\xff\xff\xff\xff\x01", (0x81,)),
    ("SUBSCRIBE with reserved flags 0", b"\x80\x08\x00\x01\x00\x00\x03a/b\x00", (0x81,)),
    ("PUBLISH with QoS 3", b"\x36\x06\x00\x01a\x00\x01\x00", (0x81,)),
    ("wildcard in a topic name", b"\x30\x05\x00\x03a/#", (0x81, 0x82, 0x90)),
    ("invalid UTF-8 in a topic", b"\x30\x05\x00\x02\xc3\x28\x00", (0x81,)),
    ("U+0000 in a topic", b"\x30\x05\x00\x02a\x00\x00", (0x81,)),
    ("packet type 0", b"\x00\x00", (0x81, 0x82)),
    ("PUBREL with flags 0", b"\x60\x02\x00\x01", (0x81,)),
    ("SUBSCRIBE without filters", b"\x82\x03\x00\x01\x00", (0x81, 0x82)),
    ("property repeated", b"\x30\x0a\x00\x01t\x06\x01\x01\x01\x01\x01\x01", (0x81, 0x82)),
    ("property unknown", b"\x30\x06\x00\x01t\x02\x7f\x00", (0x81,)),
    ("string length beyond the packet", b"\x30\x04\x00\x09ab", (0x81,)),
]


def watcher_pair(broker):
    sub = w.Client(broker.port)
    assert sub.connect("bystander-sub")[0] == 0
    sub.subscribe("alive")
    pub = w.Client(broker.port, v5=False)
    assert pub.connect("bystander-pub")[0] == 0
    return sub, pub


def still_alive(sub, pub, n):
    pub.publish_acked("alive", b"%d" % n)
    m = sub.message()
    assert m and m.payload == b"%d" % n


@pytest.mark.parametrize("name, data, reasons", CASES, ids=[c[0] for c in CASES])
def test_malformed_v5(broker, name, data, reasons):
    sub, pub = watcher_pair(broker)
    c = w.Client(broker.port)
    assert c.connect("bad-v5")[0] == 0
    c.raw(data)
    rc = c.disconnect_reason()
    # MQTT 5 4.13: DISCONNECT with the reason, then close. mosquitto closes
    # some cases without a DISCONNECT; ward always says why.
    if broker.name == "ward" or rc is not None:
        assert rc in reasons, "%s: reason %r" % (name, rc)
    assert c.closed()
    still_alive(sub, pub, 1)


@pytest.mark.parametrize("name, data, reasons",
                         [c for c in CASES if "property" not in c[0]],
                         ids=[c[0] for c in CASES if "property" not in c[0]])
def test_malformed_311_closes(broker, name, data, reasons):
    sub, pub = watcher_pair(broker)
    c = w.Client(broker.port, v5=False)
    assert c.connect("bad-311")[0] == 0
    c.raw(data)
    p = c.read()
    assert p is None, "%s: got %r" % (name, p)  # MQTT-4.8.0-1: closed
    assert c.closed()
    still_alive(sub, pub, 2)


def test_auth_in_311_closes(broker):
    c = w.Client(broker.port, v5=False)
    c.connect("auth311")
    c.raw(b"\xf0\x00")
    assert c.closed()


def test_malformed_logged_with_reason(ward):
    c = w.Client(ward.port)
    c.connect("logme")
    c.raw(b"\x36\x06\x00\x01a\x00\x01\x00")
    assert c.disconnect_reason() == 0x81
    log = ward.wait_log("logme")
    assert "malformed" in log.lower()


def test_garbage_before_connect(broker):
    sub, pub = watcher_pair(broker)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00",
                 b"\x10\xff\xff\xff\xff\x0f", b"\x10\x02\x00\x04"):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=3)
        s.sendall(junk)
        s.settimeout(3)
        try:
            data = s.recv(100)
        except (socket.timeout, ConnectionResetError):
            data = b""
        # Closed, possibly after a CONNACK refusing it; never anything else.
        assert data == b"" or data[0] == 0x20
        s.close()
    still_alive(sub, pub, 3)


def test_oversized_connect_refused_before_body(ward_factory):
    b = ward_factory(["--max-packet-size", "4096"]).start()
    s = socket.create_connection(("127.0.0.1", b.port), timeout=3)
    # A CONNECT announcing 200 MB: refused from the fixed header alone.
    s.sendall(b"\x10" + w.vbi(200 * 1024 * 1024))
    s.settimeout(3)
    data = s.recv(100)
    assert data == b"" or data[0] == 0x20
    ok = w.Client(b.port)
    assert ok.connect("fine")[0] == 0


def test_half_open_connect_timeout(ward):
    s = socket.create_connection(("127.0.0.1", ward.port), timeout=15)
    s.sendall(b"\x10")  # never finished
    s.settimeout(15)
    assert s.recv(10) == b""  # closed by the CONNECT timeout
