"""MQTT 5 properties end to end: message expiry, topic aliases both ways,
maximum packet size, request/response fields, user properties, reason
strings and server-sent DISCONNECT reasons."""
import time

import pytest

import mqttwire as w


def client(broker, cid, **kw):
    c = w.Client(broker.port)
    rc, _, props = c.connect(cid, **kw)
    assert rc == 0
    c.connack_props = props
    return c


def test_properties_forwarded_in_order(broker):
    sub = client(broker, "propsub")
    sub.subscribe("props")
    pub = client(broker, "proppub")
    pprops = [(0x01, 1), (0x03, "application/json"), (0x08, "reply/here"),
              (0x09, b"\x00corr\xff"), (0x26, ("a", "1")), (0x26, ("b", "2")),
              (0x26, ("a", "3"))]
    pub.publish_acked("props", b'{"x": 1}', pprops=pprops)
    m = sub.message()
    assert m.props[0x01] == 1 and m.props[0x03] == "application/json"
    assert m.props[0x08] == "reply/here" and m.props[0x09] == b"\x00corr\xff"
    # MQTT-3.3.2-18: user properties unchanged and in order.
    assert m.props[0x26] == [("a", "1"), ("b", "2"), ("a", "3")]


def test_message_expiry(broker):
    kw = {"cprops": [(0x11, 300)]}
    sub = client(broker, "expsub", clean=False, **kw)
    sub.subscribe("exp/#")
    sub.disconnect()
    pub = client(broker, "exppub")
    pub.publish_acked("exp/short", b"gone", pprops=[(0x02, 1)])
    pub.publish_acked("exp/long", b"kept", pprops=[(0x02, 100)])
    time.sleep(2.2)
    sub = client(broker, "expsub", clean=False, **kw)
    got = sub.messages(2, timeout=1)
    # MQTT-3.3.2-5: an expired message is not delivered; the rest carry the
    # remaining lifetime (MQTT-3.3.2-6).
    assert [m.payload for m in got] == [b"kept"]
    assert 90 <= got[0].props[0x02] <= 98


def test_topic_alias_from_client(broker):
    sub = client(broker, "aliassub")
    sub.subscribe("alias/#")
    pub = client(broker, "aliaspub")
    maxa = pub.connack_props.get(0x22, 0)
    assert maxa >= 1
    pub.publish_acked("alias/one", b"1", pprops=[(0x23, 1)])
    pub.publish_acked("", b"2", pprops=[(0x23, 1)])  # MQTT-3.3.2-12
    assert [(m.topic, m.payload) for m in sub.messages(2)] == [("alias/one", b"1"),
                                                               ("alias/one", b"2")]


def test_topic_alias_out_of_range(broker):
    pub = client(broker, "aliasbad")
    maxa = pub.connack_props.get(0x22, 0)
    pub.publish("alias/x", b"", qos=0, pprops=[(0x23, maxa + 1)])
    assert pub.disconnect_reason() == 0x94  # MQTT-3.3.2-9
    assert pub.closed()


def test_unknown_alias_is_a_protocol_error(broker):
    pub = client(broker, "aliasunknown")
    pub.publish("", b"", qos=0, pprops=[(0x23, 1)])
    assert pub.disconnect_reason() in (0x82, 0x94)  # MQTT-3.3.4-? no mapping yet
    assert pub.closed()


def test_topic_alias_to_client(ward):
    sub = client(ward, "aliasrecv", cprops=[(0x22, 5)])
    sub.subscribe("down/#")
    pub = client(ward, "aliasdown")
    for i in range(3):
        pub.publish_acked("down/topic", b"%d" % i)
    got = sub.messages(3)
    # The first delivery sets the alias, later ones may use it alone.
    assert got[0].topic == "down/topic" and 0x23 in got[0].props
    alias = got[0].props[0x23]
    assert 1 <= alias <= 5  # MQTT-3.3.2-8: within the client's maximum
    for m in got[1:]:
        assert m.props.get(0x23) == alias and m.topic in ("", "down/topic")
    assert [m.payload for m in got] == [b"0", b"1", b"2"]


def test_maximum_packet_size_of_client(broker):
    sub = client(broker, "smallsub", cprops=[(0x27, 200)])
    sub.subscribe("size")
    pub = client(broker, "sizepub")
    pub.publish_acked("size", b"x" * 500)  # MQTT-3.1.2-25: not sent, dropped
    pub.publish_acked("size", b"small")
    assert [m.payload for m in sub.messages(2, timeout=1)] == [b"small"]


def test_packet_too_large_for_server(ward_factory):
    b = ward_factory(["--max-packet-size", "1024"]).start()
    c = w.Client(b.port)
    rc, _, props = c.connect("big")
    assert props.get(0x27) == 1024  # announced in CONNACK
    c.publish("big", b"x" * 2000)
    assert c.disconnect_reason() == 0x95  # MQTT 5 4.13: Packet too large
    assert c.closed()
    ok = w.Client(b.port)
    assert ok.connect("still")[0] == 0


def test_request_response_information(ward):
    c = w.Client(ward.port)
    rc, _, props = c.connect("rri", cprops=[(0x19, 1)])
    assert rc == 0
    # The server may answer with Response Information (0x1A); a string if so.
    if 0x1A in props:
        assert isinstance(props[0x1A], str)


def test_server_keep_alive_and_limits_announced(ward_factory):
    b = ward_factory(["--max-keepalive", "30"]).start()
    c = w.Client(b.port)
    rc, _, props = c.connect("ka", keepalive=600)
    assert rc == 0 and props.get(0x13) == 30  # MQTT-3.2.2-21
    assert props.get(0x21, 65535) >= 1


def test_session_expiry_zero_on_disconnect_rule(broker):
    c = w.Client(broker.port)
    c.connect("sezero")  # expiry 0 at CONNECT
    # MQTT-3.14.2-2: it may not be set non-zero at DISCONNECT; the server
    # answers with a protocol error (0x82) or just closes.
    c.send(w.DISCONNECT, 0, b"\x00" + w.props([(0x11, 60)]))
    rc = c.disconnect_reason()
    assert rc in (None, 0x82)
    if broker.name == "ward":
        assert rc == 0x82
    assert c.closed()
    time.sleep(0.2)  # the server finishes with the old connection
    c2 = w.Client(broker.port)
    assert c2.connect("sezero", clean=False, cprops=[(0x11, 60)])[1] is False


def test_shutdown_sends_server_shutting_down(ward_factory):
    b = ward_factory().start()
    c = w.Client(b.port)
    c.connect("bye")
    b.stop()
    assert c.disconnect_reason() == 0x8B
