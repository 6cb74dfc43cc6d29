"""The raw client itself (mqttwire.py), against a scripted TCP peer: a
timeout, a close (FIN) and a reset (RST) are three different outcomes, and
no wait ever reports a timeout as a close. No broker involved."""
import socket
import struct
import threading

import pytest

import mqttwire as m


class Peer:
    """A one-connection TCP server that runs `script(conn)` in a thread."""

    def __init__(self, script):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(script,))
        self.thread.start()

    def _run(self, script):
        conn, _ = self.lsock.accept()
        try:
            script(conn, self)
        finally:
            self.release.wait(10)
            conn.close()

    def done(self):
        self.release.set()
        self.thread.join(10)
        self.lsock.close()


@pytest.fixture
def peer():
    started = []

    def make(script):
        p = Peer(script)
        started.append(p)
        return p

    yield make
    for p in started:
        p.done()


def silent(conn, peer):
    pass  # keeps the connection open until the test ends


def close_after(data):
    def script(conn, peer):
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
    return script


def reset(conn, peer):
    # Only once the client spoke: a reset racing the client's connect()
    # would fail the connect itself, not show as a close.
    conn.settimeout(5)
    conn.recv(1)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    peer.release.set()


def test_timeout_is_not_a_close(peer):
    c = m.Client(peer(silent).port)
    assert c.recv(0.2) is None
    with pytest.raises(AssertionError, match="still open"):
        c.expect_close(0.2)
    with pytest.raises(AssertionError, match="timed out"):
        c.expect(m.CONNACK, 0.2)
    with pytest.raises(AssertionError, match="still open"):
        # A silent peer does not count as a refusal either.
        c.expect_refusal(m.DISCONNECT, (0x81,), required=True, timeout=0.2)


def test_close_after_packets(peer):
    connack = m.frame(m.CONNACK, 0, b"\x00\x00")
    c = m.Client(peer(close_after(connack + m.frame(m.PINGRESP, 0, b""))).port)
    got = c.expect_close(5)
    assert [p.type for p in got] == [m.CONNACK, m.PINGRESP]
    with pytest.raises(m.Closed):
        c.recv(1)


def test_expect_reports_a_close(peer):
    c = m.Client(peer(close_after(b"")).port)
    with pytest.raises(AssertionError, match="closed while waiting for SUBACK"):
        c.expect(m.SUBACK, 5)


def test_reset_is_a_close(peer):
    c = m.Client(peer(reset).port)
    c.send(b"\x10")  # connected: now the peer may reset
    assert c.expect_close(5) == []


def test_close_without_the_reason(peer):
    c = m.Client(peer(close_after(b"")).port, v5=True)
    with pytest.raises(AssertionError, match="closed without the DISCONNECT"):
        c.expect_refusal(m.DISCONNECT, (0x81,), required=True, timeout=5)


def test_refusal_reason_checked(peer):
    v5_disconnect = m.frame(m.DISCONNECT, 0, b"\x82\x00")
    c = m.Client(peer(close_after(v5_disconnect)).port, v5=True)
    with pytest.raises(AssertionError, match="0x81"):
        c.expect_refusal(m.DISCONNECT, (0x81,), required=True, timeout=5)


def test_close_inside_a_packet_is_reported(peer):
    c = m.Client(peer(close_after(b"\x20\x02\x00")).port)
    with pytest.raises(AssertionError, match="inside a packet"):
        c.recv(5)


def test_strings_from_the_server_are_strict_utf8(peer):
    bad = m.frame(m.PUBLISH, 0, m.utf8(b"a\xed\xa0\x80") + b"x")  # a surrogate
    c = m.Client(peer(close_after(bad)).port)
    with pytest.raises(ValueError):
        c.recv(5)


def test_ping_returns_what_came_before_pingresp(peer):
    def script(conn, peer):
        assert conn.recv(2) == b"\xc0\x00"
        conn.sendall(m.publish("t", b"early") + m.frame(m.PINGRESP, 0, b""))
    c = m.Client(peer(script).port)
    got = c.ping(5)
    assert [(p.type, p.payload) for p in got] == [(m.PUBLISH, b"early")]
