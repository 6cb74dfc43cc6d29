"""Bounded sessions and subscriptions (issue 11 items 7 and 9): filters per
SUBSCRIBE, subscriptions per session, the longest session lifetime, the
number of sessions, and the time a started packet may take. Each limit is
set small in a configuration file and hit with raw packets."""
import socket
import struct
import time

import pytest

from conftest import free_port
from test_auth import Raw
from test_identity import connack, wait_listening


def start(ward_factory, tmp_path, mqtt):
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nmqtt {\n%s\n  sys_interval = 1s\n}\n'
                    % (port, mqtt))
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    wait_listening(port)
    w.port = port
    return w


def subscribe_many(c, filters, pid=1):
    body = struct.pack("!H", pid) + (b"\x00" if c.v5 else b"")
    for f in filters:
        body += struct.pack("!H", len(f)) + f.encode() + b"\x01"
    c.send(8, 2, body)
    p = c.read(5)
    assert p and p[0] == 9, p
    return list(p[2][2 + (1 if c.v5 else 0):])


class SysReader:
    """A connection subscribed to one $SYS value."""

    def __init__(self, w, topic):
        self.c = Raw(w.port)
        assert connack(self.c, "sys-reader")[1] == 0
        self.topic = topic
        self.c.subscribe(topic, 0)

    def wait(self, want, timeout=15):
        """Waits until the value satisfies `want`; returns it."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            got = self.c.next_publish(max(0.1, deadline - time.monotonic()))
            if got is None:
                break
            last = int(got[1].split()[0])
            if want(last):
                return last
        raise AssertionError("%s stayed at %r" % (self.topic, last))

    def close(self):
        self.c.disconnect()


def sys_value(w, topic, want, timeout=15):
    r = SysReader(w, topic)
    try:
        return r.wait(want, timeout)
    finally:
        r.close()


@pytest.mark.parametrize("v5, over", [(True, 0x97), (False, 0x80)])
def test_filters_per_subscribe(ward_factory, tmp_path, v5, over):
    w = start(ward_factory, tmp_path, "  max_filters_per_subscribe = 3")
    c = Raw(w.port, v5)
    assert connack(c, "many")[1] == 0
    assert subscribe_many(c, ["a", "b", "c", "d", "e"]) == [1, 1, 1, over, over]
    # The refused filters were not subscribed; the accepted ones were.
    p = Raw(w.port, v5)
    assert connack(p, "p")[1] == 0
    p.publish("d", b"no", qos=1)
    p.publish("c", b"yes", qos=1)
    assert c.next_publish(5) == ("c", b"yes", False)
    w.wait_log("past mqtt.max_filters_per_subscribe (3)")
    sys_value(w, "$SYS/broker/limits/subscriptions_refused", lambda v: v == 2)
    c.disconnect()
    p.disconnect()


@pytest.mark.parametrize("v5, over", [(True, 0x97), (False, 0x80)])
def test_subscriptions_per_session(ward_factory, tmp_path, v5, over):
    w = start(ward_factory, tmp_path, "  max_subscriptions = 2")
    c = Raw(w.port, v5)
    assert connack(c, "subs")[1] == 0
    assert subscribe_many(c, ["a", "b"]) == [1, 1]
    assert subscribe_many(c, ["c"], pid=2) == [over]
    assert subscribe_many(c, ["a"], pid=3) == [1]  # replacing one is not a new one
    c.send(10, 2, struct.pack("!H", 4) + (b"\x00" if v5 else b"") + b"\x00\x01b")
    p = c.read(5)
    assert p and p[0] == 11, p
    assert subscribe_many(c, ["c"], pid=5) == [1]
    w.wait_log("mqtt.max_subscriptions (2) reached")
    c.disconnect()


def test_session_expiry_capped(ward_factory, tmp_path):
    w = start(ward_factory, tmp_path, "  max_session_expiry = 4s")
    c = Raw(w.port, True)
    c.send(1, 0, b"\x00\x04MQTT\x05\x00\x00\x3c\x05\x11\x00\x00\x0e\x10\x00\x04long")
    p = c.read(5)
    assert p and p[0] == 2 and p[2][1] == 0, p
    # MQTT 5 3.2.2.3.2: CONNACK says the lifetime the server uses (4 s).
    assert b"\x11\x00\x00\x00\x04" in p[2][3:], p
    c.disconnect()
    # A 3.1.1 persistent session is bounded too.
    c = Raw(w.port, False)
    assert connack(c, "old", clean=False) == (0, 0)
    c.disconnect()
    total = SysReader(w, "$SYS/broker/clients/total")
    total.wait(lambda v: v == 3)  # both sessions kept beside the reader's...
    total.wait(lambda v: v == 1)  # ...then gone
    total.close()
    for v5, cid in ((True, "long"), (False, "old")):
        c = Raw(w.port, v5)
        assert connack(c, cid, clean=False, expiry=60)[0] == 0  # no session present
        c.disconnect()


@pytest.mark.parametrize("v5, full", [(True, 0x97), (False, 3)])
def test_max_sessions(ward_factory, tmp_path, v5, full):
    w = start(ward_factory, tmp_path, "  max_sessions = 2")
    for cid in ("s1", "s2"):
        c = Raw(w.port, v5)
        assert connack(c, cid, clean=False, expiry=600)[1] == 0
        c.disconnect()
    c = Raw(w.port, v5)
    assert connack(c, "s3")[1] == full
    c.drop()
    w.wait_log("mqtt.max_sessions reached")
    c = Raw(w.port, v5)  # an existing session is still welcome
    assert connack(c, "s1", clean=False, expiry=600) == (1, 0)
    c.disconnect()


def test_trickled_packet_is_cut_off(ward_factory, tmp_path):
    w = start(ward_factory, tmp_path, "  packet_timeout = 1s")
    c = Raw(w.port, True)
    c.send(1, 0, b"\x00\x04MQTT\x05\x02\x00\x00\x00\x00\x02tr")  # keep alive 0: no timeout
    p = c.read(5)
    assert p and p[0] == 2 and p[2][1] == 0, p
    # A PUBLISH announcing 200 bytes, sent a byte at a time, slower than the limit allows.
    c.sock.sendall(b"\x30\xc8\x01")
    deadline = time.monotonic() + 15
    closed = None
    c.sock.settimeout(0.3)
    while time.monotonic() < deadline:
        try:
            c.sock.sendall(b"x")
            data = c.sock.recv(100)
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = b""
            break
        closed = data
        break
    assert closed is not None, "still open after 15 s of trickling"
    if closed:
        assert closed[0] == 0xE0 and closed[2] == 0x8D, closed  # DISCONNECT 0x8D
    w.wait_log("packet not completed within packet_timeout")


def test_memory_limit_refuses_new_publishes(ward_factory, tmp_path):
    """system.memory_limit below what ward already holds: every new PUBLISH
    is refused (v5: 0x97; 3.1.1 QoS 1: disconnected; QoS 0: dropped), and
    counted, while the broker keeps serving pings and subscriptions."""
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nsystem.memory_limit = 1MB\n'
                    'mqtt.sys_interval = 1s\n' % port)
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    wait_listening(port)
    w.port = port
    w.wait_log("new publishes are refused")
    sub = Raw(port, True)
    assert connack(sub, "sub")[1] == 0
    assert sub.subscribe("m/#", 1)[0] == 1
    v5 = Raw(port, True)
    assert connack(v5, "v5")[1] == 0
    assert v5.publish("m/1", b"x", qos=1) == 0x97
    v5.publish("m/0", b"x", qos=0)
    old = Raw(port, False)
    assert connack(old, "old")[1] == 0
    old.send(3, 2, b"\x00\x03m/2\x00\x01x")  # QoS 1
    assert old.read(10) is None  # closed: 3.1.1 has no other refusal
    sub.nothing_more()  # nothing was delivered
    assert SysReader(w, "$SYS/broker/limits/memory_refused").wait(lambda v: v == 3) == 3
