"""Independent NATS clients against nats-server 2.9 and ward (issue 13):
Debian's nats.go 1.22 and nats.c (libnats 3.4), built at test time from
tests/integration/nats/. Each program runs one scenario, checks what it
received itself and prints "ok MODE"; the test checks the exit status and
that line."""
import select
import subprocess

import pytest

MODES = ["pubsub", "queue", "request", "drain"]


def run(cmd, timeout=60):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("mode", MODES)
def test_nats_go(nk, nats_build, mode):
    """pubsub: 100 messages in order and one with headers (a repeated name)
    and 4 KB of binary; queue: two groups of three; request: nats.go's muxed
    inbox with headers, a queue-group responder followed by `+ACK` to the
    same inbox, a request from the responder's own connection (echo),
    ErrNoResponders; drain: messages in flight delivered, then UNSUB and
    close."""
    exe = nats_build("goclient.go")
    b = nk()
    rc, out = run([exe, "-url", "nats://127.0.0.1:%d" % b.port, "-mode", mode])
    assert rc == 0 and out.strip().endswith("ok " + mode), out


@pytest.mark.parametrize("mode", MODES)
def test_nats_c(nk, nats_build, mode):
    """The same scenarios with nats.c (request: its shared inbox and
    NATS_NO_RESPONDERS; no +ACK)."""
    exe = nats_build("cclient.c")
    b = nk()
    rc, out = run([exe, "nats://127.0.0.1:%d" % b.port, mode])
    assert rc == 0 and out.strip().endswith("ok " + mode), out


def test_nats_go_reconnect(nk, nats_build):
    """nats.go reconnects to a server restarted on the same address and
    re-subscribes; its subscription works again."""
    exe = nats_build("goclient.go")
    b = nk()
    p = subprocess.Popen([exe, "-url", "nats://127.0.0.1:%d" % b.port, "-mode", "reconnect"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert select.select([p.stdout], [], [], 20)[0], "the client did not get ready"
        line = p.stdout.readline()
        assert line.strip() == "ready", line + p.stdout.read()
        b.stop()
        nk(port=b.port)
        out, _ = p.communicate(timeout=40)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and out.strip().endswith("ok reconnect"), out
