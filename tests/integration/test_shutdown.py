"""Graceful shutdown (SIGTERM, SIGINT): ward stops accepting at once, tells
MQTT 5 clients DISCONNECT 0x8B and NATS clients nats-server's lame duck
INFO ("ldm":true), waits (bounded by system.shutdown_timeout) for their
connections to close and the store to commit, and exits 0. Nothing a
publisher saw acknowledged is lost across the restart."""
import signal
import socket
import threading
import time

import pytest

from conftest import free_port, serve_conf, wait_port
import mqttwire as m
import natswire

STREAM_MAX = 20000  # messages the publisher sends at most
WINDOW = 50  # QoS 1 PUBLISHes in flight at once


def publisher(port, acked, done, topic="s/x"):
    """Streams QoS 1 PUBLISHes s/0, s/1 ... with WINDOW in flight, recording
    each payload whose PUBACK arrived, until the broker closes the
    connection (or STREAM_MAX were sent)."""
    c = m.connected(port, "pub", v5=False)
    inflight, sent = {}, 0
    try:
        while sent < STREAM_MAX or inflight:
            while sent < STREAM_MAX and len(inflight) < WINDOW:
                pid = sent % 65000 + 1
                payload = b"m%d" % sent
                c.send(m.publish(topic, payload, qos=1, pid=pid))
                inflight[pid] = payload
                sent += 1
            p = c.recv(5)
            if p is None:
                break
            if p.type == m.PUBACK and p.pid in inflight:
                acked.add(inflight.pop(p.pid))
    except m.Closed:
        pass
    finally:
        c.close()
        done.set()


def reader(c, got):
    """Acknowledges and records every PUBLISH until the connection closes
    (either side) or nothing comes for 5 s."""
    try:
        while True:
            p = c.recv(5)
            if p is None:
                return
            if p.type == m.PUBLISH:
                got.add(p.payload)
                c.send(m.ack(m.PUBACK, p.pid))
    except (m.Closed, OSError):
        return


@pytest.mark.parametrize("online", [True, False], ids=["subscriber_online", "subscriber_offline"])
def test_sigterm_loses_nothing_acknowledged(ward_factory, tmp_path, online):
    data = str(tmp_path / "data")
    w = ward_factory(["--data", data]).start()
    sub = m.connected(w.port, "sub", v5=False, clean=False)
    sub.sub([("s/#", 1)])
    got = set()
    if online:
        t_sub = threading.Thread(target=reader, args=(sub, got), daemon=True)
        t_sub.start()
    else:
        sub.disconnect()  # the session stays, stored; its queue fills
    acked, done = set(), threading.Event()
    t_pub = threading.Thread(target=publisher, args=(w.port, acked, done), daemon=True)
    t_pub.start()
    deadline = time.monotonic() + 10
    while len(acked) < 300 and not done.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acked) >= 300 and not done.is_set(), "the stream did not get going"
    w.signal(signal.SIGTERM)  # in the middle of the stream
    assert w.proc.wait(timeout=10) == 0, w.read_log()
    assert done.wait(10)
    t_pub.join(10)
    if online:
        t_sub.join(10)
    log = w.read_log()
    assert "SIGTERM: shutting down" in log
    assert "closed and state committed" in log, log
    w.stop()

    # The same data directory: the session and its queue come back.
    w2 = ward_factory(["--data", data], port=w.port).start()
    sub2 = m.connected(w2.port, "sub", v5=False, clean=False)
    missing = acked - got
    deadline = time.monotonic() + 10
    while missing and time.monotonic() < deadline:
        p = sub2.recv(max(deadline - time.monotonic(), 0.01))
        if p is None:
            break
        if p.type == m.PUBLISH:
            got.add(p.payload)
            missing.discard(p.payload)
            sub2.send(m.ack(m.PUBACK, p.pid))
    assert not missing, "%d acknowledged messages lost (of %d), e.g. %r" % (
        len(missing), len(acked), sorted(missing)[:5])
    sub2.disconnect()


def stuck_subscriber(port):
    """A 3.1.1 subscriber that reads nothing once subscribed, and a
    publisher that fills its output: a connection whose close must wait
    for output that cannot drain (needs mqtt.overload = drop)."""
    s = m.Client(port)
    s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.handshake("stuck")
    s.sub([("big/#", 0)])
    p = m.connected(port, "filler")
    for _ in range(12):  # beyond the socket buffers and max_output_bytes
        p.send(m.publish("big/x", b"x" * 700000))
    # With mqtt.overload = drop nothing holds the filler back: PINGRESP comes
    # once every PUBLISH before it was routed, more than the socket buffers
    # take, so the stuck output is not empty now.
    p.ping()
    p.close()
    return s


def test_refuses_new_connections_while_draining(ward_factory, tmp_path):
    w = serve_conf(ward_factory, tmp_path,
                   "system.shutdown_timeout = 20s\nmqtt.overload = drop\n")
    stuck = stuck_subscriber(w.port)
    v5 = m.connected(w.port, "v5", v5=True)
    w.signal(signal.SIGTERM)
    d = v5.expect(m.DISCONNECT, 5)
    assert d.rc == 0x8B  # Server shutting down
    v5.expect_close(5)
    # Stopping accepting came before the DISCONNECT; the stuck connection
    # keeps ward in its shutdown while this connect is refused at once.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", w.port), timeout=2)
    assert w.alive(), "ward exited before the stuck connection could be waited for"
    assert w.proc.wait(timeout=15) == 0, w.read_log()
    stuck.close()


def test_shutdown_timeout_bounds_the_wait(ward_factory, tmp_path):
    w = serve_conf(ward_factory, tmp_path,
                   "system.shutdown_timeout = 300ms\nmqtt.overload = drop\n")
    stuck = stuck_subscriber(w.port)
    w.signal(signal.SIGINT)
    assert w.proc.wait(timeout=10) == 0, w.read_log()
    log = w.read_log()
    assert "SIGINT: shutting down" in log
    assert "not done within system.shutdown_timeout (300 ms)" in log, log
    stuck.close()


def test_nats_client_gets_lame_duck_info(ward_factory, tmp_path):
    nport = free_port()
    w = ward_factory(["-l", "nats://127.0.0.1:%d" % nport]).start()
    assert wait_port(nport, proc=w.proc)
    c = natswire.connect(nport)
    assert "ldm" not in c.info  # the greeting is an ordinary INFO
    w.signal(signal.SIGTERM)
    op = c.expect("INFO", 5)
    assert op.info.get("ldm") is True, op.info
    assert op.info["server_id"] == c.info["server_id"]
    c.expect_close(5)
    assert w.proc.wait(timeout=10) == 0, w.read_log()


def test_v5_client_hears_0x8b_and_311_client_is_closed(ward):
    v5 = m.connected(ward.port, "a5", v5=True)
    v3 = m.connected(ward.port, "a3", v5=False)
    ward.signal(signal.SIGTERM)
    assert v5.expect(m.DISCONNECT, 5).rc == 0x8B
    assert v3.expect_close(5) == []  # 3.1.1 has no server DISCONNECT
    assert ward.proc.wait(timeout=10) == 0, ward.read_log()


def test_bridge_delivers_its_backlog_before_exit(ward_factory, tmp_path):
    """An edge ward forwarding f/# upstream (QoS 1) gets SIGTERM in the
    middle of a stream: what it acknowledged to its publisher reaches the
    upstream's subscriber before it exits, not at its next start."""
    up = ward_factory().start()
    sub = m.connected(up.port, "up-sub", v5=False, clean=False)
    sub.sub([("f/#", 1)])
    got = set()
    t_sub = threading.Thread(target=reader, args=(sub, got), daemon=True)
    t_sub.start()
    port = free_port()
    conf = tmp_path / "edge.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'bridges.mqtt.hub {\n  server = "mqtt-tcp://127.0.0.1:%d"\n  proto_ver = 5\n'
                    '  clientid = "edge-hub"\n'
                    '  forwards = [ { local_topic = "f/#", remote_topic = "", qos = 1 } ]\n}\n'
                    % (port, up.port))
    edge = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=edge.proc), edge.read_log()
    edge.wait_log("bridge hub: connected to", 10)
    acked, done = set(), threading.Event()
    t_pub = threading.Thread(target=publisher, args=(port, acked, done, "f/x"), daemon=True)
    t_pub.start()
    deadline = time.monotonic() + 10
    while len(acked) < 300 and not done.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acked) >= 300 and not done.is_set(), "the stream did not get going"
    edge.signal(signal.SIGTERM)
    assert edge.proc.wait(timeout=10) == 0, edge.read_log()
    assert done.wait(10)
    assert "bridges still had" not in edge.read_log()
    # Delivered before the edge exited: the upstream needs nothing more
    # from it.
    deadline = time.monotonic() + 10
    while not acked <= got and time.monotonic() < deadline:
        time.sleep(0.02)
    missing = acked - got
    sub.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
    t_sub.join(10)
    sub.close()
    assert not missing, "%d of %d acknowledged messages not forwarded before the exit" % (
        len(missing), len(acked))
