"""Malformed packets and protocol errors (MQTT 3.1.1 sections 1.5, 2, 4.8;
MQTT 5.0 sections 1.5, 2, 4.13), raw bytes, against ward and mosquitto.

Each case: a well-behaved pair of clients is connected first; the bad client
connects, sends the bad bytes and must be closed. MQTT 5.0 4.13.1 says the
server SHOULD send DISCONNECT with the reason code first: whenever a
DISCONNECT arrives its code must be the right one, and on ward (whose design
says every refusal has a reason) the DISCONNECT is required. Afterwards the
pair still exchanges a message and the broker is alive.
"""
import pytest

import mqtt_raw as m
from brokers import mk, ward_xfail  # noqa: F401 (fixtures)

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
    assert m.connected(bk.port, "by-new", v5=v5).ping_ok()


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed(mk, case, v5):
    raw311, raw5, codes = CASES[case]
    data = raw5 if v5 else raw311
    if data is None:
        pytest.skip("not applicable to this protocol version")
    bk = make_broker(mk)
    if bk.name == "mosquitto" and case in MOSQ_DEVIATES:
        pytest.skip("mosquitto deviates: " + MOSQ_DEVIATES[case])
    sub = m.connected(bk.port, "by-sub", v5=v5)
    sub.sub([("by/t", 1)])
    pub = m.connected(bk.port, "by-pub", v5=v5)
    bad = m.connected(bk.port, "bad", v5=v5)
    bad.send(data)
    got = bad.packets_until_close(timeout=4.0)
    if v5:
        assert all(p.type == m.DISCONNECT and p.rc in codes for p in got), got
        if bk.name == "ward":
            assert len(got) == 1, "ward sends a DISCONNECT with the reason: %r" % got
    else:
        assert got == [], got
    check_bystanders(bk, sub, pub, v5, case.encode())


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_garbage_before_connect(mk, v5):
    # MQTT-3.1.0-1 / 4.8: bytes that are not a CONNECT close the connection;
    # other clients are unaffected.
    bk = make_broker(mk)
    sub = m.connected(bk.port, "by-sub", v5=v5)
    sub.sub([("by/t", 1)])
    pub = m.connected(bk.port, "by-pub", v5=v5)
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\x10\xff\xff\xff\x7f", b"\x10\x00", bytes(range(256))):
        c = m.Client(bk.port, v5=v5)
        c.send(junk)
        got = c.packets_until_close(timeout=4.0)
        assert all(p.type in (m.CONNACK, m.DISCONNECT) and p.rc >= 0x80 for p in got), got
    check_bystanders(bk, sub, pub, v5, b"after-garbage")


def test_v5_server_maximum_packet_size_announced(mk):
    # 3.2.2.3.6: a server with a limit announces it in CONNACK.
    bk = make_broker(mk)
    c = m.Client(bk.port, v5=True)
    assert c.handshake("mps").prop(m.MAX_PACKET) == MAX
