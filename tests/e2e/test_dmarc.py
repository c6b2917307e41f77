# SPDX-License-Identifier: MIT
"""DMARC (RFC 7489) through the whole daemon: policy records served by the
test DNS server, SPF records for the loopback client, messages DKIM-signed
at test time (test_dkim.py's helpers); results read from the
Authentication-Results header the backend receives, the symbols, the
`dmarc` log record, and the SMTP reply under enforcement."""

import re

import pytest

from helpers import RCPT, assert_reply, split_headers, v1
from smtp import Client
from test_dkim import publish, sign

ORG = "example.test"
CLIENT = "192.0.2.10"


def message(from_field="Alice <alice@example.test>", body=b"Hello.\r\n"):
    return (b"From: " + from_field.encode() + b"\r\n"
            b"To: <user@test.example>\r\n"
            b"Subject: dmarc test\r\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"Message-ID: <dmarc@example.test>\r\n"
            b"\r\n" + body)


def start(make_mx, backend, dns, enforce=None, spf=True, dkim=True, **extra):
    dmarc = {"enabled": True}
    if enforce is not None:
        dmarc["enforce"] = enforce
    cfg = {"dns": {"servers": [dns.address], "timeout": 1.0},
           "spf": {"enabled": spf}, "dkim": {"enabled": dkim},
           "dmarc": dmarc}
    cfg.update(extra)
    # The client comes through the PROXY protocol from a documentation
    # address: SPF does not evaluate loopback clients.
    return make_mx(backend=backend, config=cfg,
                   listeners=[{"proxy_protocol": True}])


def policy(dns, domain, record):
    dns.add("_dmarc." + domain, "TXT", [record])


def spf_pass(dns, domain):
    dns.add(domain, "TXT", ["v=spf1 ip4:%s -all" % CLIENT])


def send(mx, msg, mail_from="bounce@example.test", expect=250):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(CLIENT, "192.0.2.1", 40000, 25))
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % mail_from), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(msg)
    assert_reply(final, expect)
    c.quit()
    return final


def deliver(mx, backend, msg, n=1, rn=None, **kw):
    """Send msg, the backend's nth message (the rn-th transaction, n by
    default); (dmarc resinfo, txn record, dmarc record, added headers)."""
    rn = rn or n
    send(mx, msg, **kw)
    txn = backend.wait_messages(n)[n - 1]
    added, _ = split_headers(txn.data)
    f = {name: v.decode() for name, v in added}
    (rec,) = mx.wait_record("txn", count=rn)[rn - 1:]
    drecs = mx.records("dmarc")
    ar = f.get("Authentication-Results", "")
    body = re.sub(r"\r\n\t", " ", ar)
    dm = [r.strip() for r in body.split(";") if r.strip().startswith("dmarc=")]
    return (dm[0] if dm else None), rec, (drecs[rn - 1] if drecs else None), f


def spam(f):
    """The X-Spam-Status value."""
    return f["X-Spam-Status"].split(":", 1)[1].strip()


def symbols(rec):
    return set(rec["symbols"].split(","))


def test_dmarc_pass_via_spf_relaxed(backend, make_mx, dns):
    """An SPF pass for a subdomain of the From domain aligns (relaxed)."""
    policy(dns, ORG, "v=DMARC1; p=reject")
    spf_pass(dns, "bounces.example.test")
    mx = start(make_mx, backend, dns, dkim=False)
    r, rec, drec, _ = deliver(mx, backend, message(),
                              mail_from="b@bounces.example.test")
    assert r == "dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.test"
    assert "DMARC_POLICY_ALLOW" in symbols(rec)
    assert drec["spf_aligned"] == "yes" and drec["dkim_aligned"] == "no"


def test_dmarc_spf_strict_unaligned_fails(backend, make_mx, dns):
    policy(dns, ORG, "v=DMARC1; p=quarantine; aspf=s")
    spf_pass(dns, "bounces.example.test")
    mx = start(make_mx, backend, dns, dkim=False)
    r, rec, _, f = deliver(mx, backend, message(),
                           mail_from="b@bounces.example.test")
    assert r == ("dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) "
                 "header.from=example.test")
    assert "DMARC_POLICY_QUARANTINE" in symbols(rec)
    # Not enforced by default: no tag from DMARC alone.
    assert spam(f).startswith("No")


def test_dmarc_spf_other_domain_unaligned(backend, make_mx, dns):
    policy(dns, ORG, "v=DMARC1; p=none")
    spf_pass(dns, "esp.test")
    mx = start(make_mx, backend, dns, dkim=False)
    r, rec, drec, _ = deliver(mx, backend, message(), mail_from="b@esp.test")
    assert r.startswith("dmarc=fail (p=NONE sp=NONE dis=NONE) ")
    assert "DMARC_POLICY_SOFTFAIL" in symbols(rec)
    assert drec["spf_aligned"] == "no"


def test_dmarc_pass_via_dkim_relaxed_and_strict(backend, make_mx, dns):
    """d=mail.example.test aligns relaxed with example.test, not strict."""
    publish(dns, "s1", "mail.example.test", "rsa1024")
    policy(dns, ORG, "v=DMARC1; p=reject")
    policy(dns, "strict.test", "v=DMARC1; p=reject; adkim=s")
    publish(dns, "s1", "a.strict.test", "rsa1024")
    mx = start(make_mx, backend, dns, spf=False)
    msg = sign(message(), "s1", "mail.example.test", "rsa1024")
    r, rec, drec, _ = deliver(mx, backend, msg, mail_from="b@esp.test")
    assert r.startswith("dmarc=pass ")
    assert drec["dkim_aligned"] == "yes"
    msg = sign(message("<x@strict.test>"), "s1", "a.strict.test", "rsa1024")
    r, rec, drec, _ = deliver(mx, backend, msg, n=2, mail_from="b@esp.test")
    assert r == "dmarc=fail (p=REJECT sp=REJECT dis=REJECT) header.from=strict.test"
    assert "DMARC_POLICY_REJECT" in symbols(rec)


def test_dmarc_dkim_unaligned_and_broken(backend, make_mx, dns):
    publish(dns, "s1", "esp.test", "rsa1024")
    publish(dns, "s1", ORG, "rsa1024")
    policy(dns, ORG, "v=DMARC1; p=reject")
    mx = start(make_mx, backend, dns, spf=False)
    msg = sign(message(), "s1", "esp.test", "rsa1024")
    r, _, drec, _ = deliver(mx, backend, msg, mail_from="b@esp.test")
    assert r.startswith("dmarc=fail ") and drec["dkim_aligned"] == "no"
    # Aligned d= but the body changed: not a pass, no alignment.
    msg = sign(message(), "s1", ORG, "rsa1024") + b"tampered\r\n"
    r, _, _, _ = deliver(mx, backend, msg, n=2, mail_from="b@esp.test")
    assert r.startswith("dmarc=fail ")


def test_dmarc_subdomain_policy(backend, make_mx, dns):
    """A subdomain without its own record gets the organizational domain's
    sp=; a subdomain with its own record gets that record's p=."""
    policy(dns, ORG, "v=DMARC1; p=none; sp=reject")
    policy(dns, "own.example.test", "v=DMARC1; p=quarantine")
    mx = start(make_mx, backend, dns, spf=False, dkim=False)
    r, rec, _, _ = deliver(mx, backend, message("<a@sub.example.test>"))
    assert r == ("dmarc=fail (p=NONE sp=REJECT dis=REJECT) "
                 "header.from=sub.example.test")
    r, rec, _, _ = deliver(mx, backend, message("<a@example.test>"), n=2)
    assert r.startswith("dmarc=fail (p=NONE sp=REJECT dis=NONE) ")
    r, rec, _, _ = deliver(mx, backend, message("<a@own.example.test>"), n=3)
    assert r.startswith("dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) ")


def test_dmarc_pct(backend, make_mx, dns):
    """pct=0: no failure is sampled, reject becomes quarantine and
    quarantine none (RFC 7489 6.6.4); pct=100: the policy as published."""
    policy(dns, "zero.test", "v=DMARC1; p=reject; pct=0")
    policy(dns, "zeroq.test", "v=DMARC1; p=quarantine; pct=0")
    policy(dns, "all.test", "v=DMARC1; p=reject; pct=100")
    mx = start(make_mx, backend, dns, enforce=True, spf=False, dkim=False)
    r, _, _, f = deliver(mx, backend, message("<a@zero.test>"))
    assert r.startswith("dmarc=fail (p=REJECT sp=REJECT dis=QUARANTINE) ")
    assert spam(f).startswith("Yes")
    r, _, _, f = deliver(mx, backend, message("<a@zeroq.test>"), n=2)
    assert r.startswith("dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=NONE) ")
    assert spam(f).startswith("No")
    final = send(mx, message("<a@all.test>"), expect=550)
    assert "5.7.1" in final.text


def test_dmarc_no_record_is_none(backend, make_mx, dns):
    mx = start(make_mx, backend, dns, enforce=True, spf=False, dkim=False)
    r, rec, drec, _ = deliver(mx, backend, message("<a@norecord.test>"))
    assert r == "dmarc=none header.from=norecord.test"
    assert "DMARC_NA" in symbols(rec)
    assert drec["result"] == "none"


def test_dmarc_invalid_and_multiple_records(backend, make_mx, dns):
    """A record libopendmarc cannot parse is permerror; two v=DMARC1
    records mean no policy (RFC 7489 6.6.3); other TXT records are
    ignored."""
    policy(dns, "bad.test", "v=DMARC1; p=bogus")
    policy(dns, "two.test", "v=DMARC1; p=reject")
    policy(dns, "two.test", "v=DMARC1; p=none")
    policy(dns, "other.test", "some verification token")
    policy(dns, "other.test", "v=DMARC1; p=reject")
    mx = start(make_mx, backend, dns, spf=False, dkim=False)
    r, rec, _, _ = deliver(mx, backend, message("<a@bad.test>"))
    assert r.startswith("dmarc=permerror ") and "DMARC_BAD_POLICY" in symbols(rec)
    r, _, _, _ = deliver(mx, backend, message("<a@two.test>"), n=2)
    assert r == "dmarc=none header.from=two.test"
    r, _, _, _ = deliver(mx, backend, message("<a@other.test>"), n=3)
    assert r.startswith("dmarc=fail (p=REJECT ")


def test_dmarc_dns_failure_is_temperror(backend, make_mx, dns):
    dns.servfail("_dmarc.broken.test")
    mx = start(make_mx, backend, dns, enforce=True, spf=False, dkim=False)
    r, rec, _, _ = deliver(mx, backend, message("<a@broken.test>"))
    assert r == "dmarc=temperror header.from=broken.test"
    assert "DMARC_DNSFAIL" in symbols(rec)


def test_dmarc_enforce_rejects_and_tags(backend, make_mx, dns):
    policy(dns, "rej.test", "v=DMARC1; p=reject")
    policy(dns, "quar.test", "v=DMARC1; p=quarantine")
    spf_pass(dns, "rej.test")
    mx = start(make_mx, backend, dns, enforce=True, dkim=False)
    final = send(mx, message("<a@rej.test>"), mail_from="b@esp.test", expect=550)
    assert "5.7.1" in final.text
    (rec,) = mx.wait_record("txn", count=1)
    assert rec["result"] == "reject"
    # The same sender with an aligned SPF pass is delivered.
    r, _, _, f = deliver(mx, backend, message("<a@rej.test>"), mail_from="b@rej.test", rn=2)
    assert r.startswith("dmarc=pass ")
    r, _, _, f = deliver(mx, backend, message("<a@quar.test>"), mail_from="b@esp.test", n=2, rn=3)
    assert r.startswith("dmarc=fail (p=QUARANTINE ")
    assert spam(f).startswith("Yes")


def test_dmarc_not_enforced_by_default(backend, make_mx, dns):
    policy(dns, "rej.test", "v=DMARC1; p=reject")
    mx = start(make_mx, backend, dns, spf=False, dkim=False)
    r, _, _, _ = deliver(mx, backend, message("<a@rej.test>"))
    assert r.startswith("dmarc=fail (p=REJECT sp=REJECT dis=REJECT) ")


@pytest.mark.parametrize("hdrs,why", [
    (b"From: <a@example.test>\r\nFrom: <b@example.test>\r\n", "multiple From fields"),
    (b"From: <a@example.test>, <b@other.test>\r\n", "From addresses in several domains"),
    (b"", "no From field"),
    (b"From: undisclosed\r\n", "unreadable From address"),
])
def test_dmarc_from_not_exactly_one_domain(backend, make_mx, dns, hdrs, why):
    """RFC 7489 6.6.1: no evaluation, permerror; never rejected."""
    policy(dns, ORG, "v=DMARC1; p=reject")
    mx = start(make_mx, backend, dns, enforce=True, spf=False, dkim=False)
    msg = hdrs + b"To: <user@test.example>\r\nSubject: x\r\n\r\nHello.\r\n"
    r, rec, drec, _ = deliver(mx, backend, msg)
    assert r == "dmarc=permerror (%s)" % why
    assert "DMARC_BAD_FROM" in symbols(rec)
    assert drec["result"] == "permerror"


def test_dmarc_several_addresses_one_domain(backend, make_mx, dns):
    """Group syntax, comments and quoted names: one domain is evaluated."""
    policy(dns, ORG, "v=DMARC1; p=none")
    mx = start(make_mx, backend, dns, spf=False, dkim=False)
    r, _, _, _ = deliver(mx, backend, message(
        '"Bob, (not) <x@evil.test>" <bob@Example.Test> (c@evil.test), '
        "team: alice@example.test;"))
    assert r.startswith("dmarc=fail (p=NONE ") and r.endswith("header.from=example.test")


def test_dmarc_skipped_for_relay_networks(backend, make_mx, dns):
    policy(dns, ORG, "v=DMARC1; p=reject")
    mx = start(make_mx, backend, dns, enforce=True, spf=False, dkim=False,
               relay_networks=["192.0.2.0/24"])
    r, _, drec, _ = deliver(mx, backend, message())
    assert r is None and drec is None


def test_dmarc_waits_for_a_slow_dkim_key(backend, make_mx, dns):
    """The key lookup answers after the policy lookup: DMARC still sees
    the DKIM pass (it waits for the dkim filter, flt_call_after)."""
    publish(dns, "slow", ORG, "rsa1024")
    dns.delay("slow._domainkey." + ORG, 0.3)
    policy(dns, ORG, "v=DMARC1; p=reject")
    mx = start(make_mx, backend, dns, enforce=True, spf=False)
    msg = sign(message(), "slow", ORG, "rsa1024")
    r, rec, drec, _ = deliver(mx, backend, msg, mail_from="b@esp.test")
    assert r == "dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.test"
    assert drec["dkim_aligned"] == "yes"
    assert {"DKIM_VALID", "DMARC_POLICY_ALLOW"} <= symbols(rec)
