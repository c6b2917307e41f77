# SPDX-License-Identifier: MIT
"""The replies mxguard gives itself: command sequence, syntax, the verbs it
answers alone and those it refuses."""

import pytest

from helpers import RCPT, SENDER, assert_reply, check_disconnect, check_txn


def test_sequence_errors(backend, mx):
    c = mx.connect()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 503, "5.5.1")  # before EHLO
    c.ehlo()
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 503, "5.5.1")  # before MAIL
    assert_reply(c.cmd("DATA"), 503, "5.5.1")  # before MAIL
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 503, "5.5.1")  # nested
    assert_reply(c.cmd("DATA"), 503, "5.5.1")  # before RCPT
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert_reply(c.cmd("RSET"), 250, "2.0.0")
    c.quit()
    # Only the one MAIL reached the backend.
    mails = [x for x in backend.all_commands() if x.upper().startswith("MAIL")]
    assert len(mails) == 1, mails
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="quit")


@pytest.mark.parametrize(
    "line,code,enh",
    [
        # A malformed path is a command syntax error or an address one.
        ("MAIL FROM:<sender@client.example", 501, ("5.5.4", "5.1.7")),
        # A well-formed path holding a bad address.
        ("MAIL FROM:<sender@@client.example>", 501, "5.1.7"),
        ("MAIL FROM:<sen der@client.example>", 501, "5.1.7"),
        ("MAIL FROM:<sender@client..example>", 501, "5.1.7"),
        # RFC 5321 4.1.1.11 has 555 for an unknown parameter; 501 is the
        # documented reply for a bad one.
        ("MAIL FROM:<sender@client.example> FOO=BAR", (501, 555), "5.5.4"),
        ("MAIL FROM:<sender@client.example> SIZE=abc", 501, "5.5.4"),
        ("MAIL FROM:<sender@client.example> BODY=9BIT", 501, "5.5.4"),
        ("MAIL FROM:<sender@client.example> SIZE=10485761", 552, "5.3.4"),
    ],
)
def test_mail_syntax(backend, mx, line, code, enh):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd(line), code, enh)
    # Nothing was relayed, and the session can still start a transaction.
    assert not any(x.upper().startswith("MAIL") for x in backend.all_commands())
    assert_reply(c.cmd("MAIL FROM:<%s> SIZE=10485760" % SENDER), 250)
    c.quit()


@pytest.mark.parametrize(
    "line,code,enh",
    [
        ("RCPT TO:<user@test.example", 501, ("5.5.4", "5.1.3")),
        ("RCPT TO:<user@@test.example>", 501, "5.1.3"),
        ("RCPT TO:<us er@test.example>", 501, "5.1.3"),
        ("RCPT TO:<>", 501, "5.1.3"),
        ("RCPT TO:<user@test.example> FOO=BAR", (501, 555), "5.5.4"),
    ],
)
def test_rcpt_syntax(backend, mx, line, code, enh):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd(line), code, enh)
    assert not any(x.upper().startswith("RCPT") for x in backend.all_commands())
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    c.quit()


def test_null_sender_and_postmaster(backend, mx):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    assert_reply(c.cmd("RCPT TO:<postmaster>"), 250)
    _, final = c.data(b"Subject: bounce\r\n\r\nx\r\n")
    assert final.code == 250
    (txn,) = backend.wait_messages(1)
    assert txn.mail.upper().startswith("MAIL FROM:<>")
    assert txn.rcpts[0].upper().startswith("RCPT TO:<POSTMASTER>")
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, from_="<>", rcpt="<postmaster>")


def test_verbs_answered_locally(backend, mx):
    c = mx.connect()
    c.ehlo()
    assert c.cmd("NOOP").lines == ["250 2.0.0 Ok"]
    assert c.cmd("RSET").lines == ["250 2.0.0 Ok"]
    assert_reply(c.cmd("HELP"), 214, "2.0.0")
    assert_reply(c.cmd("VRFY postmaster"), 252, "2.5.2")
    assert_reply(c.cmd("FROBNICATE"), 500, "5.5.2")
    assert_reply(c.cmd("noop"), 250, "2.0.0")  # verbs are case-insensitive
    assert c.cmd("QUIT").lines[0].startswith("221 2.0.0")
    assert c.closed()
    # None of these went to the backend.
    assert backend.client_conns() == []
    check_disconnect(mx.session(c)["disconnect"], reason="quit", txns=0)


@pytest.mark.parametrize(
    "line",
    ["EXPN staff", "ETRN test.example", "TURN", "AUTH PLAIN AGFiYwB4eXo=", "STARTTLS",
     "XCLIENT ADDR=10.9.9.9", "XFORWARD ADDR=10.9.9.9"],
)
def test_unsupported_verbs(backend, mx, line):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd(line), 502, "5.5.1")
    # The session goes on and the refused verb left no trace.
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    c.quit()
    for cmd in backend.all_commands():
        assert "10.9.9.9" not in cmd, cmd
        assert not cmd.upper().startswith(("EXPN", "ETRN", "TURN", "AUTH", "STARTTLS", "BDAT")), cmd


def test_eof_mid_session_logs_eof(backend, mx):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    port = c.local_port
    c.close()
    s = mx.session(port=port)
    # One txn line per transaction, whatever its end.
    check_disconnect(s["disconnect"], reason="eof", txns=1)
    (t,) = s["txns"]
    # stage: the one reached (mail) or the one awaited (rcpt).
    check_txn(t, result="abort", stage=("mail", "rcpt"), from_="<%s>" % SENDER, nrcpt=0)
    # The backend connection is not left open.
    backend.wait_for(lambda b: all(cn.closed for cn in b.conns), 10, "backend connections closed")
