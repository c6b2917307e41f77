# SPDX-License-Identifier: MIT
"""RHSBL: lists of domains, asked for the sender domain at MAIL (target
"sender", the default) and the HELO name (target "helo"); a listing scores
the list's symbol with its weight, never rejects on its own; failures and
the operator error codes never count; answers are cached."""

from helpers import RCPT, assert_reply, simple_message, spam_status


def start(make_mx, dns, lists, timeout=2.0):
    return make_mx(config={"dns": {"servers": [dns.address], "timeout": timeout},
                           "rhsbl": tuple(lists)})


def send(mx, helo, sender, subject):
    c = mx.connect()
    assert_reply(c.ehlo(helo), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % sender), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message(subject))
    assert_reply(final, 250)
    c.quit()


def symbols_of(backend, n):
    txn = backend.wait_messages(n)[n - 1]
    _, status = spam_status(txn)
    return status.split("tests=")[1].split()[0].rstrip(",")


def test_sender_domain_listed(backend, make_mx, dns):
    dns.add("spam.example.dbl.test", "A", "127.0.1.2")
    mx = start(make_mx, dns, [{"zone": "dbl.test", "weight": 2.5, "symbol": "DBL_SENDER"}])
    send(mx, "mx.good.example", "someone@spam.example", "one")
    assert symbols_of(backend, 1) == "DBL_SENDER"
    _, status = spam_status(backend.wait_messages(1)[0])
    assert "score=2.5" in status
    assert ("spam.example.dbl.test", "A") in dns.queries
    # The null sender has no domain: no query, no symbol.
    dns.clear_log()
    c = mx.connect()
    c.ehlo("mx.good.example")
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    c.quit()
    assert dns.queries == []


def test_helo_listed_and_sender_clean(backend, make_mx, dns):
    dns.add("bad-helo.example.dbl.test", "A", "127.0.1.2")
    mx = start(make_mx, dns, [
        {"zone": "dbl.test", "weight": 1.5, "symbol": "DBL_HELO", "target": "helo"},
        {"zone": "dbl.test", "weight": 2.5, "symbol": "DBL_SENDER", "target": "sender"},
    ])
    send(mx, "bad-helo.example", "ok@clean.example", "two")
    assert symbols_of(backend, 1) == "DBL_HELO"
    assert ("bad-helo.example.dbl.test", "A") in dns.queries
    assert ("clean.example.dbl.test", "A") in dns.queries


def test_rhsbl_failures_and_error_codes_do_not_count(backend, make_mx, dns):
    dns.add("refused.example.dbl.test", "A", "127.255.255.254")
    dns.servfail("broken.example.dbl.test")
    dns.drop("slow.example.dbl.test")
    mx = start(make_mx, dns, [{"zone": "dbl.test", "weight": 5, "symbol": "DBL"}], timeout=1.0)
    for i, dom in enumerate(("refused.example", "broken.example", "slow.example", "nx.example")):
        send(mx, "mx.good.example", "a@" + dom, "n%d" % i)
        assert symbols_of(backend, i + 1) == "none", dom
    assert any("operator error" in l and "dbl.test" in l for l in mx.log_lines())


def test_rhsbl_cached(backend, make_mx, dns):
    dns.add("spam.example.dbl.test", "A", "127.0.1.2", ttl=300)
    mx = start(make_mx, dns, [{"zone": "dbl.test", "weight": 1, "symbol": "DBL"}])
    send(mx, "mx.good.example", "a@spam.example", "first")
    send(mx, "mx.good.example", "b@spam.example", "second")
    assert symbols_of(backend, 2) == "DBL"
    assert dns.count("spam.example.dbl.test", "A") == 1
