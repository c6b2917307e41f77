# SPDX-License-Identifier: MIT
"""SPF (RFC 7208) through the whole daemon: records served by the test DNS
server, client addresses claimed with PROXY headers, results read from the
`spf` log record, the symbols, the Received-SPF and Authentication-Results
headers the backend receives, and the replies of spf.reject_fail."""

import itertools
import re

from helpers import RCPT, assert_reply, simple_message, split_headers, v1, v2
from smtp import Client

_ports = itertools.count(42100)

SYMBOLS = {
    "pass": "SPF_PASS", "fail": "SPF_FAIL", "softfail": "SPF_SOFTFAIL",
    "neutral": "SPF_NEUTRAL", "none": "SPF_NONE", "temperror": "SPF_TEMPERROR",
    "permerror": "SPF_PERMERROR",
}


def start(make_mx, dns, backend, spf=None, **config):
    cfg = {"dns": {"servers": [dns.address], "timeout": 1.0},
           "spf": dict({"enabled": True}, **(spf or {}))}
    cfg.update(config)
    return make_mx(backend=backend, config=cfg, listeners=[{"proxy_protocol": True}])


def connect(mx, ip, helo="client.example"):
    c = Client(mx.port)
    mx.clients.append(c)
    c.sport = next(_ports)
    if ip.startswith("::ffff:"):
        c.send(v2(src=ip, dst="::1", sport=c.sport, dport=25))
    else:
        c.send(v1(ip, "2001:db8::25" if ":" in ip else "192.0.2.1", c.sport, 25))
    assert_reply(c.banner(), 220)
    if helo is not None:
        assert_reply(c.ehlo(helo), 250)
    return c


def spf_result(mx, c, mail_from, n=1):
    """MAIL FROM on client c; returns (reply, spf log record)."""
    r = c.cmd("MAIL FROM:<%s>" % mail_from)
    sess = mx.session(port=c.sport, done=False)
    recs = mx.wait_record("spf", pred=lambda rec: rec.sid == sess["sid"] and rec.n == n)
    return r, recs[0]


def deliver(mx, ip, mail_from, helo="client.example", msg=None):
    c = connect(mx, ip, helo)
    assert_reply(c.cmd("MAIL FROM:<%s>" % mail_from), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(msg or simple_message("spf"))
    assert_reply(final, 250)
    c.quit()
    return c


def fields(txn):
    added, _ = split_headers(txn.data)
    return [(n, f.decode()) for n, f in added]


def test_spf_pass_headers_and_symbol(backend, make_mx, dns):
    dns.add("pass.spf.test", "TXT", "v=spf1 ip4:198.18.7.1 -all")
    mx = start(make_mx, dns, backend)
    deliver(mx, "198.18.7.1", "alice@pass.spf.test")
    (txn,) = backend.wait_messages(1)
    f = dict(fields(txn))
    assert f["Received-SPF"] == (
        "Received-SPF: pass (mx.test: domain of pass.spf.test designates "
        "198.18.7.1 as permitted sender)\r\n\treceiver=mx.test; "
        "client-ip=198.18.7.1; envelope-from=\"alice@pass.spf.test\"; "
        "helo=client.example;\r\n\tidentity=mailfrom;\r\n")
    assert f["Authentication-Results"] == (
        "Authentication-Results: mx.test;\r\n\tspf=pass "
        "smtp.mailfrom=alice@pass.spf.test\r\n")
    assert "SPF_PASS" in f["X-Spam-Status"]
    (rec,) = mx.wait_record("txn")
    assert rec["spf"] == "pass"
    assert rec["symbols"] == "SPF_PASS"
    (srec,) = mx.wait_record("spf")
    assert srec["result"] == "pass" and srec["identity"] == "mailfrom"
    assert srec["domain"] == "pass.spf.test" and srec["lookups"] == "0"
