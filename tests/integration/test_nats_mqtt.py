"""One message space for MQTT and NATS (issue 13), ward only (nats-server
2.9 has no MQTT 5, and these are ward's promises): ward serves NATS and MQTT
side by side and a message published on one reaches subscribers on the
other, by nats-server's mapping (docs/nats.md: `/` <-> `.`, `+` <-> `*`,
`#` <-> `>`, a `.` inside an MQTT level is `//`, an empty level is `/`).
The MQTT side is paho (a library client) for the plain crossing and
mqttwire (raw bytes, every v5 property visible) for the rest; the NATS side
is natswire. Absence is shown by PING/PONG (NATS) and PINGREQ/PINGRESP
(MQTT) after the publisher's own round trip, never by waiting."""
import threading

import paho.mqtt.client as paho
import pytest

import mqttwire as mw
import natswire as nw

WAIT = 5.0


@pytest.fixture
def w(nats_ward):
    return nats_ward()


def nats(w, **opts):
    return nw.connect(w.nats_port, **opts)


def mqtt(w, cid, v5=True):
    return mw.connected(w.port, cid, v5=v5)


def pairs(headers):
    return nw.parse_headers(headers)[1]


class Paho:
    """A paho MQTT 5 client with a message queue and waits that have
    deadlines."""

    def __init__(self, port, cid):
        self.got, self.cond = [], threading.Condition()
        self.subacks = 0
        self.c = paho.Client(cid, protocol=paho.MQTTv5)
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_message(self, c, userdata, msg):
        with self.cond:
            self.got.append(msg)
            self.cond.notify_all()

    def _on_subscribe(self, *args):
        with self.cond:
            self.subacks += 1
            self.cond.notify_all()

    def subscribe(self, topic, qos=1):
        n = self.subacks
        self.c.subscribe(topic, qos)
        with self.cond:
            assert self.cond.wait_for(lambda: self.subacks > n, WAIT), "no SUBACK"

    def wait(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, WAIT), self.got
            return list(self.got)

    def publish(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_paho_and_nats_both_ways(w):
    """paho publishing `a/b` (QoS 0 and 1) reaches a NATS subscriber on
    `a.b`; NATS publishing `a.b` reaches paho subscribed to `a/b` at QoS 1
    as a QoS 0 message without RETAIN."""
    n = nats(w)
    n.sub("a.b", 1)
    n.flush()
    p = Paho(w.port, "paho-1")
    try:
        p.publish("a/b", b"q0", qos=0)
        p.publish("a/b", b"q1", qos=1)
        p.publish("a/b", b"sync", qos=1)  # QoS 1 acknowledged: q0 was routed before
        ops = []
        for _ in range(3):
            ops.append(n.expect("MSG", WAIT))
        assert [(op.subject, op.payload) for op in ops] == [
            ("a.b", b"q0"), ("a.b", b"q1"), ("a.b", b"sync")]
        p.subscribe("a/b", qos=1)
        n.pub("a.b", b"from-nats")
        n.flush()
        [m] = p.wait(1)
        assert (m.topic, m.payload, m.qos, m.retain) == ("a/b", b"from-nats", 0, False)
    finally:
        p.close()


def test_wildcards_across(w):
    """`+`/`#` against NATS subjects and `*`/`>` against MQTT topics. MQTT's
    `s/#` also matches `s` itself; NATS's `s.>` does not."""
    plus, hash_ = mqtt(w, "plus"), mqtt(w, "hash")
    plus.sub([("s/+/x", 0)])
    hash_.sub([("s/#", 0)])
    n = nats(w)
    n.sub("s.*.x", "star")
    n.sub("s.>", "gt")
    n.flush()
    n.pub("s.1.x", b"1")
    n.pub("s.2.y", b"2")
    n.pub("s", b"3")
    ops = n.msgs(n.flush())
    assert [(p.topic, p.payload) for p in plus.collect(1)] == [("s/1/x", b"1")]
    assert [(p.topic, p.payload) for p in hash_.collect(3)] == [
        ("s/1/x", b"1"), ("s/2/y", b"2"), ("s", b"3")]
    assert sorted((op.sid, op.subject) for op in ops) == [
        ("gt", "s.1.x"), ("gt", "s.2.y"), ("star", "s.1.x")]
    m = mqtt(w, "wild-pub")
    m.pub("s/1/x", b"4", qos=1)
    m.pub("s/2/y", b"5", qos=1)
    m.pub("s", b"6", qos=1)
    ops = n.msgs(n.flush())
    assert sorted((op.sid, op.subject, op.payload) for op in ops) == [
        ("gt", "s.1.x", b"4"), ("gt", "s.2.y", b"5"), ("star", "s.1.x", b"4")]


MAPPED = [("foo.bar/baz", "foo//bar.baz"), ("/foo", "/.foo"), ("foo/", "foo./"),
          ("foo//bar", "foo./.bar"), ("./foo/.", "//.foo.//")]


@pytest.mark.parametrize("topic,subject", MAPPED)
def test_escapes_both_ways(w, topic, subject):
    """The mapping of docs/nats.md for dots and empty levels, both ways."""
    m = mqtt(w, "esc")
    m.sub([(topic, 0)])
    n = nats(w)
    n.sub(subject, 1)
    n.flush()
    # From another client: m's own message could come before its PUBACK
    mqtt(w, "esc-pub").pub(topic, b"from-mqtt", qos=1)
    assert [(op.subject, op.payload) for op in n.msgs(n.flush())] == [(subject, b"from-mqtt")]
    n.pub(subject, b"from-nats")
    n.flush()
    assert [(p.topic, p.payload) for p in m.collect(2)] == [
        (topic, b"from-mqtt"), (topic, b"from-nats")]


def test_unmappable_nats_subject_is_refused(w):
    """A NATS subject with a lone `/` in a token has no MQTT topic. ward keeps
    one name per message, so it refuses the subject (docs/nats.md: where
    nats-server would map it lossily) with the -ERR nats-server uses for an
    invalid one; the connection stays open and no MQTT subscriber hears a
    thing."""
    m = mqtt(w, "all")
    m.sub([("#", 0)])
    n = nats(w)
    n.send(b"SUB foo/bar 1\r\n")
    n.send(b"PUB foo/bar 1\r\nx\r\n")
    ops = n.flush()
    assert [op.raw for op in ops] == [b"-ERR 'Invalid Subject'",
                                      b"-ERR 'Invalid Publish Subject'"], ops
    assert n.flush() == []  # still open
    assert m.ping() == []


def test_nats_messages_to_mqtt_are_qos0_not_retained(w):
    """A NATS message reaches an MQTT QoS 2 subscriber as QoS 0 without
    RETAIN, and is not kept: a later subscriber gets nothing."""
    m = mqtt(w, "q2")
    m.sub([("r/#", 2)])
    n = nats(w)
    n.pub("r.x", b"hello")
    n.flush()
    [p] = m.collect(1)
    assert (p.topic, p.payload, p.qos, p.retain) == ("r/x", b"hello", 0, False)
    late = mqtt(w, "late")
    late.sub([("r/#", 2)])
    assert late.ping() == []


def test_retained_mqtt_messages_not_replayed_to_nats(w):
    m = mqtt(w, "retainer")
    m.pub("ret/a", b"kept", qos=1, retain=True)
    n = nats(w)
    n.sub("ret.a", 1)
    n.sub("ret.>", 2)
    assert n.flush() == []
    m.pub("ret/a", b"live", qos=1, retain=True)
    assert sorted((op.sid, op.payload) for op in n.msgs(n.flush())) == [
        ("1", b"live"), ("2", b"live")]
    m.pub("ret/a", b"", qos=1, retain=True)  # clear it again


def test_user_properties_and_headers(w):
    """MQTT 5 user properties become NATS headers (in order, repeats kept)
    and NATS headers become user properties; a NATS subscriber without
    headers gets the payload alone; an MQTT 3.1.1 subscriber gets the
    payload."""
    m5 = mqtt(w, "v5")
    m5.sub([("h/#", 0)])
    m3 = mqtt(w, "v3", v5=False)
    m3.sub([("h/#", 0)])
    n = nats(w)
    n.sub("h.>", 1)
    plain = nats(w, headers=False, no_responders=False)
    plain.sub("h.>", 1)
    n.flush()
    plain.flush()
    props = [(mw.USER_PROP, ("k1", "v1")), (mw.USER_PROP, ("k1", "v2")),
             (mw.USER_PROP, ("Mir-Proto-Type", "mir.v1.T"))]
    mqtt(w, "v5-pub").pub("h/m", b"pay", qos=1, props=props)
    [op] = n.msgs(n.flush())
    assert op.name == "HMSG" and op.payload == b"pay", op
    hs = [(k, v) for k, v in pairs(op.headers) if k in ("k1", "Mir-Proto-Type")]
    assert hs == [("k1", b"v1"), ("k1", b"v2"), ("Mir-Proto-Type", b"mir.v1.T")], op.headers
    assert [(op.name, op.payload) for op in plain.msgs(plain.flush())] == [("MSG", b"pay")]
    m5.collect(1)
    m3.collect(1)
    n.hpub("h.n", nw.header_block([("A", "1"), ("B", "two words"), ("A", "3")]), b"body")
    n.flush()
    [p] = m5.collect(1)
    assert p.payload == b"body"
    ups = [kv for kv in p.all(mw.USER_PROP) if kv[0] in ("A", "B")]
    assert ups == [("A", "1"), ("B", "two words"), ("A", "3")], p.props
    [p3] = m3.collect(1)
    assert (p3.topic, p3.payload) == ("h/n", b"body")


def test_mqtt5_request_nats_reply(w):
    """An MQTT 5 request (response topic, correlation data) to a NATS
    responder: the NATS message's reply subject is the mapped response
    topic; the responder answers there with the request's headers (where
    ward carries the correlation data) and the MQTT requester gets the
    answer on its response topic with its correlation data."""
    n = nats(w)
    n.sub("svc.echo", 1)
    n.flush()
    req = mqtt(w, "requester")
    req.sub([("resp/requester", 0)])
    req.pub("svc/echo", b"ping", qos=1,
            props=[(mw.RESPONSE_TOPIC, "resp/requester"), (mw.CORRELATION, b"\x00corr\xff")])
    [op] = n.msgs(n.flush())
    assert op.reply == "resp.requester" and op.payload == b"ping", op
    assert op.name == "HMSG", "the correlation data must travel in a header: %r" % op
    n.hpub(op.reply, op.headers, b"pong")
    n.flush()
    [p] = req.collect(1)
    assert (p.topic, p.payload) == ("resp/requester", b"pong")
    assert p.prop(mw.CORRELATION) == b"\x00corr\xff", p.props


def test_nats_request_mqtt5_reply(w):
    """A NATS request (reply subject, headers) to an MQTT 5 responder: the
    MQTT message carries the reply subject as its response topic; the
    responder publishes there with the correlation data it got (if any) and
    the NATS requester gets the answer on its inbox."""
    resp = mqtt(w, "responder")
    resp.sub([("svc/mq", 0)])
    n = nats(w)
    n.sub("_INBOX.q.*", 9)
    n.flush()
    n.hpub("svc.mq", nw.header_block([("Req-Id", "7")]), b"question", reply="_INBOX.q.1")
    n.flush()
    [p] = resp.collect(1)
    assert p.payload == b"question" and p.prop(mw.RESPONSE_TOPIC) == "_INBOX/q/1", p
    props = []
    if p.prop(mw.CORRELATION) is not None:
        props.append((mw.CORRELATION, p.prop(mw.CORRELATION)))
    resp.pub(p.prop(mw.RESPONSE_TOPIC), b"answer", qos=1, props=props)
    [op] = n.msgs(n.flush())
    assert (op.subject, op.sid, op.payload) == ("_INBOX.q.1", "9", b"answer"), op


def test_nats_queue_group_and_mqtt_shared_subscription(w):
    """A NATS queue group `g` and an MQTT shared subscription `$share/g/q/x`
    on the same topic, two members each, plus a plain subscriber on each
    side, messages published from both sides. Each group delivers each
    message to exactly one of its members; the plain subscribers get every
    message. ward treats the two groups named g as one (docs/nats.md: NATS
    `SUB q.x g` is `$share/g/q/x`): every message reaches exactly one member
    of the union, whichever protocol it speaks."""
    count = 40
    nq = [nats(w) for _ in range(2)]
    for c in nq:
        c.sub("q.x", 1, queue="g")
        c.flush()
    mq = [mqtt(w, "share-%d" % i) for i in range(2)]
    for c in mq:
        c.sub([("$share/g/q/x", 0)])
    nplain = nats(w)
    nplain.sub("q.x", 1)
    nplain.flush()
    mplain = mqtt(w, "plain")
    mplain.sub([("q/x", 0)])
    pub_n, pub_m = nats(w), mqtt(w, "pub")
    for i in range(count // 2):
        pub_n.pub("q.x", b"n%d" % i)
        pub_m.pub("q/x", b"m%d" % i, qos=1)
    pub_n.flush()
    want = sorted([b"n%d" % i for i in range(count // 2)] + [b"m%d" % i for i in range(count // 2)])
    assert sorted(op.payload for op in nplain.msgs(nplain.flush())) == want
    assert sorted(p.payload for p in mplain.collect(count)) == want
    nats_got = [[op.payload for op in c.msgs(c.flush())] for c in nq]
    mqtt_got = [[p.payload for p in c.collect(0)] for c in mq]
    per_msg = {}
    for got in nats_got + mqtt_got:
        for payload in got:
            per_msg[payload] = per_msg.get(payload, 0) + 1
    assert sorted(per_msg) == want, (nats_got, mqtt_got)
    n_side = sorted(sum(nats_got, []))
    m_side = sorted(sum(mqtt_got, []))
    assert sorted(n_side + m_side) == want, (nats_got, mqtt_got)
    assert n_side and m_side, (nats_got, mqtt_got)  # both protocols took part
