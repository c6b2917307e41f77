# SPDX-License-Identifier: MIT
"""CHUNKING / BDAT (RFC 3030) on the client side: chunks are read by their
exact byte count, binary-safe and unstuffed, pipelined as the client likes;
the message goes to a DATA-only backend dot-stuffed and arrives byte-exact,
to a CHUNKING backend in BDAT chunks (pipelined only with PIPELINING, each
reply checked, backend_chunking = false forces DATA); BINARYMIME only
beside a backend that takes it (else 554 5.6.3 at MAIL), by BDAT only;
the size limit applies to the running total; a BDAT with no transaction (or
after a failed chunk) is refused with 5xx once its bytes are read; BDAT and
DATA do not mix; a client that closes mid-chunk sends nothing on."""

import os
import re
import time

import pytest

from helpers import RCPT, SENDER, assert_reply, check_disconnect, check_txn, dotty_8bit_message, simple_message
from mxguard import REPO
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


def offered(r, keyword):
    """The EHLO reply r offers keyword (on any line, last or not)."""
    return any(x[4:].split(" ")[0] == keyword for x in r.lines[1:])


def envelope(c):
    r = c.ehlo()
    assert offered(r, "CHUNKING"), r
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
    # Client chunks of odd sizes; what lands in Postfix's Maildir is the
    # message sent.
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


# Towards a backend that advertises CHUNKING (RFC 3030): the message goes
# in BDAT chunks (at most 256 KiB each), undotted, pipelined only when the
# backend offers PIPELINING; every chunk's reply is checked and the client's
# final reply is always the backend's.

CHUNK = 262144
CHUNKING_CAPS = ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"]
NO_PIPELINING_CAPS = ["SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"]
BINARY_CAPS = CHUNKING_CAPS + ["BINARYMIME"]


def chunk_layout(txn):
    """[(size, last)] of the BDAT chunks, and their bytes joined."""
    return [(n, last) for n, last, _ in txn.bdat_chunks], b"".join(c for _, _, c in txn.bdat_chunks)


def check_chunked(txn, msg):
    """The message arrived in full BDAT chunks and a LAST, byte-exact."""
    layout, joined = chunk_layout(txn)
    assert joined == txn.data
    assert txn.data.endswith(msg)
    assert all(n == CHUNK and not last for n, last in layout[:-1]), layout
    assert layout[-1][1] and 0 < layout[-1][0] <= CHUNK, layout
    assert sum(n for n, _ in layout) == len(txn.data)
    return layout


def send_bdat(c, msg, sizes):
    replies = send_chunks(c, chunked(msg, sizes))
    assert all(r.code == 250 for r in replies[:-1]), replies
    return replies[-1]


@pytest.mark.parametrize("how", ["data", "bdat"])
def test_chunking_backend_gets_bdat(make_backend, make_mx, how):
    # Whichever way the client sent it, the backend gets the same bytes, in
    # BDAT chunks and never by DATA (dots stay as they are: no stuffing).
    be = make_backend(caps=CHUNKING_CAPS)
    mx = make_mx(backend=be)
    msg = dotty_8bit_message(700000, seed=11)
    c = mx.connect()
    envelope(c)
    if how == "data":
        _, final = c.data(msg, timeout=60)
    else:
        final = send_bdat(c, msg, [1, 99999, 7, 300000])
    (txn,) = be.wait_messages(1)
    assert_reply(final, 250, "2.0.0", "Ok: queued as %s" % txn.queue_id)
    layout = check_chunked(txn, msg)
    assert len(layout) == 3, layout
    assert not any(x.upper().startswith("DATA") for x in be.all_commands())
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", stage="eom", size=str(len(msg)))


def test_chunking_backend_same_bytes_either_way(make_backend, make_mx):
    be = make_backend(caps=CHUNKING_CAPS)
    mx = make_mx(backend=be)
    msg = dotty_8bit_message(5000, seed=3) + b".\r\n..\r\n"
    c = mx.connect()
    envelope(c)
    _, final = c.data(msg)
    assert_reply(final, 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert_reply(send_bdat(c, msg, [13, 2]), 250)
    a, b = be.wait_messages(2)
    # Our own headers differ (ids, times); the client's message does not.
    assert a.data.endswith(msg) and b.data.endswith(msg)
    assert [len(x.bdat_chunks) for x in (a, b)] == [1, 1]
    c.quit()


def test_small_message_is_one_bdat_last(make_backend, make_mx):
    be = make_backend(caps=CHUNKING_CAPS)
    mx = make_mx(backend=be)
    msg = simple_message("one chunk")
    c = mx.connect()
    envelope(c)
    _, final = c.data(msg)
    assert_reply(final, 250)
    (txn,) = be.wait_messages(1)
    assert [(n, last) for n, last, _ in txn.bdat_chunks] == [(len(txn.data), True)]
    assert any(re.fullmatch(r"BDAT %d LAST" % len(txn.data), x) for x in be.all_commands())
    c.quit()


@pytest.mark.parametrize("pipelining", [True, False])
def test_chunks_pipelined_only_with_pipelining(make_backend, make_mx, pipelining):
    # The backend holds each reply until more bytes come or the hold ends:
    # with PIPELINING the next chunk is already on its way, without it
    # mxguard waits for each reply before the next BDAT.
    be = make_backend(caps=CHUNKING_CAPS if pipelining else NO_PIPELINING_CAPS)
    be.bdat_hold = 10.0 if pipelining else 0.5
    mx = make_mx(backend=be)
    msg = dotty_8bit_message(3 * CHUNK, seed=5)
    c = mx.connect()
    envelope(c)
    _, final = c.data(msg, timeout=60)
    assert_reply(final, 250)
    (txn,) = be.wait_messages(1)
    layout = check_chunked(txn, msg)
    assert len(layout) == 4
    assert txn.bdat_ahead == [pipelining] * 3
    c.quit()


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("reply,result", [
    ("452 4.3.1 Insufficient system storage", "tempfail"),
    ("554 5.6.0 Message content rejected", "reject"),
])
def test_middle_chunk_error_reaches_client(make_backend, make_mx, pipelining, reply, result):
    be = make_backend(caps=CHUNKING_CAPS if pipelining else NO_PIPELINING_CAPS)
    be.bdat_replies = {2: reply}
    mx = make_mx(backend=be)
    msg = dotty_8bit_message(3 * CHUNK, seed=9)
    c = mx.connect()
    envelope(c)
    _, final = c.data(msg, timeout=60)
    assert final.lines == [reply], final
    assert be.messages() == []
    if not pipelining:
        # Nothing else in flight: the connection stays, its MAIL reset.
        be.wait_command(r"RSET")
        cmds = be.conns[-1].commands
        assert [x for x in cmds if x.startswith("BDAT")][-1] == "BDAT %d" % CHUNK
        assert cmds[-1] == "RSET", cmds
        assert len([x for x in cmds if x.startswith("BDAT")]) == 2
    # The session goes on: the next message is delivered.
    be.bdat_replies = {}
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(msg, timeout=60)
    assert_reply(final, 250)
    (txn,) = be.wait_messages(1)
    check_chunked(txn, msg)
    c.quit()
    t1, t2 = mx.session(c)["txns"]
    check_txn(t1, result=result, stage="eom", reply=reply)
    check_txn(t2, result="accept")


def test_last_chunk_error_is_final(make_backend, make_mx):
    be = make_backend(caps=CHUNKING_CAPS)
    be.override(r"BDAT \d+ LAST", "550 5.7.1 Go away")
    mx = make_mx(backend=be)
    c = mx.connect()
    envelope(c)
    _, final = c.data(simple_message("refused"))
    assert final.lines == ["550 5.7.1 Go away"]
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="reject", stage="eom")


def test_backend_chunking_off_forces_data(make_backend, make_mx):
    be = make_backend(caps=BINARY_CAPS)
    mx = make_mx(backend=be, config={"backend_chunking": False})
    msg = dotty_8bit_message(20000, seed=2)
    c = mx.connect()
    r = c.ehlo()
    assert offered(r, "CHUNKING")
    assert not offered(r, "BINARYMIME"), r
    assert_reply(c.cmd("MAIL FROM:<%s> BODY=BINARYMIME" % SENDER), 501, "5.5.4")
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert_reply(send_bdat(c, msg, [500]), 250)
    (txn,) = be.wait_messages(1)
    assert txn.bdat_chunks == []
    assert txn.data.endswith(msg)
    assert "DATA" in be.all_commands()
    assert not any(x.startswith("BDAT") for x in be.all_commands())
    c.quit()


def test_backend_chunking_config_error(make_mx):
    from mxguard import check_config

    mx = make_mx(config={"backend_chunking": "yes"}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1
    assert re.search(r"mxguard\.conf:\d+: \"backend_chunking\" must be true or false", out), out


# BINARYMIME (RFC 3030 3).

BINARY = (b"Content-Type: application/octet-stream\r\n\r\n"
          + bytes(range(256)) * 64 + b"\x00\r\n.\r\n\n\r\r\x00")


def binary_envelope(c, body="BINARYMIME"):
    r = c.ehlo()
    assert offered(r, "BINARYMIME"), r
    return c.cmd("MAIL FROM:<%s> BODY=%s" % (SENDER, body))


def test_binarymime_byte_exact(make_backend, make_mx):
    be = make_backend(caps=BINARY_CAPS)
    mx = make_mx(backend=be)
    c = mx.connect()
    assert_reply(binary_envelope(c), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert_reply(send_bdat(c, BINARY, [100, 1, 4000]), 250)
    (txn,) = be.wait_messages(1)
    assert txn.mail == "MAIL FROM:<%s> BODY=BINARYMIME" % SENDER
    assert txn.data.endswith(BINARY)
    assert txn.bdat_chunks[-1][1]
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", size=str(len(BINARY)))


def test_binarymime_data_refused(make_backend, make_mx):
    be = make_backend(caps=BINARY_CAPS)
    mx = make_mx(backend=be)
    c = mx.connect()
    assert_reply(binary_envelope(c), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert_reply(c.cmd("DATA"), 503, "5.5.1")
    # BDAT is still welcome in the same transaction.
    assert_reply(send_bdat(c, BINARY, [10]), 250)
    assert len(be.wait_messages(1)) == 1
    c.quit()


def test_binarymime_backend_without_it(make_backend, make_mx):
    # mxguard offered BINARYMIME (the backend had it when last seen); the
    # backend connection for this MAIL has no BINARYMIME: 554 5.6.3 at MAIL,
    # before the client sends the message, and nothing reaches the backend.
    be = make_backend(caps=BINARY_CAPS)
    mx = make_mx(backend=be)
    c = mx.connect()
    r = c.ehlo()
    assert offered(r, "BINARYMIME"), r
    be.caps = list(CHUNKING_CAPS)
    r = c.cmd("MAIL FROM:<%s> BODY=BINARYMIME" % SENDER)
    assert_reply(r, 554, "5.6.3", "conversion required but not supported")
    assert not any(x.startswith("MAIL") for x in be.all_commands())
    # Not a transaction: BDAT is refused, its octets read.
    (r,) = send_chunks(c, [bdat(len(BINARY), True) + BINARY])
    assert_reply(r, 503, "5.5.1")
    # The next EHLO reflects the backend as it is now.
    r = c.ehlo()
    assert not offered(r, "BINARYMIME"), r
    assert_reply(c.cmd("MAIL FROM:<%s> BODY=BINARYMIME" % SENDER), 501, "5.5.4")
    assert_reply(c.cmd("MAIL FROM:<%s> BODY=8BITMIME" % SENDER), 250)
    c.quit()
    assert be.messages() == []
    t = mx.session(c)["txns"][0]
    check_txn(t, result="reject", stage="mail")


def test_binarymime_not_after_helo(make_backend, make_mx):
    # HELO after EHLO: no extensions any more (RFC 5321 4.1.1.1).
    be = make_backend(caps=BINARY_CAPS)
    mx = make_mx(backend=be)
    c = mx.connect()
    assert offered(c.ehlo(), "BINARYMIME")
    assert_reply(c.cmd("HELO client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s> BODY=BINARYMIME" % SENDER), 501, "5.5.4")
    c.quit()


def test_binarymime_not_offered_without_backend_support(make_backend, make_mx):
    be = make_backend(caps=CHUNKING_CAPS)
    mx = make_mx(backend=be)
    c = mx.connect()
    r = c.ehlo()
    assert offered(r, "CHUNKING")
    assert not offered(r, "BINARYMIME"), r
    assert_reply(c.cmd("MAIL FROM:<%s> BODY=BINARYMIME" % SENDER), 501, "5.5.4")
    c.quit()


def test_binarymime_content_checks_survive_nuls(make_backend, make_mx, dns):
    # Rules, DKIM, DMARC and the Subject rewrite see a message full of NULs
    # and bare line ends: it is tagged (by a low threshold) and arrives
    # byte-exact after the prepended headers.
    be = make_backend(caps=BINARY_CAPS)
    mx = make_mx(backend=be, config={
        "dns": {"servers": [dns.address], "timeout": 2},
        "dkim": {"enabled": True},
        "dmarc": {"enabled": True},
        "rules": [os.path.join(REPO, "rules", "default", "*.rules")],
        "subject_prefix": "[SPAM] ",
        "actions": {"tag": -100.0, "tempfail": 1000.0, "reject": 1000.0},
    })
    msg = (b"From: a@client.example\r\nSubject: bin\x00ary\r\n"
           b"DKIM-Signature: v=1; a=rsa-sha256; d=client.example; s=x; h=from; bh=AAAA; b=AAAA\r\n"
           + BINARY)
    c = mx.connect()
    assert_reply(binary_envelope(c), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert_reply(send_bdat(c, msg, [7, 3000]), 250)
    (txn,) = be.wait_messages(1)
    i = txn.data.find(b"Content-Type: application")
    assert txn.data[i:] == BINARY, (txn.data[:i], len(txn.data) - i, len(BINARY))
    assert b"X-Spam-Flag: YES" in txn.data
    # A Subject with a NUL cannot be rewritten without loss: left alone.
    assert b"\r\nSubject: bin\x00ary\r\nDKIM-Signature" in txn.data
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="tag")


def test_chunked_through_postfix(make_mx, postfix):
    # Postfix advertises CHUNKING: the message goes in BDAT chunks (its
    # disconnect log counts them) and lands in the Maildir intact.
    mx = make_mx(backend=postfix.address)
    before = len(postfix.delivered())
    log_before = len(postfix.maillog())
    msg = dotty_8bit_message(3 * CHUNK + 1000, seed=13)
    c = Client(mx.port)
    mx.clients.append(c)
    assert c.banner().code == 220
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<sender@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    _, final = c.data(msg, timeout=60)
    assert_reply(final, 250)
    c.quit()
    (got,) = postfix.wait_delivered(before + 1)[before:]
    body = msg.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    assert got.endswith(body)
    # The backend connection ends (QUIT) as the session does.
    deadline = time.monotonic() + 20
    while True:
        log = postfix.maillog()[log_before:]
        counts = re.findall(r"disconnect from .* bdat=(\d+)", log)
        if counts or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert counts == ["4"], log
