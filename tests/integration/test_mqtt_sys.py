"""$SYS topics (MQTT 3.1.1 / 5.0 section 4.7.2: topics starting with $ are
the server's; their names are not standardised). The values are checked on
ward only, where the names are ward's own; the matching rule and the refusal
of client publications run on both brokers."""
import time

import pytest

import mqttwire as m


def sys_values(c, want, timeout=m.WAIT):
    """Reads live $SYS PUBLISHes until `want(seen)` holds, where `seen` maps
    each topic to its latest payload (text). Retained copies (sent on
    subscribe) may predate the test, so only live publications count."""
    seen, deadline = {}, time.monotonic() + timeout
    while not want(seen):
        p = c.recv(max(deadline - time.monotonic(), 0))
        assert p is not None, "timed out; $SYS values seen: %r" % seen
        if p.type == m.PUBLISH and not p.retain:
            seen[p.topic] = p.payload.decode()
    return seen


@pytest.fixture
def wsys(ward_factory):
    return ward_factory(["--sys-interval", "1"]).start()


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_ward_sys_broker_values(wsys, v5):
    # ward-only: version, uptime, counts of clients, messages, bytes,
    # subscriptions and retained messages are published, with sane values.
    c = m.connected(wsys.port, "sys-watch", v5=v5)
    c.sub([("$SYS/broker/#", 0)])
    m.connected(wsys.port, "sys-pub", v5=v5).pub("sys/x", b"12345", qos=1, retain=True)
    names = ["$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected",
             "$SYS/broker/messages/received", "$SYS/broker/bytes/received",
             "$SYS/broker/subscriptions/count", "$SYS/broker/retained messages/count"]

    def complete(seen):
        return set(names) <= set(seen) and int(seen[names[3]]) >= 1 and int(seen[names[6]]) >= 1

    seen = sys_values(c, complete)
    assert seen["$SYS/broker/version"].startswith("ward"), seen
    up = seen["$SYS/broker/uptime"].split()
    assert up[1:] == ["seconds"] and 0 <= int(up[0]) <= 600, seen
    assert int(seen["$SYS/broker/clients/connected"]) >= 1, seen
    assert int(seen["$SYS/broker/bytes/received"]) >= 5, seen
    assert int(seen["$SYS/broker/subscriptions/count"]) >= 1, seen


def test_ward_sys_clients_connected_follows(wsys):
    # ward-only: the connected count follows connections and disconnections.
    watch = m.connected(wsys.port, "sys-w")
    watch.sub([("$SYS/broker/clients/connected", 0)])
    others = [m.connected(wsys.port, "sys-o%d" % i) for i in range(4)]
    key = "$SYS/broker/clients/connected"
    sys_values(watch, lambda seen: seen.get(key) == "5")
    for o in others:
        o.disconnect()
    sys_values(watch, lambda seen: seen.get(key) == "1")


def test_ward_sys_uptime_advances(wsys):
    # ward-only: uptime grows between publications.
    c = m.connected(wsys.port, "sys-up")
    c.sub([("$SYS/broker/uptime", 0)])
    values = []
    deadline = time.monotonic() + m.WAIT
    while len(set(values)) < 2:
        p = c.recv(max(deadline - time.monotonic(), 0))
        assert p is not None, values
        if p.type == m.PUBLISH:
            values.append(int(p.payload.split()[0]))
    assert values == sorted(values), values


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_wildcards_do_not_match_sys(mk, v5):
    # MQTT-4.7.2-1: "#" and "+/..." do not match topics starting with $,
    # while "$SYS/#" does. The "#" subscriber subscribes first, so a live
    # $SYS publication seen by the "$SYS/#" one was routed to it as well
    # (if it matched) before its PINGRESP.
    bk = mk(ward=["--sys-interval", "1"], mosq="sys_interval 1")
    hash_ = m.connected(bk.port, "sys-hash", v5=v5)
    hash_.sub([("#", 0), ("+/broker/#", 0)])
    sysw = m.connected(bk.port, "sys-sys", v5=v5)
    sysw.sub([("$SYS/#", 0)])
    live = sys_values(sysw, lambda seen: len(seen) > 0)
    assert all(t.startswith("$SYS/") for t in live), live
    leaked = [p.topic for p in hash_.collect(0) if p.topic.startswith("$")]
    assert leaked == [], leaked


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_clients_cannot_publish_into_sys(broker, v5):
    # 4.7.2: the server SHOULD prevent clients from using $ topics to
    # exchange messages with other clients.
    c = m.connected(broker.port, "sys-reader", v5=v5)
    c.sub([("$SYS/broker/version", 0), ("$SYS/forged/#", 0)])
    c.collect(0)  # the retained version, if any
    other = m.connected(broker.port, "sys-forger", v5=v5)
    other.send(m.publish("$SYS/broker/version", b"forged", v5=v5))
    other.send(m.publish("$SYS/forged/x", b"forged", v5=v5))
    other.ping()  # both PUBLISHes were handled
    assert [p.payload for p in c.collect(0) if p.payload == b"forged"] == []
