"""The status page (GET /) in a real browser: headless Chromium (Debian's
`chromium`) loads it from a running ward with MQTT traffic, a refused TLS
client and a refused login, and the test reads what the page shows from
its DOM. A screenshot is kept as build/artifacts/status-page.png."""
import html.parser
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
import pytest

from conftest import ROOT, WARD, free_port, wait_port
from tls_pki import make_pki

CHROMIUM = shutil.which("chromium")
ARTIFACTS = os.path.join(ROOT, "build", "artifacts")
SUBSCRIBERS = 3


def api_key(path):
    r = subprocess.run([WARD, "apikey", "add", path, "page", "--scope", "read"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[0]


def passwd(path, user, password):
    r = subprocess.run([WARD, "passwd", path, user], input=password + "\n", text=True,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def get_status(http, key):
    rq = urllib.request.Request("http://127.0.0.1:%d/api/status" % http,
                                headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(rq, timeout=5) as r:
        return json.load(r)


def wait_status(http, key, cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        st = get_status(http, key)
        if cond(st):
            return st
        time.sleep(0.2)
    raise AssertionError("%s: not within %.0f s; last status: %s" % (what, timeout, st))


def connect(port, cid, user=None, password=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid) \
        if hasattr(mqtt, "CallbackAPIVersion") else mqtt.Client(client_id=cid)
    if user:
        c.username_pw_set(user, password)
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_start()
    return c


class Dom(html.parser.HTMLParser):
    """The text of the elements the test reads: by id, and each table's
    body rows as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.ids, self.tables = {}, {}
        self.stack, self.table, self.row, self.cell = [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("br", "meta", "input", "img", "path", "line"):
            return
        self.stack.append([a.get("id"), ""])
        if tag == "table":
            self.table = a.get("id")
            self.tables[self.table] = []
        elif tag == "tr" and self.table:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("br", "meta", "input", "img", "path", "line"):
            return
        if tag == "td" and self.row is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.row:
                self.tables[self.table].append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None
        if self.stack:
            ident, text = self.stack.pop()
            if ident:
                self.ids[ident] = text.strip()
            if self.stack:
                self.stack[-1][1] += text

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][1] += data
        if self.cell is not None:
            self.cell += data


def chromium(tmp_path, url, *args):
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--disable-background-networking",
           "--user-data-dir=" + str(tmp_path / "chromium"), "--window-size=1280,900",
           "--virtual-time-budget=8000"] + list(args) + [url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture
def broker(ward_factory, tmp_path):
    pki = make_pki(str(tmp_path / "pki"))
    key = api_key(str(tmp_path / "keys"))
    passwd(str(tmp_path / "pw.conf"), "alice", "alice-pw")
    port, tls, http, nobody = free_port(), free_port(), free_port(), free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text(
        'listeners.tcp { bind = "127.0.0.1:%d" }\n'
        'listeners.ssl.devices {\n  bind = "127.0.0.1:%d"\n  keyfile = "%s"\n  certfile = "%s"\n'
        '  cacertfile = "%s"\n  verify_peer = true\n  fail_if_no_peer_cert = true\n}\n'
        'auth {\n  allow_anonymous = true\n  password = {include "pw.conf"}\n}\n'
        'http {\n  bind = "127.0.0.1:%d"\n  api_keys = {include "keys"}\n}\n'
        # An upstream nobody listens on: the page shows the bridge down.
        'bridges.mqtt.cloud {\n  server = "mqtt-tcp://127.0.0.1:%d"\n  connect_timeout = "1s"\n'
        '  backoff_max = "2s"\n  forwards = [ { local_topic = "plant/#", remote_topic = "site/#", qos = 1 } ]\n}\n'
        % (port, tls, pki["server_key"], pki["server_crt"], pki["ca_bundle"], http, nobody))
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    for p in (port, tls, http):
        assert wait_port(p, proc=w.proc, timeout=15), "ward is not listening:\n" + w.read_log()
    w.tls_port, w.http, w.key, w.pki, w.nobody = tls, http, key, pki, nobody
    return w


def refuse_tls(b):
    """A client whose certificate no trusted CA issued."""
    ctx = ssl.create_default_context(cafile=b.pki["ca"])
    ctx.load_cert_chain(b.pki["client_rogue_crt"], b.pki["client_rogue_key"])
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.recv(1)  # TLS 1.3: the server's refusal comes after the client's Finished


def refuse_login(b):
    got = threading.Event()
    rc = []

    def on_connect(c, userdata, flags, reason, *rest):
        rc.append(reason)
        got.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder") \
        if hasattr(mqtt, "CallbackAPIVersion") else mqtt.Client(client_id="intruder")
    c.on_connect = on_connect
    c.username_pw_set("alice", "wrong")
    c.connect("127.0.0.1", b.port, keepalive=60)
    c.loop_start()
    assert got.wait(10), "no CONNACK"
    c.loop_stop()
    c.disconnect()
    assert rc and int(getattr(rc[0], "value", rc[0])) != 0


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_status_page_in_chromium(broker, tmp_path):
    b = broker
    subs = [connect(b.port, "sub-%d" % i) for i in range(SUBSCRIBERS)]
    for s in subs:
        s.subscribe("plant/#", qos=0)
    pub = connect(b.port, "pub", "alice", "alice-pw")
    stop = threading.Event()

    def traffic():
        n = 0
        while not stop.is_set() and n < 100000:
            pub.publish("plant/line-%d/temp" % (n % 4), b"21.5", qos=0)
            n += 1
            stop.wait(0.005)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        refuse_tls(b)
        refuse_login(b)
        want_conns = SUBSCRIBERS + 1
        # Two samples make the first interval of the charts (5 s apart).
        st = wait_status(b.http, b.key, lambda s: s["connections"] == want_conns and
                         len(s["refusals"]["latest"]) >= 2 and
                         s["bridges"] and s["bridges"][0]["last_error"] and
                         len(s["history"]["points"]) >= 2 and
                         s["history"]["points"][-1]["msgs_out"] > 0,
                         "connections, refusals and two rate samples")
        causes = [r["cause"] for r in st["refusals"]["latest"]]
        assert any("unknown CA" in c for c in causes), causes

        url = "http://127.0.0.1:%d/#key=%s" % (b.http, b.key)
        dom = Dom()
        dom.feed(chromium(tmp_path, url, "--dump-dom"))
        assert dom.ids.get("connections") == str(want_conns), dom.ids
        assert dom.ids.get("state") == "live", dom.ids
        assert "version " in dom.ids.get("meta", ""), dom.ids
        listeners = dom.tables["listeners"]
        tls_row = [r for r in listeners if r[0] == "tls://127.0.0.1:%d" % b.tls_port]
        assert tls_row, listeners
        assert tls_row[0][1:4] == ["MQTT", "tls", "mutual TLS"], tls_row
        assert "days left" in tls_row[0][4], tls_row
        plain = [r for r in listeners if r[0] == "tcp://127.0.0.1:%d" % b.port]
        assert plain and plain[0][3] == "none" and plain[0][5] == str(want_conns), listeners
        refusals = dom.tables["refusals"]
        tls_refusal = [r for r in refusals if "unknown CA" in r[3]]
        assert tls_refusal and tls_refusal[0][1] == "tls://127.0.0.1:%d" % b.tls_port, refusals
        login = [r for r in refusals if "intruder" in r[2]]
        assert login and login[0][1] == "tcp://127.0.0.1:%d" % b.port, refusals
        bridges = dom.tables["bridges"]
        assert len(bridges) == 1 and bridges[0][0] == "cloud", bridges
        assert bridges[0][1] == "mqtt-tcp://127.0.0.1:%d" % b.nobody or \
            bridges[0][1].endswith(":%d" % b.nobody), bridges
        assert bridges[0][2] == "down" and bridges[0][8], bridges  # with its last error

        # The same page without a key asks for one and shows no data.
        bare = Dom()
        bare.feed(chromium(tmp_path, "http://127.0.0.1:%d/" % b.http, "--dump-dom"))
        assert bare.ids.get("state") == "key needed", bare.ids
        assert bare.ids.get("connections") == "–", bare.ids

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "status-page.png")
        chromium(tmp_path, url, "--screenshot=" + shot)
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        stop.set()
        t.join(5)
        for c in subs + [pub]:
            c.loop_stop()
            c.disconnect()


def test_api_status_needs_a_read_key(broker):
    b = broker
    url = "http://127.0.0.1:%d/api/status" % b.http
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=5)
    assert e.value.code == 401
    rq = urllib.request.Request(url, headers={"Authorization": "Bearer wk_nope"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(rq, timeout=5)
    assert e.value.code == 401
    st = get_status(b.http, b.key)
    assert st["version"] and st["history"]["interval_s"] == 5
    # The page itself is open: it holds no data.
    with urllib.request.urlopen("http://127.0.0.1:%d/" % b.http, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert b"<!DOCTYPE html>" in r.read()
