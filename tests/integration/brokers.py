"""Brokers for the conformance suites (test_mqtt_*.py): each test runs against
ward and against Debian's mosquitto 2.0 as an independent reference.

A test asks for the `mk` fixture and calls it to start a broker of the current
parameter with the settings it needs: `mk(ward=[...args], mosq="config lines")`.
A test that is known to fail on ward carries `@ward_xfail("...")`: its ward run
is a strict xfail (it fails loudly the moment ward is fixed), its mosquitto
run is an ordinary test. Ward-only tests use conftest's `ward_factory`.
"""
import pytest

from conftest import Mosquitto

WORKERS = 2


def ward_xfail(reason):
    """Marks a test's ward run as a strict expected failure (a known ward bug)."""
    def mark(fn):
        fn._ward_xfail = reason
        return fn
    return mark


def mosq_skip(reason):
    """Runs a test on ward only: mosquitto deviates from the statement tested."""
    def mark(fn):
        fn._mosq_skip = reason
        return fn
    return mark


@pytest.fixture(params=["ward", "mosquitto"])
def mk(request, tmp_path):
    name = request.param
    fn = request.function
    if name == "mosquitto" and getattr(fn, "_mosq_skip", None):
        pytest.skip("mosquitto deviates: " + fn._mosq_skip)
    if name == "ward" and getattr(fn, "_ward_xfail", None):
        request.node.add_marker(pytest.mark.xfail(strict=True, reason="ward: " + fn._ward_xfail))
    moss = []

    def make(ward=(), mosq=""):
        if name == "ward":
            b = request.getfixturevalue("ward_factory")(list(ward), workers=WORKERS).start()
        else:
            b = Mosquitto(tmp_path, mosq)
            b.alive = lambda m=b: m.proc.poll() is None
            moss.append(b)
        b.name = name
        return b

    yield make
    for m in moss:
        m.stop()


@pytest.fixture
def b(mk):
    """A broker of the current parameter with default settings."""
    return mk()
