"""Session state (MQTT 3.1.1 sections 3.1.2.4 and 4.1, MQTT 5.0 sections
3.1.2.4, 3.1.2.11.2, 3.14.2.2.2 and 4.1), wire level, against ward and
mosquitto (conftest `mk`)."""
import time

import pytest

import mqttwire as m

V = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
KEEP = [(m.SESSION_EXPIRY, 120)]


def leave(c, props=None):
    """DISCONNECT, then wait until the server closed: ward and mosquitto
    finish with the session before they close the socket."""
    c.disconnect(rc=0 if props else None, props=props)


def collect(c, want):
    return c.collect(want)


@V
def test_subscriptions_survive_reconnect(broker, v5):
    # MQTT-3.1.2-4 / 4.1: a resumed session keeps its subscriptions.
    keep = KEEP if v5 else None
    c = m.connected(broker.port, "ses-keep", v5=v5, clean=False, props=keep)
    c.sub([("ses/k", 1)])
    leave(c)
    c = m.connected(broker.port, "ses-keep", v5=v5, clean=False, props=keep)
    m.connected(broker.port, "ses-pub", v5=v5).pub("ses/k", b"still", qos=1)
    assert [p.payload for p in collect(c, 1)] == [b"still"]


@V
def test_clean_discards_session(broker, v5):
    # MQTT-3.1.2-6 (3.1.1) / MQTT-3.1.2-4 (5.0 Clean Start 1): an existing
    # session is discarded; nothing queued for it is delivered later.
    keep = KEEP if v5 else None
    c = m.connected(broker.port, "ses-clean", v5=v5, clean=False, props=keep)
    c.sub([("ses/c", 1)])
    leave(c)
    c = m.Client(broker.port, v5=v5)
    assert not c.handshake("ses-clean", clean=True, props=keep).session_present
    leave(c)
    m.connected(broker.port, "ses-pub", v5=v5).pub("ses/c", b"lost", qos=1)
    c = m.Client(broker.port, v5=v5)
    ack = c.handshake("ses-clean", clean=False, props=keep)
    # v5: the clean connection itself kept a (new, empty) session.
    assert ack.session_present is v5
    assert c.ping() == []


@V
def test_clean_session_ends_with_connection(broker, v5):
    # MQTT-3.1.2-6 (3.1.1: CleanSession 1 lasts as long as the connection) /
    # 3.1.2.11.2 (5.0: Session Expiry absent means 0, ends at close).
    c = m.connected(broker.port, "ses-eph", v5=v5, clean=True)
    c.sub([("ses/e", 1)])
    leave(c)
    m.connected(broker.port, "ses-pub", v5=v5).pub("ses/e", b"x", qos=1)
    c = m.Client(broker.port, v5=v5)
    assert not c.handshake("ses-eph", clean=False, props=KEEP if v5 else None).session_present
    assert c.ping() == []


def test_v5_session_expiry_interval(broker):
    # 3.1.2.11.2: the session lasts Session Expiry Interval seconds after the
    # connection closes, not longer. The end of the session is seen as its
    # will (3.1.3.2.2: a will is published when the session ends, even
    # before its longer Will Delay): no sleeping and guessing.
    props = [(m.SESSION_EXPIRY, 1)]
    watcher = m.connected(broker.port, "ses-exp-watch", v5=True)
    watcher.sub([("ses/exp/will", 0)])
    c = m.connected(broker.port, "ses-exp", v5=True, props=props)
    leave(c)
    c = m.Client(broker.port, v5=True)
    will = {"topic": "ses/exp/will", "payload": b"ended", "props": [(m.WILL_DELAY, 30)]}
    assert c.handshake("ses-exp", clean=False, props=props, will=will).session_present
    c.close()
    t0 = time.monotonic()
    assert watcher.expect(m.PUBLISH).payload == b"ended"
    assert time.monotonic() - t0 >= 0.8  # not before the expiry interval
    c = m.Client(broker.port, v5=True)
    assert not c.handshake("ses-exp", clean=False, props=props).session_present


def test_v5_disconnect_sets_session_expiry(broker):
    # 3.14.2.2.2: the DISCONNECT's Session Expiry Interval replaces the
    # CONNECT's (here 120 -> 0: the session ends at once).
    c = m.connected(broker.port, "ses-dis", v5=True, props=KEEP)
    leave(c, props=[(m.SESSION_EXPIRY, 0)])
    c = m.Client(broker.port, v5=True)
    assert not c.handshake("ses-dis", clean=False, props=KEEP).session_present


def test_v5_disconnect_expiry_after_zero_is_error(broker):
    # MQTT-3.14.2-2: a non-zero Session Expiry in DISCONNECT after 0 in
    # CONNECT is a protocol error; the server may answer DISCONNECT 0x82.
    c = m.connected(broker.port, "ses-err", v5=True)
    c.send(m.disconnect(rc=0, v5=True, props=[(m.SESSION_EXPIRY, 60)]))
    c.expect_refusal(m.DISCONNECT, (0x82,), required=broker.name == "ward")
    c = m.Client(broker.port, v5=True)
    assert not c.handshake("ses-err", clean=False, props=KEEP).session_present


@V
def test_offline_queue_order(broker, v5):
    # 4.6: messages queued for an offline session come in publish order.
    keep = KEEP if v5 else None
    c = m.connected(broker.port, "ses-q", v5=v5, clean=False, props=keep)
    c.sub([("ses/q", 1)])
    leave(c)
    pub = m.connected(broker.port, "ses-pub", v5=v5)
    for i in range(50):
        pub.pub("ses/q", b"%d" % i, qos=1, pid=i + 1)
    c = m.connected(broker.port, "ses-q", v5=v5, clean=False, props=keep)
    got = collect(c, 50)
    assert [int(p.payload) for p in got] == list(range(50))


@V
def test_takeover_of_a_clean_session_is_not_inherited(broker, v5):
    # MQTT-3.1.2-6 (3.1.1) / 3.1.2.11.2 (5.0): the first connection's session
    # lasts only as long as that connection (clean / expiry 0), so a takeover
    # with CleanSession 0 / Clean Start 0 starts afresh (MQTT-3.2.2-3:
    # Session Present 0) and the old subscription went with the old session.
    a = m.connected(broker.port, "short-lived", v5=v5, clean=True)
    a.sub([("old/sub", 1)])
    b = m.Client(broker.port, v5=v5)
    assert not b.handshake("short-lived", clean=False, props=KEEP if v5 else None).session_present
    a.expect_close()
    m.connected(broker.port, "old-pub", v5=v5).pub("old/sub", b"x", qos=1)
    assert b.ping() == []
