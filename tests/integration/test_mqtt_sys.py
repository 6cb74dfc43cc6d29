"""$SYS topics (MQTT 3.1.1 / 5.0 section 4.7.2: topics starting with $ are
the server's; their names are not standardised). The values are checked on
ward only, where the names are ward's own; the matching rule runs on both."""
import time

import pytest

import mqtt_raw as m
from brokers import mk  # noqa: F401 (fixtures)


def sys_values(c, names, timeout=4.0):
    """Collects live $SYS PUBLISHes until every name in `names` was seen.
    Retained copies (sent on subscribe) may predate this test's connection,
    so only publications made while subscribed count."""
    seen, deadline = {}, time.monotonic() + timeout
    while not set(names) <= set(seen) and time.monotonic() < deadline:
        for p in c.drain(0.2):
            if p.type == m.PUBLISH and not p.retain:
                seen[p.topic] = p.payload.decode()
    return seen


@pytest.fixture
def wsys(ward_factory):
    return ward_factory(["--sys-interval", "1"], workers=2).start()


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_ward_sys_broker_values(wsys, v5):
    # ward-only: version, uptime and connected clients are published.
    c = m.connected(wsys.port, "sys-watch", v5=v5)
    c.sub([("$SYS/broker/#", 0)])
    names = ["$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected"]
    seen = sys_values(c, names)
    assert set(names) <= set(seen), seen
    assert seen["$SYS/broker/version"].startswith("ward"), seen
    up = seen["$SYS/broker/uptime"].split()
    assert up[1:] == ["seconds"] and 0 <= int(up[0]) <= 60, seen
    assert int(seen["$SYS/broker/clients/connected"]) >= 1, seen


def test_ward_sys_clients_connected_follows(wsys):
    # ward-only: the connected count follows connections and disconnections.
    watch = m.connected(wsys.port, "sys-w")
    watch.sub([("$SYS/broker/clients/connected", 0)])
    others = [m.connected(wsys.port, "sys-o%d" % i) for i in range(4)]

    def wait_for(pred):
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for p in watch.drain(0.2):
                if p.type == m.PUBLISH and not p.retain and pred(int(p.payload)):
                    return int(p.payload)
        raise AssertionError("no matching clients/connected value")

    assert wait_for(lambda n: n == 5) == 5
    for o in others:
        o.send(m.disconnect())
        o.close()
    assert wait_for(lambda n: n == 1) == 1


def test_ward_sys_uptime_advances(wsys):
    # ward-only: uptime grows between publications.
    c = m.connected(wsys.port, "sys-up")
    c.sub([("$SYS/broker/uptime", 0)])
    values, deadline = [], time.monotonic() + 5.0
    while len(set(values)) < 2 and time.monotonic() < deadline:
        for p in c.drain(0.2):
            if p.type == m.PUBLISH:
                values.append(int(p.payload.split()[0]))
    assert len(set(values)) >= 2 and values == sorted(values), values


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_wildcards_do_not_match_sys(mk, v5):
    # MQTT-4.7.2-1: "#" and "+/..." do not match topics starting with $,
    # while "$SYS/#" does.
    bk = mk(ward=["--sys-interval", "1"], mosq="sys_interval 1")
    hash_ = m.connected(bk.port, "sys-hash", v5=v5)
    hash_.sub([("#", 0), ("+/broker/#", 0)])
    sysw = m.connected(bk.port, "sys-sys", v5=v5)
    sysw.sub([("$SYS/#", 0)])
    got_sys = [p for p in sysw.collect(1, timeout=2.5, quiet=0.1, ack=False) if p.type == m.PUBLISH]
    assert got_sys and all(p.topic.startswith("$SYS/") for p in got_sys)
    leaked = [p.topic for p in hash_.drain(0.5) if p.type == m.PUBLISH and p.topic.startswith("$")]
    assert leaked == [], leaked
