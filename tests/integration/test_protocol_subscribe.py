"""SUBSCRIBE and UNSUBSCRIBE: wildcards, $-topics, overlapping subscriptions,
v5 subscription options and identifiers, shared subscriptions, retained
messages."""
import time

import pytest

import mqttwire as w


def client(broker, cid, v5=True, **kw):
    c = w.Client(broker.port, v5=v5)
    assert c.connect(cid, **kw)[0] == 0
    return c


@pytest.mark.parametrize("v5", [True, False])
def test_wildcards(broker, v5):
    sub = client(broker, "wild%d" % v5, v5)
    assert sub.subscribe("sport/+/player1", "sport/tennis/#", qos=0) == [0, 0]
    pub = client(broker, "wildpub%d" % v5, v5)
    for t in ("sport/tennis/player1", "sport/golf/player1", "sport/tennis", "sport",
              "sport/golf/player2"):
        pub.publish(t, t.encode())
    pub.publish_acked("sync", b"", qos=1)
    got = sorted(m.topic for m in sub.messages(5, timeout=1))
    # tennis/player1 matches both filters: one copy, or one per matching
    # subscription (MQTT-3.3.4-2 allows further copies); ward sends one.
    got_set = sorted(set(got))
    assert got_set == ["sport/golf/player1", "sport/tennis", "sport/tennis/player1"]
    if broker.name == "ward":
        assert got.count("sport/tennis/player1") == 1


def test_dollar_topics_not_matched_by_leading_wildcards(broker):
    sub = client(broker, "dollar")
    sub.subscribe("#", "+/x", qos=0)
    pub = client(broker, "dollarpub")
    pub.publish("$internal/x", b"hidden")  # MQTT-4.7.2-1
    pub.publish("plain/x", b"seen")
    got = [m.topic for m in sub.messages(3, timeout=1) if not m.topic.startswith("$SYS")]
    assert "$internal/x" not in got and "plain/x" in got


@pytest.mark.parametrize("v5", [True, False])
def test_invalid_filter_closes_or_refuses(broker, v5):
    c = client(broker, "badfilter%d" % v5, v5)
    body = b"\x00\x01" + (b"\x00" if v5 else b"") + w.s("a/#/b") + b"\x00"
    c.send(w.SUBSCRIBE, 2, body)
    p = c.read()
    # A filter with '#' not last is malformed (MQTT-4.7.1-1): the server
    # closes (v5: after DISCONNECT 0x81/0x8F) or answers SUBACK 0x8F.
    if p is not None and p.type == w.SUBACK:
        assert v5 and p.body[-1] in (0x80, 0x8F)
    else:
        assert p is None or (p.type == w.DISCONNECT and p.body[0] in (0x81, 0x8F))
        assert c.closed()


def test_unsubscribe(broker):
    c = client(broker, "unsub")
    c.subscribe("u/1", "u/2")
    assert c.unsubscribe("u/1", "u/none") == [0x00, 0x11]  # MQTT 5 3.11.3
    p = client(broker, "unsubpub")
    p.publish_acked("u/1", b"gone")
    p.publish_acked("u/2", b"kept")
    assert [m.payload for m in c.messages(2, timeout=1)] == [b"kept"]


def test_overlapping_v5_max_qos_and_all_ids(broker):
    c = client(broker, "overlap")
    c.subscribe("ov/#", qos=0, sprops=[(0x0B, 1)])
    c.subscribe("ov/+", qos=2, sprops=[(0x0B, 2)])
    p = client(broker, "overlappub")
    p.publish_acked("ov/x", b"m", qos=2)
    got = c.messages(2, timeout=1)
    # MQTT-3.3.4-2: a copy at the highest QoS; further copies are allowed.
    assert max(m.qos for m in got) == 2
    # MQTT-3.3.4-3: a single copy carries every matching identifier. ward
    # sends a single copy; mosquitto one per subscription.
    if len(got) == 1:
        assert sorted(got[0].props.get(0x0B, [])) == [1, 2]
    else:
        assert sorted(i for m in got for i in m.props.get(0x0B, [])) == [1, 2]
    if broker.name == "ward":
        assert len(got) == 1


def test_no_local(broker):
    c = client(broker, "nolocal")
    c.subscribe("nl", qos=1, opts=0x04)
    other = client(broker, "nlother")
    c.publish_acked("nl", b"mine")  # MQTT-3.8.3-3
    other.publish_acked("nl", b"theirs")
    assert [m.payload for m in c.messages(2, timeout=1)] == [b"theirs"]


def test_retain_as_published(broker):
    c = client(broker, "rap")
    c.subscribe("rap/keep", qos=1, opts=0x08)
    c.subscribe("rap/clear", qos=1)
    p = client(broker, "rappub")
    p.publish_acked("rap/keep", b"1", retain=True)
    p.publish_acked("rap/clear", b"2", retain=True)
    got = {m.topic: m.retain for m in c.messages(2)}
    # MQTT-3.3.1-12 / -13: RETAIN kept with RAP, cleared without.
    assert got == {"rap/keep": True, "rap/clear": False}
    for t in ("rap/keep", "rap/clear"):
        p.publish_acked(t, b"", retain=True)


def test_retain_handling(broker):
    p = client(broker, "rhpub")
    p.publish_acked("rh/t", b"stored", retain=True)
    c = client(broker, "rh")
    assert c.subscribe("rh/t", qos=1, opts=0x20) == [1]  # 2: never
    assert c.message(0.7) is None
    c2 = client(broker, "rh1")
    assert c2.subscribe("rh/t", qos=1, opts=0x10) == [1]  # 1: only if new
    assert c2.message().payload == b"stored"
    assert c2.subscribe("rh/t", qos=1, opts=0x10) == [1]
    assert c2.message(0.7) is None
    assert c2.subscribe("rh/t", qos=1, opts=0x00) == [1]  # 0: always
    assert c2.message().payload == b"stored"
    p.publish_acked("rh/t", b"", retain=True)


@pytest.mark.parametrize("v5", [True, False])
def test_retained_set_replace_clear(broker, v5):
    p = client(broker, "retpub%d" % v5, v5)
    p.publish_acked("ret/a", b"first", retain=True)
    p.publish_acked("ret/a", b"second", retain=True)  # replaced (MQTT-3.3.1-5)
    p.publish_acked("ret/b", b"other", retain=True)
    p.publish_acked("ret/b", b"", retain=True)  # cleared (MQTT-3.3.1-10)
    c = client(broker, "retsub%d" % v5, v5)
    c.subscribe("ret/#", qos=1)
    got = c.messages(3, timeout=1)
    assert [(m.topic, m.payload, m.retain) for m in got] == [("ret/a", b"second", True)]
    # A live message to an existing subscription carries RETAIN 0.
    p.publish_acked("ret/a", b"live", retain=True)
    m = c.message()
    assert m.payload == b"live" and m.retain is False
    p.publish_acked("ret/a", b"", retain=True)


def test_shared_subscription_balanced(broker):
    members = [client(broker, "share%d" % i) for i in range(3)]
    for m in members:
        assert m.subscribe("$share/g/jobs", qos=1) == [1]
    p = client(broker, "sharepub")
    for i in range(30):
        p.publish_acked("jobs", b"%d" % i)
    counts, seen = [], []
    for m in members:
        got = [x.payload for x in m.messages(30, timeout=0.7)]
        counts.append(len(got))
        seen += got
    assert sorted(seen) == sorted(b"%d" % i for i in range(30))  # each once
    assert all(n > 0 for n in counts), counts


def test_sys_topics(broker):
    c = client(broker, "sys")
    c.subscribe("$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected")
    got = {}
    deadline = time.monotonic() + 15
    while len(got) < 3 and time.monotonic() < deadline:
        m = c.message(timeout=2)
        if m:
            got[m.topic] = m.payload
    assert set(got) == {"$SYS/broker/version", "$SYS/broker/uptime",
                        "$SYS/broker/clients/connected"}
    assert int(got["$SYS/broker/clients/connected"].split()[0]) >= 0
    # Clients cannot publish into $SYS.
    other = client(broker, "sysw")
    other.publish("$SYS/broker/version", b"forged")
    assert all(m.payload != b"forged" for m in c.messages(3, timeout=1))


def test_sys_values_update(ward_factory):
    b = ward_factory(["--sys-interval", "1"]).start()
    c = w.Client(b.port)
    c.connect("sysv")
    p = w.Client(b.port)
    p.connect("sysp")
    p.publish_acked("x", b"12345")
    c.subscribe("$SYS/broker/#")
    want = {"$SYS/broker/clients/connected", "$SYS/broker/messages/received",
            "$SYS/broker/bytes/received", "$SYS/broker/subscriptions/count",
            "$SYS/broker/retained messages/count", "$SYS/broker/uptime"}
    latest = {}
    deadline = time.monotonic() + 5
    # Retained values from the last interval come first; fresh ones follow.
    while time.monotonic() < deadline and not (
            want <= set(latest) and int(latest["$SYS/broker/clients/connected"]) == 2
            and int(latest["$SYS/broker/messages/received"]) >= 1
            and int(latest.get("$SYS/broker/subscriptions/count", 0)) >= 1):
        m = c.message(timeout=1.5)
        if m:
            latest[m.topic] = m.payload.split()[0]
    assert want <= set(latest)
    assert int(latest["$SYS/broker/clients/connected"]) == 2
    assert int(latest["$SYS/broker/messages/received"]) >= 1
    assert int(latest["$SYS/broker/subscriptions/count"]) >= 1
