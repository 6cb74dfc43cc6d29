"""The admin HTTP server (issue 16): listener, authentication, health,
`ward apikey`, `ward status`, and hostile HTTP. The broker is the real binary;
the clients are Python's http.client, ssl and raw sockets, and mosquitto_pub
for the MQTT side. The PKI is made at test time by tls_pki.py."""
import base64
import http.client
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import time

import pytest

from conftest import WARD, free_port, wait_port
import tls_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def ward_cli(*args, stdin=None):
    return subprocess.run([WARD, *args], capture_output=True, text=True, timeout=30, input=stdin)


def add_key(path, name, scope):
    r = ward_cli("apikey", "add", str(path), name, "--scope", scope)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Admin:
    """A broker with an MQTT listener and the admin server, from a config."""

    def __init__(self, ward_factory, tmp_path, http_block, extra="", data=True, name="w.conf"):
        self.port = free_port()
        self.http_port = free_port()
        self.data = tmp_path / ("data-" + name)
        conf = tmp_path / name
        conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nhttp {\n bind = "127.0.0.1:%d"\n'
                        '%s\n}\n%s' % (self.port, self.http_port, http_block, extra))
        args = ["-c", str(conf)] + (["--data", str(self.data)] if data else [])
        self.w = ward_factory(args, port=self.port, listen=False).start(wait=False)
        assert wait_port(self.port, proc=self.w.proc), self.w.read_log()
        assert wait_port(self.http_port, proc=self.w.proc), self.w.read_log()
        self.w.wait_log(" serving with ")  # ready: after the listeners, store and bridges

    def request(self, method, path, headers=None, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data


def bearer(key):
    return {"Authorization": "Bearer " + key}


def basic(user, key):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, key)).encode()).decode()}


def mqtt_works(port):
    r = subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", "t/alive", "-m", "1"],
                       capture_output=True, text=True, timeout=15)
    return r.returncode == 0


# ---- the listener and health ----------------------------------------------

def test_off_unless_configured_then_health_open_on_loopback(ward_factory, tmp_path):
    w = ward_factory().start()
    assert "admin: serving" not in w.read_log()
    hp = free_port()
    w2 = ward_factory(["--http", "127.0.0.1:%d" % hp]).start()
    assert wait_port(hp, proc=w2.proc)
    w2.wait_log(" serving with ")
    c = http.client.HTTPConnection("127.0.0.1", hp, timeout=5)
    c.request("GET", "/healthz")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    # keep-alive: the same connection answers again
    c.request("GET", "/readyz")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"status": "ready"}
    c.request("GET", "/no/such/path")
    r = c.getresponse()
    assert r.status == 404 and json.loads(r.read())["code"] == 404
    c.request("DELETE", "/healthz")
    r = c.getresponse()
    r.read()
    assert r.status == 405 and r.getheader("Allow") == "GET"
    c.close()


# ---- authentication ---------------------------------------------------------

def test_keys_scopes_bearer_basic_and_revocation(ward_factory, tmp_path):
    keys = tmp_path / "api.keys"
    ops = add_key(keys, "ops", "admin")
    ro = add_key(keys, "grafana", "read")
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    assert ops not in keys.read_text() and ro not in keys.read_text()
    a = Admin(ward_factory, tmp_path, 'api_keys = {include "%s"}\nopen_health = false' % keys)
    st, hdr, body = a.request("GET", "/readyz")
    assert st == 401 and "Bearer" in hdr["WWW-Authenticate"] and "Basic" in hdr["WWW-Authenticate"]
    assert a.request("GET", "/readyz", bearer(ro))[0] == 200
    assert a.request("GET", "/readyz", bearer(ops))[0] == 200
    assert a.request("GET", "/readyz", basic("grafana", ro))[0] == 200
    assert a.request("GET", "/readyz", basic("ops", ro))[0] == 401  # another key's name
    assert a.request("GET", "/readyz", bearer(ro + "x"))[0] == 401
    assert a.request("GET", "/readyz", bearer("wk_" + "A" * 43))[0] == 401
    # The refusals are logged, escaped, with the peer.
    a.w.wait_log("GET /readyz: 401")
    # Revoked: removed from the file, gone after SIGHUP.
    r = ward_cli("apikey", "remove", str(keys), "grafana")
    assert r.returncode == 0, r.stderr
    a.w.signal(signal.SIGHUP)
    a.w.wait_log("reload:")
    deadline = time.monotonic() + 5
    while a.request("GET", "/readyz", bearer(ro))[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.05)  # the reload runs on the signal thread: wait for it to land
    assert a.request("GET", "/readyz", bearer(ro))[0] == 401
    assert a.request("GET", "/readyz", bearer(ops))[0] == 200


def test_apikey_cli(tmp_path):
    f = tmp_path / "k"
    r = ward_cli("apikey", "add", str(f), "a", "--scope", "read")
    assert r.returncode == 0 and r.stdout.startswith("wk_") and len(r.stdout.strip()) == 46
    assert "shown only this once" in r.stderr
    assert ward_cli("apikey", "add", str(f), "b", "--scope", "admin").returncode == 0
    r = ward_cli("apikey", "list", str(f))
    assert r.stdout.splitlines() == ["a\tread", "b\tadmin"]
    assert ward_cli("apikey", "remove", str(f), "a").returncode == 0
    assert ward_cli("apikey", "list", str(f)).stdout.splitlines() == ["b\tadmin"]
    # Refusals
    assert ward_cli("apikey", "remove", str(f), "a").returncode == 1
    assert ward_cli("apikey", "add", str(f), "c").returncode == 2  # no --scope
    assert ward_cli("apikey", "add", str(f), "c", "--scope", "root").returncode == 2
    assert ward_cli("apikey", "add", str(f), "bad:name", "--scope", "read").returncode == 1
    assert ward_cli("apikey", "list", str(tmp_path / "absent")).returncode == 1


def test_nanomq_http_server_block(ward_factory, tmp_path):
    port, hp = free_port(), free_port()
    conf = tmp_path / "n.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nhttp_server {\n port = %d\n'
                    ' limit_conn = 8\n username = admin\n password = "long-enough-secret"\n'
                    ' auth_type = basic\n jwt { public.keyfile = "/nonexistent" }\n}\n' % (port, hp))
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(hp, proc=w.proc), w.read_log()
    w.wait_log(" serving with ")
    c = http.client.HTTPConnection("127.0.0.1", hp, timeout=5)
    c.request("GET", "/readyz", headers=basic("admin", "long-enough-secret"))
    assert c.getresponse().status == 200
    assert "http_server.jwt: NanoMQ setting not used by ward; ignored" in w.read_log()
    # NanoMQ's well-known default password is never accepted.
    conf2 = tmp_path / "n2.conf"
    port2, hp2 = free_port(), free_port()
    conf2.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nhttp_server {\n port = %d\n'
                     ' username = admin\n password = public\n}\nhttp.open_health = false\n'
                     % (port2, hp2))
    w2 = ward_factory(["-c", str(conf2)], port=port2, listen=False).start(wait=False)
    assert wait_port(hp2, proc=w2.proc), w2.read_log()
    c = http.client.HTTPConnection("127.0.0.1", hp2, timeout=5)
    c.request("GET", "/readyz", headers=basic("admin", "public"))
    assert c.getresponse().status == 401
    assert "NanoMQ's default 'public': not accepted" in w2.read_log()


# ---- HTTPS and mutual TLS -----------------------------------------------------

def tls_ctx(pki, cert=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(pki[cert + "_crt"], pki[cert + "_key"])
    return ctx


def https_get(port, path, ctx, headers=None, method="GET"):
    c = http.client.HTTPSConnection("localhost", port, timeout=5, context=ctx)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def test_mtls_ou_scopes(ward_factory, tmp_path, pki):
    keys = tmp_path / "k"
    ro = add_key(keys, "ro", "read")
    block = ('certfile = "%s"\nkeyfile = "%s"\ncacertfile = "%s"\ncrlfile = "%s"\n'
             'verify_peer = true\nfail_if_no_peer_cert = false\nread_ou = "Devices"\n'
             'open_health = false\napi_keys = {include "%s"}'
             % (pki["server_crt"], pki["server_key"], pki["ca_bundle"], pki["crl"], keys))
    a = Admin(ward_factory, tmp_path, block)
    # A verified certificate with OU=Devices has the read scope.
    assert https_get(a.http_port, "/readyz", tls_ctx(pki, "client")) == 200
    # A verified certificate without a mapped OU: nothing, unless a key is sent.
    assert https_get(a.http_port, "/readyz", tls_ctx(pki, "client_obs")) == 401
    assert https_get(a.http_port, "/readyz", tls_ctx(pki, "client_obs"), bearer(ro)) == 200
    # No certificate: keys only.
    assert https_get(a.http_port, "/readyz", tls_ctx(pki)) == 401
    # A revoked certificate never gets as far as HTTP.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https_get(a.http_port, "/readyz", tls_ctx(pki, "client_revoked"))
    # Plain HTTP on the HTTPS port is refused, and the server goes on.
    with socket.create_connection(("127.0.0.1", a.http_port), timeout=5) as s:
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")
    assert https_get(a.http_port, "/readyz", tls_ctx(pki, "client")) == 200
    # read_ou is not admin: an admin endpoint is 403 for that certificate.
    assert https_get(a.http_port, "/api/v4/sessions/nobody", tls_ctx(pki, "client"),
                     method="DELETE") == 403
    # ward status over https with the CA
    r = ward_cli("status", "--url", "https://localhost:%d" % a.http_port, "--cafile", pki["ca"],
                 "--key", ro)
    assert r.returncode == 0 and "alive, ready" in r.stdout, r.stdout + r.stderr


def test_mtls_admin_ou_and_required_certificates(ward_factory, tmp_path, pki):
    block = ('certfile = "%s"\nkeyfile = "%s"\ncacertfile = "%s"\nverify_peer = true\n'
             'fail_if_no_peer_cert = true\nadmin_ou = "Devices"\nopen_health = false'
             % (pki["server_crt"], pki["server_key"], pki["ca_bundle"]))
    a = Admin(ward_factory, tmp_path, block)
    ctx = tls_ctx(pki, "client")
    assert https_get(a.http_port, "/readyz", ctx) == 200  # admin includes read
    assert https_get(a.http_port, "/api/v4/sessions/nobody", ctx, method="DELETE") == 404
    assert https_get(a.http_port, "/readyz", tls_ctx(pki, "client_obs")) == 401
    # Mutual TLS required: no certificate, no HTTP at all.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https_get(a.http_port, "/readyz", tls_ctx(pki))
    # A certificate from another CA neither.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https_get(a.http_port, "/readyz", tls_ctx(pki, "client_rogue"))
    assert https_get(a.http_port, "/readyz", ctx) == 200


# ---- ward status ---------------------------------------------------------------

def test_ward_status_with_the_local_key_file(ward_factory, tmp_path):
    a = Admin(ward_factory, tmp_path, "open_health = false")
    kf = a.data / "admin.key"
    assert stat.S_IMODE(os.stat(kf).st_mode) == 0o600
    r = ward_cli("status", "--data", str(a.data))
    assert r.returncode == 0 and "alive, ready" in r.stdout, r.stdout + r.stderr
    r = ward_cli("status", "--data", str(a.data), "--json")
    doc = json.loads(r.stdout)
    assert doc["ready"] is True and doc["url"] == "http://127.0.0.1:%d" % a.http_port
    # Health open, no key: alive and ready, and a hint for the figures.
    b = Admin(ward_factory, tmp_path, "", name="open.conf")
    r = ward_cli("status", "--url", "http://127.0.0.1:%d" % b.http_port)
    assert r.returncode == 0 and "figures need a key" in r.stdout, r.stdout
    # Without a key: refused, exit 3.
    r = ward_cli("status", "--url", "http://127.0.0.1:%d" % a.http_port)
    assert r.returncode == 3 and "refused" in r.stdout
    # Nobody there: exit 1.
    r = ward_cli("status", "--url", "http://127.0.0.1:%d" % free_port(), "--key", "x")
    assert r.returncode == 1 and "unreachable" in r.stdout
    a.w.stop()
    assert not kf.exists()  # the key dies with the broker


# ---- hostile HTTP ---------------------------------------------------------------

HOSTILE = ("request_timeout = 1s\nidle_timeout = 2s\nmax_connections = 16\n")


def raw(port, data, wait_close=True, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if data:
        s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if not wait_close and b"\r\n\r\n" in out:
                break
    except OSError:
        pass
    s.close()
    return out


def test_hostile_http_leaves_broker_and_admin_serving(ward_factory, tmp_path):
    a = Admin(ward_factory, tmp_path, HOSTILE)
    hp = a.http_port
    # Huge headers: 431 and closed.
    assert raw(hp, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n").startswith(
        b"HTTP/1.1 431")
    # 10,000 headers.
    assert raw(hp, b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 10000 + b"\r\n").startswith(
        b"HTTP/1.1 431")
    # Bad methods and versions.
    assert raw(hp, b"BREW /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 405")
    assert raw(hp, b"G\x00T / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(hp, b"GET / HTTP/9.9\r\n\r\n").startswith(b"HTTP/1.1 505")
    # Binary garbage.
    assert raw(hp, os.urandom(4096) + b"\r\n\r\n").startswith(b"HTTP/1.1 4")
    # Pipelined requests, answered in order.
    out = raw(hp, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 50 +
              b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 50 and out.rfind(b"HTTP/1.1 404") > out.rfind(b"200 OK")
    # Slow headers: 408 after request_timeout, then closed.
    t0 = time.monotonic()
    assert raw(hp, b"GET /healthz HTTP/1.1\r\nHo").startswith(b"HTTP/1.1 408")
    assert 0.8 < time.monotonic() - t0 < 4
    # A half-open flood up to max_connections: the admin and MQTT keep
    # serving while they hold all but one slot; past the limit a new
    # connection is closed at once; when they time out the slots come back.
    flood = [socket.create_connection(("127.0.0.1", hp), timeout=5) for _ in range(15)]
    assert mqtt_works(a.port)
    st, _, _ = a.request("GET", "/healthz")
    assert st == 200
    flood.append(socket.create_connection(("127.0.0.1", hp), timeout=5))
    extra = socket.create_connection(("127.0.0.1", hp), timeout=5)
    assert extra.recv(10) == b""  # refused: max_connections reached
    extra.close()
    for s in flood:  # each is answered 408 and closed within request_timeout
        assert s.recv(100).startswith(b"HTTP/1.1 408")
        s.close()
    assert a.request("GET", "/healthz")[0] == 200
    assert mqtt_works(a.port)
    assert a.w.alive()
    deadline = time.monotonic() + 10  # the logger thread writes a moment later
    while not ("more refusals not logged" in a.w.read_log() or "408" in a.w.read_log()):
        assert time.monotonic() < deadline, a.w.read_log()
        time.sleep(0.02)


def test_body_limit_and_keepalive_idle(ward_factory, tmp_path):
    a = Admin(ward_factory, tmp_path, HOSTILE + "max_body = 1KB\n")
    out = raw(a.http_port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413")
    out = raw(a.http_port, b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501")
    # An idle keep-alive connection is closed after idle_timeout, silently.
    s = socket.create_connection(("127.0.0.1", a.http_port), timeout=6)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(1000)
    assert first.startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert s.recv(100) == b""
    assert 1.5 < time.monotonic() - t0 < 5
    s.close()


def test_ward_check_status_reads_the_api(ward_factory, tmp_path):
    a = Admin(ward_factory, tmp_path, "open_health = false",
              extra='persistence.dir = "%s"\n' % (tmp_path / "pdir"), data=False)
    r = ward_cli("check", "-c", str(tmp_path / "w.conf"), "--status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "# the running broker, from its admin API:" in r.stdout
    assert "http://127.0.0.1:%d: alive, ready" % a.http_port in r.stdout
    # A wrong key is refused (exit 3), not taken for "nothing yet".
    r = ward_cli("check", "-c", str(tmp_path / "w.conf"), "--status", "--key", "wk_wrong")
    assert r.returncode == 3 and "refused" in r.stdout


READ_ENDPOINTS = ["/healthz", "/readyz", "/metrics", "/api/v4/prometheus", "/api/v4/clients",
                  "/api/v4/clients/nobody", "/api/v4/subscriptions", "/api/v4/retained",
                  "/api/v4/retained/a%2Fb", "/api/v4/sessions", "/api/v4/sessions/nobody",
                  "/api/v4/bridges", "/api/v4/tls", "/api/v4/brokers", "/varz", "/connz",
                  "/subsz"]
ADMIN_ENDPOINTS = [("DELETE", "/api/v4/clients/nobody"), ("DELETE", "/api/v4/retained/a%2Fb"),
                   ("DELETE", "/api/v4/sessions/nobody"), ("POST", "/api/v4/mqtt/publish"),
                   ("POST", "/api/v4/reload")]


def test_every_endpoint_with_and_without_the_right_key_and_scope(ward_factory, tmp_path):
    keys = tmp_path / "k"
    ops, ro = add_key(keys, "ops", "admin"), add_key(keys, "ro", "read")
    a = Admin(ward_factory, tmp_path, 'api_keys = {include "%s"}\nopen_health = false' % keys)
    for path in READ_ENDPOINTS:
        st, _, _ = a.request("GET", path)
        if st == 404 and path == "/metrics":
            continue  # served by the adminapi branch once it lands
        assert st == 401, path
        for hdr in (bearer(ro), basic("ro", ro), bearer(ops), basic("ops", ops)):
            st, _, _ = a.request("GET", path, hdr)
            assert st in (200, 404), (path, st)  # 404: the named client/session/topic is absent
        assert a.request("GET", path, bearer(ro + "x"))[0] == 401, path
    body = json.dumps({"topic": "t/api", "payload": "x", "qos": 0})
    for method, path in ADMIN_ENDPOINTS:
        hb = {"Content-Type": "application/json"}
        assert a.request(method, path, hb, body)[0] == 401, path
        assert a.request(method, path, dict(hb, **bearer(ro)), body)[0] == 403, path
        assert a.request(method, path, dict(hb, **basic("ro", ro)), body)[0] == 403, path
        st = a.request(method, path, dict(hb, **bearer(ops)), body)[0]
        assert st not in (401, 403), (path, st)
    # /metrics opened by the listener setting
    b = Admin(ward_factory, tmp_path, 'api_keys = {include "%s"}\nopen_metrics = true\n'
              'open_health = false' % keys, name="m.conf")
    assert b.request("GET", "/api/v4/prometheus")[0] == 200
    assert b.request("GET", "/api/v4/clients")[0] == 401
    assert b.request("GET", "/healthz")[0] == 401


def test_status_figures_move_with_traffic(ward_factory, tmp_path):
    a = Admin(ward_factory, tmp_path, "")
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(a.port), "-t", "fig/#", "-q", "1", "-C",
                            "3", "-W", "10"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait for the subscription to be in place
        doc = json.loads(ward_cli("status", "--data", str(a.data), "--json").stdout)
        if doc.get("subscriptions", 0) >= 1:
            break
        time.sleep(0.05)
    assert doc["connections_mqtt"] == 1 and doc["sessions_online"] == 1
    for i in range(3):
        assert subprocess.run(["mosquitto_pub", "-p", str(a.port), "-t", "fig/%d" % i, "-m", "x",
                               "-q", "1"], timeout=10).returncode == 0
    sub.wait(timeout=15)
    doc = json.loads(ward_cli("status", "--data", str(a.data), "--json").stdout)
    assert doc["messages_received"] >= 3 and doc["messages_sent"] >= 3
    text = ward_cli("status", "--data", str(a.data)).stdout
    assert "listener %d: mqtt over tcp" % a.port in text


def test_ward_check_refuses_what_the_admin_server_could_not_start_with(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('http {\n bind = "nope"\n verify_peer = true\n admin_ou = x\n'
                   ' fail_if_no_peer_cert = true\n keyfile = k\n}\n')
    r = ward_cli("check", "-c", str(bad))
    assert r.returncode == 1
    for cause in ("http.bind: 'nope' is not HOST:PORT", "HTTPS needs both certfile and keyfile",
                  "verify_peer needs cacertfile", "need HTTPS: certfile and keyfile"):
        assert cause in r.stderr, r.stderr
    keys = tmp_path / "k"
    keys.write_text("format:ward-apikeys-1\nx:root:$hs256$a$b\n")
    conf = tmp_path / "k.conf"
    conf.write_text('http {\n bind = "127.0.0.1:1"\n api_keys = {include "%s"}\n}\n' % keys)
    r = ward_cli("check", "-c", str(conf))
    assert r.returncode == 1 and "k:2: the scope is read or admin" in r.stderr, r.stderr
    # ward serve refuses to start on it too, saying why.
    r = subprocess.run([WARD, "serve", "-c", str(conf), "-l", "tcp://127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "the scope is read or admin" in r.stderr


def test_ready_with_a_bridge_whose_upstream_is_down(ward_factory, tmp_path):
    down = free_port()  # nothing listens there
    bridge = ('bridges.mqtt.cloud {\n  server = "mqtt-tcp://127.0.0.1:%d"\n  connect_timeout = 1s\n'
              '  backoff_max = 2s\n  forwards = [ { remote_topic = "up/#", local_topic = "up/#",'
              ' qos = 1 } ]\n}\n' % down)
    a = Admin(ward_factory, tmp_path, "", extra=bridge)
    a.w.wait_log("cloud")  # the bridge tried and failed at least once
    st, _, body = a.request("GET", "/readyz")
    assert st == 200 and json.loads(body) == {"status": "ready"}
    text = ward_cli("status", "--data", str(a.data)).stdout
    assert "bridge cloud: down" in text, text


def test_expect_100_continue(ward_factory, tmp_path):
    """curl sends bodies over 1 KiB after "Expect: 100-continue" and waits for
    the 100 (a second otherwise)."""
    keys = tmp_path / "k"
    ops = add_key(keys, "ops", "admin")
    a = Admin(ward_factory, tmp_path, 'api_keys = {include "%s"}' % keys)
    body = json.dumps({"topic": "t/100", "payload": "x" * 2000, "qos": 0}).encode()
    s = socket.create_connection(("127.0.0.1", a.http_port), timeout=5)
    s.sendall(b"POST /api/v4/mqtt/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n"
              b"Expect: 100-continue\r\nConnection: close\r\n\r\n" % (ops.encode(), len(body)))
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    out = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    s.close()
    assert out.startswith(b"HTTP/1.1 200"), out
    # curl itself, as NanoMQ's scripts use it (Basic)
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                        "-u", "ops:" + ops, "-H", "Content-Type: application/json",
                        "-d", body.decode(), "http://127.0.0.1:%d/api/v4/mqtt/publish" % a.http_port],
                       capture_output=True, text=True, timeout=30)
    if r.returncode == 0:  # curl is not a required package
        code, secs = r.stdout.split()
        assert code == "200" and float(secs) < 0.9, r.stdout
