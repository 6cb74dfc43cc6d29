"""One reading of "$share/" (issue 11 item 15): a shared-subscription filter
is parsed once (mqtt_share_split), the same way in MQTT 3.1.1 and 5, as
Mosquitto also offers shared subscriptions on 3.1.1. A malformed one
("$share/g", "$share//t") is refused on its own with SUBACK 0x8F (v5) or
0x80 (3.1.1; MQTT-3.9.3 has no other failure code), never granted and never
checked by the ACL as some other filter; a well-formed one is authorized on
the filter after the group. Wire level, with the raw client mqttwire."""
import pytest

import mqttwire as mw
from conftest import free_port, wait_port

ACL = """rules = [
  {"permit": "deny", "action": "subscribe", "topics": ["secret/#"]}
]
"""


# ---- set-up ------------------------------------------------------------------

@pytest.fixture
def guarded(ward_factory, tmp_path):
    """ward with an ACL that keeps secret/ from subscribers; all else allowed."""
    (tmp_path / "acl.conf").write_text(ACL)
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'auth {\n  allow_anonymous = true\n  no_match = allow\n'
                    '  acl = {include "acl.conf"}\n}\n' % port)
    w = ward_factory(["-c", str(conf), "--log-level", "info"], port=port, listen=False)
    w.start(wait=False)
    assert wait_port(port, proc=w.proc), w.read_log()
    return w


def client(w, cid, v5):
    return mw.connected(w.port, cid, v5=v5)


def subscribe(c, filters, pid=None):
    """SUBACK reason codes, one per filter (QoS 1 asked for each)."""
    return c.sub([(f, 1) for f in filters], pid=pid).codes


VERSIONS = pytest.mark.parametrize("v5, denied, invalid", [(True, 0x87, 0x8F),
                                                           (False, 0x80, 0x80)],
                                   ids=["v5", "v311"])

MALFORMED = ["$share/g", "$share//t", "$share/", "$share/g/", "$share/+/t",
             "$share/g/$share/h/t"]


@VERSIONS
def test_acl_judges_the_filter_after_the_group(guarded, v5, denied, invalid):
    c = client(guarded, "acl-%d" % v5, v5)
    assert subscribe(c, ["secret/x"]) == [denied]
    assert subscribe(c, ["$share/g/secret/x"], pid=2) == [denied]
    assert subscribe(c, ["$share/g/secret/#"], pid=3) == [denied]
    assert subscribe(c, ["$share/g/public/x"], pid=4) == [1]
    assert subscribe(c, ["public/x"], pid=5) == [1]
    c.close()


@VERSIONS
def test_malformed_share_refused_alone(guarded, v5, denied, invalid):
    # MQTT-4.8.2-1/2: a ShareName of at least one character without '/',
    # '+', '#', then '/' and a non-empty filter. Not a whole-packet error:
    # the filters next to it are answered as usual, and the connection stays.
    c = client(guarded, "bad-%d" % v5, v5)
    for pid, flt in enumerate(MALFORMED, start=10):
        codes = subscribe(c, ["share/ok", flt, "$share/g/secret/x", "$share/g/share/ok"], pid=pid)
        assert codes == [1, invalid, denied, 1], (flt, [hex(x) for x in codes])
    assert subscribe(c, ["share/again"], pid=99) == [1]
    # UNSUBSCRIBE takes them too: nothing was subscribed under them (v5
    # 0x11), while the well-formed share next to them is removed (0x00).
    codes = c.unsub(["$share/g", "$share/g/share/ok", "$share//t"], pid=100).codes
    assert codes == ([0x11, 0x00, 0x11] if v5 else []), codes
    guarded.wait_log("SUBSCRIBE to '$share//t' refused: not a valid shared subscription")
    c.close()


@VERSIONS
def test_share_works_in_both_versions(guarded, v5, denied, invalid):
    # A well-formed share delivers to a member; a refused malformed one
    # delivers nothing (it was not indexed as a literal filter either).
    member = client(guarded, "member-%d" % v5, v5)
    assert subscribe(member, ["$share/grp/news/t"]) == [1]
    stray = client(guarded, "stray-%d" % v5, v5)
    assert subscribe(stray, ["$share/grp"]) == [invalid]
    pub = client(guarded, "pub-%d" % v5, v5)
    pub.pub("news/t", b"hello")
    [p] = member.collect(1)
    assert (p.topic, p.payload) == ("news/t", b"hello")
    assert stray.ping() == []
    for c in (member, stray, pub):
        c.close()
