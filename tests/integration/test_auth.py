"""Authentication and access control (issue 5): password file, anonymous
access, ACL rules on PUBLISH, SUBSCRIBE, wills, retained and live delivery,
rate limiting of failures, and SIGHUP reload. Wire-level checks use a small
raw client; paho-mqtt and mosquitto_pub check the same from independent
implementations."""
import os
import signal
import socket
import struct
import subprocess
import time

import paho.mqtt.client as paho
import pytest

from mqttwire import connect as _connect, s as _s, vbi as _vbi

from conftest import WARD, free_port, paho_connack, wait_port


# ---- a tiny raw MQTT client (just what these tests need) -----------------

class Raw:
    def __init__(self, port, v5=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.v5 = v5
        self.buf = b""

    def send(self, ptype, flags, body):
        self.sock.sendall(bytes([(ptype << 4) | flags]) + _vbi(len(body)) + body)

    def read(self, timeout=10):
        """One packet as (type, flags, body); None on close. Nothing at all
        before the deadline fails the test: a timeout is not a close."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                mult, n, i = 1, 0, 1
                while i < len(self.buf):
                    n += (self.buf[i] & 127) * mult
                    mult *= 128
                    if not self.buf[i] & 128:
                        break
                    i += 1
                if i < len(self.buf) and len(self.buf) >= i + 1 + n:
                    head, body = self.buf[0], self.buf[i + 1:i + 1 + n]
                    self.buf = self.buf[i + 1 + n:]
                    return head >> 4, head & 15, body
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("no packet and no close within %ss" % timeout)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def connect(self, cid, user=None, pw=None, will=None):
        w = {"topic": will[0], "payload": will[1]} if will else None
        self.sock.sendall(_connect(cid, v5=self.v5, keepalive=30, will=w, username=user,
                                   password=pw))
        p = self.read()
        assert p and p[0] == 2, p
        return p[2][1]

    def subscribe(self, filt, qos=1, pid=1):
        body = struct.pack("!H", pid) + (b"\x00" if self.v5 else b"") + _s(filt) + bytes([qos])
        self.send(8, 2, body)
        p = self.read()
        assert p and p[0] == 9, p
        return p[2][2 + (1 if self.v5 else 0):]

    def publish(self, topic, payload, qos=0, retain=False, pid=7):
        body = _s(topic) + (struct.pack("!H", pid) if qos else b"")
        body += (b"\x00" if self.v5 else b"") + payload
        self.send(3, (qos << 1) | int(retain), body)
        if qos == 0:
            return None
        p = self.read()
        assert p and p[0] == (4 if qos == 1 else 5), p
        return p[2][2] if len(p[2]) > 2 else 0

    def next_publish(self, timeout=10):
        """(topic, payload, retain) of the next PUBLISH, acking QoS 1."""
        while True:
            p = self.read(timeout)
            assert p is not None, "closed while waiting for a PUBLISH"
            t, flags, body = p
            if t != 3:
                continue
            tl = struct.unpack("!H", body[:2])[0]
            topic = body[2:2 + tl].decode()
            i = 2 + tl
            if flags & 6:
                pid = body[i:i + 2]
                i += 2
                self.send(4, 0, pid)
            if self.v5:
                n = body[i]
                i += 1 + n
            return topic, body[i:], bool(flags & 1)

    def nothing_more(self):
        """PINGREQ, and the next packet must be its PINGRESP: nothing the
        broker queued for us before it handled the ping is left unread."""
        self.send(12, 0, b"")
        p = self.read()
        assert p is not None and p[0] == 13, "wanted PINGRESP, got %r" % (p,)

    def disconnect(self):
        try:
            self.send(14, 0, b"\x00\x00" if self.v5 else b"")
        except OSError:
            pass
        self.sock.close()

    def drop(self):
        self.sock.close()


# ---- set-up --------------------------------------------------------------

ACL = """rules = [
  {"permit": "allow", "username": "admin"}
  {"permit": "allow", "username": "dashboard", "action": "subscribe", "topics": ["$SYS/#"]}
  {"permit": "deny", "username": "#", "action": "subscribe", "topics": ["$SYS/#", "eq #"]}
  {"permit": "deny", "action": "pubsub", "topics": ["secret/#"]}
  {"permit": "allow", "action": "publish", "topics": ["devices/${username}/#", "c/${clientid}"]}
  {"permit": "allow", "action": "subscribe", "topics": ["devices/+/#", "public/#", "+/+"]}
]
"""


def passwd(path, user, password):
    r = subprocess.run([WARD, "passwd", path, user], input=password + "\n", text=True,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def secured(ward_factory, tmp_path):
    pw = str(tmp_path / "pw.conf")
    for user in ("alice", "bob", "admin", "dashboard"):
        passwd(pw, user, user + "-pw")
    acl = tmp_path / "acl.conf"
    acl.write_text(ACL)
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text(
        'listeners.tcp { bind = "127.0.0.1:%d" }\n'
        'auth {\n  allow_anonymous = false\n  no_match = deny\n'
        '  password = {include "pw.conf"}\n  acl = {include "acl.conf"}\n}\n' % port)
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc, timeout=15), "ward is not listening:\n" + w.read_log()
    w.acl_path = str(acl)
    w.pw_path = pw
    return w


def login(w, user, v5=True, cid=None, will=None):
    c = Raw(w.port, v5)
    rc = c.connect(cid or user + "-c", user, user + "-pw", will)
    assert rc == 0, "CONNACK %#x" % rc
    return c


# ---- authentication ------------------------------------------------------

@pytest.mark.parametrize("v5, anon_rc, badpw_rc", [(True, 0x87, 0x86), (False, 5, 4)])
def test_credentials(secured, v5, anon_rc, badpw_rc):
    assert Raw(secured.port, v5).connect("anon") == anon_rc
    assert Raw(secured.port, v5).connect("x", "alice", "wrong") == badpw_rc
    assert Raw(secured.port, v5).connect("x", "nobody", "pw") == badpw_rc
    assert Raw(secured.port, v5).connect("x", "alice") == badpw_rc  # no password
    login(secured, "alice", v5).disconnect()
    # Each line waited for: the logger thread writes them a moment later.
    for needle in ("no credentials", "wrong password", "unknown user"):
        log = secured.wait_log(needle)
    assert "127.0.0.1" in log


def test_paho_and_mosquitto_clients_authenticate(secured):
    got = []
    c = paho.Client("p1", protocol=paho.MQTTv311)
    c.username_pw_set("bob", "bob-pw")
    c.on_connect = lambda cl, u, f, rc: got.append(rc)
    paho_connack(c, "127.0.0.1", secured.port, got)
    assert got == [0]
    r = subprocess.run(["mosquitto_pub", "-p", str(secured.port), "-u", "bob", "-P", "nope",
                        "-t", "devices/bob/x", "-m", "1"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0 and "bad user name or password" in (r.stdout + r.stderr).lower()


def test_failures_rate_limited(secured):
    for _ in range(6):
        assert Raw(secured.port).connect("x", "alice", "bad") == 0x86
    # Even the right password is refused for a while from this address.
    assert Raw(secured.port).connect("x", "alice", "alice-pw") == 0x9F
    secured.wait_log("too many failed attempts")


# ---- authorization -------------------------------------------------------

def test_publish_acl_v5_reason_codes(secured):
    c = login(secured, "alice")
    assert c.publish("devices/alice/t", b"1", qos=1) == 0
    assert c.publish("devices/bob/t", b"1", qos=1) == 0x87
    assert c.publish("secret/x", b"1", qos=2, pid=9) == 0x87
    assert c.publish("c/alice-c", b"1", qos=1) == 0  # ${clientid}
    c.disconnect()


def test_publish_acl_311_is_acked_but_not_delivered(secured):
    sub = login(secured, "admin")
    assert sub.subscribe("devices/#") == b"\x01"
    pub = login(secured, "alice", v5=False)
    assert pub.publish("devices/bob/t", b"forged", qos=1) == 0  # MQTT-3.3.5-2
    assert pub.publish("devices/alice/t", b"real", qos=1) == 0
    assert sub.next_publish() == ("devices/alice/t", b"real", False)
    sub.nothing_more()


@pytest.mark.parametrize("v5, denied", [(True, 0x87), (False, 0x80)])
def test_subscribe_acl(secured, v5, denied):
    c = login(secured, "alice", v5)
    assert c.subscribe("#") == bytes([denied])
    assert c.subscribe("$SYS/#") == bytes([denied])
    assert c.subscribe("public/#") == b"\x01"
    assert c.subscribe("$share/g/public/x") == b"\x01"
    assert c.subscribe("secret/#") == bytes([denied])
    d = login(secured, "dashboard", v5)
    assert d.subscribe("$SYS/#") == b"\x01"


def test_delivery_checked_against_receiver(secured):
    """A subscription allowed by a broad rule never carries denied topics."""
    sub = login(secured, "alice")
    assert sub.subscribe("+/+") == b"\x01"
    admin = login(secured, "admin")
    assert admin.publish("secret/plans", b"no", qos=1) == 0
    assert admin.publish("public/news", b"yes", qos=1) == 0
    assert sub.next_publish() == ("public/news", b"yes", False)
    sub.nothing_more()


def test_retained_on_subscribe_checked(secured):
    admin = login(secured, "admin")
    assert admin.publish("secret/r", b"hidden", qos=1, retain=True) == 0
    assert admin.publish("public/r", b"shown", qos=1, retain=True) == 0
    sub = login(secured, "alice")
    assert sub.subscribe("+/+") == b"\x01"
    assert sub.next_publish() == ("public/r", b"shown", True)
    sub.nothing_more()


def test_will_acl(secured):
    watcher = login(secured, "admin")
    assert watcher.subscribe("devices/#") == b"\x01"
    bad = login(secured, "alice", cid="w1", will=("devices/bob/status", b"forged"))
    good = login(secured, "bob", cid="w2", will=("devices/bob/status", b"gone"))
    secured.wait_log("will on 'devices/bob/status' not authorized")
    # bad's close is handled (and any will of its routed) before good's.
    bad_addr = "'w1' (127.0.0.1:%d) disconnected" % bad.sock.getsockname()[1]
    bad.drop()
    secured.wait_log(bad_addr)
    good.drop()
    assert watcher.next_publish() == ("devices/bob/status", b"gone", False)
    watcher.nothing_more()


# ---- reload --------------------------------------------------------------

def test_sighup_reload_acl_and_passwords(secured):
    sub = login(secured, "alice")
    assert sub.subscribe("public/#") == b"\x01"
    admin = login(secured, "admin")
    admin.publish("public/1", b"a", qos=1)
    assert sub.next_publish() == ("public/1", b"a", False)

    # A broken ACL is refused with its line; the running rules stay.
    with open(secured.acl_path, "w") as f:
        f.write('rules = [ {"permit": "sometimes"} ]\n')
    secured.signal(signal.SIGHUP)
    secured.wait_log("the running rules stay")
    assert "acl.conf:1: permit" in secured.read_log()
    admin.publish("public/2", b"b", qos=1)
    assert sub.next_publish() == ("public/2", b"b", False)

    # The new rules forbid public/#: the subscription is removed.
    with open(secured.acl_path, "w") as f:
        f.write(ACL.replace('"public/#", ', ""))
    passwd(secured.pw_path, "carol", "carol-pw")
    secured.signal(signal.SIGHUP)
    secured.wait_log("subscription 'public/#' removed")
    admin.publish("public/3", b"c", qos=1)
    sub.nothing_more()
    login(secured, "carol").disconnect()  # the new user can log in


def test_bad_files_stop_the_start(tmp_path):
    (tmp_path / "pw.conf").write_text('"admin": "public"\n')  # NanoMQ's plaintext
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'auth { password = {include "pw.conf"} }\n' % port)
    r = subprocess.run([WARD, "serve", "-c", str(conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1
    assert "pw.conf:1: admin: plaintext" in r.stderr
    r = subprocess.run([WARD, "check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1 and "plaintext" in r.stderr
    assert "run `ward passwd -c %s`" % (tmp_path / "pw.conf") in r.stderr
    # What the refusal says to run converts the file, and then it passes.
    r = subprocess.run([WARD, "passwd", "-c", str(tmp_path / "pw.conf")], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0 and "1 plaintext password hashed" in r.stderr, r.stderr
    assert "public" not in (tmp_path / "pw.conf").read_text()
    r = subprocess.run([WARD, "check", "-q", "-c", str(conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr


def test_ward_passwd_command(tmp_path):
    pw = str(tmp_path / "pw.conf")
    passwd(pw, "u1", "one")
    passwd(pw, "u2", "two")
    assert oct(os.stat(pw).st_mode & 0o777) == "0o600"
    text = open(pw).read()
    assert "one" not in text and "$pbkdf2-sha512$" in text
    r = subprocess.run([WARD, "passwd", "-D", pw, "u1"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0
    assert '"u1"' not in open(pw).read() and '"u2"' in open(pw).read()
    r = subprocess.run([WARD, "passwd", "-D", pw, "u1"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1 and "no user 'u1'" in r.stderr
    r = subprocess.run([WARD, "passwd", pw, "u3"], input="", capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1 and "no password" in r.stderr
    r = subprocess.run([WARD, "passwd", pw], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2


def test_sighup_bad_config_keeps_running(secured, tmp_path):
    conf = tmp_path / "ward.conf"
    good = conf.read_text()
    conf.write_text(good + "mqtt { max_mqueue_len = lots }\n")
    secured.signal(signal.SIGHUP)
    log = secured.wait_log("the running configuration stays")
    assert "ward.conf:8: mqtt.max_mqueue_len: expected a whole number" in log
    login(secured, "alice").disconnect()  # still serving, old rules
    assert Raw(secured.port).connect("anon") == 0x87
    # A good file with a changed limit is applied.
    conf.write_text(good.replace("allow_anonymous = false", "allow_anonymous = true"))
    secured.signal(signal.SIGHUP)
    secured.wait_log("configuration file, password file and ACL reloaded")
    assert Raw(secured.port).connect("anon") == 0
