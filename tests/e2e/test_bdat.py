# SPDX-License-Identifier: MIT
"""CHUNKING / BDAT (RFC 3030) on the client side: chunks are read by their
exact byte count, binary-safe and unstuffed, pipelined as the client likes;
the message goes to a DATA-only backend dot-stuffed and arrives byte-exact;
the size limit applies to the running total; a BDAT with no transaction (or
after a failed chunk) is refused with 5xx once its bytes are read; BDAT and
DATA do not mix; a client that closes mid-chunk sends nothing on."""

import pytest

from helpers import RCPT, SENDER, assert_reply, check_disconnect, check_txn, dotty_8bit_message, simple_message
from smtp import Client


def bdat(size, last=False):
    return b"BDAT %d%s\r\n" % (size, b" LAST" if last else b"")


def chunked(msg, sizes):
    """msg cut into BDAT commands of the given sizes (the last one takes
    the rest and LAST)."""
    out, off = [], 0
    for n in sizes:
        if off + n >= len(msg):
            break
        out.append(bdat(n) + msg[off:off + n])
        off += n
    out.append(bdat(len(msg) - off, True) + msg[off:])
    return out


def envelope(c):
    r = c.ehlo()
    assert "250-CHUNKING" in r.lines, r
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)


def send_chunks(c, chunks):
    """All chunks in one write (pipelined); the replies, one per chunk."""
    c.send(b"".join(chunks))
    return c.replies(len(chunks), timeout=60)


@pytest.mark.parametrize("chunk", [1, 3, 1000, 65536, 1048576])
def test_bdat_chunk_sizes(backend, mx, chunk):
    size = 3000 if chunk < 1000 else 1500000
    msg = dotty_8bit_message(size, seed=chunk)
    c = mx.connect()
    envelope(c)
    chunks = chunked(msg, [chunk] * (len(msg) // chunk + 1))
    replies = send_chunks(c, chunks)
    for r in replies[:-1]:
        assert_reply(r, 250, "2.0.0")
    assert replies[-1].lines[0].startswith("250 2.0.0 Ok: queued"), replies[-1]
    (txn,) = backend.wait_messages(1)
    # The DATA-only backend got it dot-stuffed; unstuffed it is byte-exact.
    assert txn.data.endswith(msg)
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", stage="eom", size=str(len(msg)))


# Cut points inside CRLF, inside a line that starts with a dot, and right
# after the dot.
BOUNDARY_MSG = b"Subject: dots\r\n\r\n.leading\r\n..\r\n.\r\nend.\r\n"


@pytest.mark.parametrize("cut", range(1, len(BOUNDARY_MSG)))
def test_bdat_boundaries(backend, mx, cut):
    c = mx.connect()
    envelope(c)
    r1, r2 = send_chunks(c, chunked(BOUNDARY_MSG, [cut]))
    assert_reply(r1, 250, "2.0.0", "Ok: %d octets received" % cut)
    assert_reply(r2, 250)
    (txn,) = backend.wait_messages(1)
    assert txn.data.endswith(BOUNDARY_MSG)
    assert txn.data_raw.endswith(b"\r\n\r\n..leading\r\n...\r\n..\r\nend.\r\n")


def test_bdat_zero_last(backend, mx):
    # Chunks, then an empty LAST; then a whole message as BDAT 0 LAST alone.
    msg = simple_message("zero last")
    c = mx.connect()
    envelope(c)
    replies = send_chunks(c, [bdat(10) + msg[:10], bdat(len(msg) - 10) + msg[10:], bdat(0, True)])
    assert [r.code for r in replies] == [250, 250, 250], replies
    (txn,) = backend.wait_messages(1)
    assert txn.data.endswith(msg)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    (r,) = send_chunks(c, [bdat(0, True)])
    assert_reply(r, 250)
    assert len(backend.wait_messages(2)) == 2
    c.quit()


def test_bdat_binary_safe_bytes_are_data(backend, mx):
    # Command-looking text and "CRLF.CRLF" inside a chunk are data: the
    # count decides where the chunk ends, nothing else.
    msg = simple_message("inner", b"line\r\n.\r\nQUIT\r\nRSET\r\n")
    c = mx.connect()
    envelope(c)
    (r,) = send_chunks(c, [bdat(len(msg), True) + msg])
    assert_reply(r, 250)
    (txn,) = backend.wait_messages(1)
    assert txn.data.endswith(msg)
    cmds = [x.upper() for x in backend.all_commands()]
    after_mail = cmds[max(i for i, x in enumerate(cmds) if x.startswith("MAIL")):]
    assert not any(x in ("QUIT", "RSET") for x in after_mail), cmds
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()


def test_bdat_running_total_size_limit(backend, make_mx):
    mx = make_mx(config={"limits": {"message_size": 100000}})
    c = mx.connect()
    envelope(c)
    part = b"x" * 998 + b"\r\n"
    chunks = [bdat(40 * len(part)) + part * 40 for _ in range(3)]
    chunks.append(bdat(len(part), True) + part)
    r = send_chunks(c, chunks)
    assert_reply(r[0], 250)
    assert_reply(r[1], 250)
    assert_reply(r[2], 552, "5.3.4")
    # RFC 3030 2: a BDAT after the failed one gets a 5xx, its bytes read.
    assert_reply(r[3], 503, "5.5.1")
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()
    assert backend.messages() == []
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="reject", stage="data", reply=r[2].lines[-1])


def test_bdat_without_transaction_is_discarded(backend, mx):
    c = mx.connect()
    c.ehlo()
    payload = b"QUIT\r\n"
    (r,) = send_chunks(c, [bdat(len(payload)) + payload])
    assert_reply(r, 503, "5.5.1")
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    (r,) = send_chunks(c, [bdat(len(payload), True) + payload])
    assert_reply(r, 503, "5.5.1", "need RCPT")
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()


def test_bdat_and_data_do_not_mix(backend, mx):
    msg = simple_message("mixed")
    c = mx.connect()
    envelope(c)
    (r,) = send_chunks(c, [bdat(10) + msg[:10]])
    assert_reply(r, 250)
    assert_reply(c.cmd("DATA"), 503, "5.5.1")
    (r,) = send_chunks(c, [bdat(len(msg) - 10, True) + msg[10:]])
    assert_reply(r, 250)
    (txn,) = backend.wait_messages(1)
    assert txn.data.endswith(msg)
    c.quit()


@pytest.mark.parametrize("bad", [b"bare\nLF", b"bare\rCR", b"a NUL\x00", b"ends in CR\r"])
def test_bdat_bare_line_ends_refused(backend, mx, bad):
    msg = b"Subject: x\r\n\r\n" + bad
    c = mx.connect()
    envelope(c)
    (r,) = send_chunks(c, [bdat(len(msg), True) + msg])
    assert_reply(r, 554, "5.6.0")
    # Exact framing: the session goes on.
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()
    assert backend.messages() == []
    assert "DATA" not in [x.upper() for x in backend.all_commands()]


def test_bdat_client_closes_mid_chunk(backend, mx):
    msg = simple_message("short")
    c = mx.connect()
    envelope(c)
    c.send(bdat(len(msg) + 100, True) + msg)
    c.sock.shutdown(1)
    assert c.closed(10)
    assert backend.messages() == []
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="eof")
    (t,) = s["txns"]
    check_txn(t, result="abort", stage="data")


def test_bdat_bad_syntax_closes(backend, mx):
    c = mx.connect()
    envelope(c)
    r = c.cmd("BDAT 10 NOTLAST")
    assert_reply(r, 501, "5.5.4")
    assert c.closed()
    check_disconnect(mx.session(c)["disconnect"], reason="bdat")


def test_bdat_through_postfix(make_mx, postfix):
    # Postfix gets the message with DATA; what lands in the Maildir is the
    # message sent in chunks.
    mx = make_mx(backend=postfix.address)
    before = len(postfix.delivered())
    msg = dotty_8bit_message(200000, seed=7)
    c = Client(mx.port)
    mx.clients.append(c)
    assert c.banner().code == 220
    r = c.ehlo()
    assert "250-CHUNKING" in r.lines
    assert_reply(c.cmd("MAIL FROM:<sender@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    replies = send_chunks(c, chunked(msg, [65536, 1, 2, 30000]))
    assert all(x.code == 250 for x in replies), replies
    c.quit()
    (got,) = postfix.wait_delivered(before + 1)[before:]
    body = msg.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    assert got.endswith(body)
