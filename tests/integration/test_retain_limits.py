"""The retained store's limits (mqtt.max_retained_messages) and its work
counter ($SYS/broker/debug/retained/visits), on ward through its config file.
Raw MQTT 3.1.1 clients (mqttwire) so every packet is seen as sent."""
import subprocess
import time

import pytest

import mqttwire as m
from conftest import WARD, free_port, serve_conf

DROPPED = "$SYS/broker/retained messages/dropped"
VISITS = "$SYS/broker/debug/retained/visits"


def serve(ward_factory, tmp_path, mqtt_block):
    """ward serve -c FILE with the given mqtt { } settings."""
    return serve_conf(ward_factory, tmp_path, "mqtt {\n%s\n}\n" % mqtt_block)


def live_value(c, topic, accept, timeout=6.0):
    """The first live (not retained) PUBLISH of `topic` whose value passes
    accept(); every value seen is returned too, for the failure message."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = c.recv(deadline - time.monotonic())
        if p is None:
            break
        if p.type != m.PUBLISH or p.topic != topic or p.retain:
            continue
        v = int(p.payload)
        seen.append(v)
        if accept(v):
            return v, seen
    raise AssertionError("no accepted live value of %s; saw %r" % (topic, seen))


def dropped_becomes(port, want):
    """The $SYS count of retained messages refused for keeping reaches
    `want`, with no value seen on the way but 0 and `want`."""
    watch = m.connected(port, "watch")
    watch.sub([(DROPPED, 0)])
    v, seen = live_value(watch, DROPPED, lambda v: v == want)
    assert set(seen) <= {0, want}, seen


@pytest.fixture
def limited(ward_factory, tmp_path):
    return serve(ward_factory, tmp_path, "  max_retained_messages = 3\n  sys_interval = 1s")


def retained_topics(port, filt, want, cid):
    """(topic, payload) of the retained messages a new subscriber gets."""
    c = m.connected(port, cid)
    c.sub([(filt, 1)])
    got = c.collect(want)
    c.close()
    assert all(p.retain for p in got), got
    return sorted((p.topic, p.payload) for p in got)


def test_message_limit_keeps_first_three(limited):
    live = m.connected(limited.port, "live")
    live.sub([("t/#", 1)])
    pub = m.connected(limited.port, "pub")
    for i in range(1, 6):
        pub.pub("t/%d" % i, b"v%d" % i, qos=1, retain=True, pid=i)
    # Refused for keeping, still delivered to the subscriber already there.
    got = live.collect(5)
    assert sorted(p.topic for p in got) == ["t/%d" % i for i in range(1, 6)], got
    assert not any(p.retain for p in got)
    assert retained_topics(limited.port, "#", 3, "late") == [
        ("t/1", b"v1"), ("t/2", b"v2"), ("t/3", b"v3")]
    # The refusals are counted in $SYS...
    dropped_becomes(limited.port, 2)
    # ... and logged once, not once per refusal (at most once a minute).
    log = limited.wait_count("retained store full", 1)
    assert log.count("retained store full") == 1, log


def test_full_store_replaces_and_clears(limited):
    pub = m.connected(limited.port, "pub")
    for i in range(1, 4):
        pub.pub("t/%d" % i, b"v%d" % i, qos=1, retain=True, pid=i)
    pub.pub("t/4", b"v4", qos=1, retain=True, pid=4)  # refused
    pub.pub("t/1", b"new", qos=1, retain=True, pid=5)  # a replacement is allowed
    pub.pub("t/2", b"", qos=1, retain=True, pid=6)  # clearing makes room...
    pub.pub("t/5", b"v5", qos=1, retain=True, pid=7)  # ... for a new topic
    pub.pub("t/6", b"v6", qos=1, retain=True, pid=8)  # and full again
    assert retained_topics(limited.port, "t/+", 3, "late") == [
        ("t/1", b"new"), ("t/3", b"v3"), ("t/5", b"v5")]
    dropped_becomes(limited.port, 2)


def load_retained(port, n):
    """n retained messages load/<i>/v, sent in one write; the final QoS 1
    PUBACK says the broker handled them all (one connection is in order)."""
    c = m.connected(port, "loader")
    c.send(b"".join(m.publish("load/%d/v" % i, b"x", retain=True) for i in range(n)))
    c.pub("load/done", b"x", qos=1, pid=1)
    c.close()


def test_literal_filters_visit_per_filter(ward_factory, tmp_path):
    w = serve(ward_factory, tmp_path, "  sys_interval = 1s")
    n, nfilters = 20000, 1000
    load_retained(w.port, n)
    watch = m.connected(w.port, "watch")
    watch.sub([(VISITS, 0)])
    # A live value is computed after this subscription took effect; nothing
    # else subscribes until the big SUBSCRIBE below.
    before, _ = live_value(watch, VISITS, lambda v: True)

    s = m.connected(w.port, "many")
    filters = [("load/%d/v" % (i * 19), 0) for i in range(nfilters)]
    s.send(m.subscribe(7, filters))
    assert s.expect(m.SUBACK).pid == 7
    got = s.collect(nfilters, timeout=10)
    assert len(got) == nfilters and all(p.retain for p in got)
    after, _ = live_value(watch, VISITS, lambda v: v != before)
    # Proportional to the filters (3 levels each, plus the root), not to
    # filters x retained (20,000,000).
    assert nfilters <= after - before < 20 * nfilters, (before, after)

    # The counter does count: one '+' over the 20,000 children costs them.
    p = m.connected(w.port, "plus")
    p.sub([("load/+/v", 0)])
    assert len(p.collect(n, timeout=20)) == n
    plus, _ = live_value(watch, VISITS, lambda v: v != after)
    assert plus - after >= n, (after, plus)


@pytest.mark.parametrize("setting, error", [
    ("max_retained_messages = -1", "mqtt.max_retained_messages: expected a whole number"),
    ("max_retained_bytes = 5GB", "mqtt.max_retained_bytes: 5GB is out of range"),
    ("max_retained_bytes = lots", "mqtt.max_retained_bytes: expected a size"),
])
def test_bad_limits_are_refused(tmp_path, setting, error):
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nmqtt { %s }\n'
                    % (free_port(), setting))
    r = subprocess.run([WARD, "check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and error in r.stderr + r.stdout, r


def test_limits_in_effective_config(tmp_path):
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'mqtt { max_retained_messages = 7, max_retained_bytes = 64KB }\n'
                    % free_port())
    r = subprocess.run([WARD, "check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r
    assert "max_retained_messages = 7\n" in r.stdout, r.stdout
    assert "max_retained_bytes = 65536\n" in r.stdout, r.stdout


@pytest.mark.parametrize("qos", [0, 1])
def test_large_retained_set_reaches_a_slow_subscriber(ward_factory, tmp_path, qos):
    """A retained set several times the connection's output bound (1 MB),
    and larger than max_mqueue_len for QoS 1, reaches a subscriber that
    starts reading only once the broker had to stop: whatever does not fit
    waits in the client's retained backlog, nothing is dropped."""
    b = serve(ward_factory, tmp_path, "  max_mqueue_len = 100")
    n, payload = 6000, b"x" * 400  # 2.4 MB of retained messages
    pub = m.connected(b.port, "filler")
    for i in range(n):
        pub.pub("big/%05d" % i, payload, retain=True)
    pub.ping()  # all of them handled
    sub = m.connected(b.port, "slow")
    sub.sub([("big/#", qos)])
    time.sleep(0.5)  # the broker meets a full output (QoS 0) or queue (QoS 1)
    got = sub.collect(n, timeout=30)
    assert len(got) == n and all(p.retain and p.payload == payload for p in got)
    assert sorted(p.topic for p in got) == ["big/%05d" % i for i in range(n)]
    assert sub.ping() == []
