"""PUBLISH and the QoS 0/1/2 flows in both directions (MQTT 3.1.1 sections
3.3-3.7 and 4.3-4.6, MQTT 5.0 the same), wire level plus paho for bulk
ordering, against ward and mosquitto (conftest `mk`)."""
import threading

import paho.mqtt.client as paho
import pytest

import mqttwire as m

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


def publishes(packets):
    return [p for p in packets if p.type == m.PUBLISH]


@V
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_sender_ack_sequence(broker, v5, qos):
    # MQTT-4.3.2-1/2 (PUBACK with the PUBLISH's id), MQTT-4.3.3-1/2 (PUBREC,
    # then PUBCOMP answering PUBREL, same id); QoS 0 gets no answer.
    c = m.connected(broker.port, "ack-%d" % qos, v5=v5)
    c.send(m.publish("acks/t", b"x", qos=qos, pid=0x1234, v5=v5))
    if qos == 0:
        assert c.ping() == []
    elif qos == 1:
        p = c.expect(m.PUBACK)
        assert p.pid == 0x1234 and p.rc in (0x00, 0x10), p
    else:
        p = c.expect(m.PUBREC)
        assert p.pid == 0x1234 and p.rc in (0x00, 0x10), p
        c.send(m.ack(m.PUBREL, 0x1234))
        p = c.expect(m.PUBCOMP)
        assert p.pid == 0x1234 and p.rc == 0, p
    assert c.ping() == []


@V
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_receiver_flow(broker, v5, qos):
    # MQTT-2.3.1-1: QoS > 0 PUBLISH carries a non-zero id; MQTT-4.3.3 (receiver
    # side): PUBREC is answered by PUBREL (flags 0010, same id), then PUBCOMP.
    sub = m.connected(broker.port, "rf-sub", v5=v5)
    sub.sub([("rf/t", 2)])
    pub = m.connected(broker.port, "rf-pub", v5=v5)
    pub.pub("rf/t", b"payload-%d" % qos, qos=qos, pid=9)
    p = sub.expect(m.PUBLISH)
    assert (p.topic, p.payload, p.qos, p.dup, p.retain) == ("rf/t", b"payload-%d" % qos, qos,
                                                            False, False), p
    if qos == 0:
        assert p.pid is None
    else:
        assert p.pid and p.pid > 0
    if qos == 1:
        sub.send(m.ack(m.PUBACK, p.pid))
    elif qos == 2:
        sub.send(m.ack(m.PUBREC, p.pid))
        rel = sub.expect(m.PUBREL)
        assert rel.pid == p.pid and rel.flags == 0x02, rel
        sub.send(m.ack(m.PUBCOMP, p.pid))
    assert sub.ping() == []


@V
def test_qos2_duplicate_before_pubrel_delivered_once(broker, v5):
    # MQTT-4.3.3 (receiver, method B): until PUBREL the receiver must not
    # deliver a PUBLISH with the same id again; it answers PUBREC each time.
    sub = m.connected(broker.port, "q2d-sub", v5=v5)
    sub.sub([("q2d/t", 2)])
    pub = m.connected(broker.port, "q2d-pub", v5=v5)
    pub.send(m.publish("q2d/t", b"once", qos=2, pid=7, v5=v5))
    assert pub.expect(m.PUBREC).pid == 7
    pub.send(m.publish("q2d/t", b"once", qos=2, pid=7, dup=True, v5=v5))
    assert pub.expect(m.PUBREC).pid == 7
    pub.send(m.ack(m.PUBREL, 7))
    assert pub.expect(m.PUBCOMP).pid == 7
    got = [p.payload for p in sub.collect(1)]
    assert got == [b"once"], got


@V
@pytest.mark.parametrize("sub_qos,pub_qos", [(0, 2), (1, 2), (0, 1), (2, 1)])
def test_downgrade_to_subscription_qos(broker, v5, sub_qos, pub_qos):
    # MQTT-3.8.4-6 (3.1.1) / 3.8.4 (5.0): delivery QoS is the minimum of the
    # published QoS and the granted QoS.
    sub = m.connected(broker.port, "dg-sub", v5=v5)
    assert sub.sub([("dg/t", sub_qos)]).codes == [sub_qos]
    pub = m.connected(broker.port, "dg-pub", v5=v5)
    pub.pub("dg/t", b"x", qos=pub_qos)
    p = sub.expect(m.PUBLISH)
    assert p.qos == min(sub_qos, pub_qos), p


@V
def test_inflight_ids_distinct(broker, v5):
    # MQTT-2.3.1-2: a new QoS > 0 PUBLISH uses an id not currently in use.
    sub = m.connected(broker.port, "ids-sub", v5=v5)
    sub.sub([("ids/t", 1)])
    pub = m.connected(broker.port, "ids-pub", v5=v5)
    for i in range(5):
        pub.pub("ids/t", b"%d" % i, qos=1, pid=i + 1)
    got = sub.collect(5, ack=False)
    assert [p.payload for p in got] == [b"%d" % i for i in range(5)]
    ids = [p.pid for p in got]
    assert len(set(ids)) == 5 and 0 not in ids, ids


@V
def test_dup_redelivery_on_reconnect(broker, v5):
    # MQTT-4.4.0-1: on reconnect with CleanSession 0 / Clean Start 0 the server
    # re-sends unacknowledged PUBLISHes with their original ids and (3.3.1-1)
    # DUP = 1, same payload.
    keep = [(m.SESSION_EXPIRY, 120)] if v5 else None
    sub = m.connected(broker.port, "dup-sub", v5=v5, clean=False, props=keep)
    sub.sub([("dup/t", 1)])
    pub = m.connected(broker.port, "dup-pub", v5=v5)
    pub.pub("dup/t", b"again", qos=1)
    first = sub.expect(m.PUBLISH)
    assert first.qos == 1 and not first.dup
    sub.close()  # never acknowledged; a reconnect that is a takeover is the same case
    sub = m.Client(broker.port, v5=v5)
    assert sub.handshake("dup-sub", clean=False, props=keep).session_present
    again = sub.expect(m.PUBLISH)
    assert (again.payload, again.dup, again.pid, again.qos) == (b"again", True, first.pid, 1), again
    sub.send(m.ack(m.PUBACK, again.pid))
    assert sub.ping() == []


@V
def test_pubrel_resent_on_reconnect(broker, v5):
    # MQTT-4.4.0-1: an unacknowledged PUBREL is re-sent with its original id.
    keep = [(m.SESSION_EXPIRY, 120)] if v5 else None
    sub = m.connected(broker.port, "rel-sub", v5=v5, clean=False, props=keep)
    sub.sub([("rel/t", 2)])
    pub = m.connected(broker.port, "rel-pub", v5=v5)
    pub.pub("rel/t", b"q2", qos=2)
    p = sub.expect(m.PUBLISH)
    sub.send(m.ack(m.PUBREC, p.pid))
    assert sub.expect(m.PUBREL).pid == p.pid
    sub.close()
    sub = m.Client(broker.port, v5=v5)
    assert sub.handshake("rel-sub", clean=False, props=keep).session_present
    rel = sub.expect(m.PUBREL)
    assert rel.pid == p.pid, rel
    sub.send(m.ack(m.PUBCOMP, rel.pid))
    # MQTT-4.3.3: the message itself is not delivered a second time.
    assert sub.ping() == []


@V
def test_offline_queue(broker, v5):
    # 3.1.2.4 (3.1.1) / 4.1 (5.0): a stored session keeps QoS 1 and 2
    # messages published while the client was away; QoS 0 ones are optional
    # and neither broker queues them by default.
    keep = [(m.SESSION_EXPIRY, 120)] if v5 else None
    sub = m.connected(broker.port, "off-sub", v5=v5, clean=False, props=keep)
    sub.sub([("off/t", 2)])
    sub.disconnect()
    pub = m.connected(broker.port, "off-pub", v5=v5)
    for q in (0, 1, 2):
        pub.pub("off/t", b"qos%d" % q, qos=q, pid=q + 1)
    sub = m.Client(broker.port, v5=v5)
    assert sub.handshake("off-sub", clean=False, props=keep).session_present
    # In publish order, so a queued QoS 0 message would be among the first two.
    got = [(p.payload, p.qos) for p in sub.collect(2)]
    assert got == [(b"qos1", 1), (b"qos2", 2)], got


@V
def test_no_subscribers_still_acked(broker, v5):
    # MQTT-4.3.2-2: PUBACK even when nobody is subscribed; v5 may say 0x10.
    c = m.connected(broker.port, "nosub", v5=v5)
    c.send(m.publish("nobody/here", b"x", qos=1, pid=5, v5=v5))
    p = c.expect(m.PUBACK)
    assert p.pid == 5 and p.rc in (0x00, 0x10)


@V
def test_order_1000_qos1(broker, v5):
    # MQTT-4.6.0-5/6: messages to one topic are delivered in the order sent.
    proto = paho.MQTTv5 if v5 else paho.MQTTv311
    got, done = [], threading.Event()

    def on_message(_c, _u, msg):
        got.append(int(msg.payload))
        if len(got) == 1000:
            done.set()

    subscribed = threading.Event()
    sub = paho.Client(client_id="ord-sub", protocol=proto)
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    pub = paho.Client(client_id="ord-pub", protocol=proto)
    try:
        sub.subscribe("ord/t", qos=1)
        assert subscribed.wait(5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for i in range(1000):
            pub.publish("ord/t", str(i), qos=1)
        assert done.wait(20), len(got)
        assert got == list(range(1000))
    finally:
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()


def rm_setup(port, cid):
    sub = m.Client(port, v5=True)
    sub.handshake(cid + "-sub", props=[(m.RECEIVE_MAX, 2)])
    sub.sub([("%s/t" % cid, 1)])
    pub = m.connected(port, cid + "-pub", v5=True)
    for i in range(6):
        pub.pub("%s/t" % cid, b"%d" % i, qos=1, pid=i + 1)
    first = sub.collect(2, ack=False)  # and nothing more before a PINGRESP
    assert [p.payload for p in first] == [b"0", b"1"], first
    return sub, first


def test_v5_receive_maximum(broker):
    # MQTT-3.3.4-9: the server never has more unacknowledged QoS 1 PUBLISHes
    # to a client than the client's Receive Maximum (2 here); the rest wait
    # and follow, in order, once acknowledged.
    sub, first = rm_setup(broker.port, "rm")
    for p in first:
        sub.send(m.ack(m.PUBACK, p.pid))
    got = [p.payload for p in sub.collect(4)]
    assert got == [b"2", b"3", b"4", b"5"], got


@pytest.mark.mosquitto_deviates("MQTT-3.3.4-9: after one PUBACK mosquitto 2.0.11 sends two "
                                "more (3 unacknowledged with Receive Maximum 2)")
def test_v5_receive_maximum_one_ack_releases_one(mk):
    # MQTT-3.3.4-9: with one of two acknowledged, exactly one more may come.
    sub, first = rm_setup(mk().port, "rm1")
    sub.send(m.ack(m.PUBACK, first[0].pid))
    more = sub.collect(1, ack=False)
    assert [p.payload for p in more] == [b"2"], more
    for p in [first[1]] + more:
        sub.send(m.ack(m.PUBACK, p.pid))
    rest = sub.collect(2, ack=False)
    assert [p.payload for p in rest] == [b"3", b"4"], rest


def test_v5_puback_reason_from_client_accepted(broker):
    # 3.4.2.1: a client may acknowledge with a reason code (here 0x80); the
    # server treats the message as acknowledged and stays connected.
    sub = m.connected(broker.port, "rc-sub", v5=True)
    sub.sub([("rc/t", 1)])
    pub = m.connected(broker.port, "rc-pub", v5=True)
    pub.pub("rc/t", b"x", qos=1)
    p = sub.expect(m.PUBLISH)
    sub.send(m.ack(m.PUBACK, p.pid, rc=0x80, v5=True))
    assert sub.ping() == []
    pub.pub("rc/t", b"y", qos=1)
    assert sub.expect(m.PUBLISH).payload == b"y"


def test_v5_receiver_pubrec_error_ends_flow(broker):
    # 4.3.3 (5.0): after a PUBREC with a reason code >= 0x80 the sender sends
    # no PUBREL; the message is finished and the connection carries on.
    sub = m.connected(broker.port, "pre-sub", v5=True)
    sub.sub([("pre/t", 2)])
    pub = m.connected(broker.port, "pre-pub", v5=True)
    pub.pub("pre/t", b"x", qos=2)
    p = sub.expect(m.PUBLISH)
    sub.send(m.ack(m.PUBREC, p.pid, rc=0x80, v5=True))
    assert sub.ping() == []
    pub.pub("pre/t", b"y", qos=2, pid=2)
    p2 = sub.expect(m.PUBLISH)
    assert p2.payload == b"y"
    sub.ack_msg(p2)


@V
def test_pubrel_unknown_id(broker, v5):
    # MQTT-4.3.3 / 3.7 (5.0 3.7.2.1 0x92 Packet Identifier not found): a
    # PUBREL for an id with no flow in progress still gets a PUBCOMP.
    c = m.connected(broker.port, "rel-unk", v5=v5)
    c.send(m.ack(m.PUBREL, 0x0777))
    p = c.expect(m.PUBCOMP)
    assert p.pid == 0x0777 and p.rc in (0x00, 0x92), p


@V
def test_own_messages_delivered_without_no_local(broker, v5):
    # 3.8.3.1: without No Local a client receives what it publishes itself.
    c = m.connected(broker.port, "own", v5=v5)
    c.sub([("own/t", 1)])
    c.send(m.publish("own/t", b"me", qos=1, pid=3, v5=v5))
    got = [c.expect_any(), c.expect_any()]
    got += c.ping()
    assert sorted(p.type for p in got) == [m.PUBLISH, m.PUBACK], got
    assert [p.payload for p in got if p.type == m.PUBLISH] == [b"me"]


@V
def test_empty_payload_and_long_topic(broker, v5):
    # 3.3.3: a zero-length payload is valid; 1.5.3/1.5.4: a topic may be up to
    # 65535 bytes (here 60000).
    topic = "lt/" + "x" * 60000
    c = m.connected(broker.port, "lt-sub", v5=v5)
    c.sub([("lt/+", 1), ("empty/t", 1)])
    pub = m.connected(broker.port, "lt-pub", v5=v5)
    pub.pub("empty/t", b"", qos=1)
    pub.pub(topic, b"long", qos=1, pid=2)
    p1 = c.expect(m.PUBLISH)
    c.ack_msg(p1)
    p2 = c.expect(m.PUBLISH)
    assert (p1.topic, p1.payload) == ("empty/t", b""), p1
    assert (p2.topic, p2.payload) == (topic, b"long")


@pytest.mark.mosquitto_deviates("MQTT-3.3.4-8: mosquitto 2.0.11 answers PUBREC 0x97 instead "
                                "of DISCONNECT 0x93")
def test_v5_client_exceeds_server_receive_maximum(mk):
    # MQTT-3.3.4-7/8: a client that sends more unacknowledged QoS 2 PUBLISHes
    # than the server's Receive Maximum gets DISCONNECT 0x93 (if the server
    # says why) and is closed.
    c = m.Client(mk().port, v5=True)
    limit = c.handshake("rmx").prop(m.RECEIVE_MAX, 65535)
    assert limit <= 4096, "ward announces its mqtt.receive_maximum (1024) as Receive Maximum"
    for i in range(limit):
        c.send(m.publish("rmx/t", b"x", qos=2, pid=i + 1, v5=True))
    recs = []
    while len(recs) < limit:
        p = c.recv(3.0)
        assert p is not None and p.type == m.PUBREC, p
        recs.append(p)
    c.send(m.publish("rmx/t", b"x", qos=2, pid=limit + 1, v5=True))
    c.expect_refusal(m.DISCONNECT, (0x93,), required=True)


@V
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_round_trip(broker, v5, qos):
    # An ordinary client library end to end (3.3, 4.3): a message published
    # at QoS q to a QoS 2 subscription arrives once, at QoS q, with its
    # payload (and, on 5.0, its user properties in order: MQTT-3.3.2-18).
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    proto = paho.MQTTv5 if v5 else paho.MQTTv311
    got, subscribed, published, ended = [], threading.Event(), threading.Event(), threading.Event()

    def on_message(_c, _u, msg):
        got.append(msg)
        if msg.payload == b"end":
            ended.set()

    sub = paho.Client(client_id="paho-sub-%d" % qos, protocol=proto)
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    pub = paho.Client(client_id="paho-pub-%d" % qos, protocol=proto)
    pub.on_publish = lambda *a: published.set()
    sub.connect("127.0.0.1", broker.port)
    pub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    pub.loop_start()
    try:
        sub.subscribe("paho/t", qos=2)
        assert subscribed.wait(5)
        props = None
        if v5:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("b", "1"), ("a", "2")]
        pub.publish("paho/t", b"hello paho", qos=qos, properties=props)
        assert published.wait(5)
        # A second message on the same (ordered, 4.6) topic: a duplicate of the
        # first would arrive before it.
        pub.publish("paho/t", b"end", qos=qos)
        assert ended.wait(10), got
        assert [(x.topic, x.payload, x.qos) for x in got] == [("paho/t", b"hello paho", qos),
                                                              ("paho/t", b"end", qos)]
        if v5:
            assert got[0].properties.UserProperty == [("b", "1"), ("a", "2")]
    finally:
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()
