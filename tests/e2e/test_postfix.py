# SPDX-License-Identifier: MIT
"""mxguard in front of a real Postfix: mail lands in the Maildir, Postfix
sees the real client through XCLIENT (its own Received header names it),
and Postfix's replies reach the client verbatim."""

import re

import pytest

from helpers import v1
from helpers import assert_reply, check_connect, check_disconnect, check_txn, dotty_8bit_message, simple_message
from smtp import Client


@pytest.fixture
def pfmx(make_mx, postfix):
    """An mxguard in front of Postfix: listener 0 takes PROXY headers,
    listener 1 is plain."""
    return make_mx(backend=postfix.address, listeners=[{"proxy_protocol": True}, {}])


def send(c, rcpt, msg, helo="client.example", sender="sender@client.example"):
    assert_reply(c.ehlo(helo), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % sender), 250)
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if r.code != 250:
        return r
    d, final = c.data(msg)
    assert d.code == 354
    return final


def delivered_since(postfix, before, n=1):
    msgs = postfix.wait_delivered(before + n)
    return msgs[before:]


def headers_of(delivered):
    head = delivered.split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace")


def test_delivery_through_postfix_with_proxy_client(pfmx, postfix):
    before = len(postfix.delivered())
    c = Client(pfmx.listeners[0]["port"])
    pfmx.clients.append(c)
    c.send(v1("203.0.113.9", "192.0.2.1", 41000, 25))
    assert c.banner().code == 220
    msg = simple_message("through postfix", b"Hello Postfix.\r\n.leading dot\r\n")
    final = send(c, "alice@test.example", msg)
    assert final.code == 250, final
    # Postfix's own reply to BDAT LAST (it offers CHUNKING), relayed.
    m = re.match(r"250 2\.0\.0 Ok: \d+ bytes queued as ([0-9A-F]+)$", final.lines[0])
    assert m, final
    c.quit()
    (got,) = delivered_since(postfix, before)
    head = headers_of(got)
    # Postfix's Received header names the client mxguard reported through
    # XCLIENT (the HELO name is checked in test_postfix_sees_client_helo).
    assert re.search(r"(?m)^Received: from \S+ \(unknown \[203\.0\.113\.9\]\)\n\tby backend\.test \(Postfix\) with ESMTP id %s" % m.group(1), head), head
    # mxguard added no Received of its own (Postfix does it), but its tags.
    assert "(mxguard)" not in head
    assert re.search(r"(?m)^X-Spam-Status: No, score=0\.0 required=5\.0 tests=none$", head), head
    assert re.search(r"(?m)^X-Spam-Score: 0\.0$", head), head
    # The body arrived intact (Maildir has LF line ends; Postfix unstuffs).
    assert got.endswith(b"\n\nHello Postfix.\n.leading dot\n"), got[-200:]
    s = pfmx.session(port=41000)
    check_connect(s["connect"], "203.0.113.9", 41000, proxy="v1")
    check_txn(s["txns"][0], result="accept", stage="eom", reply=final.lines[0], backend=final.lines[0])
    check_disconnect(s["disconnect"], reason="quit", txns=1)
    log = postfix.maillog()
    assert "client=unknown[203.0.113.9]" in log, log[-3000:]


def test_delivery_through_postfix_plain_listener(pfmx, postfix):
    before = len(postfix.delivered())
    c = pfmx.connect(i=1)
    msg = simple_message("plain")
    final = send(c, "bob@test.example", msg, helo="plain.client.example")
    assert final.code == 250, final
    c.quit()
    (got,) = delivered_since(postfix, before)
    head = headers_of(got)
    assert re.search(r"(?m)^Received: from \S+ \(\S+ \[127\.0\.0\.1\]\)", head), head
    assert re.search(r"(?m)^Delivered-To: bob@test\.example$", head), head


def test_large_8bit_message_through_postfix(pfmx, postfix):
    before = len(postfix.delivered())
    c = pfmx.connect(i=1, timeout=60)
    msg = dotty_8bit_message(2 * 1024 * 1024, seed=3)
    final = send(c, "carol@test.example", msg)
    assert final.code == 250, final
    c.quit()
    (got,) = delivered_since(postfix, before)
    body = msg.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    assert got.endswith(body), "body changed on the way through mxguard and Postfix"


def test_postfix_refusal_passes_through(pfmx, postfix):
    # The client is 203.0.113.9 for Postfix (XCLIENT), not in mynetworks:
    # relaying to another domain is refused with Postfix's own text.
    c = Client(pfmx.listeners[0]["port"])
    pfmx.clients.append(c)
    c.send(v1("203.0.113.9", "192.0.2.1", 41001, 25))
    assert c.banner().code == 220
    r = send(c, "someone@elsewhere.example", simple_message())
    assert r.lines == ["554 5.7.1 <someone@elsewhere.example>: Relay access denied"], r
    c.quit()
    s = pfmx.session(port=41001)
    (t,) = s["txns"]
    check_txn(t, stage="rcpt", reply="554 5.7.1 <someone@elsewhere.example>: Relay access denied")


def test_postfix_sees_client_helo(pfmx, postfix):
    # Postfix takes the HELO name from the EHLO that follows XCLIENT: its
    # Received header and log must show the client's name, not mxguard's.
    before = len(postfix.delivered())
    c = pfmx.connect(i=1)
    final = send(c, "dave@test.example", simple_message("helo"), helo="helo.client.example")
    assert final.code == 250, final
    c.quit()
    (got,) = delivered_since(postfix, before)
    head = headers_of(got)
    assert re.search(r"(?m)^Received: from helo\.client\.example \(\S+ \[127\.0\.0\.1\]\)", head), head


def test_postfix_consecutive_clients_keep_their_identity(pfmx, postfix):
    """Postfix refuses a second XCLIENT on one connection ("550 5.7.0
    insufficient authorization": it checks the new client, checked
    2026-11-29), so mxguard must never reuse (pool) an XCLIENT connection:
    each client's mail must land with its own address in Postfix's
    Received header."""
    before = len(postfix.delivered())
    for i, ip in enumerate(("203.0.113.21", "203.0.113.22", "203.0.113.23")):
        c = Client(pfmx.listeners[0]["port"])
        pfmx.clients.append(c)
        c.send(v1(ip, "192.0.2.1", 42000 + i, 25))
        assert c.banner().code == 220
        final = send(c, "alice@test.example", simple_message("client %d" % i))
        assert final.code == 250, final
        c.quit()
    got = delivered_since(postfix, before, n=3)
    ips = sorted(re.search(rb"\(unknown \[(203\.0\.113\.\d+)\]\)", g).group(1) for g in got)
    assert ips == [b"203.0.113.21", b"203.0.113.22", b"203.0.113.23"], ips
    assert "insufficient authorization" not in postfix.maillog()
