"""CONNECT / CONNACK conformance (MQTT 3.1.1 section 3.1-3.2, MQTT 5.0 section
3.1-3.2), wire level, against ward and mosquitto (see brokers.py)."""
import time

import pytest

import mqtt_raw as m
from brokers import b, mk, mosq_skip, ward_xfail  # noqa: F401 (fixtures)

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


def refused_and_closed(c, ok_codes, timeout=3.0):
    """The server must close; it may first answer with a CONNACK (or, v5, a
    DISCONNECT) whose code is one of `ok_codes`. Returns the packets seen."""
    got = c.packets_until_close(timeout)
    for p in got:
        assert p.type in (m.CONNACK, m.DISCONNECT), got
        assert p.rc in ok_codes, got
    return got


@V
def test_unsupported_protocol_level(b, v5):
    # MQTT-3.1.2-2: an unsupported level gets CONNACK 0x01 (3.1.1) or 0x84
    # (5.0) and then the connection is closed.
    c = m.Client(b.port, v5=v5)
    c.send(m.connect("lvl", v5=v5, level=6))
    got = c.packets_until_close()
    assert len(got) == 1 and got[0].type == m.CONNACK, got
    assert got[0].rc in (0x01, 0x84), got


@V
def test_bad_protocol_name(b, v5):
    # MQTT-3.1.2-1: a wrong protocol name is not processed as MQTT; the
    # server closes (a refusal CONNACK before the close is tolerated).
    c = m.Client(b.port, v5=v5)
    c.send(m.connect("name", v5=v5, name="MQTX"))
    refused_and_closed(c, (0x01, 0x80, 0x81, 0x82, 0x84))


@V
def test_reserved_connect_flag(b, v5):
    # MQTT-3.1.2-3: the reserved flag must be 0, else the server closes.
    c = m.Client(b.port, v5=v5)
    c.send(m.connect("rsv", v5=v5, flags_extra=0x01))
    refused_and_closed(c, (0x81,))


@V
def test_first_packet_not_connect(b, v5):
    # MQTT-3.1.0-1: the first packet from the client must be CONNECT.
    c = m.Client(b.port, v5=v5)
    c.send(m.publish("t", b"x", v5=v5))
    refused_and_closed(c, (0x81, 0x82))
    c2 = m.Client(b.port, v5=v5)
    c2.send(m.pingreq())
    refused_and_closed(c2, (0x81, 0x82))


@V
def test_second_connect_closes(b, v5):
    # MQTT-3.1.0-2: a second CONNECT is a protocol violation; v5 may send
    # DISCONNECT 0x82 (Protocol Error) first.
    c = m.connected(b.port, "twice", v5=v5)
    c.send(m.connect("twice", v5=v5))
    got = c.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc == 0x82 for p in got), got


def test_v5_empty_client_id_assigned(b):
    # MQTT-3.1.3-7 / MQTT-3.2.2-16: an empty id is replaced by a unique one
    # that the CONNACK returns in Assigned Client Identifier.
    c = m.Client(b.port, v5=True)
    ack = c.handshake("", clean=True, props=[(m.SESSION_EXPIRY, 60)])
    cid = ack.prop(m.ASSIGNED_ID)
    assert cid, ack
    c2 = m.Client(b.port, v5=True)
    other = c2.handshake("", props=[(m.SESSION_EXPIRY, 60)]).prop(m.ASSIGNED_ID)
    assert other and other != cid
    c2.close()
    # The identifier is usable: it names the session it was given to.
    c.sub([("assigned/t", 1)])
    c.send(m.disconnect(v5=True))
    c.close()
    c3 = m.Client(b.port, v5=True)
    ack3 = c3.handshake(cid, clean=False, props=[(m.SESSION_EXPIRY, 60)])
    assert ack3.session_present and ack3.prop(m.ASSIGNED_ID) is None, ack3
    c3.send(m.publish("assigned/t", b"hello", qos=1, pid=3, v5=True))
    seen = c3.drain(1.0)
    assert any(p.type == m.PUBLISH and p.payload == b"hello" for p in seen), seen


def test_v311_empty_client_id_persistent_refused(b):
    # MQTT-3.1.3-8: an empty id with CleanSession 0 gets CONNACK 0x02
    # (identifier rejected) and the connection is closed.
    c = m.Client(b.port)
    c.send(m.connect("", clean=False))
    got = c.packets_until_close()
    assert len(got) == 1 and got[0].type == m.CONNACK and got[0].rc == 0x02, got


def test_v311_empty_client_id_clean_accepted(b):
    # MQTT-3.1.3-6: an empty id with CleanSession 1 is accepted.
    c = m.Client(b.port)
    ack = c.handshake("", clean=True)
    assert not ack.session_present
    assert c.ping_ok()


def test_client_id_allowed_characters(b):
    # MQTT-3.1.3-5: 1..23 characters of [0-9a-zA-Z] must be accepted.
    c = m.Client(b.port)
    c.handshake("0123456789abcdefABCDEFz")
    assert c.ping_ok()


@V
def test_session_present(b, v5):
    # MQTT-3.2.2-1 (clean: 0), MQTT-3.2.2-2 (resumed: 1), MQTT-3.2.2-3
    # (no stored session: 0); v5 keeps the session by Session Expiry.
    # In v5 a session outlives its connection only with Session Expiry > 0
    # (3.1.2.11.2): the clean steps ask for 0 so that nothing is kept.
    keep = [(m.SESSION_EXPIRY, 120)] if v5 else None
    cid = "sp-%s" % ("v5" if v5 else "v311")
    for clean, want in ((True, False), (False, False), (False, True), (True, False)):
        c = m.Client(b.port, v5=v5)
        ack = c.handshake(cid, clean=clean, props=None if clean else keep)
        assert ack.session_present is want, (clean, ack)
        if not clean:
            c.sub([("sp/t", 1)])
        c.send(m.disconnect(v5=v5))
        c.close()
        time.sleep(0.1)


@V
def test_takeover_closes_first(b, v5):
    # MQTT-3.1.4-2 (3.1.1) / MQTT-3.1.4-3 (5.0): a second connection with the
    # same id closes the first; the newcomer keeps working.
    first = m.connected(b.port, "dup-id", v5=v5)
    second = m.connected(b.port, "dup-id", v5=v5)
    got = first.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc == 0x8E for p in got), got
    assert second.ping_ok()


@mosq_skip("MQTT-3.1.4-3: mosquitto 2.0.11 closes a taken-over v5 client without DISCONNECT 0x8E")
def test_v5_takeover_disconnect_0x8e(mk):
    # MQTT-3.1.4-3: the existing client gets DISCONNECT 0x8E, then the close.
    bk = mk()
    first = m.connected(bk.port, "dup-v5", v5=True)
    m.connected(bk.port, "dup-v5", v5=True)
    got = first.packets_until_close()
    assert len(got) == 1 and got[0].type == m.DISCONNECT and got[0].rc == 0x8E, got


@V
@mosq_skip("MQTT-3.1.2-24: mosquitto 2.0.11 checks keep alive every ~5 s (closes a keep alive 1 client after ~5 s)")
def test_keepalive_timeout_publishes_will(mk, v5):
    # MQTT-3.1.2-24 (3.1.1) / MQTT-3.1.2-22 (5.0): no packet within 1.5 x
    # Keep Alive closes the connection, and the will is published (3.1.2.5).
    b = mk()
    watcher = m.connected(b.port, "ka-watch", v5=v5)
    watcher.sub([("ka/will", 0)])
    c = m.Client(b.port, v5=v5)
    c.handshake("ka-silent", keepalive=1, will={"topic": "ka/will", "payload": b"gone"})
    t0 = time.monotonic()
    got = c.packets_until_close(timeout=4.0)
    elapsed = time.monotonic() - t0
    assert 1.2 <= elapsed <= 2.6, elapsed
    # v5 4.13 / 3.14.2.1: a DISCONNECT before closing carries 0x8D.
    assert all(p.type == m.DISCONNECT and p.rc == 0x8D for p in got), got
    p = watcher.expect(m.PUBLISH, timeout=2.0)
    assert (p.topic, p.payload) == ("ka/will", b"gone")


@V
def test_keepalive_kept_by_pings(b, v5):
    # MQTT-3.1.2-23: any control packet within the period keeps the link.
    c = m.connected(b.port, "ka-ping", v5=v5, keepalive=1)
    for _ in range(4):
        time.sleep(0.5)
        assert c.ping_ok(timeout=2.0)


def test_v5_server_keep_alive(mk):
    # MQTT-3.2.2-21/22: a server that lowers keep alive says so in CONNACK.
    bk = mk(ward=["--max-keepalive", "10"], mosq="max_keepalive 10")
    c = m.Client(bk.port, v5=True)
    ack = c.handshake("ska", keepalive=60)
    assert ack.prop(m.KEEP_ALIVE) == 10, ack


def test_v311_password_without_username(b):
    # MQTT-3.1.2-22 (3.1.1): Password Flag 1 with User Name Flag 0 is a
    # protocol violation; the server closes.
    c = m.Client(b.port)
    body = m.utf8("MQTT") + bytes([4, 0x02 | 0x40]) + b"\x00\x3c" + m.utf8("pw") + m.binary(b"x")
    c.send(m.frame(m.CONNECT, 0, body))
    refused_and_closed(c, (0x04, 0x05))


@V
def test_will_qos_without_will_flag(b, v5):
    # MQTT-3.1.2-11 / MQTT-3.1.2-13: Will QoS must be 0 if the Will Flag is 0.
    c = m.Client(b.port, v5=v5)
    c.send(m.connect("wq", v5=v5, flags_extra=0x08))
    refused_and_closed(c, (0x81, 0x82))


@V
def test_will_qos_3(b, v5):
    # MQTT-3.1.2-14 (3.1.1) / MQTT-3.1.2-12 (5.0): Will QoS 3 is malformed.
    c = m.Client(b.port, v5=v5)
    c.send(m.connect("wq3", v5=v5, will={"topic": "w", "payload": b"x", "qos": 3}))
    refused_and_closed(c, (0x81, 0x82, 0x9B))


@V
def test_connack_then_normal_traffic(b, v5):
    # MQTT-3.2.0-1: the first packet from the server is CONNACK.
    c = m.Client(b.port, v5=v5)
    c.send(m.connect("first", v5=v5))
    p = c.recv(3.0)
    assert p is not None and p.type == m.CONNACK and p.rc == 0, p
    assert c.ping_ok()


@V
def test_keepalive_within_one_and_a_half(b, v5):
    # MQTT-3.1.2-24: the server may only disconnect after 1.5 x Keep Alive
    # without a packet: pings every 1.3 s with Keep Alive 1 keep the link.
    c = m.connected(b.port, "ka-edge", v5=v5, keepalive=1)
    for _ in range(2):
        time.sleep(1.3)
        assert c.ping_ok(timeout=2.0)
