"""system.user / --user: started as root, ward opens its listeners, checks
that the user can read every key, certificate, CRL, password and
configuration file and write the data directory, refuses to start with a
clear error otherwise, then runs as that user. Without it, root is warned
about. These tests run as root (as the project's tests do) and use the
system's `nobody` user."""
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile

import pytest

from conftest import WARD, free_port, wait_port
import mqttwire as m

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def pki():
    """The dev PKI in a directory nobody may enter (pytest's tmp_path is
    under a root-only directory): ca.crt, server.crt and crl.pem readable
    by all, server.key given to nobody, and an open data directory parent."""
    d = tempfile.mkdtemp(prefix="ward-privs-", dir="/tmp")
    os.chmod(d, 0o755)
    src = os.path.join(d, "src")
    subprocess.run([WARD, "cert", "dev", src], check=True, capture_output=True, timeout=30)
    p = {}
    for name in ("ca.crt", "server.crt", "crl.pem", "server.key"):
        p[name] = os.path.join(d, name)
        shutil.copy(os.path.join(src, name), p[name])
        os.chmod(p[name], 0o644)
    os.chmod(p["server.key"], 0o600)
    os.chown(p["server.key"], NOBODY.pw_uid, NOBODY.pw_gid)
    p["dir"] = d
    yield p
    shutil.rmtree(d, ignore_errors=True)


def conf(p, port, tport, user="nobody", extra=""):
    path = os.path.join(p["dir"], "ward.conf")
    with open(path, "w") as f:
        f.write('system.user = "%s"\n'
                'listeners.tcp { bind = "127.0.0.1:%d" }\n'
                'listeners.ssl { bind = "127.0.0.1:%d"\n keyfile = "%s"\n certfile = "%s"\n'
                ' cacertfile = "%s"\n crlfile = "%s"\n}\n'
                'persistence.dir = "%s"\n%s'
                % (user, port, tport, p["server.key"], p["server.crt"], p["ca.crt"],
                   p["crl.pem"], os.path.join(p["dir"], "data"), extra))
    os.chmod(path, 0o644)
    return path


def refused(args):
    """Runs `ward serve ARGS`, which must refuse to start; returns stderr."""
    r = subprocess.run([WARD, "serve"] + args, capture_output=True, text=True, timeout=20)
    assert r.returncode != 0, r.stderr
    return r.stderr


def ids(pid):
    with open("/proc/%d/status" % pid) as f:
        st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
    return [int(x) for x in st["Uid"].split()], [int(x) for x in st["Gid"].split()]


def tls_connack(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(m.connect("tls-probe"))
            data = s.recv(4)
    assert data[:1] == b"\x20" and data[3:4] == b"\x00", data  # CONNACK, accepted


def test_drop_serves_tls_as_user_and_reloads(ward_factory, pki):
    port, tport = free_port(), free_port()
    w = ward_factory(["-c", conf(pki, port, tport)], port=port, listen=False).start(wait=False)
    assert wait_port(tport, proc=w.proc), w.read_log()
    w.wait_log("serving with")
    uids, gids = ids(w.proc.pid)
    assert uids == [NOBODY.pw_uid] * 4  # real, effective, saved, filesystem
    assert gids == [NOBODY.pw_gid] * 4
    log = w.read_log()
    assert "running as user nobody (uid %d)" % NOBODY.pw_uid in log
    assert "running as root" not in log
    tls_connack(tport, pki["ca.crt"])
    # The store was made by the user, in a directory made for it.
    db = os.path.join(pki["dir"], "data", "ward.db")
    assert os.stat(db).st_uid == NOBODY.pw_uid
    # SIGHUP after the drop: configuration and TLS files are read again.
    w.signal(signal.SIGHUP)
    w.wait_log("reload: configuration file, password file and ACL reloaded")
    w.wait_log("TLS material reloaded")
    assert "running TLS material stays" not in w.read_log()
    tls_connack(tport, pki["ca.crt"])
    assert w.stop() == 0


def test_user_on_the_command_line(ward_factory, pki):
    data = os.path.join(pki["dir"], "cli-data")
    w = ward_factory(["--user", "nobody", "--data", data]).start()
    # The port accepts (into the kernel's backlog) as soon as it is bound,
    # which is before the drop: the start line comes after it.
    w.wait_log("serving with")
    assert ids(w.proc.pid)[0] == [NOBODY.pw_uid] * 4
    c = m.connected(w.port, "cli", v5=True)
    c.disconnect()
    assert os.stat(data).st_uid == NOBODY.pw_uid  # made for the user
    assert w.stop() == 0


def test_root_only_key_is_refused(pki):
    os.chown(pki["server.key"], 0, 0)  # 0600 root: nobody cannot read it
    err = refused(["-c", conf(pki, free_port(), free_port())])
    assert "user 'nobody' cannot read %s" % pki["server.key"] in err, err
    assert "the key of tls://127.0.0.1:" in err
    assert "not starting" in err


def test_data_dir_not_writable_is_refused(pki):
    data = os.path.join(pki["dir"], "data")
    os.mkdir(data, 0o755)  # root's
    err = refused(["-c", conf(pki, free_port(), free_port())])
    assert "user 'nobody' cannot create files in %s (the data directory)" % data in err, err


def test_log_directory_not_writable_is_refused(pki):
    """The log file is opened as root at start, but reopening (SIGUSR1) and
    rotating happen as the user: a directory it cannot write is refused."""
    logs = os.path.join(pki["dir"], "logs")
    os.mkdir(logs, 0o755)  # root's
    data = os.path.join(pki["dir"], "data")
    os.mkdir(data, 0o700)
    os.chown(data, NOBODY.pw_uid, NOBODY.pw_gid)
    extra = 'log { to = [console, file], dir = "%s" }\n' % logs
    err = refused(["-c", conf(pki, free_port(), free_port(), extra=extra)])
    log = os.path.join(logs, "ward.log")
    assert "user 'nobody' cannot" in err and log in err and "(the log file)" in err, err


def test_unreadable_config_file_is_refused(pki):
    path = conf(pki, free_port(), free_port())
    os.chmod(path, 0o600)  # SIGHUP could not read it after the drop
    err = refused(["-c", path])
    assert "cannot read %s (the configuration file)" % path in err, err


def test_unknown_user_is_refused(pki):
    err = refused(["-c", conf(pki, free_port(), free_port(), user="no-such-user-ward")])
    assert "system.user: no user 'no-such-user-ward' on this system; not starting" in err, err
    err = refused(["--user", "no-such-user-ward", "-l", "tcp://127.0.0.1:%d" % free_port()])
    assert "no user 'no-such-user-ward'" in err, err


def test_root_without_user_warns_once(ward):
    log = ward.wait_log("serving with")
    assert log.count("running as root: set system.user") == 1
    assert ids(ward.proc.pid)[0][0] == 0


def test_changing_user_without_root_is_refused():
    """Started as nobody, ward cannot become another user: a clear error,
    not a half-done start."""
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", WARD,
                        "serve", "--user", "daemon", "-l", "tcp://127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert ("system.user 'daemon': changing user needs root (running as uid %d); not starting"
            % NOBODY.pw_uid) in r.stderr, r.stderr


def test_group_setting(ward_factory, pki):
    """system.group replaces the user's primary group; --user on the
    command line wins over system.user."""
    daemon = grp.getgrnam("daemon")
    port = free_port()
    path = os.path.join(pki["dir"], "group.conf")
    with open(path, "w") as f:
        f.write('system.user = "no-such-user-ward"\nsystem.group = "daemon"\n'
                'listeners.tcp { bind = "127.0.0.1:%d" }\n' % port)
    os.chmod(path, 0o644)
    w = ward_factory(["-c", path, "--user", "nobody"], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc), w.read_log()
    w.wait_log("serving with")  # the port is bound before the drop
    uids, gids = ids(w.proc.pid)
    assert uids == [NOBODY.pw_uid] * 4
    assert gids == [daemon.gr_gid] * 4
    assert "group daemon (gid %d)" % daemon.gr_gid in w.wait_log("running as user nobody")
    assert w.stop() == 0
