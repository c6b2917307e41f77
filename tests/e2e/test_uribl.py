# SPDX-License-Identifier: MIT
"""URIBL: the links of a message (text and HTML, found by the rule
engine's MIME decoder) reduced to registered domains with the public
suffix list, IPv4 hosts to reversed addresses, each asked once of every
`uribl` list at end of data; a listing adds the list's symbol with its
weight; at most 20 names per message; DNS failures and operator error
codes are never listings."""

import pytest

from helpers import RCPT, assert_reply
from mxguard import check_config, libconfig

ZONE = "multi.uribl.test"
SYMBOL = "URIBL_MULTI_URIBL_TEST"


def message(body, html=None):
    head = ("From: a@client.example\r\nTo: %s\r\nSubject: links\r\n"
            "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <u@client.example>\r\n" % RCPT)
    if html is None:
        return (head + "\r\n" + body).encode()
    return (head + 'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\n" + body +
            "\r\n--b1\r\nContent-Type: text/html\r\n\r\n" + html + "\r\n--b1--\r\n").encode()


def start(make_mx, dns, weight=4.0, timeout=1.0):
    return make_mx(config={"dns": {"servers": [dns.address], "timeout": timeout},
                           "uribl": ({"zone": ZONE, "weight": weight},)})


def deliver(mx, backend, msg, n=1):
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(msg)
    assert_reply(final, 250)
    c.quit()
    backend.wait_messages(n)
    return mx.wait_record("txn", count=n)


def symbols(mx, n):
    return mx.records("txn")[n - 1]["symbols"]


def test_listed_domain_from_text_and_html(make_mx, backend, dns):
    dns.add("bad-domain.com." + ZONE, "A", "127.0.0.2")
    mx = start(make_mx, dns)
    msg = message("Visit www.clean.example today.\r\n",
                  '<p><a href="https://Sub.Deep.Bad-Domain.com/x?y=1">here</a>'
                  '<img src="http://img.clean.example/p.png"></p>')
    deliver(mx, backend, msg)
    assert SYMBOL in symbols(mx, 1)
    assert float(mx.records("txn")[0]["score"]) >= 4.0
    # Registered domains, each asked once (not the host names).
    assert dns.count("bad-domain.com." + ZONE, "A") == 1
    assert dns.count("clean.example." + ZONE, "A") == 1
    assert dns.count("sub.deep.bad-domain.com." + ZONE) == 0
    mx.wait_log(r"uribl multi\.uribl\.test lists bad-domain\.com")


def test_public_suffix_list(make_mx, backend, dns):
    dns.add("shop.co.uk." + ZONE, "A", "127.0.0.2")
    mx = start(make_mx, dns)
    deliver(mx, backend, message("http://www.shop.co.uk/deal and http://x.y.shop.co.uk/\r\n"))
    assert SYMBOL in symbols(mx, 1)
    # co.uk is a public suffix: never asked as a domain of its own.
    assert dns.count("co.uk." + ZONE) == 0
    assert dns.count("shop.co.uk." + ZONE, "A") == 1


def test_ip_links_reversed(make_mx, backend, dns):
    dns.add("7.100.51.198." + ZONE, "A", "127.0.0.2")
    mx = start(make_mx, dns)
    deliver(mx, backend, message("Click http://198.51.100.7/login now\r\n"))
    assert SYMBOL in symbols(mx, 1)


def test_not_listed(make_mx, backend, dns):
    mx = start(make_mx, dns)
    deliver(mx, backend, message("See https://www.example.org/ for more.\r\n"))
    assert SYMBOL not in symbols(mx, 1)
    assert dns.count("example.org." + ZONE, "A") == 1


def test_no_links_no_queries(make_mx, backend, dns):
    mx = start(make_mx, dns)
    deliver(mx, backend, message("No links here.\r\n"))
    assert dns.queries == [] or all(not q[0].endswith(ZONE) for q in dns.queries)


def test_cap_per_message(make_mx, backend, dns):
    mx = start(make_mx, dns)
    links = "".join("http://www.shop%d.com/ " % i for i in range(50))
    deliver(mx, backend, message(links + "\r\n"))
    asked = {q[0] for q in dns.queries if q[0].endswith(ZONE)}
    assert len(asked) == 20


@pytest.mark.parametrize("answer", ["127.255.255.254", "servfail", "timeout"])
def test_failures_are_not_listings(make_mx, backend, dns, answer):
    name = "bad-domain.com." + ZONE
    if answer == "servfail":
        dns.servfail(name)
    elif answer == "timeout":
        dns.drop(name)
    else:
        dns.add(name, "A", answer)
    mx = start(make_mx, dns, timeout=0.5)
    deliver(mx, backend, message("http://bad-domain.com/\r\n"))
    assert SYMBOL not in symbols(mx, 1)


def test_config(tmp_path):
    path = tmp_path / "u.conf"
    path.write_text(libconfig({"backend": "127.0.0.1:25", "spool": {"dir": str(tmp_path)},
                               "listen": ({"address": "127.0.0.1:2525"},),
                               "accepted_domains": ["test.example"],
                               "uribl": ({"zone": ZONE, "target": "helo"},)}))
    rc, out = check_config(str(path))
    assert rc == 1 and "target is for rhsbl lists" in out, out
