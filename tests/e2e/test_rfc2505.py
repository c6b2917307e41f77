# SPDX-License-Identifier: MIT
"""RFC 2505 (BCP 30) items that no other file shows on its own; the full
list, each with where mxguard does it and its test, is docs/rfc2505.md."""

from helpers import RCPT, assert_reply, check_txn, simple_message


def test_null_sender_accepted_with_bdat(backend, mx):
    # 2.6.1: "MAIL From: <>" MUST NOT be refused, whatever the framing.
    msg = simple_message("bounce")
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
    assert_reply(c.reply(), 250)
    (txn,) = backend.wait_messages(1)
    assert txn.mail.upper().startswith("MAIL FROM:<>")
    c.quit()
    check_txn(mx.session(c)["txns"][0], result="accept", from_="<>")


def test_sender_in_own_domain_not_refused(backend, mx):
    # 2.6.2: "MAIL From: <user@my.local.dom.ain>" from outside is not
    # refused by default (forwarders and mailing lists send it).
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<someone@test.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("own domain"))
    assert_reply(final, 250)
    c.quit()
    assert len(backend.wait_messages(1)) == 1
