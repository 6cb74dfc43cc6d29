"""Will messages (MQTT 3.1.1 section 3.1.2.5, MQTT 5.0 sections 3.1.2.5,
3.1.3.2 and 3.14.2.1), wire level, against ward and mosquitto."""
import time

import pytest

import mqttwire as m

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


def watch(port, v5, flt="will/#", cid="will-watch"):
    w = m.connected(port, cid, v5=v5)
    w.sub([(flt, 2)])
    return w


def will_client(port, v5, cid="will-c", props=None, **will):
    spec = {"topic": "will/t", "payload": b"bye"}
    spec.update(will)
    c = m.Client(port, v5=v5)
    c.handshake(cid, will=spec, props=props)
    return c


@V
def test_will_on_close_without_disconnect(broker, v5):
    # MQTT-3.1.2-8 (3.1.1) / 3.1.2.5 (5.0): a connection closed without
    # DISCONNECT publishes the will.
    w = watch(broker.port, v5)
    c = will_client(broker.port, v5)
    c.close()
    p = w.expect(m.PUBLISH, timeout=3.0)
    assert (p.topic, p.payload) == ("will/t", b"bye"), p


@V
def test_no_will_on_disconnect(broker, v5):
    # MQTT-3.1.2-10 (3.1.1) / MQTT-3.1.2-8 (5.0, reason 0x00): a normal
    # DISCONNECT discards the will.
    w = watch(broker.port, v5)
    c = will_client(broker.port, v5)
    c.disconnect(rc=0 if v5 else None)
    # The server closed, so it is done with the connection: a will it
    # published would be queued for the watcher before this PINGRESP.
    assert w.ping() == []


def test_v5_disconnect_with_will(broker):
    # 3.14.2.1: DISCONNECT 0x04 (Disconnect with Will Message) publishes it.
    w = watch(broker.port, True)
    c = will_client(broker.port, True)
    c.send(m.disconnect(rc=0x04, v5=True))
    c.close()
    p = w.expect(m.PUBLISH, timeout=3.0)
    assert p.payload == b"bye", p


@V
def test_will_on_protocol_error(broker, v5):
    # 3.1.2.5 (3.1.1) / 3.1.2.5 (5.0): a connection the server closes for a
    # protocol error publishes the will.
    w = watch(broker.port, v5)
    c = will_client(broker.port, v5)
    c.send(m.publish("will/t", b"x", qos=3, pid=1, v5=v5))
    c.expect_close()
    p = w.expect(m.PUBLISH, timeout=3.0)
    assert p.payload == b"bye", p


@V
@pytest.mark.parametrize("qos", [1, 2])
def test_will_qos_and_retain(broker, v5, qos):
    # MQTT-3.1.2-14..17 (3.1.1) / 3.1.2.6-3.1.2.7 (5.0): will QoS and RETAIN
    # are used when it is published.
    w = watch(broker.port, v5)
    c = will_client(broker.port, v5, qos=qos, retain=True, topic="will/r%d" % qos)
    c.close()
    p = w.expect(m.PUBLISH, timeout=3.0)
    assert (p.topic, p.qos, p.retain) == ("will/r%d" % qos, qos, False), p
    w.ack_msg(p)
    later = watch(broker.port, v5, flt="will/r%d" % qos, cid="will-later")
    p = later.expect(m.PUBLISH)
    assert (p.payload, p.retain, p.qos) == (b"bye", True, qos), p
    later.ack_msg(p)
    m.connected(broker.port, "will-clean", v5=v5).pub("will/r%d" % qos, b"", qos=1, retain=True)


def test_v5_will_delay(broker):
    # MQTT-3.1.3-9 and 3.1.3.2.2: the will waits for its Will Delay Interval.
    w = watch(broker.port, True)
    c = m.Client(broker.port, v5=True)
    c.handshake("wd", props=[(m.SESSION_EXPIRY, 30)],
                will={"topic": "will/d", "payload": b"late", "props": [(m.WILL_DELAY, 2)]})
    t0 = time.monotonic()
    c.close()
    p = w.expect(m.PUBLISH)
    elapsed = time.monotonic() - t0
    assert p.payload == b"late" and 1.8 <= elapsed <= 8.0, (p, elapsed)


def test_v5_will_delay_cancelled_by_reconnect(broker):
    # MQTT-3.1.3-9: a new connection to the session before the delay ends
    # means the will is not sent. (Reconnecting before the server saw the
    # close is a takeover of the same session: the same rule.) A control
    # client whose will is due a second later shows that the time passed.
    w = watch(broker.port, True)
    c = m.Client(broker.port, v5=True)
    c.handshake("wdc", props=[(m.SESSION_EXPIRY, 30)],
                will={"topic": "will/dc", "payload": b"never", "props": [(m.WILL_DELAY, 2)]})
    c.close()
    c2 = m.Client(broker.port, v5=True)
    assert c2.handshake("wdc", clean=False, props=[(m.SESSION_EXPIRY, 30)]).session_present
    ctl = m.Client(broker.port, v5=True)
    ctl.handshake("wdc-ctl", props=[(m.SESSION_EXPIRY, 30)],
                  will={"topic": "will/dc", "payload": b"control", "props": [(m.WILL_DELAY, 3)]})
    ctl.close()
    assert [p.payload for p in w.collect(1)] == [b"control"]


def test_v5_will_at_session_end(broker):
    # 3.1.3.2.2: the will is published when the session ends, even if the
    # will delay is longer (session expiry 1 s < will delay 30 s).
    w = watch(broker.port, True)
    c = m.Client(broker.port, v5=True)
    c.handshake("wse", props=[(m.SESSION_EXPIRY, 1)],
                will={"topic": "will/se", "payload": b"end", "props": [(m.WILL_DELAY, 30)]})
    c.close()
    p = w.expect(m.PUBLISH, timeout=4.0)
    assert p.payload == b"end", p


def test_v5_will_properties(broker):
    # MQTT-3.1.3-10 (user properties order), 3.1.3.2.3-3.1.3.2.8: will
    # properties travel with the will message.
    w = watch(broker.port, True)
    props = [(m.PFI, 1), (m.CONTENT_TYPE, "text/plain"), (m.RESPONSE_TOPIC, "will/reply"),
             (m.CORRELATION, b"\x00\x01corr"), (m.USER_PROP, ("k", "1")),
             (m.USER_PROP, ("a", "2")), (m.USER_PROP, ("k", "3"))]
    c = m.Client(broker.port, v5=True)
    c.handshake("wp", will={"topic": "will/p", "payload": "héllo".encode(), "props": props})
    c.close()
    p = w.expect(m.PUBLISH, timeout=3.0)
    assert p.prop(m.PFI) == 1 and p.prop(m.CONTENT_TYPE) == "text/plain", p
    assert p.prop(m.RESPONSE_TOPIC) == "will/reply" and p.prop(m.CORRELATION) == b"\x00\x01corr"
    assert p.all(m.USER_PROP) == [("k", "1"), ("a", "2"), ("k", "3")], p
