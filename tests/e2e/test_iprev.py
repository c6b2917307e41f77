# SPDX-License-Identifier: MIT
"""FCrDNS / iprev (RFC 8601 2.7.3): PTR of the client, then A/AAAA of the
name must contain the client.  The verified name reaches the backend as
XCLIENT NAME (or in mxguard's Received header); failures score
IPREV_FAIL (names that do not map back) or RDNS_NONE (no PTR); a
temporary DNS failure scores nothing and is NAME=[TEMPUNAVAIL]."""

import itertools

from helpers import RCPT, SENDER, assert_reply, simple_message, spam_status, v1
from smtp import Client

_ports = itertools.count(41100)

# Client addresses are claimed with PROXY headers (no traffic goes to them).
# They lie outside the reverse zones libunbound serves itself (RFC 6303 and
# the documentation networks of RFC 5737 / 3849), whose PTR lookups never
# reach a server.


def start(make_mx, dns, backend, fcrdns=True):
    return make_mx(backend=backend,
                   config={"dns": {"servers": [dns.address], "timeout": 1.0},
                           "fcrdns": fcrdns},
                   listeners=[{"proxy_protocol": True}])


def send_from(mx, ip, subject):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "2001:db8::25" if ":" in ip else "192.0.2.1", next(_ports), 25))
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message(subject))
    assert_reply(final, 250)
    c.quit()


def symbols(txn):
    _, status = spam_status(txn)
    return status.split("tests=")[1].split()[0]


def test_iprev_pass_names_the_client_in_xclient(make_backend, make_mx, dns):
    be = make_backend(xclient=True)
    dns.add("7.5.18.198.in-addr.arpa", "PTR", "mail.client.example")
    dns.add("mail.client.example", "A", "198.18.5.7")
    mx = start(make_mx, dns, be)
    send_from(mx, "198.18.5.7", "pass")
    (txn,) = be.wait_messages(1)
    assert txn.xclient["NAME"] == "mail.client.example"
    assert txn.xclient["ADDR"] == "198.18.5.7"
    assert symbols(txn) == "none"


def test_iprev_pass_in_received_header(backend, make_mx, dns):
    dns.add("7.5.18.198.in-addr.arpa", "PTR", "mail.client.example")
    dns.add("mail.client.example", "A", "198.18.5.7")
    mx = start(make_mx, dns, backend)
    send_from(mx, "198.18.5.7", "received")
    (txn,) = backend.wait_messages(1)
    assert txn.data.startswith(
        b"Received: from client.example (mail.client.example [198.18.5.7])\r\n")


def test_iprev_fail(make_backend, make_mx, dns):
    be = make_backend(xclient=True)
    dns.add("7.5.18.198.in-addr.arpa", "PTR", "forged.example")
    dns.add("forged.example", "A", "198.51.100.1")
    mx = start(make_mx, dns, be)
    send_from(mx, "198.18.5.7", "fail")
    (txn,) = be.wait_messages(1)
    assert txn.xclient["NAME"] == "[UNAVAILABLE]"
    assert symbols(txn) == "IPREV_FAIL"
    assert ("forged.example", "A") in dns.queries


def test_iprev_no_ptr(make_backend, make_mx, dns):
    be = make_backend(xclient=True)
    mx = start(make_mx, dns, be)
    send_from(mx, "198.18.5.8", "noptr")
    (txn,) = be.wait_messages(1)
    assert txn.xclient["NAME"] == "[UNAVAILABLE]"
    assert symbols(txn) == "RDNS_NONE"


def test_iprev_temperror(make_backend, make_mx, dns):
    be = make_backend(xclient=True)
    dns.servfail("9.5.18.198.in-addr.arpa")
    dns.add("10.5.18.198.in-addr.arpa", "PTR", "slow.example")
    dns.drop("slow.example")
    mx = start(make_mx, dns, be)
    send_from(mx, "198.18.5.9", "servfail")
    send_from(mx, "198.18.5.10", "timeout")
    t1, t2 = be.wait_messages(2)
    for t in (t1, t2):
        assert t.xclient["NAME"] == "[TEMPUNAVAIL]"
        assert symbols(t) == "none"


def test_iprev_ipv6(make_backend, make_mx, dns):
    be = make_backend(xclient=True)
    nibbles = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.f.f.f.3.ip6.arpa"
    dns.add(nibbles, "PTR", "v6.client.example")
    dns.add("v6.client.example", "AAAA", "3fff::1")
    mx = start(make_mx, dns, be)
    send_from(mx, "3fff::1", "v6")
    (txn,) = be.wait_messages(1)
    assert txn.xclient["NAME"] == "v6.client.example"
    assert (nibbles, "PTR") in dns.queries
    assert ("v6.client.example", "AAAA") in dns.queries


def test_fcrdns_off_asks_nothing(make_backend, make_mx, dns):
    be = make_backend(xclient=True)
    mx = start(make_mx, dns, be, fcrdns=False)
    send_from(mx, "198.18.5.7", "off")
    (txn,) = be.wait_messages(1)
    assert txn.xclient["NAME"] == "[UNAVAILABLE]"
    assert dns.queries == []


def _auth_results(txn):
    m = __import__("re").search(rb"(?m)^Authentication-Results: ([^\r]*)\r\n\t([^\r]*)\r\n", txn.data)
    assert m, txn.data[:400]
    return m.group(1).decode(), m.group(2).decode()


def test_iprev_in_authentication_results(backend, make_mx, dns):
    """RFC 8601 2.7.3: iprev=pass|fail|temperror|permerror policy.iprev=IP,
    authserv-id = our hostname."""
    dns.add("7.5.18.198.in-addr.arpa", "PTR", "mail.client.example")
    dns.add("mail.client.example", "A", "198.18.5.7")
    dns.add("8.5.18.198.in-addr.arpa", "PTR", "forged.example")
    dns.add("forged.example", "A", "198.51.100.1")
    dns.servfail("9.5.18.198.in-addr.arpa")
    mx = start(make_mx, dns, backend)
    send_from(mx, "198.18.5.7", "pass")
    send_from(mx, "198.18.5.8", "fail")
    send_from(mx, "198.18.5.9", "temp")
    send_from(mx, "198.18.5.10", "perm")
    # wait_messages lists messages in the order they arrived.
    got = [_auth_results(t) for t in backend.wait_messages(4)]
    assert got == [
        ("mx.test;", "iprev=pass policy.iprev=198.18.5.7 (mail.client.example)"),
        ("mx.test;", "iprev=fail policy.iprev=198.18.5.8"),
        ("mx.test;", "iprev=temperror policy.iprev=198.18.5.9"),
        ("mx.test;", "iprev=permerror policy.iprev=198.18.5.10"),
    ]


def test_no_authentication_results_when_nothing_evaluated(make_backend, make_mx, dns):
    be = make_backend(xclient=True)
    mx = start(make_mx, dns, be, fcrdns=False)
    send_from(mx, "198.18.5.7", "none")
    (txn,) = be.wait_messages(1)
    assert b"Authentication-Results:" not in txn.data
