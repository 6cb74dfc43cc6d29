"""`ward check`: configuration validation with the real binary."""
import os
import subprocess

from conftest import ROOT, WARD


def check(*args):
    return subprocess.run([WARD, "check", *args], capture_output=True, text=True, timeout=30)


def test_reference_doc_is_in_step_with_the_schema():
    r = check("--print-reference")
    assert r.returncode == 0
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        assert f.read() == r.stdout, "run: build/ward check --print-reference > docs/configuration.md"


def test_nanomq_file_is_valid_and_printed_with_defaults():
    r = check("-c", os.path.join(ROOT, "tests/unit/config/data/nanomq_bridge.conf"))
    assert r.returncode == 0, r.stderr
    assert "bridges.mqtt.emqx1 {" in r.stdout
    assert 'server = "mqtt-tcp://127.0.0.1:1883"' in r.stdout
    assert "max_inflight_window = 1024" in r.stdout  # a default filled in
    # http_server { } now configures the admin HTTP server (issue 16)
    assert "http_server {" in r.stdout and "port = 8081" in r.stdout
    assert "public" not in r.stdout  # its password is masked like every secret


def test_every_error_listed(tmp_path):
    p = tmp_path / "bad.conf"
    p.write_text("mqtt {\n  max_qos = 5\n  max_pakcet_size = 1KB\n}\n"
                 "listeners.ssl { bind = \"0.0.0.0:8883\" }\n")
    r = check("-c", str(p))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert "%s:2: mqtt.max_qos: 5 is out of range (0 to 2)" % p in lines
    assert ("%s:3: mqtt.max_pakcet_size: unknown key (did you mean 'mqtt.max_packet_size'?)" % p
            in lines)
    assert any("%s:5: listeners.ssl.: a TLS listener needs certfile and keyfile" % p in l
               for l in lines)
    assert lines[-1].endswith("3 errors")


def test_syntax_error_and_missing_file(tmp_path):
    p = tmp_path / "broken.conf"
    p.write_text("a {\n b = \"unterminated\n}\n")
    r = check("-c", str(p))
    assert r.returncode == 1
    assert "%s:2: unterminated string" % p in r.stderr
    r = check("-c", str(tmp_path / "nope.conf"))
    assert r.returncode == 1
    assert "cannot read: No such file or directory" in r.stderr


def test_usage_errors():
    assert check().returncode == 2
    assert check("--bogus").returncode == 2
