"""MQTT 5.0 properties end to end (sections 3.1.2.11, 3.2.2.3, 3.3.2.3, 4.13
reason codes), wire level, against ward and mosquitto (see brokers.py)."""
import time

import pytest

import mqtt_raw as m
from brokers import b, mk, mosq_skip, ward_xfail  # noqa: F401 (fixtures)

KEEP = [(m.SESSION_EXPIRY, 120)]


def publishes(packets):
    return [p for p in packets if p.type == m.PUBLISH]


def collect(c, want, timeout=3.0):
    return c.collect(want, timeout)


def sub5(port, flt, cid="p-sub", props=None, qos=1):
    c = m.Client(port, v5=True)
    ack = c.handshake(cid, props=props)
    c.sub([(flt, qos)])
    c.connack = ack
    return c


def test_message_expiry_offline_queue(b):
    # MQTT-3.3.2-5: an expired message is not delivered; MQTT-3.3.2-6: the
    # forwarded interval is the received one minus the time spent waiting.
    c = m.connected(b.port, "exp-sub", v5=True, clean=False, props=KEEP)
    c.sub([("exp/t", 1)])
    c.send(m.disconnect(v5=True))
    c.close()
    time.sleep(0.15)
    pub = m.connected(b.port, "exp-pub", v5=True)
    pub.pub("exp/t", b"short", qos=1, props=[(m.EXPIRY, 1)])
    pub.pub("exp/t", b"long", qos=1, pid=2, props=[(m.EXPIRY, 30)])
    time.sleep(2.3)
    c = m.connected(b.port, "exp-sub", v5=True, clean=False, props=KEEP)
    got = collect(c, 1)
    assert [p.payload for p in got] == [b"long"], got
    assert 26 <= got[0].prop(m.EXPIRY) <= 28, got[0]


def test_message_expiry_live_and_absent(b):
    # 3.3.2.3.3: a live message keeps (at most) its interval; a message
    # without one is forwarded without one.
    c = sub5(b.port, "expl/t")
    pub = m.connected(b.port, "expl-pub", v5=True)
    pub.pub("expl/t", b"a", qos=1, props=[(m.EXPIRY, 100)])
    pub.pub("expl/t", b"b", qos=1, pid=2)
    got = collect(c, 2)
    assert [p.payload for p in got] == [b"a", b"b"]
    assert 99 <= got[0].prop(m.EXPIRY) <= 100 and got[1].prop(m.EXPIRY) is None, got


def test_retained_message_expiry(b):
    # MQTT-3.3.2-5: an expired retained message is no longer sent.
    pub = m.connected(b.port, "expr-pub", v5=True)
    pub.pub("expr/t", b"soon", qos=1, retain=True, props=[(m.EXPIRY, 1)])
    time.sleep(2.2)
    c = sub5(b.port, "expr/t")
    assert publishes(c.drain(0.5)) == []


def test_topic_alias_client_to_server(b):
    # 3.3.2.3.4: a Topic Alias is set by a PUBLISH with topic and alias, used
    # by a PUBLISH with an empty topic, and may be remapped.
    c = sub5(b.port, "ta/#")
    pub = m.Client(b.port, v5=True)
    ack = pub.handshake("ta-pub")
    assert (ack.prop(m.ALIAS_MAX) or 0) >= 1, "both brokers accept aliases: %r" % ack
    pub.pub("ta/a", b"1", qos=1, pid=1, props=[(m.ALIAS, 1)])
    pub.pub("", b"2", qos=1, pid=2, props=[(m.ALIAS, 1)])
    pub.pub("ta/b", b"3", qos=1, pid=3, props=[(m.ALIAS, 1)])
    pub.pub("", b"4", qos=1, pid=4, props=[(m.ALIAS, 1)])
    got = collect(c, 4)
    assert [(p.topic, p.payload) for p in got] == [("ta/a", b"1"), ("ta/a", b"2"),
                                                   ("ta/b", b"3"), ("ta/b", b"4")], got


def test_topic_alias_above_maximum(b):
    # MQTT-3.3.2-9 / 3.2.2.3.8: an alias above the server's Topic Alias
    # Maximum: DISCONNECT 0x94 (Topic Alias invalid, table 2-6), then close.
    c = m.Client(b.port, v5=True)
    ack = c.handshake("ta-bad")
    alias = (ack.prop(m.ALIAS_MAX) or 0) + 1
    c.send(m.publish("tab/t", b"x", qos=1, pid=1, v5=True, props=[(m.ALIAS, alias)]))
    got = c.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc == 0x94 for p in got), got


def test_topic_alias_zero(b):
    # MQTT-3.3.2-8: alias 0 is not permitted; 0x94 is defined only for
    # "greater than the maximum", so 0x81/0x82 are as right as 0x94.
    c = m.connected(b.port, "ta-zero", v5=True)
    c.send(m.publish("taz/t", b"x", qos=1, pid=1, v5=True, props=[(m.ALIAS, 0)]))
    got = c.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc in (0x81, 0x82, 0x94) for p in got), got


def test_topic_alias_unknown(b):
    # 3.3.4: an empty topic with an alias that has no mapping is a protocol
    # error (DISCONNECT 0x82 if the server says why).
    c = m.connected(b.port, "ta-unk", v5=True)
    c.send(m.publish("", b"x", qos=1, pid=1, v5=True, props=[(m.ALIAS, 1)]))
    got = c.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc in (0x82, 0x94) for p in got), got


def resolve(packets, limit):
    """Decodes server->client aliases like a client must; checks bounds."""
    table, out = {}, []
    for p in packets:
        alias = p.prop(m.ALIAS)
        if alias is not None:
            # MQTT-3.3.2-8 (5.0 3.2.2.3.8 / 3.3.2.3.4): 1..client's maximum.
            assert 1 <= alias <= limit, p
            if p.topic:
                table[alias] = p.topic
            else:
                assert alias in table, p
        out.append((table[alias] if alias is not None and not p.topic else p.topic, p.payload))
    return out


def test_topic_alias_server_to_client(b):
    # 3.3.2.3.4: the server may use aliases up to the client's Topic Alias
    # Maximum; whatever it does, every delivery decodes to the right topic.
    c = sub5(b.port, "sa/#", props=[(m.ALIAS_MAX, 2)])
    pub = m.connected(b.port, "sa-pub", v5=True)
    sent = [("sa/one", b"1"), ("sa/one", b"2"), ("sa/two", b"3"), ("sa/three", b"4"),
            ("sa/one", b"5"), ("sa/three", b"6")]
    for i, (t, pl) in enumerate(sent):
        pub.pub(t, pl, qos=1, pid=i + 1)
    assert resolve(collect(c, len(sent)), 2) == sent


def test_topic_alias_not_sent_without_client_maximum(b):
    # MQTT-3.1.2-26: without a Topic Alias Maximum from the client the
    # server sends no Topic Alias.
    c = sub5(b.port, "sn/#")
    pub = m.connected(b.port, "sn-pub", v5=True)
    for i in range(3):
        pub.pub("sn/t", b"%d" % i, qos=1, pid=i + 1)
    got = collect(c, 3)
    assert len(got) == 3 and all(p.prop(m.ALIAS) is None and p.topic == "sn/t" for p in got)


def test_topic_alias_server_uses_alias(ward_factory):
    # ward-only: 3.3.2.3.4 makes outgoing aliases optional (mosquitto 2.0
    # never sends them); ward does, and a repeated topic goes as an alias.
    w = ward_factory(workers=2).start()
    c = sub5(w.port, "su/#", props=[(m.ALIAS_MAX, 4)])
    pub = m.connected(w.port, "su-pub", v5=True)
    pub.pub("su/topic/long/name", b"1", qos=1)
    pub.pub("su/topic/long/name", b"2", qos=1, pid=2)
    got = collect(c, 2)
    assert got[0].topic == "su/topic/long/name" and got[0].prop(m.ALIAS), got
    assert got[1].topic == "" and got[1].prop(m.ALIAS) == got[0].prop(m.ALIAS), got
    assert resolve(got, 4) == [("su/topic/long/name", b"1"), ("su/topic/long/name", b"2")]


def test_properties_forwarded(b):
    # MQTT-3.3.2-4 (payload format), MQTT-3.3.2-20 (content type),
    # MQTT-3.3.2-15/16 (response topic, correlation data), MQTT-3.3.2-17/18
    # (user properties unaltered and in order).
    c = sub5(b.port, "pf/t")
    pub = m.connected(b.port, "pf-pub", v5=True)
    users = [("z", "1"), ("a", "2"), ("z", "3"), ("emoji", "ü€")]
    props = [(m.PFI, 1), (m.CONTENT_TYPE, "application/json"), (m.RESPONSE_TOPIC, "pf/reply"),
             (m.CORRELATION, b"\x00\xffid")] + [(m.USER_PROP, u) for u in users]
    pub.pub("pf/t", b'{"v":1}', qos=1, props=props)
    p = collect(c, 1)[0]
    assert p.prop(m.PFI) == 1 and p.prop(m.CONTENT_TYPE) == "application/json", p
    assert p.prop(m.RESPONSE_TOPIC) == "pf/reply" and p.prop(m.CORRELATION) == b"\x00\xffid", p
    assert p.all(m.USER_PROP) == users, p
    assert p.payload == b'{"v":1}'


def test_request_response_round_trip(b):
    # 4.10: a responder answers on the Response Topic with the Correlation Data.
    responder = sub5(b.port, "rr/req", cid="rr-resp")
    requester = sub5(b.port, "rr/reply/+", cid="rr-req")
    requester.pub("rr/req", b"ping", qos=1, props=[(m.RESPONSE_TOPIC, "rr/reply/1"),
                                                    (m.CORRELATION, b"c-42")])
    req = collect(responder, 1)[0]
    responder.pub(req.prop(m.RESPONSE_TOPIC), b"pong", qos=1, pid=7,
                  props=[(m.CORRELATION, req.prop(m.CORRELATION))])
    rep = collect(requester, 1)[0]
    assert (rep.topic, rep.payload, rep.prop(m.CORRELATION)) == ("rr/reply/1", b"pong", b"c-42")


def test_client_maximum_packet_size(b):
    # MQTT-3.1.2-24/25: the server never sends a packet larger than the
    # client's Maximum Packet Size; it drops that message for this client
    # and goes on with the others.
    c = sub5(b.port, "mps/t", props=[(m.MAX_PACKET, 256)])
    pub = m.connected(b.port, "mps-pub", v5=True)
    pub.pub("mps/t", b"a" * 100, qos=1)
    pub.pub("mps/t", b"b" * 1000, qos=1, pid=2)
    pub.pub("mps/t", b"c" * 100, qos=1, pid=3)
    got = collect(c, 2)
    assert [p.payload[:1] for p in got] == [b"a", b"c"], got
    assert c.ping_ok()


def test_connack_properties_sane(b):
    # 3.2.2.3: values the server announces are within their ranges.
    c = m.Client(b.port, v5=True)
    ack = c.handshake("cp", props=[(m.REQ_RESPONSE, 0)])
    assert ack.prop(m.RECEIVE_MAX, 65535) > 0  # MQTT-3.2.2-? 0 is a protocol error
    assert ack.prop(m.MAX_QOS, 2) in (0, 1, 2)
    assert ack.prop(m.RETAIN_AVAIL, 1) in (0, 1)
    assert ack.prop(m.MAX_PACKET, 1 << 28) > 0
    # MQTT-3.1.2-28: no Response Information when not requested.
    assert ack.prop(m.RESPONSE_INFO) is None, ack
    assert [k for k, _v in ack.props if k in (m.SUB_ID, m.ALIAS, m.CORRELATION)] == []


def test_request_response_information(b):
    # 3.1.2.11.6 / 3.2.2.3.15: Response Information is optional; if sent, it
    # is a UTF-8 string.
    c = m.Client(b.port, v5=True)
    ack = c.handshake("rri", props=[(m.REQ_RESPONSE, 1)])
    info = ack.prop(m.RESPONSE_INFO)
    assert info is None or isinstance(info, str)


def test_request_problem_information_zero(b):
    # MQTT-3.1.2-29: with Request Problem Information 0 no Reason String or
    # User Property goes in packets other than PUBLISH, CONNACK, DISCONNECT.
    c = m.Client(b.port, v5=True)
    c.handshake("rpi", props=[(m.REQ_PROBLEM, 0)])
    c.send(m.unsubscribe(2, ["rpi/never"], v5=True))
    p = c.expect(m.UNSUBACK)
    assert p.prop(m.REASON_STRING) is None and p.all(m.USER_PROP) == [], p


@mosq_skip("MQTT-3.3.4-6: mosquitto 2.0.11 accepts a Subscription Identifier in a client's "
           "PUBLISH (answers PUBACK 0x10)")
def test_subscription_identifier_from_client_publish(mk):
    # MQTT-3.3.4-6: a PUBLISH from a client must not carry a Subscription
    # Identifier: a protocol error (DISCONNECT 0x82 if the server says why).
    c = m.connected(mk().port, "sidp", v5=True)
    c.send(m.publish("sidp/t", b"x", qos=1, pid=1, v5=True, props=[(m.SUB_ID, 3)]))
    got = c.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc in (0x81, 0x82) for p in got), got
