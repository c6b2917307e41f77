# SPDX-License-Identifier: MIT
"""Greylisting at RCPT (postgrey's model), with the store clock moved by
`mxguard ctl clock advance` (debug_clock) instead of sleeping: first sight
451 4.7.1 with the time left, a retry before `delay` still 451, after it
250 and the triplet passes at once from then on; an unpassed triplet
forgotten after `retry_window`, a passed one after `pass_ttl`; the
auto-whitelist; static and dynamic (`mxguard ctl`) whitelists; clients
that skip it; the sender normalisation (BATV, SRS, digits); the SPF-pass
domain replacing the client network; the log field and symbols.

Every case runs against each store (the `store` fixture)."""

import itertools
import re


from helpers import assert_reply, simple_message, v1
from smtp import Client

_ports = itertools.count(42100)
RCPT = "user@test.example"


def start(make_mx, backend, store, greylist=None, config=None, **kw):
    cfg = {
        "store": store,
        "debug_clock": True,
        "greylist": dict({"enabled": True}, **(greylist or {})),
    }
    cfg.update(config or {})
    mx = make_mx(backend=backend, config=cfg, control=True,
                 listeners=[{"proxy_protocol": True}], **kw)
    return mx


def attempt(mx, ip="198.18.7.7", sender="sender@client.example", rcpts=(RCPT,),
            data=True):
    """One transaction from ip; returns the RCPT replies (and delivers
    when one was accepted and data is set)."""
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "2001:db8::25" if ":" in ip else "192.0.2.1", next(_ports), 25))
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % sender), 250)
    replies = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
    if data and any(r.code == 250 for r in replies):
        _, final = c.data(simple_message("greylist"))
        assert_reply(final, 250)
    c.quit()
    return replies


def greylisted(r, seconds=None):
    """A greylisting 451; with seconds, the time left it announces (the
    real clock runs on between attempts: a slow machine may take a
    second or two off it)."""
    assert_reply(r, 451, "4.7.1")
    assert "Greylisted" in r.text
    if seconds is not None:
        m = re.search(r"try again in (\d+) seconds", r.text)
        assert m and seconds - 3 <= int(m.group(1)) <= seconds, r.text


def test_lifecycle(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    (r,) = attempt(mx)
    greylisted(r, 300)
    # Decided by mxguard: the backend never saw the recipient.
    assert not any("RCPT" in c.upper() for c in backend.all_commands())
    mx.advance_clock(100)
    (r,) = attempt(mx)
    greylisted(r, 200)
    mx.advance_clock(200)
    (r,) = attempt(mx)
    assert_reply(r, 250)
    (txn,) = backend.wait_messages(1)
    assert txn.rcpt_addrs == [RCPT]
    # Passed: the next message passes at once.
    (r,) = attempt(mx)
    assert_reply(r, 250)
    backend.wait_messages(2)
    recs = mx.records("txn")
    assert [t["greylist"] for t in recs] == ["new", "early", "passed", "pass"]
    assert "GREYLIST_PASSED" in recs[2]["symbols"]
    assert recs[0]["result"] == "tempfail"


def test_triplet_is_per_recipient_sender_and_network(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    greylisted(attempt(mx)[0])
    mx.advance_clock(300)
    assert_reply(attempt(mx)[0], 250)
    # Same /24: same triplet.
    assert_reply(attempt(mx, ip="198.18.7.200")[0], 250)
    # Another network, sender or recipient: new triplets.
    greylisted(attempt(mx, ip="198.18.8.7")[0])
    greylisted(attempt(mx, sender="other@client.example")[0])
    greylisted(attempt(mx, rcpts=("other@test.example",))[0])


def test_mixed_recipients_one_transaction(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               greylist={"whitelist_recipients": ["postmaster@test.example"]})
    r1, r2 = attempt(mx, rcpts=(RCPT, "postmaster@test.example"))
    greylisted(r1)
    assert_reply(r2, 250)
    (txn,) = backend.wait_messages(1)
    assert txn.rcpt_addrs == ["postmaster@test.example"]


def test_retry_window_and_pass_ttl(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               greylist={"delay": 60, "retry_window": 3600, "pass_ttl": 86400})
    greylisted(attempt(mx)[0], 60)
    mx.advance_clock(3601)
    # Retried too late: first sight again.
    greylisted(attempt(mx)[0], 60)
    mx.advance_clock(60)
    assert_reply(attempt(mx)[0], 250)
    mx.advance_clock(86400 - 10)
    assert_reply(attempt(mx)[0], 250)  # refreshed by use
    mx.advance_clock(86401)
    greylisted(attempt(mx)[0], 60)


def test_auto_whitelist(make_mx, backend, store):
    mx = start(make_mx, backend, store, greylist={"auto_whitelist_after": 2})
    for i in range(2):
        rcpt = "u%d@test.example" % i
        greylisted(attempt(mx, rcpts=(rcpt,))[0])
        mx.advance_clock(300)
        assert_reply(attempt(mx, rcpts=(rcpt,))[0], 250)
        mx.advance_clock(120)
    # The whole network now passes, even a new triplet.
    assert_reply(attempt(mx, ip="198.18.7.99", sender="new@else.example",
                         rcpts=("fresh@test.example",))[0], 250)
    assert mx.records("txn")[-1]["greylist"] == "awl"
    assert "GREYLIST_AWL" in mx.records("txn")[-1]["symbols"]
    # Not another network.
    greylisted(attempt(mx, ip="198.18.9.1", rcpts=("fresh@test.example",))[0])


def test_auto_whitelist_off(make_mx, backend, store):
    mx = start(make_mx, backend, store, greylist={"auto_whitelist_after": 0})
    for i in range(3):
        rcpt = "u%d@test.example" % i
        greylisted(attempt(mx, rcpts=(rcpt,))[0])
        mx.advance_clock(300)
        assert_reply(attempt(mx, rcpts=(rcpt,))[0], 250)
    greylisted(attempt(mx, rcpts=("fresh@test.example",))[0])


def test_static_whitelists(make_mx, backend, store):
    mx = start(make_mx, backend, store, greylist={
        "whitelist_clients": ["198.18.20.0/24", "2001:db8:77::/48"],
        "whitelist_senders": ["partner.example", "boss@corp.example"],
        "whitelist_recipients": ["abuse@test.example"],
    })
    assert_reply(attempt(mx, ip="198.18.20.5")[0], 250)
    assert_reply(attempt(mx, sender="x@partner.example")[0], 250)
    assert_reply(attempt(mx, sender="x@mail.partner.example")[0], 250)
    assert_reply(attempt(mx, sender="BOSS@corp.example")[0], 250)
    greylisted(attempt(mx, sender="other@corp.example")[0])
    assert_reply(attempt(mx, rcpts=("Abuse@Test.Example",))[0], 250)
    assert [t["greylist"] for t in mx.records("txn")] == ["skip"] * 4 + ["new", "skip"]


def test_relay_networks_skip(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               config={"relay_networks": ["198.18.30.0/24"]})
    assert_reply(attempt(mx, ip="198.18.30.1")[0], 250)
    greylisted(attempt(mx, ip="198.18.31.1")[0])


def test_dynamic_whitelist_with_ctl(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    greylisted(attempt(mx, ip="198.18.40.1")[0])
    out = mx.ctl("greylist", "whitelist", "add", "client", "198.18.40.1").stdout
    assert "198.18.40.1" in out
    assert_reply(attempt(mx, ip="198.18.40.1")[0], 250)
    assert mx.records("txn")[-1]["greylist"] == "whitelisted"
    # A network of the greylist's size, a sender domain, a recipient.
    mx.ctl("greylist", "whitelist", "add", "client", "198.18.41.0/24")
    assert_reply(attempt(mx, ip="198.18.41.77")[0], 250)
    mx.ctl("greylist", "whitelist", "add", "sender", "Friends.Example")
    assert_reply(attempt(mx, ip="198.18.42.1", sender="a@friends.example")[0], 250)
    mx.ctl("greylist", "whitelist", "add", "recipient", "vip@test.example", "3600")
    assert_reply(attempt(mx, ip="198.18.43.1", rcpts=("vip@test.example",))[0], 250)
    listed = mx.ctl("greylist", "whitelist", "list").stdout.split("\n")
    assert "client 198.18.40.1" in listed
    assert "client 198.18.41.0/24" in listed
    assert "sender friends.example" in listed
    assert "recipient vip@test.example" in listed
    # Removal takes effect at once; a timed entry expires.
    mx.ctl("greylist", "whitelist", "remove", "client", "198.18.40.1")
    greylisted(attempt(mx, ip="198.18.40.1", rcpts=("new@test.example",))[0])
    p = mx.ctl("greylist", "whitelist", "remove", "client", "198.18.40.1", check=False)
    assert p.returncode == 1 and "not listed" in p.stderr
    mx.advance_clock(3601)
    greylisted(attempt(mx, ip="198.18.43.1", rcpts=("vip@test.example",))[0])
    # A network of another size is refused, not silently ignored.
    p = mx.ctl("greylist", "whitelist", "add", "client", "198.18.0.0/16", check=False)
    assert p.returncode == 1 and "/24" in p.stderr


def test_greylist_list(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    greylisted(attempt(mx)[0])
    out = mx.ctl("greylist", "list").stdout
    assert "198.18.7.0/24/sender@client.example/user@test.example first=" in out
    assert "passed=0" in out


def test_sender_normalisation(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    greylisted(attempt(mx, sender="prvs=1234abcd=news@list.example")[0])
    mx.advance_clock(300)
    # Another BATV tag, another VERP number: the same sender.
    assert_reply(attempt(mx, sender="prvs=9999ffff=news@list.example")[0], 250)
    greylisted(attempt(mx, sender="bounce-123-456@list.example")[0])
    mx.advance_clock(300)
    assert_reply(attempt(mx, sender="bounce-789-1@list.example")[0], 250)
    # SRS: the original sender counts, not the forwarder's hash and time.
    greylisted(attempt(mx, sender="SRS0=HHH1=TT=orig.example=alice@fwd.example")[0])
    mx.advance_clock(300)
    assert_reply(attempt(mx, sender="SRS0=HHH2=UU=orig.example=alice@fwd.example")[0], 250)


def test_null_sender(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    greylisted(attempt(mx, sender="")[0])
    mx.advance_clock(300)
    assert_reply(attempt(mx, sender="")[0], 250)


def test_ipv6_network(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    c = lambda ip: attempt(mx, ip=ip)[0]  # noqa: E731
    greylisted(c("3fff:1:2:3::1"))
    mx.advance_clock(300)
    # The same /64 passes, another /64 does not.
    assert_reply(c("3fff:1:2:3::99"), 250)
    greylisted(c("3fff:1:2:4::1"))


def test_disabled(make_mx, backend, store):
    mx = start(make_mx, backend, store, greylist={"enabled": False})
    assert_reply(attempt(mx)[0], 250)
    assert mx.records("txn")[0]["greylist"] == "-"


def test_ctl_needs_the_socket_for_memory(make_mx, backend, tmp_path):
    mx = make_mx(backend=backend, config={"greylist": {"enabled": True}})
    p = mx.ctl("greylist", "whitelist", "list", check=False)
    assert p.returncode == 1 and "control_socket" in p.stderr


def test_clock_refused_without_debug_clock(make_mx, backend, store):
    mx = start(make_mx, backend, store, config={"debug_clock": False})
    p = mx.ctl("clock", "advance", "100", check=False)
    assert p.returncode == 1 and "debug_clock" in p.stderr
    greylisted(attempt(mx)[0], 300)
