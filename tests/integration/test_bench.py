"""`ward bench` as a load generator users rely on: small bounded runs against
ward and mosquitto report exact counts, QoS 1 with nothing lost, duplicated
or out of order, and clear failures."""
import json
import socket
import subprocess
import threading

import pytest

import mqttwire

from conftest import WARD, free_port, wait_port


@pytest.fixture(params=["ward", "mosquitto"])
def broker(request):
    """Both brokers with queues large enough for these runs: the default of
    1000 queued messages per client (both have it) drops QoS 1 messages in a
    fan-in burst, by design, and the bench would rightly report the loss."""
    if request.param == "ward":
        return request.getfixturevalue("ward_factory")(["--max-queued", "100000"]).start()
    return request.getfixturevalue("mosquitto_factory")("max_queued_messages 100000")


def bench(*args, timeout=60):
    return subprocess.run([WARD, "bench"] + list(args), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("scenario, n", [("p2p", 4), ("fanin", 4), ("fanout", 4)])
@pytest.mark.parametrize("qos", [0, 1])
def test_counted_runs(broker, scenario, n, qos):
    r = bench(scenario, "-h", "127.0.0.1", "-p", str(broker.port), "-n", str(n), "-q", str(qos),
              "-c", "500", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    pubs = 1 if scenario == "fanout" else n
    factor = n if scenario == "fanout" else 1
    assert d["sent"] == 500 * pubs
    assert d["expected"] == d["sent"] * factor
    # On loopback at this size nothing is lost even at QoS 0.
    assert d["received"] == d["expected"]
    assert d["lost"] == d["duplicates"] == d["out_of_order"] == 0
    assert d["rate"] > 0 and d["p99_ms"] >= d["p50_ms"] >= 0


def test_text_report_and_rate(ward):
    r = bench("p2p", "-h", "127.0.0.1", "-p", str(ward.port), "-n", "2", "-q", "1", "-r", "200",
              "-d", "1")
    assert r.returncode == 0, r.stderr
    assert "msg/s delivered" in r.stdout and "lost 0" in r.stdout
    # 2 publishers at 200/s for a second: about 400 messages, not a flood.
    sent = int(r.stdout.split("sent ")[1].split()[0])
    assert 200 <= sent <= 600


def test_conn_mode(broker):
    r = bench("conn", "-h", "127.0.0.1", "-p", str(broker.port), "-n", "4", "-d", "1", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["connects"] > 10 and d["connect_errors"] == 0


def test_failures(ward):
    closed = free_port()
    r = bench("p2p", "-h", "127.0.0.1", "-p", str(closed), "-c", "10")
    assert r.returncode == 1 and "cannot connect" in r.stderr
    for bad in (["nosuch"], ["p2p", "-q", "2"], ["p2p", "-s", "5"], ["p2p", "extra"], []):
        r = bench(*bad)
        assert r.returncode == 2, bad
    assert bench("--help").returncode == 0


def test_refusal_is_reported(ward_factory):
    w = ward_factory(["--allow-anonymous", "false"]).start()
    r = bench("p2p", "-h", "127.0.0.1", "-p", str(w.port), "-n", "1", "-c", "5")
    assert r.returncode == 1 and "not authorized (0x05)" in r.stderr, r.stderr


def test_tls_rows(ward_factory, tmp_path):
    pki = str(tmp_path / "pki")
    assert subprocess.run([WARD, "cert", "dev", pki], capture_output=True).returncode == 0
    port = free_port()
    w = ward_factory(["-l", "mtls://127.0.0.1:%d" % port, "--certfile", pki + "/server.crt",
                      "--keyfile", pki + "/server.key", "--cafile", pki + "/ca.crt"],
                     port=port, listen=False).start(wait=False)
    tls = ["-h", "localhost", "-p", str(port), "--cafile", pki + "/ca.crt", "--cert",
           pki + "/client.crt", "--key", pki + "/client.key", "--json"]
    assert wait_port(port, proc=w.proc), w.read_log()
    full = json.loads(bench("conn", "-n", "2", "-d", "1", *tls).stdout)
    resumed = json.loads(bench("conn", "-n", "2", "-d", "1", "--resume", *tls).stdout)
    assert full["connects"] > 5 and resumed["connects"] > 5
    assert full["connect_errors"] == resumed["connect_errors"] == 0
    r = bench("p2p", "-n", "2", "-q", "1", "-c", "200", *tls)
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["received"] == d["expected"] == 400, r.stderr
    r = bench("idle", "-n", "50", "--hold", "0.5", *tls)
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[-1])["connects"] == 50
    # A storm over mTLS, offering the sessions of the dropped connections.
    r = bench("storm", "-n", "20", "--hold", "0", "--resume", *tls)
    d = json.loads(r.stdout.splitlines()[-1])
    assert r.returncode == 0 and d["connects"] == 20 and d["reconnect_s"] > 0, r.stderr
    # Without a client certificate the mTLS listener refuses: a clear error.
    r = bench("conn", "-n", "1", "-d", "1", "-h", "localhost", "-p", str(port), "--cafile",
              pki + "/ca.crt", "--json")
    d = json.loads(r.stdout)
    assert d["connects"] == 0 and d["connect_errors"] > 0


@pytest.mark.parametrize("version", ["3.1.1", "5"])
def test_persistent_sessions(broker, version):
    """--persistent: the brokers keep the sessions after the run (a client
    reconnecting with the subscriber's id and clean session false finds it),
    the topics are the run's own (a second run is not fed to the first
    run's sessions), and nothing is lost."""
    v5 = version == "5"
    pids = []
    for _ in range(2):
        p = subprocess.Popen([WARD, "bench", "p2p", "-h", "127.0.0.1", "-p", str(broker.port),
                              "-n", "2", "-q", "1", "-c", "300", "-V", version, "--persistent",
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        d = json.loads(out)
        assert d["persistent"] is True
        assert d["sent"] == d["received"] == 600 and d["lost"] == 0
        pids.append(p.pid)
    for pid in pids:
        c = mqttwire.Client(broker.port, v5=v5)
        props = [(mqttwire.SESSION_EXPIRY, 3600)] if v5 else None
        ack = c.handshake("bench-sub-0-%d" % pid, clean=False, props=props)
        assert ack.session_present
        # The first run's subscriber was not subscribed to the second run's
        # topic: nothing is waiting for it.
        assert c.recv(timeout=0.3) is None
        c.close()
    # Without the option the sessions are clean.
    r = bench("p2p", "-h", "127.0.0.1", "-p", str(broker.port), "-n", "1", "-q", "1", "-c", "10",
              "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["persistent"] is False


class Mute:
    """A fake broker on loopback: it answers every CONNECT with a CONNACK
    and then reads and ignores everything (PINGREQs unanswered), and notes
    the address each client came from. Its threads end with close()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.peers = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept)]
        self.threads[0].start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, addr = self.sock.accept()
            except socket.timeout:
                continue
            self.peers.append(addr[0])
            t = threading.Thread(target=self._serve, args=(c,))
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        c.settimeout(0.2)
        answered = False
        with c:
            while not self.stop.is_set():
                try:
                    data = c.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                if not answered:  # the CONNECT (3.1.1): accepted
                    c.sendall(bytes([0x20, 2, 0, 0]))
                    answered = True

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)
        self.sock.close()


@pytest.fixture
def mute():
    m = Mute()
    yield m
    m.close()


def test_storm(broker):
    """All 50 dropped at once without DISCONNECT and reconnected at once:
    every one back, none refused, CONNACK latencies reported."""
    r = bench("storm", "-h", "127.0.0.1", "-p", str(broker.port), "-n", "50", "--hold", "0",
              "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "connected 50"
    d = json.loads(r.stdout.splitlines()[-1])
    assert d["connects"] == 50 and d["refused"] == 0 and d["error"] == ""
    assert d["reconnect_s"] > 0 and d["p99_ms"] >= d["p50_ms"] > 0


def test_storm_refused_reconnect_fails(ward_factory):
    w = ward_factory(["--allow-anonymous", "false"]).start()
    r = bench("storm", "-h", "127.0.0.1", "-p", str(w.port), "-n", "5", "--hold", "0")
    assert r.returncode == 1 and "not authorized (0x05)" in r.stderr, r.stderr


def test_procs(broker):
    r = bench("idle", "-h", "127.0.0.1", "-p", str(broker.port), "-n", "100", "--procs", "2",
              "--hold", "0.2", "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "connected 100" and len(lines) == 2  # one line, one report
    d = json.loads(lines[-1])
    assert d["procs"] == 2 and d["connects"] == 100 and d["error"] == ""
    r = bench("conn", "-h", "127.0.0.1", "-p", str(broker.port), "-n", "4", "--procs", "2",
              "-d", "0.5", "--json")
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["connects"] > 4 and d["connect_errors"] == 0
    # A process that cannot connect fails the run, with its cause.
    r = bench("idle", "-h", "127.0.0.1", "-p", str(free_port()), "-n", "4", "--procs", "2")
    assert r.returncode == 1 and "cannot connect" in r.stderr, r.stderr
    for bad in (["p2p", "--procs", "2"], ["idle", "-n", "2", "--procs", "3"],
                ["idle", "--procs", "65"]):
        assert bench(*bad).returncode == 2, bad


def test_keepalive(ward):
    r = bench("idle", "-h", "127.0.0.1", "-p", str(ward.port), "-n", "5", "--keepalive", "1",
              "--hold", "2.5", "--connect-rate", "100", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.splitlines()[-1])
    assert d["keepalive_s"] == 1 and d["pings"] >= 5 and d["connects"] == 5
    assert d["pongs"] == d["pings"] and d["pings_missing"] == 0
    assert d["p99_ms"] >= d["p50_ms"] > 0


def test_keepalive_unanswered(mute):
    """A broker that never answers PINGREQ: the pings are counted missing
    and the run fails."""
    r = bench("idle", "-h", "127.0.0.1", "-p", str(mute.port), "-n", "2", "--keepalive", "1",
              "--hold", "2.5", "--json")
    assert r.returncode == 1 and "PINGRESP" in r.stderr, r.stderr
    d = json.loads(r.stdout.splitlines()[-1])
    assert d["pings_missing"] >= 2 and d["pongs"] == 0


def test_source_range(mute):
    r = bench("idle", "-h", "127.0.0.1", "-p", str(mute.port), "-n", "6", "--source",
              "127.0.0.2-127.0.0.4", "--hold", "0")
    assert r.returncode == 0, r.stderr
    # (the first connection is the generator's probe of the broker, from
    # the kernel's choice of address)
    assert sorted(mute.peers[1:]) == ["127.0.0.2"] * 2 + ["127.0.0.3"] * 2 + ["127.0.0.4"] * 2
    for bad in ("127.0.0.4-127.0.0.2", "0", "255", "localhost", "127.0.0.1-"):
        r = bench("idle", "--source", bad)
        assert r.returncode == 2 and "--source" in r.stderr, bad
    # An address this machine does not have: a clear error, not a hang.
    r = bench("idle", "-h", "127.0.0.1", "-p", str(mute.port), "-n", "1", "--source",
              "192.0.2.1")
    assert r.returncode == 1 and "cannot" in r.stderr, r.stderr
