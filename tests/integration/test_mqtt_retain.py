"""Retained messages (MQTT 3.1.1 section 3.3.1.3, MQTT 5.0 section 3.3.1.3),
wire level, against ward and mosquitto (conftest `mk`)."""
import pytest

import mqttwire as m

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


def fresh(port, v5, flt, qos=1, cid="ret-sub"):
    """A new subscriber; returns (client, PUBLISHes received on subscribe).
    The retained messages a SUBSCRIBE brings are queued before the PINGRESP
    that follows its SUBACK."""
    c = m.connected(port, cid, v5=v5)
    c.sub([(flt, qos)])
    return c, c.collect(0)


@V
def test_retained_delivered_on_subscribe(broker, v5):
    # MQTT-3.3.1-5 (store), MQTT-3.3.1-6 (3.1.1: sent to new subscribers),
    # MQTT-3.3.1-8 (3.1.1) / 3.3.1.3 (5.0): with RETAIN 1 when sent because
    # of a new subscription.
    pub = m.connected(broker.port, "ret-pub", v5=v5)
    pub.pub("ret/a", b"A", qos=1, retain=True)
    _c, got = fresh(broker.port, v5, "ret/a")
    assert [(p.topic, p.payload, p.retain, p.qos) for p in got] == [("ret/a", b"A", True, 1)], got


@V
def test_retained_replace(broker, v5):
    # MQTT-3.3.1-5: a new retained message replaces the previous one.
    pub = m.connected(broker.port, "ret-pub", v5=v5)
    pub.pub("ret/r", b"old", qos=1, retain=True)
    pub.pub("ret/r", b"new", qos=1, retain=True, pid=2)
    _c, got = fresh(broker.port, v5, "ret/r")
    assert [p.payload for p in got] == [b"new"], got


@V
def test_retained_clear_with_empty_payload(broker, v5):
    # MQTT-3.3.1-10/11 (3.1.1) / MQTT-3.3.1-6/7 (5.0): an empty retained
    # message removes the retained one and is not stored itself, while live
    # subscribers still receive it normally.
    pub = m.connected(broker.port, "ret-pub", v5=v5)
    pub.pub("ret/c", b"x", qos=1, retain=True)
    live, got = fresh(broker.port, v5, "ret/c", cid="ret-live")
    assert len(got) == 1
    pub.pub("ret/c", b"", qos=1, retain=True, pid=2)
    p = live.expect(m.PUBLISH)
    assert p.payload == b"" and p.topic == "ret/c", p
    _c, got = fresh(broker.port, v5, "ret/c")
    assert got == [], got


@V
def test_live_message_retain_flag_zero(broker, v5):
    # MQTT-3.3.1-9 (3.1.1) and MQTT-3.3.1-12 (5.0, RAP 0): a retained message
    # forwarded to an existing subscription carries RETAIN 0.
    c, _ = fresh(broker.port, v5, "ret/l")
    pub = m.connected(broker.port, "ret-pub", v5=v5)
    pub.pub("ret/l", b"live", qos=1, retain=True)
    p = c.expect(m.PUBLISH)
    assert (p.payload, p.retain) == (b"live", False), p
    # ... and the same message is retained for later subscribers.
    _c2, got = fresh(broker.port, v5, "ret/l", cid="ret-later")
    assert [(p.payload, p.retain) for p in got] == [(b"live", True)], got


@V
def test_retained_wildcard_and_qos(broker, v5):
    # MQTT-3.3.1-6: every retained message matching the filter is sent; its
    # QoS is the minimum of stored and granted (3.8.4).
    pub = m.connected(broker.port, "ret-pub", v5=v5)
    pub.pub("retw/a", b"q0", qos=0, retain=True)
    pub.pub("retw/b", b"q1", qos=1, retain=True, pid=2)
    pub.pub("retw/c/d", b"q2", qos=2, retain=True, pid=3)
    assert pub.ping() == []  # the QoS 0 one is stored too by now
    _c, got = fresh(broker.port, v5, "retw/#", qos=1)
    seen = sorted((p.topic, p.payload, p.qos, p.retain) for p in got)
    assert seen == [("retw/a", b"q0", 0, True), ("retw/b", b"q1", 1, True),
                    ("retw/c/d", b"q2", 1, True)], seen


@V
def test_retained_survives_publisher_disconnect(broker, v5):
    # 3.3.1.3: the retained message belongs to the topic, not to a session.
    pub = m.connected(broker.port, "ret-gone", v5=v5)
    pub.pub("ret/g", b"stays", qos=1, retain=True)
    pub.disconnect()
    _c, got = fresh(broker.port, v5, "ret/g")
    assert [p.payload for p in got] == [b"stays"], got
