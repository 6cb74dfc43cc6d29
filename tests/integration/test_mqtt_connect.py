"""CONNECT and CONNACK (MQTT 3.1.1 and 5.0 sections 3.1-3.2, 3.1.4 takeover,
3.1.2.10 keep alive), wire level, against ward and mosquitto (conftest `mk`).

Wherever MQTT 5 lets a server close with or without saying why (4.13.1),
ward is required to say why and mosquitto may stay silent."""
import time

import pytest

import mqttwire as m

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


def says_why(broker, v5):
    return broker.name == "ward" and v5


@V
def test_unsupported_protocol_level(broker, v5):
    # MQTT-3.1.2-2: an unsupported level gets CONNACK 0x01 (3.1.1) or 0x84
    # (5.0) and then the connection is closed.
    c = m.Client(broker.port, v5=v5)
    c.send(m.connect("lvl", v5=v5, level=6))
    got = c.expect_close()
    assert len(got) == 1 and got[0].type == m.CONNACK, got
    assert got[0].rc in (0x01, 0x84), got


@V
def test_bad_protocol_name(broker, v5):
    # MQTT-3.1.2-1: a wrong protocol name is not processed as MQTT; the
    # server closes (a refusal CONNACK before the close is tolerated).
    c = m.Client(broker.port, v5=v5)
    c.send(m.connect("name", v5=v5, name="MQTX"))
    c.expect_refusal(m.CONNACK, (0x01, 0x80, 0x81, 0x82, 0x84), required=False)


@V
def test_reserved_connect_flag(broker, v5):
    # MQTT-3.1.2-3: the reserved flag must be 0, else the server closes
    # (5.0: a malformed packet, CONNACK 0x81 if it says why).
    c = m.Client(broker.port, v5=v5)
    c.send(m.connect("rsv", v5=v5, flags_extra=0x01))
    c.expect_refusal(m.CONNACK, (0x81,) if v5 else (), required=says_why(broker, v5))


@V
@pytest.mark.parametrize("first", ["publish", "pingreq"])
def test_first_packet_not_connect(broker, v5, first):
    # MQTT-3.1.0-1: the first packet from the client must be CONNECT; the
    # server closes. Nothing may come first: no CONNACK for what was not a
    # CONNECT, and MQTT-3.14.0-1 forbids a DISCONNECT before a CONNACK.
    c = m.Client(broker.port, v5=v5)
    c.send(m.publish("t", b"x", v5=v5) if first == "publish" else m.pingreq())
    assert c.expect_close() == []


@V
def test_second_connect_closes(broker, v5):
    # MQTT-3.1.0-2: a second CONNECT is a protocol violation (5.0: DISCONNECT
    # 0x82 Protocol Error if the server says why; 3.1.1 has no DISCONNECT).
    c = m.connected(broker.port, "twice", v5=v5)
    c.send(m.connect("twice", v5=v5))
    c.expect_refusal(m.DISCONNECT, (0x82,) if v5 else (), required=says_why(broker, v5))


def test_v5_empty_client_id_assigned(broker):
    # MQTT-3.1.3-7 / MQTT-3.2.2-16: an empty id is replaced by a unique one
    # that the CONNACK returns in Assigned Client Identifier.
    c = m.Client(broker.port, v5=True)
    ack = c.handshake("", clean=True, props=[(m.SESSION_EXPIRY, 60)])
    cid = ack.prop(m.ASSIGNED_ID)
    assert cid, ack
    c2 = m.Client(broker.port, v5=True)
    other = c2.handshake("", props=[(m.SESSION_EXPIRY, 60)]).prop(m.ASSIGNED_ID)
    assert other and other != cid
    c2.close()
    # The identifier is usable: it names the session it was given to.
    c.sub([("assigned/t", 1)])
    c.disconnect()
    c3 = m.Client(broker.port, v5=True)
    ack3 = c3.handshake(cid, clean=False, props=[(m.SESSION_EXPIRY, 60)])
    assert ack3.session_present and ack3.prop(m.ASSIGNED_ID) is None, ack3
    c3.send(m.publish("assigned/t", b"hello", qos=1, pid=3, v5=True))
    got = [c3.expect_any(), c3.expect_any()]
    assert sorted(p.type for p in got) == [m.PUBLISH, m.PUBACK], got
    assert [p.payload for p in got if p.type == m.PUBLISH] == [b"hello"], got


def test_v311_empty_client_id_persistent_refused(broker):
    # MQTT-3.1.3-8: an empty id with CleanSession 0 gets CONNACK 0x02
    # (identifier rejected) and the connection is closed.
    c = m.Client(broker.port)
    c.send(m.connect("", clean=False))
    got = c.expect_close()
    assert len(got) == 1 and got[0].type == m.CONNACK and got[0].rc == 0x02, got


def test_v311_empty_client_id_clean_accepted(broker):
    # MQTT-3.1.3-6: an empty id with CleanSession 1 is accepted.
    c = m.Client(broker.port)
    ack = c.handshake("", clean=True)
    assert not ack.session_present
    assert c.ping() == []


def test_client_id_allowed_characters(broker):
    # MQTT-3.1.3-5: 1..23 characters of [0-9a-zA-Z] must be accepted.
    c = m.Client(broker.port)
    c.handshake("0123456789abcdefABCDEFz")
    assert c.ping() == []


@V
def test_session_present(broker, v5):
    # MQTT-3.2.2-1 (clean: 0), MQTT-3.2.2-2 (resumed: 1), MQTT-3.2.2-3
    # (no stored session: 0); v5 keeps the session by Session Expiry.
    # In v5 a session outlives its connection only with Session Expiry > 0
    # (3.1.2.11.2): the clean steps ask for 0 so that nothing is kept.
    keep = [(m.SESSION_EXPIRY, 120)] if v5 else None
    cid = "sp-%s" % ("v5" if v5 else "v311")
    for clean, want in ((True, False), (False, False), (False, True), (True, False)):
        c = m.Client(broker.port, v5=v5)
        ack = c.handshake(cid, clean=clean, props=None if clean else keep)
        assert ack.session_present is want, (clean, ack)
        if not clean:
            c.sub([("sp/t", 1)])
        c.disconnect()


@V
def test_takeover_closes_first(broker, v5):
    # MQTT-3.1.4-2 (3.1.1) / MQTT-3.1.4-3 (5.0): a second connection with the
    # same id closes the first; the newcomer keeps working. 5.0 3.14.2.1:
    # the reason, if given, is 0x8E Session taken over.
    first = m.connected(broker.port, "dup-id", v5=v5)
    second = m.connected(broker.port, "dup-id", v5=v5)
    first.expect_refusal(m.DISCONNECT, (0x8E,) if v5 else (), required=says_why(broker, v5))
    assert second.sub([("t", 1)]).codes == [1]
    assert second.ping() == []


@V
@pytest.mark.mosquitto_deviates("MQTT-3.1.2-24: mosquitto 2.0.11 checks keep alive every ~5 s "
                                "(closes a keep alive 1 client after ~5 s)")
def test_keepalive_timeout_publishes_will(mk, v5):
    # MQTT-3.1.2-24 (3.1.1) / MQTT-3.1.2-22 (5.0): no packet within 1.5 x
    # Keep Alive closes the connection, and the will is published (3.1.2.5).
    # 5.0 3.14.2.1: the DISCONNECT before the close carries 0x8D.
    b = mk()
    watcher = m.connected(b.port, "ka-watch", v5=v5)
    watcher.sub([("ka/will", 0)])
    c = m.Client(b.port, v5=v5)
    t0 = time.monotonic()
    c.handshake("ka-silent", keepalive=1, will={"topic": "ka/will", "payload": b"gone"})
    t1 = time.monotonic()
    c.expect_refusal(m.DISCONNECT, (0x8D,) if v5 else (), required=v5)
    # Not before 1.5 s of silence; ward's housekeeping runs several times a
    # second, so well before mosquitto's coarse timer (the bound allows load).
    elapsed = time.monotonic() - t0
    assert time.monotonic() - t1 >= 1.4 and elapsed <= 4.0, elapsed
    p = watcher.expect(m.PUBLISH)
    assert (p.topic, p.payload) == ("ka/will", b"gone")


@V
def test_keepalive_kept_by_pings(broker, v5):
    # MQTT-3.1.2-23/24: any control packet within 1.5 x Keep Alive keeps the
    # link: with Keep Alive 1, pings 1.2 s apart for 3.6 s.
    c = m.connected(broker.port, "ka-ping", v5=v5, keepalive=1)
    for _ in range(3):
        time.sleep(1.2)
        assert c.ping(timeout=2.0) == []


def test_v5_server_keep_alive(mk):
    # MQTT-3.2.2-21/22: a server that lowers keep alive says so in CONNACK.
    bk = mk(ward=["--max-keepalive", "10"], mosq="max_keepalive 10")
    c = m.Client(bk.port, v5=True)
    ack = c.handshake("ska", keepalive=60)
    assert ack.prop(m.KEEP_ALIVE) == 10, ack


def test_v311_password_without_username(broker):
    # MQTT-3.1.2-22 (3.1.1): Password Flag 1 with User Name Flag 0 is a
    # protocol violation; the server closes (a refusal CONNACK is tolerated).
    c = m.Client(broker.port)
    body = m.utf8("MQTT") + bytes([4, 0x02 | 0x40]) + b"\x00\x3c" + m.utf8("pw") + m.utf8(b"x")
    c.send(m.frame(m.CONNECT, 0, body))
    c.expect_refusal(m.CONNACK, (0x04, 0x05), required=False)


@V
def test_will_qos_without_will_flag(broker, v5):
    # MQTT-3.1.2-11 / MQTT-3.1.2-13: Will QoS must be 0 if the Will Flag is 0.
    c = m.Client(broker.port, v5=v5)
    c.send(m.connect("wq", v5=v5, flags_extra=0x08))
    c.expect_refusal(m.CONNACK, (0x81, 0x82) if v5 else (), required=says_why(broker, v5))


@V
def test_will_qos_3(broker, v5):
    # MQTT-3.1.2-14 (3.1.1) / MQTT-3.1.2-12 (5.0): Will QoS 3 is malformed.
    c = m.Client(broker.port, v5=v5)
    c.send(m.connect("wq3", v5=v5, will={"topic": "w", "payload": b"x", "qos": 3}))
    c.expect_refusal(m.CONNACK, (0x81, 0x82, 0x9B) if v5 else (),
                     required=says_why(broker, v5))


@V
def test_connack_then_normal_traffic(broker, v5):
    # MQTT-3.2.0-1: the first packet from the server is CONNACK.
    c = m.Client(broker.port, v5=v5)
    c.send(m.connect("first", v5=v5))
    p = c.expect_any()
    assert p.type == m.CONNACK and p.rc == 0, p
    assert c.ping() == []


def test_half_open_connect_timeout(ward):
    # ward-only (MQTT-3.1.4-1 leaves the delay open): a connection that never
    # completes its CONNECT is closed by ward's CONNECT timeout.
    c = m.Client(ward.port, timeout=30)
    c.send(b"\x10")
    assert c.expect_close(timeout=30) == []

