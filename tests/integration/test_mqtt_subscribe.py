"""SUBSCRIBE / UNSUBSCRIBE, topic matching and subscription options (MQTT 3.1.1
sections 3.8-3.11 and 4.7, MQTT 5.0 the same plus 3.8.3.1 options, 4.8.2
shared subscriptions), wire level, against ward and mosquitto."""
import time

import pytest

import mqtt_raw as m
from brokers import b, mk, mosq_skip, ward_xfail  # noqa: F401 (fixtures)

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


def publishes(packets):
    return [p for p in packets if p.type == m.PUBLISH]


def collect(c, want, timeout=3.0):
    return c.collect(want, timeout)


# (filter, topic, matches) per 4.7.1-4.7.2 and their examples.
MATCHES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),  # MQTT-4.7.1-2: parent level
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "any/thing/at/all", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+/tennis/#", "sport/tennis/x/y", True),
    ("a/b", "a/b/c", False),
    ("a/b", "A/b", False),  # 4.7.3: case sensitive
    ("#", "$SYS/x", False),  # MQTT-4.7.2-1
    ("+/x", "$SYS/x", False),  # MQTT-4.7.2-1
    ("$SYS/#", "$SYS/x", True),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
]


@V
def test_topic_matching(mk, v5):
    # 4.7.1-4.7.3 on the spec's own examples. Brokers may refuse client
    # publishes to $SYS, so the $ rows travel as "$TST": MQTT-4.7.2-1 is about
    # every topic that starts with $, not only $SYS.
    bk = mk()
    subs = []
    for i, (flt, _topic, _want) in enumerate(MATCHES):
        c = m.connected(bk.port, "match-%d" % i, v5=v5)
        c.sub([(flt.replace("$SYS", "$TST"), 0)])
        subs.append(c)
    pub = m.connected(bk.port, "match-pub", v5=v5)
    for i, (_flt, topic, _want) in enumerate(MATCHES):
        pub.pub(topic.replace("$SYS", "$TST"), b"%d" % i, qos=1, pid=i + 1)
    time.sleep(0.3)
    for i, (flt, topic, want) in enumerate(MATCHES):
        got = [p.payload for p in publishes(subs[i].drain(0.05))]
        assert (b"%d" % i in got) is want, (flt, topic, got)


@V
@pytest.mark.parametrize("flt", ["a/#/b", "a+/b", "a/b#", "#/", ""],
                         ids=["hash-mid", "plus-partial", "hash-partial", "hash-slash", "empty"])
def test_invalid_filter(b, v5, flt):
    # MQTT-4.7.1-1/2/3 wildcard rules and MQTT-4.7.3-1 (at least one
    # character). 3.1.1 has no failure code for a malformed filter: the
    # server closes (4.8). 5.0 lets the server either answer with a SUBACK
    # failure code for that filter (0x8F; MQTT-3.9.3-1 one code per filter,
    # in order) or treat it as a malformed packet / protocol error and close
    # (DISCONNECT 0x81/0x82/0x8F optional first, 4.13).
    c = m.connected(b.port, "badflt", v5=v5)
    c.send(m.subscribe(3, [("ok/t", 1), (flt, 1)], v5=v5))
    p = None
    try:
        p = c.recv(2.0)
    except m.Closed:
        pass
    if p is not None and p.type == m.SUBACK:
        assert v5, "3.1.1 must close on a malformed filter: %r" % p
        assert p.pid == 3 and len(p.codes) == 2 and p.codes[0] == 1 and p.codes[1] >= 0x80, p
        assert c.ping_ok()
        return
    rest = [p] if p is not None else []
    rest += c.packets_until_close(2.0)
    assert all(v5 and x.type == m.DISCONNECT and x.rc in (0x81, 0x82, 0x8F) for x in rest), rest


@V
def test_suback_codes_and_id(b, v5):
    # MQTT-3.8.4-2 (same id), MQTT-3.8.4-5 / MQTT-3.9.3-1 (one code per filter,
    # in order), MQTT-3.9.3-2 granted QoS not above requested.
    c = m.connected(b.port, "sack", v5=v5)
    p = c.sub([("s/0", 0), ("s/1", 1), ("s/2", 2)], pid=0xBEEF)
    assert p.pid == 0xBEEF and p.codes == [0, 1, 2], p


@V
def test_subscribe_replaces(b, v5):
    # MQTT-3.8.4-3: a SUBSCRIBE with an existing filter replaces it (new QoS),
    # and the message is delivered once.
    c = m.connected(b.port, "repl", v5=v5)
    c.sub([("repl/t", 0)])
    c.sub([("repl/t", 1)], pid=2)
    pub = m.connected(b.port, "repl-pub", v5=v5)
    pub.pub("repl/t", b"x", qos=1)
    got = collect(c, 1)
    assert [(p.payload, p.qos) for p in got] == [(b"x", 1)], got


@V
def test_subscribe_no_filters(b, v5):
    # MQTT-3.8.3-3: a SUBSCRIBE with no filter is a protocol violation.
    c = m.connected(b.port, "nofl", v5=v5)
    c.send(m.subscribe(1, [], v5=v5))
    got = c.packets_until_close()
    assert all(x.type == m.DISCONNECT and x.rc in (0x81, 0x82) for x in got), got


@V
def test_subscribe_qos3(b, v5):
    # MQTT-3.8.3-4 (3.1.1) / MQTT-3-8.3-4 (5.0): requested QoS 3 is malformed.
    c = m.connected(b.port, "q3", v5=v5)
    c.send(m.subscribe(1, [("q3/t", 3)], v5=v5))
    got = c.packets_until_close()
    assert all(x.type == m.DISCONNECT and x.rc in (0x81, 0x82) for x in got), got


@V
def test_overlapping_subscriptions(b, v5):
    # MQTT-3.3.5-1 (3.1.1) / MQTT-3.3.4-2 (5.0): with overlapping
    # subscriptions the message is delivered respecting the maximum QoS of
    # the matches; further copies (one per subscription) are allowed.
    # 5.0 MQTT-3.3.4-4/5: one copy carries all subscription identifiers,
    # several copies each carry their own.
    c = m.connected(b.port, "ovl", v5=v5)
    if v5:
        c.sub([("ovl/#", 0)], pid=1, props=[(m.SUB_ID, 1)])
        c.sub([("ovl/t", 2)], pid=2, props=[(m.SUB_ID, 2)])
    else:
        c.sub([("ovl/#", 0), ("ovl/t", 2)])
    pub = m.connected(b.port, "ovl-pub", v5=v5)
    pub.pub("ovl/t", b"x", qos=2)
    got = collect(c, 2, timeout=1.0)
    assert 1 <= len(got) <= 2 and all(p.payload == b"x" for p in got), got
    assert max(p.qos for p in got) == 2, got
    if v5:
        ids = [sorted(p.all(m.SUB_ID)) for p in got]
        if len(got) == 1:
            assert ids == [[1, 2]], got
        else:
            assert sorted(ids) == [[1], [2]], got


def test_v5_no_local(b):
    # MQTT-3.8.3-3: with No Local the server does not forward a client's own
    # publications to it; other subscribers still get them.
    c = m.connected(b.port, "nl", v5=True)
    c.sub([("nl/t", 0x04 | 1)])
    other = m.connected(b.port, "nl-other", v5=True)
    other.sub([("nl/t", 1)])
    c.pub("nl/t", b"mine", qos=1)
    assert [p.payload for p in collect(other, 1)] == [b"mine"]
    assert publishes(c.drain(0.4)) == []
    third = m.connected(b.port, "nl-third", v5=True)
    third.pub("nl/t", b"theirs", qos=1, pid=2)
    assert [p.payload for p in collect(c, 1)] == [b"theirs"]


@pytest.mark.parametrize("rap", [False, True], ids=["rap0", "rap1"])
def test_v5_retain_as_published(b, rap):
    # MQTT-3.3.1-12: RAP 0 -> live messages arrive with RETAIN 0;
    # MQTT-3.3.1-13: RAP 1 -> RETAIN as published.
    c = m.connected(b.port, "rap", v5=True)
    c.sub([("rap/t", 1 | (0x08 if rap else 0))])
    pub = m.connected(b.port, "rap-pub", v5=True)
    pub.pub("rap/t", b"r", qos=1, retain=True)
    pub.pub("rap/t", b"n", qos=1, retain=False, pid=2)
    got = collect(c, 2)
    assert [(p.payload, p.retain) for p in got] == [(b"r", rap), (b"n", False)], got
    pub.pub("rap/t", b"", qos=1, retain=True, pid=3)


@pytest.mark.parametrize("rh", [0, 1, 2])
def test_v5_retain_handling(b, rh):
    # MQTT-3.3.1-9 (0: retained sent at every subscribe), MQTT-3.3.1-10 (1:
    # only if the subscription did not exist), MQTT-3.3.1-11 (2: never).
    pub = m.connected(b.port, "rh-pub", v5=True)
    pub.pub("rh%d/t" % rh, b"kept", qos=1, retain=True)
    c = m.connected(b.port, "rh-sub", v5=True)
    counts = []
    for pid in (1, 2):
        c.sub([("rh%d/t" % rh, 1 | (rh << 4))], pid=pid)
        counts.append(len(collect(c, 1, timeout=0.7)))
    assert counts == {0: [1, 1], 1: [1, 0], 2: [0, 0]}[rh], counts
    pub.pub("rh%d/t" % rh, b"", qos=1, retain=True, pid=2)


def test_v5_subscription_identifier(b):
    # MQTT-3.3.4-3: the identifier of the matching subscription is carried
    # in the PUBLISH; a subscription without one gives none.
    c = m.connected(b.port, "sid", v5=True)
    c.sub([("sid/a", 1)], pid=1, props=[(m.SUB_ID, 268435455)])
    c.sub([("sid/b", 1)], pid=2)
    pub = m.connected(b.port, "sid-pub", v5=True)
    pub.pub("sid/a", b"a", qos=1)
    pub.pub("sid/b", b"b", qos=1, pid=2)
    got = collect(c, 2)
    assert [(p.payload, p.all(m.SUB_ID)) for p in got] == [(b"a", [268435455]), (b"b", [])], got


def test_v5_subscription_identifier_zero(b):
    # 3.8.2.1.2: a Subscription Identifier of 0 is a protocol error.
    c = m.connected(b.port, "sid0", v5=True)
    c.send(m.subscribe(1, [("sid0/t", 1)], v5=True, props=[(m.SUB_ID, 0)]))
    got = c.packets_until_close()
    assert all(x.type == m.DISCONNECT and x.rc in (0x81, 0x82) for x in got), got


@V
def test_shared_subscription(b, v5):
    # 4.8.2 (5.0; mosquitto and ward also offer it on 3.1.1): each message to
    # a shared subscription goes to exactly one member of the group.
    members = []
    for i in range(3):
        c = m.connected(b.port, "sh-%d" % i, v5=v5)
        c.sub([("$share/g/sh/t", 1)])
        members.append(c)
    plain = m.connected(b.port, "sh-plain", v5=v5)
    plain.sub([("sh/t", 1)])
    pub = m.connected(b.port, "sh-pub", v5=v5)
    for i in range(30):
        pub.pub("sh/t", b"%d" % i, qos=1, pid=i + 1)
    per = []
    deadline = time.monotonic() + 3.0
    seen = [[] for _ in members]
    while sum(len(s) for s in seen) < 30 and time.monotonic() < deadline:
        for c, s in zip(members, seen):
            for p in publishes(c.drain(0.05)):
                s.append(p.payload)
                c.ack_msg(p)
    for c, s in zip(members, seen):
        for p in publishes(c.drain(0.2)):
            s.append(p.payload)
        per.append(len(s))
    everything = sorted(int(x) for s in seen for x in s)
    assert everything == list(range(30)), (per, everything)
    assert all(n > 0 for n in per), per
    # A non-shared subscription to the same topic still gets every message.
    assert len(collect(plain, 30, timeout=2.0)) == 30


@V
def test_unsubscribe_stops_delivery(b, v5):
    # MQTT-3.10.4-1 (stop adding messages), MQTT-3.10.4-4 (UNSUBACK, same
    # id), MQTT-3.11.3-1 (5.0: one reason code per filter).
    c = m.connected(b.port, "uns", v5=v5)
    c.sub([("uns/t", 1)])
    pub = m.connected(b.port, "uns-pub", v5=v5)
    pub.pub("uns/t", b"before", qos=1)
    assert [p.payload for p in collect(c, 1)] == [b"before"]
    c.send(m.unsubscribe(0x4242, ["uns/t"], v5=v5))
    p = c.expect(m.UNSUBACK)
    assert p.pid == 0x4242
    if v5:
        assert p.codes == [0x00], p
    pub.pub("uns/t", b"after", qos=1, pid=2)
    assert publishes(c.drain(0.5)) == []


def test_v5_unsuback_no_subscription(b):
    # 3.11.3: reason 0x11 (No subscription existed) for a filter that was not
    # subscribed, 0x00 for one that was, in order.
    c = m.connected(b.port, "uns11", v5=True)
    c.sub([("u11/a", 0)])
    c.send(m.unsubscribe(5, ["u11/a", "u11/never"], v5=True))
    p = c.expect(m.UNSUBACK)
    assert p.pid == 5 and p.codes == [0x00, 0x11], p


@V
def test_unsubscribe_no_filters(b, v5):
    # MQTT-3.10.3-2: an UNSUBSCRIBE with no filter is a protocol violation.
    c = m.connected(b.port, "unsnf", v5=v5)
    c.send(m.unsubscribe(1, [], v5=v5))
    got = c.packets_until_close()
    assert all(x.type == m.DISCONNECT and x.rc in (0x81, 0x82) for x in got), got


def test_v5_subscription_options_reserved_bits(b):
    # MQTT-3.8.3-5: reserved bits 6-7 of the options byte must be 0.
    c = m.connected(b.port, "optres", v5=True)
    c.send(m.subscribe(1, [("optres/t", 0xC1)], v5=True))
    got = c.packets_until_close()
    assert all(x.type == m.DISCONNECT and x.rc in (0x81, 0x82) for x in got), got


@mosq_skip("MQTT-3.8.3-4: mosquitto 2.0.11 grants No Local on a shared subscription")
def test_v5_shared_subscription_no_local_is_error(mk):
    # MQTT-3.8.3-4: No Local on a Shared Subscription is a protocol error.
    c = m.connected(mk().port, "shnl", v5=True)
    c.send(m.subscribe(1, [("$share/g/shnl/t", 0x04 | 1)], v5=True))
    got = c.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc in (0x81, 0x82) for p in got), got


@V
def test_shared_subscription_unsubscribe(b, v5):
    # 4.8.2: after a member unsubscribes, the others get every message.
    a = m.connected(b.port, "shu-a", v5=v5)
    a.sub([("$share/g/shu/t", 1)])
    z = m.connected(b.port, "shu-z", v5=v5)
    z.sub([("$share/g/shu/t", 1)])
    a.send(m.unsubscribe(2, ["$share/g/shu/t"], v5=v5))
    a.expect(m.UNSUBACK)
    pub = m.connected(b.port, "shu-pub", v5=v5)
    for i in range(10):
        pub.pub("shu/t", b"%d" % i, qos=1, pid=i + 1)
    assert len(collect(z, 10)) == 10
    assert publishes(a.drain(0.3)) == []


@pytest.mark.parametrize("flt", ["$share/g", "$share//t", "$share/g+/t", "$share/g#/t"],
                         ids=["no-filter", "empty-name", "plus-name", "hash-name"])
def test_v5_shared_subscription_invalid(mk, flt):
    # MQTT-4.8.2-1/2: ShareName is at least one character without "/", "+"
    # or "#", followed by "/" and a filter. A bad one is refused: SUBACK
    # failure (0x8F), or the connection is closed (DISCONNECT 0x81/0x82/0x8F).
    # (3.1.1 has no shared subscriptions: there "$share/g" is a valid filter.)
    v5 = True
    bk = mk()
    if bk.name == "mosquitto" and flt in ("$share/g", "$share//t"):
        pytest.skip("MQTT-4.8.2-1/2: mosquitto 2.0.11 grants %s" % flt)
    c = m.connected(bk.port, "shinv", v5=v5)
    c.send(m.subscribe(3, [(flt, 1)], v5=v5))
    try:
        p = c.recv(2.0)
    except m.Closed:
        return
    if p is not None and p.type == m.SUBACK:
        assert p.pid == 3 and len(p.codes) == 1 and p.codes[0] >= 0x80, p
        return
    rest = ([p] if p is not None else []) + c.packets_until_close(2.0)
    assert all(v5 and x.type == m.DISCONNECT and x.rc in (0x81, 0x82, 0x8F) for x in rest), rest


@V
def test_unicode_topics(b, v5):
    # 4.7.3: topics are UTF-8 and compared exactly, level by level.
    c = m.connected(b.port, "uni", v5=v5)
    c.sub([("ünï/+/☃", 1)])
    pub = m.connected(b.port, "uni-pub", v5=v5)
    pub.pub("ünï/ü/☃", b"yes", qos=1)
    pub.pub("uni/u/☃", b"no", qos=1, pid=2)
    got = collect(c, 1)
    assert [(p.topic, p.payload) for p in got] == [("ünï/ü/☃", b"yes")], got
