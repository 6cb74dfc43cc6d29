"""PUBLISH at QoS 0, 1 and 2 in both directions: acknowledgement sequences,
duplicates, redelivery, offline queues, ordering and flow control."""
import struct
import time

import pytest

import mqttwire as w


def pair(broker, v5, tag):
    sub = w.Client(broker.port, v5=v5)
    assert sub.connect("sub-" + tag)[0] == 0
    pub = w.Client(broker.port, v5=v5)
    assert pub.connect("pub-" + tag)[0] == 0
    return sub, pub


@pytest.mark.parametrize("v5", [True, False])
def test_qos_sequences_and_downgrade(broker, v5):
    sub, pub = pair(broker, v5, "seq%d" % v5)
    assert sub.subscribe("q/2", qos=2) == [2]
    assert sub.subscribe("q/1", qos=1) == [1]
    # QoS 1: PUBACK with the same id (MQTT-4.3.2-2).
    assert pub.publish_acked("q/1", b"one", qos=1) == 0
    # QoS 2: PUBREC, PUBREL, PUBCOMP (MQTT-4.3.3).
    assert pub.publish_acked("q/2", b"two", qos=2) == 0
    m1 = sub.message()
    assert (m1.topic, m1.payload, m1.qos) == ("q/1", b"one", 1)
    # Delivered at QoS 2 to a QoS 2 subscriber: PUBREC from us, PUBREL from it.
    p = sub.read()
    assert p.type == w.PUBLISH
    m2 = w.Msg(p, v5)
    assert m2.qos == 2 and m2.payload == b"two"
    sub.send(w.PUBREC, 0, struct.pack("!H", m2.pid))
    rel = sub.expect(w.PUBREL)
    assert rel.flags == 2 and struct.unpack("!H", rel.body[:2])[0] == m2.pid
    sub.send(w.PUBCOMP, 0, struct.pack("!H", m2.pid))
    # A QoS 2 message to a QoS 1 subscription is downgraded (MQTT-3.8.4-8).
    pub.publish_acked("q/1", b"down", qos=2)
    m = sub.message()
    assert m.qos == 1 and m.payload == b"down"


@pytest.mark.parametrize("v5", [True, False])
def test_qos2_duplicate_before_pubrel_delivered_once(broker, v5):
    sub, pub = pair(broker, v5, "dup%d" % v5)
    sub.subscribe("d", qos=2)
    pub.publish("d", b"once", qos=2, pid=42)
    pub.expect(w.PUBREC)
    pub.publish("d", b"once", qos=2, pid=42, dup=True)  # MQTT-4.3.3-10
    pub.expect(w.PUBREC)
    pub.send(w.PUBREL, 2, struct.pack("!H", 42))
    pub.expect(w.PUBCOMP)
    assert len(sub.messages(3, timeout=1)) == 1


@pytest.mark.parametrize("v5", [True, False])
def test_redelivery_with_dup_after_reconnect(broker, v5):
    kw = {"cprops": [(0x11, 300)]} if v5 else {}
    sub = w.Client(broker.port, v5=v5)
    sub.connect("redeliver-%d" % v5, clean=False, **kw)
    sub.subscribe("r", qos=1)
    pub = w.Client(broker.port, v5=v5)
    pub.connect("rpub-%d" % v5)
    pub.publish_acked("r", b"again", qos=1)
    m = sub.message(ack=False)
    assert m and not m.dup
    sub.close()  # never acknowledged
    time.sleep(0.2)
    sub = w.Client(broker.port, v5=v5)
    assert sub.connect("redeliver-%d" % v5, clean=False, **kw)[:2] == (0, True)
    m2 = sub.message()
    # MQTT-4.4.0-1 and MQTT-3.3.1-1: resent with DUP=1, same id and payload.
    assert m2 and m2.dup and m2.pid == m.pid and m2.payload == b"again"
    sub.disconnect()


@pytest.mark.parametrize("v5", [True, False])
def test_offline_queue_keeps_qos1_and_2_not_0(broker, v5):
    kw = {"cprops": [(0x11, 300)]} if v5 else {}
    sub = w.Client(broker.port, v5=v5)
    sub.connect("offline-%d" % v5, clean=False, **kw)
    sub.subscribe("off/#", qos=2)
    sub.disconnect()
    pub = w.Client(broker.port, v5=v5)
    pub.connect("offpub-%d" % v5)
    pub.publish_acked("off/1", b"q1", qos=1)
    pub.publish("off/0", b"q0", qos=0)
    pub.publish_acked("off/2", b"q2", qos=2)
    time.sleep(0.2)
    sub = w.Client(broker.port, v5=v5)
    assert sub.connect("offline-%d" % v5, clean=False, **kw)[:2] == (0, True)
    got = [(m.topic, m.payload) for m in sub.messages(3, timeout=1)]
    # QoS 0 may be dropped for an offline session (mosquitto queues it too:
    # MQTT-3.1.2-5 allows either), QoS 1 and 2 must be there, in order.
    assert [g for g in got if g[0] != "off/0"] == [("off/1", b"q1"), ("off/2", b"q2")]
    if broker.name == "ward":
        assert ("off/0", b"q0") not in got
    sub.disconnect()


@pytest.mark.parametrize("v5", [True, False])
def test_order_preserved(broker, v5):
    sub, pub = pair(broker, v5, "order%d" % v5)
    sub.subscribe("order", qos=1)
    n = 500
    for i in range(n):
        pub.publish("order", b"%d" % i, qos=1)
    for i in range(n):
        pub.expect(w.PUBACK)
    got = [int(m.payload) for m in sub.messages(n, timeout=3)]
    assert got == list(range(n))  # MQTT-4.6.0-6


def test_receive_maximum_is_respected(ward):
    # MQTT-3.3.4-9. Run on ward only: mosquitto 2.0.11 sends one message more
    # than the window after the first PUBACK.
    broker = ward
    sub = w.Client(broker.port)
    sub.connect("slowpoke", cprops=[(0x21, 2)])  # Receive Maximum 2
    sub.subscribe("rm", qos=1)
    pub = w.Client(broker.port)
    pub.connect("rmpub")
    for i in range(5):
        pub.publish_acked("rm", b"%d" % i, qos=1)
    first = [sub.message(timeout=1, ack=False) for _ in range(3)]
    # MQTT-3.3.4-9: never more unacknowledged QoS 1 PUBLISHes than 2.
    assert first[0] and first[1] and first[2] is None
    sub.send(w.PUBACK, 0, struct.pack("!H", first[0].pid))
    nxt = sub.message(timeout=1, ack=False)
    assert nxt and nxt.payload == b"2"
    assert sub.message(timeout=0.5, ack=False) is None


def test_client_exceeding_our_receive_maximum(ward):
    c = w.Client(ward.port)
    rc, _, props = c.connect("greedy")
    rmax = props.get(0x21, 65535)
    assert rmax < 65535
    # QoS 2 publishes never released: one more than the maximum is 0x93.
    for i in range(rmax + 1):
        c.publish("x", b"", qos=2, pid=i + 1)
    assert c.disconnect_reason(5) == 0x93  # MQTT-3.3.4-8


def test_slow_subscriber_does_not_block_others(ward):
    # ward only: mosquitto's per-client queue limits drop part of this flood
    # for the fast subscriber too, so "everything arrives" is not its contract.
    broker = ward
    slow = w.Client(broker.port)
    slow.connect("never-reads")
    slow.subscribe("flood", qos=0)
    fast, pub = pair(broker, True, "flood")
    fast.subscribe("flood", qos=0)
    payload = b"x" * 4096
    for _ in range(3000):
        pub.publish("flood", payload)
    pub.publish_acked("flood", b"end", qos=1)
    got = 0
    while True:
        m = fast.message(timeout=3)
        assert m is not None, "the fast subscriber stalled after %d" % got
        got += 1
        if m.payload == b"end":
            break
    assert got >= 1
