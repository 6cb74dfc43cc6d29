"""Session state (MQTT 3.1.1 sections 3.1.2.4 and 4.1, MQTT 5.0 sections
3.1.2.4, 3.1.2.11.2, 3.14.2.2.2 and 4.1), wire level, against ward and
mosquitto (see brokers.py)."""
import time

import pytest

import mqtt_raw as m
from brokers import b, mk  # noqa: F401 (fixtures)

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
KEEP = [(m.SESSION_EXPIRY, 120)]


def publishes(packets):
    return [p for p in packets if p.type == m.PUBLISH]


def leave(c, v5, props=None):
    c.send(m.disconnect(rc=0 if props else None, v5=v5, props=props))
    c.close()
    time.sleep(0.15)


def collect(c, want, timeout=3.0):
    return c.collect(want, timeout)


@V
def test_subscriptions_survive_reconnect(b, v5):
    # MQTT-3.1.2-4 / 4.1: a resumed session keeps its subscriptions.
    keep = KEEP if v5 else None
    c = m.connected(b.port, "ses-keep", v5=v5, clean=False, props=keep)
    c.sub([("ses/k", 1)])
    leave(c, v5)
    c = m.connected(b.port, "ses-keep", v5=v5, clean=False, props=keep)
    m.connected(b.port, "ses-pub", v5=v5).pub("ses/k", b"still", qos=1)
    assert [p.payload for p in collect(c, 1)] == [b"still"]


@V
def test_clean_discards_session(b, v5):
    # MQTT-3.1.2-6 (3.1.1) / MQTT-3.1.2-4 (5.0 Clean Start 1): an existing
    # session is discarded; nothing queued for it is delivered later.
    keep = KEEP if v5 else None
    c = m.connected(b.port, "ses-clean", v5=v5, clean=False, props=keep)
    c.sub([("ses/c", 1)])
    leave(c, v5)
    c = m.Client(b.port, v5=v5)
    assert not c.handshake("ses-clean", clean=True, props=keep).session_present
    leave(c, v5)
    m.connected(b.port, "ses-pub", v5=v5).pub("ses/c", b"lost", qos=1)
    c = m.Client(b.port, v5=v5)
    ack = c.handshake("ses-clean", clean=False, props=keep)
    # v5: the clean connection itself kept a (new, empty) session.
    assert ack.session_present is v5
    assert publishes(c.drain(0.5)) == []


@V
def test_clean_session_ends_with_connection(b, v5):
    # MQTT-3.1.2-6 (3.1.1: CleanSession 1 lasts as long as the connection) /
    # 3.1.2.11.2 (5.0: Session Expiry absent means 0, ends at close).
    c = m.connected(b.port, "ses-eph", v5=v5, clean=True)
    c.sub([("ses/e", 1)])
    leave(c, v5)
    m.connected(b.port, "ses-pub", v5=v5).pub("ses/e", b"x", qos=1)
    c = m.Client(b.port, v5=v5)
    assert not c.handshake("ses-eph", clean=False, props=KEEP if v5 else None).session_present
    assert publishes(c.drain(0.5)) == []


def test_v5_session_expiry_interval(b):
    # 3.1.2.11.2: the session lasts Session Expiry Interval seconds after the
    # connection closes, not longer.
    props = [(m.SESSION_EXPIRY, 1)]
    c = m.connected(b.port, "ses-exp", v5=True, props=props)
    leave(c, True)
    c = m.Client(b.port, v5=True)
    assert c.handshake("ses-exp", clean=False, props=props).session_present
    leave(c, True)
    time.sleep(2.5)
    c = m.Client(b.port, v5=True)
    assert not c.handshake("ses-exp", clean=False, props=props).session_present


def test_v5_disconnect_sets_session_expiry(b):
    # 3.14.2.2.2: the DISCONNECT's Session Expiry Interval replaces the
    # CONNECT's (here 120 -> 0: the session ends at once).
    c = m.connected(b.port, "ses-dis", v5=True, props=KEEP)
    leave(c, True, props=[(m.SESSION_EXPIRY, 0)])
    c = m.Client(b.port, v5=True)
    assert not c.handshake("ses-dis", clean=False, props=KEEP).session_present


def test_v5_disconnect_expiry_after_zero_is_error(b):
    # MQTT-3.14.2-2: a non-zero Session Expiry in DISCONNECT after 0 in
    # CONNECT is a protocol error; the server may answer DISCONNECT 0x82.
    c = m.connected(b.port, "ses-err", v5=True)
    c.send(m.disconnect(rc=0, v5=True, props=[(m.SESSION_EXPIRY, 60)]))
    got = c.packets_until_close()
    assert all(p.type == m.DISCONNECT and p.rc == 0x82 for p in got), got
    c = m.Client(b.port, v5=True)
    assert not c.handshake("ses-err", clean=False, props=KEEP).session_present


@V
def test_offline_queue_order(b, v5):
    # 4.6: messages queued for an offline session come in publish order.
    keep = KEEP if v5 else None
    c = m.connected(b.port, "ses-q", v5=v5, clean=False, props=keep)
    c.sub([("ses/q", 1)])
    leave(c, v5)
    pub = m.connected(b.port, "ses-pub", v5=v5)
    for i in range(50):
        pub.pub("ses/q", b"%d" % i, qos=1, pid=i + 1)
    c = m.connected(b.port, "ses-q", v5=v5, clean=False, props=keep)
    got = collect(c, 50)
    assert [int(p.payload) for p in got] == list(range(50))
