"""`ward pub` and `ward sub` against ward and against Debian's mosquitto:
round trips at every QoS with both protocol versions, message sources,
retained, persistent sessions, user properties seen by paho, exit codes."""
import os
import subprocess
import threading

import paho.mqtt.client as paho
import pytest

from conftest import WARD, free_port


@pytest.fixture(params=["ward", "mosquitto"])
def broker(request):
    if request.param == "ward":
        return request.getfixturevalue("ward").port
    return request.getfixturevalue("mosquitto_factory")().port


def run(*args, input=None, timeout=20):
    return subprocess.run([WARD] + list(args), input=input, capture_output=True, text=True,
                          timeout=timeout)


class Sub:
    """`ward sub -d` in the background. It is subscribed when it has printed
    the broker's SUBACK (-d), so the constructor waits for that; wait_out()
    waits for a line of output, .result() for the end."""

    def __init__(self, port, *args, deadline=15):
        self.p = subprocess.Popen([WARD, "sub", "-d", "-p", str(port)] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.cv = threading.Condition()
        self.lines = {"out": [], "err": []}
        self.open = 2
        self.readers = [threading.Thread(target=self._read, args=(f, k), daemon=True)
                        for f, k in ((self.p.stdout, "out"), (self.p.stderr, "err"))]
        for t in self.readers:
            t.start()
        self._wait("err", "received SUBACK", deadline)

    def _read(self, f, key):
        for line in f:
            with self.cv:
                self.lines[key].append(line)
                self.cv.notify_all()
        with self.cv:
            self.open -= 1
            self.cv.notify_all()

    def _wait(self, key, needle, deadline):
        with self.cv:
            self.cv.wait_for(lambda: any(needle in l for l in self.lines[key]) or not self.open,
                             deadline)
            text = "".join(self.lines[key])
            assert needle in text, "no %r from ward sub in %ds: out %r, err %r" % (
                needle, deadline, "".join(self.lines["out"]), "".join(self.lines["err"]))

    def wait_out(self, line, deadline=15):
        """Waits until ward sub has printed `line` (a whole line)."""
        self._wait("out", line, deadline)

    def result(self, timeout=15):
        self.p.wait(timeout=timeout)
        for t in self.readers:
            t.join(timeout)
        return self.p.returncode, "".join(self.lines["out"]), "".join(self.lines["err"])


@pytest.mark.parametrize("version", ["5", "3.1.1"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip(broker, version, qos):
    s = Sub(broker, "-t", "cli/#", "-q", str(qos), "-V", version, "-v", "-C", "2")
    r = run("pub", "-p", str(broker), "-t", "cli/a", "-m", "hello world", "-q", str(qos),
            "-V", version)
    assert r.returncode == 0, r.stderr
    # Two publishers on two connections have no order in MQTT (and a QoS 0
    # publisher cannot know when the broker has its message): the second is
    # sent once the first has arrived, so the order below is a real check.
    s.wait_out("cli/a hello world\n")
    r = run("pub", "-p", str(broker), "-t", "cli/b", "-n", "-q", str(qos), "-V", version)
    assert r.returncode == 0, r.stderr
    rc, out, err = s.result()
    assert rc == 0, err
    assert out == "cli/a hello world\ncli/b \n"


def test_sources_lines_file_stdin(broker, tmp_path):
    s = Sub(broker, "-t", "src", "-C", "5", "-q", "1")
    assert run("pub", "-p", str(broker), "-t", "src", "-l", "-q", "1",
               input="one\ntwo\nthree\n").returncode == 0
    # Each source is a new publisher connection: no order between them in
    # MQTT, so each waits until the one before has arrived.
    s.wait_out("three\n")
    f = tmp_path / "payload.txt"
    f.write_text("from a file")
    assert run("pub", "-p", str(broker), "-t", "src", "-f", str(f)).returncode == 0
    s.wait_out("from a file\n")
    assert run("pub", "-p", str(broker), "-t", "src", "-s", input="all\nof it").returncode == 0
    rc, out, _ = s.result()
    assert rc == 0
    assert out == "one\ntwo\nthree\nfrom a file\nall\nof it\n"


def test_retained(broker):
    assert run("pub", "-p", str(broker), "-t", "ret/x", "-m", "kept", "-r", "-q",
               "1").returncode == 0
    r = run("sub", "-p", str(broker), "-t", "ret/#", "-C", "1", "-v", "-W", "5")
    assert r.returncode == 0 and r.stdout == "ret/x kept\n"
    # -R skips what is retained: nothing else comes, so -W ends it.
    r = run("sub", "-p", str(broker), "-t", "ret/#", "-R", "-W", "1")
    assert r.returncode == 27 and r.stdout == ""
    assert run("pub", "-p", str(broker), "-t", "ret/x", "-n", "-r").returncode == 0


@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_persistent_session(broker, version):
    cid = "cli-persist-" + version
    args = ["-p", str(broker), "-t", "ps/t", "-q", "1", "-i", cid, "-c", "-V", version]
    r = run("sub", *args, "-W", "1")  # make the session and its subscription
    assert r.returncode == 27
    assert run("pub", "-p", str(broker), "-t", "ps/t", "-m", "while away", "-q",
               "1").returncode == 0
    r = run("sub", *args, "-C", "1", "-W", "5")
    assert r.returncode == 0 and r.stdout == "while away\n", r.stderr


def test_user_properties_reach_paho(broker):
    got = []
    done, subscribed = threading.Event(), threading.Event()
    c = paho.Client("paho-props", protocol=paho.MQTTv5)

    def on_message(cl, u, msg):
        got.append(msg.properties.UserProperty)
        done.set()

    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", broker)
    c.subscribe("props", qos=1)
    c.loop_start()
    assert subscribed.wait(10)
    r = run("pub", "-p", str(broker), "-t", "props", "-m", "x", "-q", "1",
            "-D", "PUBLISH", "user-property", "k1", "v1", "--user-property", "k2", "v2")
    assert r.returncode == 0, r.stderr
    assert done.wait(5)
    c.loop_stop()
    c.disconnect()
    assert got == [[("k1", "v1"), ("k2", "v2")]]


def test_exit_codes(ward):
    closed = free_port()
    r = run("pub", "-p", str(closed), "-t", "x", "-m", "1")
    assert r.returncode == 1 and "Connection refused" in r.stderr
    r = run("sub", "-p", str(closed), "-t", "x")
    assert r.returncode == 1 and "cannot connect" in r.stderr
    r = run("sub", "-p", str(ward.port), "-t", "nothing", "-W", "1")
    assert r.returncode == 27 and "timed out" in r.stderr
    for bad in (["pub", "-t", "x"], ["pub", "-m", "x"], ["pub", "-t", "x", "-m", "1", "-q", "3"],
                ["sub", "-t", "x", "-V", "7"], ["sub"], ["pub", "-t", "x", "-m", "1", "-n"]):
        r = run(*bad)
        assert r.returncode == 2, bad
        assert "--help" in r.stderr
    assert run("pub", "--help").returncode == 0
    # The broker refuses a wildcard in a topic name: a clear message, status 1.
    r = run("pub", "-p", str(ward.port), "-t", "a/#", "-m", "x", "-q", "1")
    assert r.returncode == 1 and "topic name invalid" in r.stderr


def test_connack_refusal_is_named(tmp_path, ward_factory):
    w = ward_factory(["--allow-anonymous", "false"]).start()
    r = run("pub", "-p", str(w.port), "-t", "x", "-m", "1")
    assert r.returncode == 1 and "not authorized (0x87)" in r.stderr, r.stderr
    r = run("pub", "-p", str(w.port), "-t", "x", "-m", "1", "-V", "3.1.1")
    assert r.returncode == 1 and "not authorized (0x05)" in r.stderr, r.stderr


def test_ipv6(ward_factory):
    port = free_port("::1")
    w = ward_factory(["-l", "tcp://[::1]:%d" % port]).start()
    s = Sub(port, "-h", "::1", "-t", "v6", "-C", "1")
    assert run("pub", "-h", "::1", "-p", str(port), "-t", "v6", "-m", "six").returncode == 0
    rc, out, _ = s.result()
    assert rc == 0 and out == "six\n"


SECRETS_CONF = """listeners.ssl {
  bind = "0.0.0.0:8883"
  certfile = "/nonexistent/server.crt"
  keyfile = "/nonexistent/server.key"
  key_password = "listener-key-SECRET-1"
}
bridges.mqtt.up {
  server = "mqtt-tcp://127.0.0.1:1883"
  username = "bridge-user"
  password = "bridge-login-SECRET-2"
  ssl { key_password = "bridge-key-SECRET-3" }
  forwards = [ { remote_topic = "a/#", local_topic = "a/#", qos = 0 } ]
}
"""


def test_check_masks_secrets(tmp_path):
    conf = tmp_path / "secrets.conf"
    conf.write_text(SECRETS_CONF)
    r = run("check", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert "SECRET" not in r.stdout and "SECRET" not in r.stderr, r.stdout
    lines = [l.strip() for l in r.stdout.splitlines()]
    assert lines.count('key_password = "******"') == 2, r.stdout
    assert lines.count('password = "******"') == 1, r.stdout
    assert 'username = "bridge-user"' in lines  # only secrets are masked
    # Unset secrets stay absent rather than shown as set.
    conf.write_text(SECRETS_CONF.replace('  key_password = "listener-key-SECRET-1"\n', ""))
    r = run("check", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert [l.strip() for l in r.stdout.splitlines()].count('key_password = "******"') == 1


COMMANDS = ["serve", "pub", "sub", "bench", "cert", "check", "passwd", "apikey", "status"]


def test_help_and_reference_come_from_the_same_tables():
    """`ward help --markdown` (docs/cli.md) has a section for every command,
    and every option each command's --help lists, in the same order."""
    import re
    r = run("help", "--markdown")
    assert r.returncode == 0, r.stderr
    sections = re.split(r"^## ward (\w+)\n", r.stdout, flags=re.M)[1:]
    docs = dict(zip(sections[0::2], sections[1::2]))
    assert list(docs) == COMMANDS
    for cmd in COMMANDS:
        h = run(cmd, "--help")
        assert h.returncode == 0, (cmd, h.stderr)
        in_help = re.findall(r"^  (?:-\w, |    )?(--[\w-]+|-\w)", h.stdout, flags=re.M)
        in_docs = re.findall(r"^\| (?:`-\w`, )?`(--[\w-]+|-\w)`", docs[cmd], flags=re.M)
        assert len(in_help) > 1 and in_help == in_docs, cmd
        assert "--help" in in_docs, cmd
