# SPDX-License-Identifier: MIT
"""Per-domain routing (issue 7 item 4): routes = ( { domain; backend; } )
with `backend` as the default.  The first accepted recipient decides the
transaction's backend; a recipient for another one gets 452 4.5.3 and is
sent in another transaction, so a message is never split."""

import re

import pytest

from helpers import SENDER, assert_reply, simple_message
from mxguard import check_config


@pytest.fixture
def two(make_backend, make_mx):
    a = make_backend()  # the default: test.example
    b = make_backend()  # routes: b.test and below sub.test
    mx = make_mx(backend=a, config={
        "accepted_domains": ["test.example", "b.test", ".sub.test"],
        "routes": ({"domain": "b.test", "backend": b.address},
                   {"domain": ".sub.test", "backend": b.address}),
    })
    return mx, a, b


def txn(c, rcpts, subject):
    """One transaction; returns the RCPT replies and the final reply (None
    when no recipient was accepted)."""
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    replies = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
    if not any(r.code == 250 for r in replies):
        assert_reply(c.cmd("RSET"), 250)
        return replies, None
    _, final = c.data(simple_message(subject))
    return replies, final


def test_routed_domain_goes_to_its_backend(two):
    mx, a, b = two
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    replies, final = txn(c, ["x@b.test", "y@B.TEST", "z@deep.sub.test"], "to b")
    assert [r.code for r in replies] == [250, 250, 250]
    assert final.code == 250, final
    replies, final = txn(c, ["u@test.example"], "to a")
    assert final.code == 250, final
    c.quit()
    (mb,) = b.messages()
    assert mb.rcpt_addrs == ["x@b.test", "y@B.TEST", "z@deep.sub.test"]
    assert b"Subject: to b" in mb.data
    (ma,) = a.messages()
    assert ma.rcpt_addrs == ["u@test.example"]
    # The MAIL that went to the default backend first was reset there.
    assert not [t for t in a.transactions() if "x@b.test" in " ".join(t.rcpts)]


@pytest.mark.parametrize("first,second", [("u@test.example", "x@b.test"), ("x@b.test", "u@test.example")])
def test_mixed_recipients_are_never_split(two, first, second):
    mx, a, b = two
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    replies, final = txn(c, [first, second], "mixed")
    assert replies[0].code == 250
    assert replies[1].lines == ["452 4.5.3 Error: recipient for another destination; send it in a new transaction"], replies[1]
    assert final.code == 250, final
    # The client sends the other one in a new transaction.
    replies, final = txn(c, [second], "the rest")
    assert final.code == 250, final
    c.quit()
    got = {be: [m.rcpt_addrs for m in be.messages()] for be in (a, b)}
    to_b = [r for r in (first, second) if r.endswith("b.test")]
    to_a = [r for r in (first, second) if r.endswith("test.example")]
    assert got[b] == [to_b] and got[a] == [to_a], got


def test_refused_first_recipient_can_switch_backend(two):
    # b refuses the first recipient; the next one, for a, moves the MAIL
    # back to a.
    mx, a, b = two
    b.override(r"RCPT TO:<nobody@", "550 5.1.1 <nobody@b.test>: Recipient address rejected")
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    replies, final = txn(c, ["nobody@b.test", "u@test.example"], "switched")
    assert replies[0].lines == ["550 5.1.1 <nobody@b.test>: Recipient address rejected"]
    assert replies[1].code == 250
    assert final.code == 250, final
    c.quit()
    assert [m.rcpt_addrs for m in a.messages()] == [["u@test.example"]]
    assert b.messages() == []


def test_routed_backend_down(make_backend, make_mx):
    from mxguard import free_port

    a = make_backend()
    mx = make_mx(backend=a, config={
        "accepted_domains": ["test.example", "b.test"],
        "routes": ({"domain": "b.test", "backend": "127.0.0.1:%d" % free_port()},),
    })
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<x@b.test>"), 451, "4.4.1")
    # The transaction goes on: a recipient for the default backend works.
    assert_reply(c.cmd("RCPT TO:<u@test.example>"), 250)
    _, final = c.data(simple_message("after a dead route"))
    assert final.code == 250, final
    # Another transaction: its MAIL is not sent to the dead backend.
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<x@b.test>"), 451, "4.4.1")
    assert_reply(c.cmd("RSET"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<v@test.example>"), 250)
    c.quit()
    assert [m.rcpt_addrs for m in a.messages()] == [["u@test.example"]]
    assert mx.wait_log(r"backend 127\.0\.0\.1:\d+: ")


@pytest.mark.parametrize(
    "routes,message",
    [
        (({"domain": "c.test", "backend": "127.0.0.1:25"},), r'routes domain "c.test" is not in accepted_domains'),
        (({"domain": "b.test", "backend": "nonsense"},), r'routes backend "nonsense"'),
        (({"domain": "b.test"},), r'missing required setting "backend"'),
        (({"domain": "b.test", "backend": "127.0.0.1:25", "tls": True},), r'unknown setting "tls" in routes'),
    ],
)
def test_routes_config_errors(make_mx, routes, message):
    mx = make_mx(config={"accepted_domains": ["test.example", "b.test"], "routes": routes}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1, out
    assert re.search(message, out), out


def test_binarymime_to_a_route_without_it(make_backend, make_mx):
    # The default backend takes BINARYMIME (so mxguard offers it and the
    # MAIL is accepted); a route's backend does not: the first recipient
    # for it gets 554 5.6.3 (the MAIL stands), and nothing reaches it.
    caps = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"]
    a = make_backend(caps=caps + ["BINARYMIME"])
    b = make_backend(caps=caps)
    mx = make_mx(backend=a, config={
        "accepted_domains": ["test.example", "b.test"],
        "routes": ({"domain": "b.test", "backend": b.address},),
    })
    c = mx.connect()
    r = c.ehlo()
    assert "BINARYMIME" in [x[4:] for x in r.lines], r
    assert_reply(c.cmd("MAIL FROM:<%s> BODY=BINARYMIME" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<x@b.test>"), 554, "5.6.3")
    assert not any(x.startswith("MAIL") for x in b.all_commands())
    # The default route still takes it, byte-exact by BDAT.
    assert_reply(c.cmd("RCPT TO:<u@test.example>"), 250)
    msg = b"Subject: bin\r\n\r\n\x00\x01\n\r"
    c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
    assert_reply(c.reply(), 250)
    (m,) = a.wait_messages(1)
    assert m.data.endswith(msg)
    c.quit()
