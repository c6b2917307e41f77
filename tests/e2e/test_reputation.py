# SPDX-License-Identifier: MIT
"""Reputation: mxguard counts its own verdicts per client address and
network (and verified HELO name, SPF-passed sender domain); after
`min_messages` a mostly-rejected address scores REP_IP_BAD, a
mostly-accepted one REP_IP_GOOD, which also skips greylisting.  The counts
decay with the (test) clock.  `mxguard ctl reputation show` reads them.
Each case runs against each store."""

import itertools

from helpers import assert_reply, simple_message, v1
from smtp import Client

_ports = itertools.count(44100)


def start(make_mx, backend, store, config=None):
    cfg = {
        "store": store,
        "debug_clock": True,
        "greet_delay": 0.3,
        "pregreet": {"action": "score", "score": 20.0},
        "reputation": {"enabled": True, "min_messages": 3, "half_life": 86400},
    }
    cfg.update(config or {})
    mx = make_mx(backend=backend, config=cfg, control=True,
                 listeners=[{"proxy_protocol": True}])
    return mx


def send(mx, ip, rcpt="user@test.example", pregreet=False):
    """One transaction; a pregreeting client scores 20 and is refused at
    RCPT.  Returns the RCPT reply."""
    c = Client(mx.port)
    mx.clients.append(c)
    hdr = v1(ip, "192.0.2.1", next(_ports), 25)
    if pregreet:
        c.send(hdr + b"EHLO client.example\r\n")
        assert_reply(c.banner(), 220)
        assert_reply(c.reply(), 250)
    else:
        c.send(hdr)
        assert_reply(c.banner(), 220)
        assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if r.code == 250:
        _, final = c.data(simple_message("rep"))
        assert_reply(final, 250)
    c.quit()
    return r


def last_symbols(mx, n):
    mx.wait_record("txn", count=n)
    return mx.records("txn")[n - 1]["symbols"]


def test_bad_reputation(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    ip = "198.18.50.1"
    for _ in range(3):
        assert_reply(send(mx, ip, pregreet=True), 550, "5.7.1")
    mx.wait_record("txn", count=3)
    assert [t["result"] for t in mx.records("txn")] == ["reject"] * 3
    out = mx.ctl("reputation", "show", "ip", ip).stdout
    assert "rejected=3.00" in out and "accepted=0.00" in out
    assert "rejected=3.00" in mx.ctl("reputation", "show", "net", "198.18.50.0/24").stdout
    # The next message from that address carries the verdict.
    assert_reply(send(mx, ip), 250)
    syms = last_symbols(mx, 4)
    assert "REP_IP_BAD" in syms and "REP_NET_BAD" in syms
    assert mx.records("txn")[3]["reputation"] == "bad", mx.log_text()
    # A neighbour in the same /24 gets only the network's.
    assert_reply(send(mx, "198.18.50.2"), 250)
    syms = last_symbols(mx, 5)
    assert "REP_NET_BAD" in syms and "REP_IP_BAD" not in syms
    # Ten half-lives later the past is (nearly) forgotten.
    mx.advance_clock(10 * 86400)
    assert_reply(send(mx, ip), 250)
    assert "REP_IP_BAD" not in last_symbols(mx, 6)


def test_good_reputation_skips_greylisting(make_mx, backend, store):
    mx = start(make_mx, backend, store, config={
        "greylist": {"enabled": True,
                     "whitelist_recipients": ["postmaster@test.example"]},
    })
    ip = "198.18.51.1"
    for _ in range(3):
        assert_reply(send(mx, ip, rcpt="postmaster@test.example"), 250)
    backend.wait_messages(3)
    assert "accepted=3.00" in mx.ctl("reputation", "show", "ip", ip).stdout
    # Good now: a new triplet is not greylisted.
    assert_reply(send(mx, ip, rcpt="user@test.example"), 250)
    rec = mx.records("txn")[3]
    assert "REP_IP_GOOD" in rec["symbols"]
    assert rec["greylist"] == "skip"
    # An unknown address still is.
    r = send(mx, "198.18.52.1", rcpt="user@test.example")
    assert_reply(r, 451, "4.7.1")


def test_too_few_messages_say_nothing(make_mx, backend, store):
    mx = start(make_mx, backend, store)
    ip = "198.18.53.1"
    for _ in range(2):
        assert_reply(send(mx, ip, pregreet=True), 550)
    assert_reply(send(mx, ip), 250)
    assert "REP_" not in last_symbols(mx, 3)
