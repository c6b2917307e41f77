# SPDX-License-Identifier: MIT
"""TLS on both sides with a real Postfix behind (issue 7): mxguard takes
STARTTLS from the client and does STARTTLS to a Postfix whose smtpd offers
it; Postfix's own Received header and log show the TLS session, and with a
CA and a name the certificate is verified."""

import re
import subprocess

import pytest

from helpers import simple_message, self_signed_cert
from postfix import Postfix


@pytest.fixture(scope="module")
def pfcert(tmp_path_factory):
    d = tmp_path_factory.mktemp("pftls")
    crt, key = self_signed_cert(d, "backend.test", san=True)
    # Postfix's daemons read the key as root before dropping privileges;
    # the directory must be reachable.
    subprocess.run(["chmod", "755", str(d)], check=True)
    return crt, key


@pytest.fixture(scope="module")
def tls_postfix(pfcert):
    pf = Postfix(tls=pfcert).start()
    yield pf
    pf.cleanup()


def send(c, rcpt, msg):
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<sender@client.example>").code == 250
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    assert r.code == 250, r
    d, final = c.data(msg)
    assert d.code == 354
    return final


@pytest.mark.parametrize("verify", [False, True])
def test_tls_both_sides_through_postfix(make_mx, tls_postfix, pfcert, verify):
    btls = {"mode": "required"}
    if verify:
        btls.update(ca_file=pfcert[0], verify_name="backend.test")
    mx = make_mx(backend=tls_postfix.address, config={"backend_tls": btls},
                 listeners=[{"tls": {"cert": pfcert[0], "key": pfcert[1]}}])
    before = len(tls_postfix.delivered())
    c = mx.connect()
    assert c.ehlo().code == 250
    assert c.cmd("STARTTLS").code == 220
    c.start_tls()
    final = send(c, "carol@test.example", simple_message("tls both sides"))
    assert final.code == 250, final
    assert re.match(r"250 2\.0\.0 Ok: \d+ bytes queued as [0-9A-F]+$", final.lines[0]), final
    c.quit()
    got = tls_postfix.wait_delivered(before + 1)[before]
    head = got.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    # Postfix's Received: mxguard's connection to it was TLS.
    assert re.search(r"(?m)^Received: from .*\n\t\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)"
                     r"(?:\n\t [^\n]*)*\n(?:\t[^\n]*\n)*?\tby backend\.test \(Postfix\) with ESMTPS id", head), head
    # mxguard's own Received: the client's connection to it was TLS too.
    assert re.search(r"(?m)^Received: from client\.example \(\[127\.0\.0\.1\]\)\n\t\(using TLSv1\.[23] "
                     r"with cipher \S+ \(\d+/\d+ bits\)\)\n\tby mx\.test \(mxguard\) with ESMTPS id", head), head
    assert mx.wait_log(r"backend tls version=TLSv1\.[23] cipher=\S+ verified=%s" % ("yes" if verify else "no"))
    assert re.search(r"TLS connection established from", tls_postfix.maillog())
