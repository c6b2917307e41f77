# SPDX-License-Identifier: MIT
"""SPF (RFC 7208) through the whole daemon: records served by the test DNS
server, client addresses claimed with PROXY headers, results read from the
`spf` log record, the symbols, the Received-SPF and Authentication-Results
headers the backend receives, and the replies of spf.reject_fail."""

import itertools
import re

import pytest

from helpers import RCPT, assert_reply, simple_message, split_headers, v1, v2
from smtp import Client

_ports = itertools.count(42100)

SYMBOLS = {
    "pass": "SPF_PASS", "fail": "SPF_FAIL", "softfail": "SPF_SOFTFAIL",
    "neutral": "SPF_NEUTRAL", "none": "SPF_NONE", "temperror": "SPF_TEMPERROR",
    "permerror": "SPF_PERMERROR",
}


def start(make_mx, dns, backend, spf=None, dns_timeout=1.0, **config):
    cfg = {"dns": {"servers": [dns.address], "timeout": dns_timeout},
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


def test_spf_fail_tags_by_default(backend, make_mx, dns):
    dns.add("fail.spf.test", "TXT", "v=spf1 ip4:198.18.7.1 -all")
    mx = start(make_mx, dns, backend)
    deliver(mx, "198.18.7.2", "bob@fail.spf.test")
    (txn,) = backend.wait_messages(1)
    f = dict(fields(txn))
    assert f["Received-SPF"].startswith(
        "Received-SPF: fail (mx.test: domain of fail.spf.test does not designate "
        "198.18.7.2 as permitted sender)\r\n")
    assert "\tspf=fail smtp.mailfrom=bob@fail.spf.test\r\n" in f["Authentication-Results"]
    (rec,) = mx.wait_record("txn")
    assert rec["spf"] == "fail" and rec["symbols"] == "SPF_FAIL" and rec["score"] == "1.0"


def test_spf_reject_fail_550_with_explanation(backend, make_mx, dns):
    """RFC 7372 3.2: 550 5.7.23, with the domain's exp= text (RFC 7208
    6.2) expanded."""
    dns.add("fail.spf.test", "TXT", "v=spf1 ip4:198.18.7.1 -all exp=why.fail.spf.test")
    dns.add("why.fail.spf.test", "TXT", "%{i} may not send mail for %{d}")
    dns.add("pass.spf.test", "TXT", "v=spf1 ip4:198.18.7.2 -all")
    mx = start(make_mx, dns, backend, spf={"reject_fail": True})
    c = connect(mx, "198.18.7.2")
    r, rec = spf_result(mx, c, "bob@fail.spf.test")
    assert_reply(r, 550, "5.7.23", text=r"SPF validation failed for fail\.spf\.test: "
                 r"198\.18\.7\.2 may not send mail for fail\.spf\.test$")
    assert rec["result"] == "fail"
    # The transaction ended at MAIL; the next one passes.
    r, rec = spf_result(mx, c, "bob@pass.spf.test", n=2)
    assert_reply(r, 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("after"))
    assert_reply(final, 250)
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert txn.mail_from == "bob@pass.spf.test"
    (t1,) = mx.wait_record("txn", result="reject")
    assert t1["stage"] == "mail" and t1["spf"] == "fail"
    assert "5.7.23" in t1["reply"]


def test_spf_reject_fail_leaves_softfail(backend, make_mx, dns):
    dns.add("soft.spf.test", "TXT", "v=spf1 ~all")
    mx = start(make_mx, dns, backend, spf={"reject_fail": True})
    deliver(mx, "198.18.7.2", "bob@soft.spf.test")
    (txn,) = backend.wait_messages(1)
    assert dict(fields(txn))["Received-SPF"].startswith("Received-SPF: softfail ")
    (rec,) = mx.wait_record("txn")
    assert rec["symbols"] == "SPF_SOFTFAIL"


def test_spf_dns_timeout_is_temperror(backend, make_mx, dns):
    dns.drop("slow.spf.test")
    dns.servfail("broken.spf.test")
    mx = start(make_mx, dns, backend)
    # (libunbound may give up on the silent server before dns.timeout
    # and call it a server failure.)
    for dom in ("slow.spf.test", "broken.spf.test"):
        c = connect(mx, "198.18.7.3")
        r, rec = spf_result(mx, c, "x@" + dom)
        assert_reply(r, 250)
        assert rec["result"] == "temperror"
        assert rec["problem"] in ("DNS timeout: " + dom, "DNS error: " + dom)
        c.quit()


def test_spf_tempfail_temperror_451(backend, make_mx, dns):
    dns.drop("slow.spf.test")
    mx = start(make_mx, dns, backend, spf={"tempfail_temperror": True})
    c = connect(mx, "198.18.7.3")
    r, rec = spf_result(mx, c, "x@slow.spf.test")
    assert_reply(r, 451, "4.7.24")
    assert rec["result"] == "temperror"


def test_spf_time_limit(backend, make_mx, dns):
    """spf.timeout bounds the whole evaluation: a chain of slow includes
    ends in temperror, not in the chain's filter timeout."""
    dns.add("chain.spf.test", "TXT",
            "v=spf1 include:s1.spf.test include:s2.spf.test include:s3.spf.test -all")
    for i in (1, 2, 3):
        dns.drop("s%d.spf.test" % i)
    mx = start(make_mx, dns, backend, spf={"timeout": 0.5}, dns_timeout=0.4)
    c = connect(mx, "198.18.7.3")
    r, rec = spf_result(mx, c, "x@chain.spf.test")
    assert_reply(r, 250)
    assert rec["result"] == "temperror"
    assert rec["problem"] == "time limit exceeded" or rec["problem"].startswith("DNS ")


def test_spf_null_sender_checks_helo(backend, make_mx, dns):
    """RFC 7208 2.4: MAIL FROM:<> is checked as postmaster@<HELO name>."""
    dns.add("mail.client.spf.test", "TXT", "v=spf1 ip4:198.18.7.4 -all")
    mx = start(make_mx, dns, backend)
    deliver(mx, "198.18.7.4", "", helo="mail.client.spf.test")
    (txn,) = backend.wait_messages(1)
    f = dict(fields(txn))
    assert f["Received-SPF"] == (
        "Received-SPF: pass (mx.test: domain of mail.client.spf.test designates "
        "198.18.7.4 as permitted sender)\r\n\treceiver=mx.test; "
        "client-ip=198.18.7.4; envelope-from=\"\"; "
        "helo=mail.client.spf.test;\r\n\tidentity=helo;\r\n")
    assert f["Authentication-Results"] == (
        "Authentication-Results: mx.test;\r\n\tspf=pass smtp.helo=mail.client.spf.test\r\n")
    (rec,) = mx.wait_record("spf")
    assert rec["identity"] == "helo" and rec["domain"] == "mail.client.spf.test"


def test_spf_ipv6_client(backend, make_mx, dns):
    dns.add("v6.spf.test", "TXT", "v=spf1 ip6:2001:db8:7::/48 -all")
    mx = start(make_mx, dns, backend)
    deliver(mx, "2001:db8:7::25", "a@v6.spf.test")
    (txn,) = backend.wait_messages(1)
    assert "client-ip=2001:db8:7::25;" in dict(fields(txn))["Received-SPF"]
    (rec,) = mx.wait_record("spf")
    assert rec["result"] == "pass"


def test_spf_ipv4_mapped_client_is_ipv4(backend, make_mx, dns):
    """A PROXY v2 IPv6 header carrying ::ffff:a.b.c.d is an IPv4 client
    for SPF (ip4: matches, ip6: does not)."""
    dns.add("m4.spf.test", "TXT", "v=spf1 ip6:::ffff:0:0/96 ip4:198.18.7.5 -all")
    mx = start(make_mx, dns, backend)
    c = connect(mx, "::ffff:198.18.7.5")
    r, rec = spf_result(mx, c, "a@m4.spf.test")
    assert_reply(r, 250)
    assert rec["result"] == "pass"


def test_spf_skips_relay_networks_unless_check_trusted(backend, make_mx, dns):
    dns.add("pass.spf.test", "TXT", "v=spf1 -all")
    mx = start(make_mx, dns, backend, relay_networks=["198.18.8.0/24"])
    deliver(mx, "198.18.8.1", "a@pass.spf.test")
    (txn,) = backend.wait_messages(1)
    assert "Received-SPF" not in dict(fields(txn))
    assert b"Authentication-Results" not in txn.data
    (rec,) = mx.wait_record("txn")
    assert rec["spf"] == "-"
    assert dns.count("pass.spf.test") == 0

    mx2 = start(make_mx, dns, backend, spf={"check_trusted": True},
                relay_networks=["198.18.8.0/24"])
    deliver(mx2, "198.18.8.1", "a@pass.spf.test")
    (rec,) = mx2.wait_record("spf")
    assert rec["result"] == "fail"


def test_spf_disabled(backend, make_mx, dns):
    dns.add("pass.spf.test", "TXT", "v=spf1 -all")
    mx = start(make_mx, dns, backend, spf={"enabled": False})
    deliver(mx, "198.18.7.1", "a@pass.spf.test")
    (txn,) = backend.wait_messages(1)
    assert b"Received-SPF" not in txn.data
    assert dns.queries == []


def test_spf_and_iprev_share_one_header(backend, make_mx, dns):
    dns.add("7.7.18.198.in-addr.arpa", "PTR", "mail.client.example")
    dns.add("mail.client.example", "A", "198.18.7.7")
    dns.add("pass.spf.test", "TXT", "v=spf1 ip4:198.18.7.7 -all")
    mx = start(make_mx, dns, backend, fcrdns=True)
    deliver(mx, "198.18.7.7", "a@pass.spf.test")
    (txn,) = backend.wait_messages(1)
    assert txn.data.count(b"Authentication-Results:") == 1
    assert dict(fields(txn))["Authentication-Results"] == (
        "Authentication-Results: mx.test;\r\n\tspf=pass smtp.mailfrom=a@pass.spf.test;"
        "\r\n\tiprev=pass policy.iprev=198.18.7.7 (mail.client.example)\r\n")


def test_spf_hostile_sender_stays_out_of_headers(backend, make_mx, dns):
    """A local part that is no dot-atom: smtp.mailfrom falls back to the
    domain, envelope-from is a quoted-string with its quotes escaped."""
    dns.add("pass.spf.test", "TXT", "v=spf1 +all")
    mx = start(make_mx, dns, backend)
    deliver(mx, "198.18.7.1", '"a;b\\"c"@pass.spf.test')
    (txn,) = backend.wait_messages(1)
    f = dict(fields(txn))
    assert "\tspf=pass smtp.mailfrom=pass.spf.test\r\n" in f["Authentication-Results"]
    assert 'envelope-from="\\"a;b\\\\\\"c\\"@pass.spf.test";' in f["Received-SPF"]


def test_spf_session_ends_during_evaluation(backend, make_mx, dns):
    """The client leaves while its evaluation waits on DNS: nothing
    leaks or crashes (ASan runs check), the daemon stops cleanly."""
    dns.drop("slow.spf.test")
    mx = start(make_mx, dns, backend)
    c = connect(mx, "198.18.7.9")
    c.send(b"MAIL FROM:<x@slow.spf.test>\r\n")
    dns.wait_query("slow.spf.test", "TXT")
    c.close()
    mx.wait_record("disconnect")
    c2 = connect(mx, "198.18.7.9")
    c2.quit()


BAD_SPF = {
    "unknown key": "spf = { reject_fial = true; };",
    "wrong type": 'spf = { reject_fail = "yes"; };',
    "timeout too long": "spf = { timeout = 40.0; };",
}


@pytest.mark.parametrize("name", list(BAD_SPF))
def test_spf_config_errors(tmp_path, name):
    from mxguard import check_config
    from test_ops import flat_config

    # Line 14 is the first after the documented settings.
    path = flat_config(tmp_path)
    with open(path, "a") as f:
        f.write(BAD_SPF[name] + "\n")
    rc, out = check_config(path)
    assert rc == 1, out
    assert re.search(r"(?m)^%s:14: \S" % re.escape(path), out), out


def test_spf_config_good(tmp_path):
    from mxguard import check_config
    from test_ops import flat_config

    path = flat_config(tmp_path)
    with open(path, "a") as f:
        f.write("spf = { enabled = true; reject_fail = true; tempfail_temperror = false; "
                "check_trusted = false; timeout = 5.0; };\n")
    rc, out = check_config(path)
    assert rc == 0, out


def test_spf_many_sessions_share_the_pool(backend, make_mx, dns):
    """More evaluations in flight than worker threads (2 in the tests),
    each waiting on a slow answer: every MAIL gets its own result."""
    dns.add("slow.spf.test", "TXT", "v=spf1 ip4:198.18.7.0/24 -all")
    dns.delay("slow.spf.test", 0.3)
    dns.add("other.spf.test", "TXT", "v=spf1 -all")
    mx = start(make_mx, dns, backend)
    clients = [connect(mx, "198.18.7.%d" % (10 + i)) for i in range(12)]
    for i, c in enumerate(clients):
        c.send(("MAIL FROM:<u%d@%s>\r\n" % (i, "slow.spf.test" if i % 2 else
                                             "other.spf.test")).encode())
    for c in clients:
        assert_reply(c.reply(), 250)
    recs = mx.wait_record("spf", count=12)
    got = sorted((r["domain"], r["result"]) for r in recs)
    assert got == sorted([("other.spf.test", "fail")] * 6 + [("slow.spf.test", "pass")] * 6)
    for c in clients:
        c.quit()
