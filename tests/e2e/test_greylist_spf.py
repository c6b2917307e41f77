# SPDX-License-Identifier: MIT
"""Greylisting with SPF: when SPF passes for the sender domain, the triplet
holds that authenticated domain instead of the client network, so a large
sender retrying from another address of its pool (Office 365, Gmail)
passes after one retry; without an SPF pass the network counts, as in
postgrey; spf_domain = false turns it off."""

import itertools

from helpers import assert_reply, simple_message, v1
from smtp import Client

_ports = itertools.count(46100)
RCPT = "user@test.example"


def start(make_mx, backend, dns, store, greylist=None):
    mx = make_mx(backend=backend, control=True, listeners=[{"proxy_protocol": True}],
                 config={"store": store, "debug_clock": True,
                         "dns": {"servers": [dns.address], "timeout": 1.0},
                         "spf": {"enabled": True},
                         "greylist": dict({"enabled": True}, **(greylist or {}))})
    return mx


def attempt(mx, ip, sender):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "192.0.2.1", next(_ports), 25))
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("pool.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % sender), 250)
    r = c.cmd("RCPT TO:<%s>" % RCPT)
    if r.code == 250:
        _, final = c.data(simple_message("pool"))
        assert_reply(final, 250)
    c.quit()
    return r


def test_spf_pass_domain_replaces_the_network(make_mx, backend, dns):
    # The sender's outbound pool: two unrelated /24s.
    dns.add("bigsender.example", "TXT", "v=spf1 ip4:198.18.70.0/24 ip4:198.18.90.0/24 -all")
    mx = start(make_mx, backend, dns, "memory")
    assert_reply(attempt(mx, "198.18.70.5", "news@bigsender.example"), 451, "4.7.1")
    mx.advance_clock(300)
    # The retry comes from another address of the pool, in another /24.
    assert_reply(attempt(mx, "198.18.90.77", "news@bigsender.example"), 250)
    rec = mx.records("txn")[-1]
    assert rec["greylist"] == "passed"
    assert "SPF_PASS" in rec["symbols"]


def test_without_spf_pass_the_network_counts(make_mx, backend, dns):
    dns.add("nospf.example", "TXT", "v=spf1 ?all")  # neutral: not authenticated
    mx = start(make_mx, backend, dns, "memory")
    assert_reply(attempt(mx, "198.18.71.5", "news@nospf.example"), 451)
    mx.advance_clock(300)
    assert_reply(attempt(mx, "198.18.91.5", "news@nospf.example"), 451)
    assert_reply(attempt(mx, "198.18.71.6", "news@nospf.example"), 250)


def test_spf_domain_off(make_mx, backend, dns):
    dns.add("bigsender.example", "TXT", "v=spf1 ip4:198.18.72.0/24 ip4:198.18.92.0/24 -all")
    mx = start(make_mx, backend, dns, "memory", greylist={"spf_domain": False})
    assert_reply(attempt(mx, "198.18.72.5", "news@bigsender.example"), 451)
    mx.advance_clock(300)
    assert_reply(attempt(mx, "198.18.92.5", "news@bigsender.example"), 451)
