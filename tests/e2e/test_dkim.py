# SPDX-License-Identifier: MIT
"""DKIM verification (RFC 6376, RFC 8463) through the whole daemon: messages
signed at test time with dkimpy (Debian python3-dkim) using keys made at test
time with `openssl genpkey`, public keys served by the test DNS server;
results read from the Authentication-Results header the backend receives,
the symbols, the `dkim` log record and the txn line."""

import base64
import re
import subprocess
import time

import dkim
import pytest

from helpers import RCPT, assert_reply, split_headers
from smtp import Client

FROM_DOMAIN = "example.test"

_keys = {}


def _openssl(*args, data=None):
    return subprocess.run(("openssl",) + args, input=data, check=True,
                          capture_output=True).stdout


def key(kind):
    """(private key as dkimpy takes it, p= value) for kind "rsa1024",
    "rsa2048" or "ed25519"; made once per test run."""
    if kind not in _keys:
        if kind.startswith("rsa"):
            pem = _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                           "rsa_keygen_bits:%s" % kind[3:])
            # dkimpy reads PKCS#1 ("BEGIN RSA PRIVATE KEY").
            priv = _openssl("pkey", "-traditional", data=pem)
            pub = _openssl("pkey", "-pubout", "-outform", "DER", data=pem)
            _keys[kind] = (priv, base64.b64encode(pub).decode())
        else:
            pem = _openssl("genpkey", "-algorithm", "ed25519")
            der = _openssl("pkey", "-outform", "DER", data=pem)
            pub = _openssl("pkey", "-pubout", "-outform", "DER", data=pem)
            # RFC 8463 3: p= is the raw 32-byte key; dkimpy signs with
            # the 32-byte seed, base64.
            _keys[kind] = (base64.b64encode(der[-32:]),
                           base64.b64encode(pub[-32:]).decode())
    return _keys[kind]


def publish(dns, selector, domain, kind, extra=""):
    """The key record selector._domainkey.domain; TXT strings of at most
    255 bytes (RFC 6376 3.6.2.2: joined by the verifier)."""
    p = key(kind)[1]
    k = "ed25519" if kind == "ed25519" else "rsa"
    txt = "v=DKIM1; k=%s; %sp=%s" % (k, extra, p)
    dns.add("%s._domainkey.%s" % (selector, domain), "TXT",
            [txt[i:i + 255] for i in range(0, len(txt), 255)])


def message(subject="dkim test", body=b"Hello.\r\nSecond line.\r\n",
            from_domain=FROM_DOMAIN):
    return (b"From: Alice <alice@" + from_domain.encode() + b">\r\n"
            b"To: <user@test.example>\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"Message-ID: <" + str(time.time()).encode() + b"@example.test>\r\n"
            b"\r\n" + body)


def sign(msg, selector, domain, kind, canon=(b"relaxed", b"relaxed"),
         alg=None, length=False):
    alg = alg or (b"ed25519-sha256" if kind == "ed25519" else b"rsa-sha256")
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key(kind)[0],
                    canonicalize=canon, signature_algorithm=alg,
                    include_headers=[b"from", b"to", b"subject", b"date",
                                     b"message-id"],
                    length=length)
    return sig + msg


def sign_expired(msg, selector, domain, kind):
    """An rsa-sha256 signature with t= two days and x= one day ago
    (dkimpy's sign() writes no x=): built from dkimpy's own pieces."""
    d = dkim.DKIM(msg)
    canon = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    heads = (b"from", b"to", b"subject")
    d.include_headers = heads
    d.hasher = dkim.HASH_ALGORITHMS[b"rsa-sha256"]
    h = d.hasher()
    h.update(canon.canonicalize_body(d.body))
    now = int(time.time())
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"),
              (b"d", domain.encode()), (b"s", selector.encode()),
              (b"t", str(now - 172800).encode()),
              (b"x", str(now - 86400).encode()),
              (b"h", b":".join(heads)), (b"bh", base64.b64encode(h.digest())),
              (b"b", b"0" * 60)]
    pk = dkim.parse_pem_private_key(key(kind)[0])
    return b"DKIM-Signature: " + d.gen_header(fields, heads, canon,
                                              b"DKIM-Signature", pk) + msg


def start(make_mx, dns, backend, dkim_cfg=None, dns_timeout=1.0, **config):
    cfg = {"dns": {"servers": [dns.address], "timeout": dns_timeout},
           "dkim": dict({"enabled": True}, **(dkim_cfg or {}))}
    cfg.update(config)
    return make_mx(backend=backend, config=cfg)


def deliver(mx, backend, msg, n=1, rn=None):
    """Send msg; returns (Authentication-Results field, txn record, dkim
    record, X-Spam-Status)."""
    c = Client(mx.port)
    mx.clients.append(c)
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<alice@%s>" % FROM_DOMAIN), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(msg)
    assert_reply(final, 250)
    c.quit()
    txn = backend.wait_messages(n)[n - 1]
    added, rest = split_headers(txn.data)
    f = {name: v.decode() for name, v in added}
    rn = rn or n
    (rec,) = mx.wait_record("txn", count=rn)[rn - 1:]
    drecs = mx.records("dkim")
    return f.get("Authentication-Results"), rec, drecs[rn - 1] if drecs else None, f


def resinfos(ar):
    """The dkim= resinfos of an Authentication-Results field, unfolded."""
    assert ar.startswith("Authentication-Results: mx.test;")
    body = re.sub(r"\r\n\t", " ", ar[len("Authentication-Results: mx.test;"):])
    return [r.strip() for r in body.strip().split(";") if r.strip().startswith("dkim=")]


def symbols(rec):
    return set(rec["symbols"].split(","))


def one(ar):
    (r,) = resinfos(ar)
    return r


def test_dkim_rsa2048_relaxed_pass_aligned(backend, make_mx, dns):
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048")
    ar, rec, drec, f = deliver(mx, backend, msg)
    r = one(ar)
    assert re.fullmatch(r"dkim=pass header\.d=example\.test header\.s=s2048 "
                        r"header\.a=rsa-sha256 header\.b=(\"[A-Za-z0-9+/=]{8,}\"|[A-Za-z0-9+]{8,})", r), r
    # header.b is the start of this signature's b= (RFC 6008).
    b = re.search(rb"b=([A-Za-z0-9+/=\s]+)$", msg.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0])
    assert re.sub(rb"\s", b"", b.group(1)).decode().startswith(r.split("header.b=")[1].strip('"'))
    assert symbols(rec) == {"DKIM_VALID", "DKIM_VALID_AU"}
    assert rec["dkim"] == "pass"
    assert "DKIM_VALID_AU" in f["X-Spam-Status"]
    assert drec["result"] == "pass" and drec["sigs"] == "1"
    assert drec["signatures"] == "example.test/s2048=pass"
    assert drec["from_domain"] == FROM_DOMAIN and drec["aligned"] == "yes"


def test_dkim_rsa1024_simple_pass(backend, make_mx, dns):
    publish(dns, "s1024", FROM_DOMAIN, "rsa1024")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s1024", FROM_DOMAIN, "rsa1024", canon=(b"simple", b"simple"))
    ar, rec, _, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=pass header.d=example.test header.s=s1024 header.a=rsa-sha256 ")
    assert symbols(rec) == {"DKIM_VALID", "DKIM_VALID_AU"}


def test_dkim_ed25519_pass(backend, make_mx, dns):
    """RFC 8463: libopendkim 2.11 (Debian 12) verifies ed25519-sha256."""
    publish(dns, "ed", FROM_DOMAIN, "ed25519")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "ed", FROM_DOMAIN, "ed25519", canon=(b"relaxed", b"simple"))
    ar, rec, _, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=pass header.d=example.test header.s=ed "
                              "header.a=ed25519-sha256 header.b=")
    assert symbols(rec) == {"DKIM_VALID", "DKIM_VALID_AU"}


def test_dkim_rsa_sha1_reported_as_such(backend, make_mx, dns):
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048", alg=b"rsa-sha1")
    ar, rec, _, _ = deliver(mx, backend, msg)
    assert " header.a=rsa-sha1 " in one(ar)
    assert one(ar).startswith("dkim=pass ")
    assert "DKIM_RSA_SHA1" in symbols(rec)


def test_dkim_body_length_tag(backend, make_mx, dns):
    """l= (RFC 6376 3.5): text appended after signing is outside the signed
    length, so the signature still verifies."""
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048", length=True)
    assert b" l=" in msg or b";l=" in msg or b"\tl=" in msg
    ar, rec, _, _ = deliver(mx, backend, msg + b"Appended by a list.\r\n")
    assert one(ar).startswith("dkim=pass ")
    # Without l=, the same change breaks the body hash.
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048")
    ar, rec, _, _ = deliver(mx, backend, msg + b"Appended by a list.\r\n", n=2)
    assert one(ar).startswith("dkim=fail (body hash mismatch) ")


def test_dkim_several_signatures(backend, make_mx, dns):
    """Every signature gets its own resinfo; only the aligned pass gives
    DKIM_VALID_AU; a parent domain of the From domain aligns."""
    publish(dns, "s2048", "esp.test", "rsa2048")
    publish(dns, "ed", FROM_DOMAIN, "ed25519")
    publish(dns, "s1024", "mail." + FROM_DOMAIN, "rsa1024")
    mx = start(make_mx, dns, backend)
    msg = message(from_domain="mail." + FROM_DOMAIN)
    msg = sign(msg, "s2048", "esp.test", "rsa2048")
    msg = sign(msg, "ed", FROM_DOMAIN, "ed25519")
    msg = sign(msg, "missing", "esp.test", "rsa1024")
    ar, rec, drec, _ = deliver(mx, backend, msg)
    rs = resinfos(ar)
    assert len(rs) == 3
    assert rs[0].startswith("dkim=permerror (no key) header.d=esp.test header.s=missing ")
    assert rs[1].startswith("dkim=pass header.d=example.test header.s=ed ")
    assert rs[2].startswith("dkim=pass header.d=esp.test header.s=s2048 ")
    assert symbols(rec) == {"DKIM_VALID", "DKIM_VALID_AU", "DKIM_PERMERROR"}
    assert drec["signatures"] == ("esp.test/missing=permerror,example.test/ed=pass,"
                                  "esp.test/s2048=pass")
    assert drec["from_domain"] == "mail.example.test"


def test_dkim_unaligned_pass_not_au(backend, make_mx, dns):
    publish(dns, "s2048", "esp.test", "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s2048", "esp.test", "rsa2048")
    ar, rec, drec, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=pass header.d=esp.test ")
    assert symbols(rec) == {"DKIM_VALID"}
    assert drec["aligned"] == "no"


def test_dkim_body_changed_fails(backend, make_mx, dns):
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048")
    msg = msg.replace(b"Second line.", b"Second line!")
    ar, rec, drec, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=fail (body hash mismatch) header.d=example.test ")
    assert symbols(rec) == {"DKIM_INVALID"}
    assert rec["dkim"] == "fail" and rec["score"] == "1.0"


def test_dkim_signed_header_changed_fails(backend, make_mx, dns):
    publish(dns, "ed", FROM_DOMAIN, "ed25519")
    publish(dns, "s1024", FROM_DOMAIN, "rsa1024")
    mx = start(make_mx, dns, backend)
    for i, (sel, kind) in enumerate((("s1024", "rsa1024"), ("ed", "ed25519"))):
        msg = sign(message(subject="original"), sel, FROM_DOMAIN, kind)
        msg = msg.replace(b"Subject: original", b"Subject: changed")
        ar, rec, drec, _ = deliver(mx, backend, msg, n=i + 1)
        r = one(ar)
        assert r.startswith("dkim=fail (") and " header.s=%s " % sel in r, r
        assert "body hash" not in r
        assert symbols(rec) == {"DKIM_INVALID"}


def test_dkim_revoked_key_fails(backend, make_mx, dns):
    """RFC 6376 3.6.1: an empty p= is a revoked key, a failed signature."""
    dns.add("gone._domainkey." + FROM_DOMAIN, "TXT", "v=DKIM1; k=rsa; p=")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "gone", FROM_DOMAIN, "rsa2048")
    ar, rec, _, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=fail (key revoked) header.d=example.test header.s=gone ")
    assert symbols(rec) == {"DKIM_INVALID"}


def test_dkim_missing_key_permerror(backend, make_mx, dns):
    dns.nxdomain("nokey._domainkey." + FROM_DOMAIN)
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "nokey", FROM_DOMAIN, "rsa2048")
    ar, rec, drec, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=permerror (no key) header.d=example.test header.s=nokey ")
    assert symbols(rec) == {"DKIM_PERMERROR"}
    assert drec["reasons"] == '"no key"' or drec["reasons"] == "no key"


def test_dkim_wrong_key_type_permerror(backend, make_mx, dns):
    """An rsa-sha256 signature whose key record is an ed25519 key."""
    dns.add("wrong._domainkey." + FROM_DOMAIN, "TXT",
            "v=DKIM1; k=ed25519; p=" + key("ed25519")[1])
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "wrong", FROM_DOMAIN, "rsa2048")
    ar, rec, _, _ = deliver(mx, backend, msg)
    r = one(ar)
    assert r.startswith("dkim=permerror (") and " header.s=wrong " in r, r
    assert symbols(rec) == {"DKIM_PERMERROR"}


def test_dkim_expired_policy(backend, make_mx, dns):
    """x= in the past (RFC 6376 3.5): a valid signature the ADMD does not
    accept any more, RFC 8601 "policy"."""
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign_expired(message(), "s2048", FROM_DOMAIN, "rsa2048")
    ar, rec, _, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=policy (signature expired) header.d=example.test ")
    assert symbols(rec) == {"DKIM_POLICY"}


def test_dkim_dns_timeout_temperror(backend, make_mx, dns):
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    dns.drop("slow._domainkey." + FROM_DOMAIN)
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "slow", FROM_DOMAIN, "rsa2048")
    msg = sign(msg, "s2048", FROM_DOMAIN, "rsa2048")
    ar, rec, drec, _ = deliver(mx, backend, msg)
    rs = resinfos(ar)
    assert rs[0].startswith("dkim=pass header.d=example.test header.s=s2048 ")
    assert rs[1].startswith("dkim=temperror (key lookup timed out) header.d=example.test "
                            "header.s=slow ")
    assert symbols(rec) == {"DKIM_VALID", "DKIM_VALID_AU", "DKIM_TEMPERROR"}


def test_dkim_testing_key(backend, make_mx, dns):
    """t=y (RFC 6376 3.6.1): said in the comment; the signature counts
    like none, whatever its result."""
    publish(dns, "test", FROM_DOMAIN, "rsa2048", extra="t=y; ")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "test", FROM_DOMAIN, "rsa2048")
    ar, rec, _, _ = deliver(mx, backend, msg)
    assert one(ar).startswith("dkim=pass (test mode) header.d=example.test header.s=test ")
    assert symbols(rec) == {"DKIM_TESTING"}
    msg = sign(message(), "test", FROM_DOMAIN, "rsa2048").replace(b"Hello.", b"Hello!")
    ar, rec, _, _ = deliver(mx, backend, msg, n=2)
    assert one(ar).startswith("dkim=fail (body hash mismatch, test mode) ")
    assert symbols(rec) == {"DKIM_TESTING"}


def test_dkim_unsigned_none(backend, make_mx, dns):
    mx = start(make_mx, dns, backend)
    ar, rec, drec, _ = deliver(mx, backend, message())
    assert resinfos(ar) == ["dkim=none"]
    assert symbols(rec) == {"DKIM_NONE"} and rec["dkim"] == "none"
    assert drec["result"] == "none" and drec["sigs"] == "0"
    assert dns.count("_domainkey." + FROM_DOMAIN) == 0


def test_dkim_disabled_and_trusted_skip(backend, make_mx, dns):
    """No dkim= at all when not evaluated: disabled, or a relay_networks
    client (skipped by default, like SPF)."""
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend, relay_networks=["127.0.0.0/8"])
    ar, rec, drec, _ = deliver(mx, backend, msg)
    assert ar is None and rec["dkim"] == "-" and drec is None
    mx.stop()
    mx = start(make_mx, dns, backend, relay_networks=["127.0.0.0/8"],
               dkim_cfg={"check_trusted": True})
    ar, rec, drec, _ = deliver(mx, backend, msg, n=2, rn=1)
    assert one(ar).startswith("dkim=pass ")


@pytest.mark.parametrize("text,good", [
    ("dkim = { enabled = true; check_trusted = true; timeout = 5.0; max_signatures = 4; };", True),
    ("dkim = { enabled = false; };", True),
    ("dkim = { max_signatures = 0; };", False),
    ("dkim = { max_signatures = 33; };", False),
    ("dkim = { timeout = 3000.0; };", False),
    ('dkim = { enabled = "yes"; };', False),
    ("dkim = { verify = true; };", False),
])
def test_dkim_config_check(tmp_path, text, good):
    from mxguard import check_config
    from test_ops import flat_config

    path = flat_config(tmp_path, {8: text})
    rc, out = check_config(path)
    if good:
        assert rc == 0, out
    else:
        assert rc == 1 and re.search(r"(?m)^%s:8: \S" % re.escape(path), out), out


def test_dkim_unknown_algorithm_neutral(backend, make_mx, dns):
    """An a= libopendkim does not know (rsa-sha512 is not a DKIM
    algorithm): not the signer's provable failure, RFC 8601 "neutral"."""
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048").replace(
        b"a=rsa-sha256", b"a=rsa-sha512", 1)
    ar, rec, _, _ = deliver(mx, backend, msg)
    r = one(ar)
    assert r.startswith("dkim=neutral (") and " header.a=rsa-sha512 " in r, r
    assert symbols(rec) == {"DKIM_NEUTRAL"}


def test_dkim_malformed_signature_does_not_hide_others(backend, make_mx, dns):
    """A DKIM-Signature that is not a tag-list makes libopendkim give up on
    the whole message; mxguard keeps it from libopendkim and reports it as
    permerror, and the valid signature still passes."""
    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = sign(message(), "s2048", FROM_DOMAIN, "rsa2048")
    msg = b"DKIM-Signature: v=1; d=forger.test; s=x; garbage\r\n" + msg
    ar, rec, drec, _ = deliver(mx, backend, msg)
    rs = resinfos(ar)
    assert rs[0].startswith("dkim=pass header.d=example.test header.s=s2048 ")
    assert rs[1] == "dkim=permerror (malformed signature) header.d=forger.test header.s=x"
    assert symbols(rec) == {"DKIM_VALID", "DKIM_VALID_AU", "DKIM_PERMERROR"}
    # Alone, it is still reported, not taken for an unsigned message.
    ar, rec, drec, _ = deliver(mx, backend, b"DKIM-Signature: garbage\r\n" + message(), n=2)
    assert resinfos(ar) == ["dkim=permerror (malformed signature)"]
    assert symbols(rec) == {"DKIM_PERMERROR"}


def test_dkim_header_only_and_split_feed(backend, make_mx, dns):
    """The header section is held until the blank line whatever the DATA
    chunks; a message without a body verifies too."""
    publish(dns, "s1024", FROM_DOMAIN, "rsa1024")
    mx = start(make_mx, dns, backend)
    msg = sign(message(body=b""), "s1024", FROM_DOMAIN, "rsa1024")
    assert msg.endswith(b"\r\n\r\n")
    ar, rec, _, _ = deliver(mx, backend, msg[:-2])
    assert one(ar).startswith("dkim=pass header.d=example.test header.s=s1024 ")


def test_dkim_data_in_small_pieces(backend, make_mx, dns):
    """DATA arriving in pieces cut inside the signature field, inside the
    blank line that ends the header and inside the body: the result is the
    same (the pauses only make separate reads likely; nothing is timed)."""
    from smtp import dot_stuff

    publish(dns, "s2048", FROM_DOMAIN, "rsa2048")
    mx = start(make_mx, dns, backend)
    msg = dot_stuff(sign(message(body=b"Body.\r\n.dot line\r\n"), "s2048", FROM_DOMAIN, "rsa2048"))
    eoh = msg.index(b"\r\n\r\n")
    cuts = sorted({5, 17, eoh + 1, eoh + 2, eoh + 3, eoh + 9, len(msg) - 1})
    c = Client(mx.port)
    mx.clients.append(c)
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<alice@%s>" % FROM_DOMAIN), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert_reply(c.cmd("DATA"), 354)
    prev = 0
    for cut in cuts + [len(msg)]:
        c.send(msg[prev:cut])
        prev = cut
        time.sleep(0.05)
    assert_reply(c.reply(), 250)
    c.quit()
    (txn,) = backend.wait_messages(1)
    added, _ = split_headers(txn.data)
    ar = dict((n, v.decode()) for n, v in added)["Authentication-Results"]
    assert one(ar).startswith("dkim=pass header.d=example.test header.s=s2048 ")
