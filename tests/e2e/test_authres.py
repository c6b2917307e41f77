# SPDX-License-Identifier: MIT
"""Authentication-Results (RFC 8601): the backend gets exactly one header
with our authserv-id (the `hostname` key), ours; forged ones carrying our
authserv-id are removed wherever they are in the header section (any case,
quoted, after a comment, folded, longer than the hold buffer), others are
kept, and every other byte of the message arrives unchanged."""

import itertools
import re

from helpers import RCPT, assert_reply, split_headers, v1
from smtp import Client

_ports = itertools.count(44100)


def start(make_mx, dns, backend, **config):
    cfg = {"dns": {"servers": [dns.address], "timeout": 1.0}, "spf": {"enabled": True}}
    cfg.update(config)
    return make_mx(backend=backend, config=cfg, listeners=[{"proxy_protocol": True}])


def send(mx, msg, ip="198.18.6.1", mail_from="a@ar.spf.test"):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "192.0.2.1", next(_ports), 25))
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % mail_from), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(msg)
    assert_reply(final, 250)
    c.quit()


FORGED = (
    b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=a@ar.spf.test\r\n",
    b"authentication-results: MX.TEST;\r\n\tdkim=pass header.d=bank.example\r\n",
    b"Authentication-Results: \"mx.test\"; dmarc=pass\r\n",
    b"Authentication-Results: (trust me) mx.test 1; iprev=pass\r\n",
    b"Authentication-Results :\r\n mx.test;\r\n spf=pass\r\n",
)
KEPT = (
    b"Authentication-Results: upstream.example; spf=fail smtp.mailfrom=a@ar.spf.test\r\n",
    b"Authentication-Results: mx.test.evil.example; spf=pass\r\n",
    b"X-Authentication-Results: mx.test; spf=pass\r\n",
    b"ARC-Authentication-Results: i=1; mx.test; spf=pass\r\n",
)


def test_forged_authentication_results_removed(backend, make_mx, dns):
    dns.add("ar.spf.test", "TXT", "v=spf1 ip4:198.18.6.1 -all")
    mx = start(make_mx, dns, backend)
    head = (b"Message-ID: <forged@ar.spf.test>\r\n"
            b"Received: from upstream.example by relay.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            + FORGED[0] + KEPT[0] + FORGED[1] + b"From: <a@ar.spf.test>\r\n" + KEPT[1]
            + FORGED[2] + b"Subject: forged\r\n" + KEPT[2] + FORGED[3] + KEPT[3]
            + FORGED[4] + b"To: <user@test.example>\r\n")
    body = (b"\r\nAuthentication-Results: mx.test; spf=pass (in the body: kept)\r\n"
            b"..leading dot\r\n\xe9t\xe9 8-bit\r\n")
    send(mx, head + body)
    (txn,) = backend.wait_messages(1)
    added, rest = split_headers(txn.data)
    # (Received: the default backend is told nothing by XCLIENT.)
    assert [n for n, _ in added] == ["Received", "Received-SPF", "Authentication-Results",
                                     "X-Spam-Status", "X-Spam-Score"]
    assert added[2][1] == (b"Authentication-Results: mx.test;\r\n"
                           b"\tspf=pass smtp.mailfrom=a@ar.spf.test\r\n")
    want = head
    for f in FORGED:
        want = want.replace(f, b"")
    assert rest == want + body
    for k in KEPT:
        assert k in rest
    # Ours is the only one with our authserv-id in the header section.
    header = txn.data.split(b"\r\n\r\n", 1)[0].lower()
    assert len(re.findall(rb"(?m)^authentication-results: mx\.test;", header)) == 1
    mx.wait_log(r"removed 5 forged Authentication-Results header")


def test_forged_header_removed_without_spf(backend, make_mx, dns):
    """Removal does not depend on any check having run: with SPF off and
    no iprev, ours is absent and the forged one still goes."""
    mx = start(make_mx, dns, backend, spf={"enabled": False})
    msg = (b"Authentication-Results: mx.test; spf=pass\r\nSubject: s\r\n\r\nbody\r\n")
    send(mx, msg)
    (txn,) = backend.wait_messages(1)
    assert b"Authentication-Results" not in txn.data
    assert txn.data.endswith(b"Subject: s\r\n\r\nbody\r\n")


def test_long_forged_header_removed(backend, make_mx, dns):
    """A forged field longer than the hold buffer (8 KiB), the authserv-id
    hidden behind a long comment, and a long foreign field kept whole."""
    mx = start(make_mx, dns, backend, spf={"enabled": False})
    # (Folded: limits.line_length is 2048 in the tests.)
    forged = (b"Authentication-Results: (" + b"x" * 900
              + b"\r\n " * 1 + (b"x" * 900 + b"\r\n ") * 10 + b")\r\n mx.test; spf=pass\r\n")
    kept = (b"Authentication-Results: upstream.example;\r\n"
            + b"".join(b"\tx%d=" % i + b"y" * 900 + b"\r\n" for i in range(10)))
    msg = forged + kept + b"Subject: long\r\n\r\nbody\r\n"
    send(mx, msg)
    (txn,) = backend.wait_messages(1)
    assert txn.data.endswith(kept + b"Subject: long\r\n\r\nbody\r\n")
    assert b"xxxx" not in txn.data
