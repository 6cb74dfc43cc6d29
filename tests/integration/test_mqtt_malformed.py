"""Malformed packets and protocol errors (MQTT 3.1.1 sections 1.5, 2, 4.8;
MQTT 5.0 sections 1.5, 2, 4.13), raw bytes, against ward and mosquitto.

Each case: a well-behaved pair of clients is connected first; the bad client
connects, sends the bad bytes and must be closed. MQTT 5.0 4.13.1 says the
server SHOULD send DISCONNECT with the reason code first: whenever a
DISCONNECT arrives its code must be the right one, and on ward (whose design
says every refusal has a reason) the DISCONNECT is required. Afterwards the
pair still exchanges a message and the broker is alive.
"""
import time

import pytest

import mqttwire as m

MAX = 1024


def pub_raw(flags, body):
    return m.frame(m.PUBLISH, flags, body)


def topic_pub(topic, v5, qos=0):
    return m.publish(topic, b"x", qos=qos, pid=1 if qos else None, v5=v5)


# name -> (bytes for 3.1.1 or None, bytes for 5.0 or None, v5 reason codes)
CASES = {
    # 2.2.3 / 1.5.5: a Variable Byte Integer has at most 4 bytes.
    "remaining-length-5-bytes": (b"\x30\xff\xff\xff\xff\x01", b"\x30\xff\xff\xff\xff\x01", (0x81,)),
    # MQTT-3.8.1-1: SUBSCRIBE fixed header flags must be 0010.
    "subscribe-flags": (m.subscribe(1, [("a", 0)], flags=0),
                        m.subscribe(1, [("a", 0)], v5=True, flags=0), (0x81,)),
    # MQTT-3.6.1-1: PUBREL fixed header flags must be 0010.
    "pubrel-flags": (b"\x60\x02\x00\x01", b"\x60\x02\x00\x01", (0x81,)),
    # MQTT-3.3.1-4: QoS 3 is malformed.
    "publish-qos3": (m.publish("a", b"x", qos=3, pid=1), m.publish("a", b"x", qos=3, pid=1, v5=True),
                     (0x81,)),
    # MQTT-2.3.1-1 (3.1.1: MQTT-2.3.1-1): QoS > 0 needs a non-zero packet id.
    "publish-pid-0": (m.publish("a", b"x", qos=1, pid=0), m.publish("a", b"x", qos=1, pid=0, v5=True),
                      (0x81, 0x82)),
    # MQTT-3.3.2-2: no wildcards in a topic name (0x90 Topic Name invalid
    # is the natural answer; 0x81/0x82 say it too).
    "publish-wildcard-plus": (topic_pub("a/+", False), topic_pub("a/+", True), (0x81, 0x82, 0x90)),
    "publish-wildcard-hash": (topic_pub("a/#", False), topic_pub("a/#", True), (0x81, 0x82, 0x90)),
    # MQTT-1.5.3-1 (3.1.1) / MQTT-1.5.4-1 (5.0): ill-formed UTF-8.
    "topic-invalid-utf8": (topic_pub(b"a\xc3\x28", False), topic_pub(b"a\xc3\x28", True), (0x81,)),
    # MQTT-1.5.3-2 (3.1.1) / MQTT-1.5.4-2 (5.0): U+0000 is not allowed.
    "topic-nul": (topic_pub(b"a\x00b", False), topic_pub(b"a\x00b", True), (0x81,)),
    # A surrogate code point encoded in UTF-8 is ill-formed (1.5.4).
    "topic-surrogate": (topic_pub(b"a\xed\xa0\x80", False), topic_pub(b"a\xed\xa0\x80", True),
                        (0x81,)),
    # A string longer than the packet (2.2 / 1.5.4 framing).
    "string-overruns-packet": (pub_raw(0, b"\x00\x64ab"), pub_raw(0, b"\x00\x64ab"), (0x81,)),
    # 3.2.2.3.6: a packet above the server's Maximum Packet Size: 0x95.
    "packet-too-large": (m.publish("big", b"z" * (2 * MAX)),
                         m.publish("big", b"z" * (2 * MAX), v5=True), (0x95,)),
    # 2.1.2: packet type 0 is reserved / forbidden.
    "packet-type-0": (b"\x00\x00", b"\x00\x00", (0x81, 0x82)),
    # 2.1.2 (3.1.1): type 15 is reserved in 3.1.1.
    "auth-in-v311": (b"\xf0\x00", None, ()),
    # 4.12 (5.0): AUTH without an Authentication Method in CONNECT.
    "auth-without-method": (None, b"\xf0\x02\x18\x00", (0x81, 0x82)),
    # 2.2.2.2 (5.0): a property other than User Property twice: 0x82.
    "property-repeated": (None, m.publish("a", b"x", v5=True, props=[(m.PFI, 0), (m.PFI, 0)]),
                          (0x81, 0x82)),
    # 2.2.2.2 (5.0): a property that PUBLISH may not carry.
    "property-not-allowed": (None, m.publish("a", b"x", v5=True, props=[(m.SESSION_EXPIRY, 5)]),
                             (0x81, 0x82)),
    # 2.2.2.2 (5.0): an unknown property identifier.
    "property-unknown": (None, pub_raw(0, m.utf8("a") + b"\x02\x7f\x00x"), (0x81, 0x82)),
    # 2.2.2.1 (5.0): a property length overrunning the packet.
    "property-length-overrun": (None, pub_raw(0, m.utf8("a") + b"\x20\x01\x00"), (0x81,)),
    # 3.12 / 3.14.1: PINGREQ has no body; DISCONNECT flags are reserved 0.
    "pingreq-with-body": (b"\xc0\x01\x00", b"\xc0\x01\x00", (0x81,)),
    "disconnect-flags": (b"\xe2\x00", b"\xe2\x00", (0x81,)),
}

# Cases where mosquitto 2.0.11 itself deviates: they run on ward only.
MOSQ_DEVIATES = {
    # 3.12.1 / 2.1.4: PINGREQ's Remaining Length is 0; mosquitto ignores the
    # body byte and answers PINGRESP instead of treating it as malformed.
    "pingreq-with-body": "answers PINGRESP to a PINGREQ with a body (3.12.1)",
}


def make_broker(mk):
    return mk(ward=["--max-packet-size", str(MAX)], mosq="max_packet_size %d" % MAX)


def check_bystanders(bk, sub, pub, v5, tag):
    pub.pub("by/t", tag, qos=1, pid=9)
    p = sub.expect(m.PUBLISH, timeout=3.0)
    assert p.payload == tag
    sub.ack_msg(p)
    assert bk.alive()
    # A new connection is served too.
    assert m.connected(bk.port, "by-new", v5=v5).ping() == []


APPLICABLE = [(case, v5) for case in sorted(CASES) for v5 in (False, True)
              if CASES[case][1 if v5 else 0] is not None]


@pytest.mark.parametrize("case, v5", APPLICABLE,
                         ids=["%s-%s" % (c, "v5" if v else "v311") for c, v in APPLICABLE])
def test_malformed(mk, case, v5):
    raw311, raw5, codes = CASES[case]
    data = raw5 if v5 else raw311
    bk = make_broker(mk)
    if bk.name == "mosquitto" and case in MOSQ_DEVIATES:
        pytest.skip("mosquitto deviates: " + MOSQ_DEVIATES[case])
    sub = m.connected(bk.port, "by-sub", v5=v5)
    sub.sub([("by/t", 1)])
    pub = m.connected(bk.port, "by-pub", v5=v5)
    bad = m.connected(bk.port, "bad", v5=v5)
    bad.send(data)
    # 3.1.1 (MQTT-4.8.0-1): close, nothing else. 5.0 (4.13.1): DISCONNECT
    # with the reason first, a SHOULD that ward always keeps.
    bad.expect_refusal(m.DISCONNECT, codes if v5 else (), required=v5 and bk.name == "ward")
    check_bystanders(bk, sub, pub, v5, case.encode())


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_garbage_before_connect(mk, v5):
    # MQTT-3.1.0-1 / 4.8: bytes that are not a CONNECT close the connection;
    # other clients are unaffected.
    bk = make_broker(mk)
    sub = m.connected(bk.port, "by-sub", v5=v5)
    sub.sub([("by/t", 1)])
    pub = m.connected(bk.port, "by-pub", v5=v5)
    junks = (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00",
             b"\x10\xff\xff\xff\x7f", b"\x10\xff\xff\xff\xff\x0f", b"\x10\x00",
             b"\x10\x02\x00\x04", bytes(range(256)))
    for junk in junks:
        c = m.Client(bk.port, v5=v5)
        c.send(junk)
        # Closed, possibly after a CONNACK refusing it; never anything else.
        got = c.expect_close()
        assert all(p.type == m.CONNACK and p.rc >= 0x80 for p in got), (junk, got)
    check_bystanders(bk, sub, pub, v5, b"after-garbage")


def test_v5_server_maximum_packet_size_announced(mk):
    # 3.2.2.3.6: a server with a limit announces it in CONNACK.
    bk = make_broker(mk)
    c = m.Client(bk.port, v5=True)
    assert c.handshake("mps").prop(m.MAX_PACKET) == MAX


def test_malformed_logged_with_reason(ward):
    # ward-only (ARCHITECTURE.md: every rejected input has a log line with
    # its cause): the v5 client gets 0x81 and the log names it.
    c = m.connected(ward.port, "logme", v5=True)
    c.send(m.publish("a", b"x", qos=3, pid=1, v5=True))
    got = c.expect_close()
    assert [(p.type, p.rc) for p in got] == [(m.DISCONNECT, 0x81)], got
    deadline = time.monotonic() + 10  # the logger thread writes it a moment later
    while "malformed" not in ward.read_log().lower():
        assert time.monotonic() < deadline, ward.read_log()
        time.sleep(0.02)
    assert "logme" in ward.read_log()


def test_oversized_connect_refused_before_body(ward_factory):
    # ward-only: a CONNECT announcing 200 MB is refused from its fixed header
    # alone (DESIGN: every buffer bounded), without waiting for the body.
    w = ward_factory(["--max-packet-size", "4096"]).start()
    c = m.Client(w.port)
    c.send(b"\x10" + m.vbi(200 * 1024 * 1024))
    got = c.expect_close()
    assert all(p.type == m.CONNACK and p.rc >= 0x80 for p in got), got
    assert m.connected(w.port, "fine", v5=True).ping() == []
