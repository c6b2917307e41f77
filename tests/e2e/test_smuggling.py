# SPDX-License-Identifier: MIT
"""SMTP smuggling (CVE-2023-51764 class): only CRLF.CRLF ends a message.
A bare LF, a bare CR or a NUL anywhere in the data gets 554 5.6.0 and the
connection is closed; the backend gets no DATA for it, and nothing after a
fake terminator reaches it as a command."""

import pytest

from helpers import RCPT, SENDER, assert_reply, check_disconnect, check_txn, simple_message
from smtp import ServerClosed

SMUGGLED = (
    b"MAIL FROM:<smuggled@evil.example>\r\n"
    b"RCPT TO:<victim@test.example>\r\n"
    b"DATA\r\n"
    b"From: <ceo@test.example>\r\n"
    b"Subject: smuggled\r\n"
    b"\r\n"
    b"wire the money\r\n"
    b".\r\n"
)

# name -> payload sent after 354, in one write.
CASES = {
    "LF.LF": b"Subject: a\r\n\r\nbody\n.\n" + SMUGGLED + b"\r\n.\r\n",
    "LF.CRLF": b"Subject: a\r\n\r\nbody\n.\r\n" + SMUGGLED + b"\r\n.\r\n",
    "CRLF.LF": b"Subject: a\r\n\r\nbody\r\n.\n" + SMUGGLED + b"\r\n.\r\n",
    "CR.CR": b"Subject: a\r\n\r\nbody\r.\r" + SMUGGLED + b"\r\n.\r\n",
    "CR.CRLF": b"Subject: a\r\n\r\nbody\r.\r\n" + SMUGGLED + b"\r\n.\r\n",
    "CRLF.CR": b"Subject: a\r\n\r\nbody\r\n.\r" + SMUGGLED + b"\r\n.\r\n",
    "bare CR": b"Subject: a\r\n\r\nline with a bare\rCR in it\r\n.\r\n",
    "bare LF": b"Subject: a\r\n\r\nline with a bare\nLF in it\r\n.\r\n",
    "bare LF in headers": b"Subject: a\nX-Other: b\r\n\r\nbody\r\n.\r\n",
    "NUL": b"Subject: a\r\n\r\nline with a \x00 NUL\r\n.\r\n",
    "LF at start": b"\n.\r\n" + SMUGGLED + b"\r\n.\r\n",
}


def smuggling_attempt(mx, payload):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert c.cmd("DATA").code == 354
    try:
        c.send(payload)
    except OSError:
        pass  # the daemon may already have closed
    replies = []
    for _ in range(5):  # bounded: at most a few replies can be pending
        try:
            replies.append(c.reply())
        except (ServerClosed, OSError):
            break
        if replies[-1].code == 554 or replies[-1].code == 421:
            break
    closed = c.closed(10)
    return c, replies, closed


@pytest.mark.parametrize("name", list(CASES))
def test_smuggling_refused(backend, mx, name):
    c, replies, closed = smuggling_attempt(mx, CASES[name])
    assert replies, "no reply to the smuggling attempt"
    assert len(replies) == 1, "more than one reply: %r" % replies
    assert_reply(replies[0], 554, "5.6.0")
    assert closed, "connection not closed after 554 5.6.0"
    # The backend got the envelope at most, never a DATA, never the
    # smuggled commands.
    cmds = [x.upper() for x in backend.all_commands()]
    assert "DATA" not in cmds, cmds
    assert not any("SMUGGLED@" in x or "VICTIM@" in x for x in cmds), cmds
    assert backend.messages() == []
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="smuggling", txns=1)
    (t,) = s["txns"]
    check_txn(t, result="reject", stage=("data", "eom"), reply=replies[0].lines[-1], backend="-",
              from_="<%s>" % SENDER, rcpt="<%s>" % RCPT)
    # And mxguard closed its backend connection (no half transaction left).
    backend.wait_for(lambda b: all(cn.closed for cn in b.client_conns()), 10,
                     "backend connection closed")


def test_smuggling_split_writes(backend, mx):
    # The bad byte arrives alone, at the start of a write.
    c = mx.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<%s>" % SENDER)
    c.cmd("RCPT TO:<%s>" % RCPT)
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: a\r\n\r\nbody")
    # No reply yet: the message is not over.
    with pytest.raises((TimeoutError, OSError)):
        c.reply(timeout=0.5)
    try:
        c.send(b"\n.\n")
        c.send(SMUGGLED + b"\r\n.\r\n")
    except OSError:
        pass
    r = c.reply()
    assert_reply(r, 554, "5.6.0")
    assert c.closed()
    assert "DATA" not in [x.upper() for x in backend.all_commands()]
    check_disconnect(mx.session(c)["disconnect"], reason="smuggling")


def test_legit_dots_are_not_smuggling(backend, mx):
    # Control: CRLF..CRLF and dots inside lines are fine.
    c = mx.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<%s>" % SENDER)
    c.cmd("RCPT TO:<%s>" % RCPT)
    msg = simple_message("dots", b"a.b\r\n.\r\n..\r\n.x.\r\nend.\r\n")
    _, final = c.data(msg)
    assert final.code == 250
    (txn,) = backend.wait_messages(1)
    assert txn.data.endswith(msg)
    c.quit()
