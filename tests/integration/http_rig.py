"""A ward with MQTT (TCP and mutual TLS), NATS and the admin HTTP server,
for the tests of /metrics (test_http_metrics.py) and the JSON API
(test_http_v4.py). Keys are made with `ward apikey add` at test time."""
import http.client
import json
import os
import socket
import subprocess
import time

from conftest import WARD, free_port, wait_port


def add_key(path, name, scope):
    r = subprocess.run([WARD, "apikey", "add", str(path), name, "--scope", scope],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Rig:
    def __init__(self, ward_factory, tmp_path, pki=None, http_extra="", extra="", data=False):
        self.port, self.nats_port, self.http_port = free_port(), free_port(), free_port()
        self.tls_port = free_port() if pki else None
        keys = tmp_path / "api.keys"
        self.admin_key = add_key(keys, "ops", "admin")
        self.read_key = add_key(keys, "grafana", "read")
        conf = ('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                'listeners.nats { bind = "127.0.0.1:%d" }\n' % (self.port, self.nats_port))
        if pki:
            conf += ('listeners.ssl.devices {\n bind = "127.0.0.1:%d"\n keyfile = "%s"\n'
                     ' certfile = "%s"\n cacertfile = "%s"\n crlfile = "%s"\n verify_peer = true\n'
                     ' fail_if_no_peer_cert = true\n}\n'
                     % (self.tls_port, pki["server_key"], pki["server_crt"], pki["ca"],
                        pki["crl"]))
        conf += ('http {\n bind = "127.0.0.1:%d"\n api_keys = {include "%s"}\n%s\n}\n%s'
                 % (self.http_port, keys, http_extra, extra))
        path = tmp_path / "ward.conf"
        path.write_text(conf)
        args = ["-c", str(path)] + (["--data", str(tmp_path / "data")] if data else [])
        self.w = ward_factory(args, port=self.port, listen=False).start(wait=False)
        for p in (self.port, self.nats_port, self.http_port) + ((self.tls_port,) if pki else ()):
            assert wait_port(p, proc=self.w.proc), self.w.read_log()
        self.w.wait_log("admin: serving")

    def request(self, method, path, key="admin", body=None):
        headers = {}
        if key:
            headers["Authorization"] = "Bearer " + (self.admin_key if key == "admin"
                                                    else self.read_key)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, r.getheader("Content-Type"), data

    def json(self, method, path, key="admin", body=None, want=200):
        st, ct, data = self.request(method, path, key, body)
        assert st == want, (method, path, st, data)
        assert ct.startswith("application/json"), ct
        return json.loads(data)


def wait_until(fn, timeout=5.0, what="condition"):
    """Polls fn (bounded) until it returns something true; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def raw_mqtt_connect(port, client_id, clean=True, level=4):
    """A minimal MQTT CONNECT on a raw socket; returns it after the CONNACK."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    cid = client_id.encode()
    var = b"\x00\x04MQTT" + bytes([level, 0x02 if clean else 0x00, 0, 60])
    if level == 5:
        var += b"\x00"
    payload = len(cid).to_bytes(2, "big") + cid
    body = var + payload
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = read_exact(s, 2)
    assert ack[:1] == b"\x20", ack
    read_exact(s, ack[1])  # flags, code (and v5 properties)
    return s


def read_exact(s, n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            break
        data += more
    return data
