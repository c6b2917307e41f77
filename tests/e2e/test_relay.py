# SPDX-License-Identifier: MIT
"""Relaying: the client's transaction reaches the backend byte for byte,
with mxguard's headers on top, and the backend's replies come back
verbatim."""

import re

from helpers import (
    RCPT,
    SENDER,
    added_headers,
    assert_reply,
    check_connect,
    check_disconnect,
    check_txn,
    dotty_8bit_message,
    simple_message,
)
from smtp import dot_stuff

QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as (B[0-9A-F]{8})")


def test_banner_and_ehlo(backend, mx):
    c = mx.connect(banner=False)
    b = c.banner()
    assert b.lines == ["220 mx.test ESMTP mxguard"]
    r = c.ehlo()
    assert r.code == 250 and r.lines[0] == "250-mx.test", r
    caps = [l[4:] for l in r.lines[1:]]
    # SIZE is min(limits.message_size = 10485760, backend's 52428800).
    assert set(caps) == {
        "PIPELINING", "SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8",
        "DSN",
    }, caps
    assert_reply(c.cmd("HELO client.example"), 250)
    assert c.cmd("HELO client.example").lines == ["250 mx.test"]
    assert_reply(c.cmd("EHLO"), 501, "5.5.4")
    assert c.quit().lines[0].startswith("221 2.0.0")
    assert c.closed()
    s = mx.session(c)
    check_connect(s["connect"], "127.0.0.1", c.local_port, listener="127.0.0.1:%d" % mx.port)
    check_disconnect(s["disconnect"], reason="quit", txns="0")
    assert s["txns"] == []


def test_ehlo_capabilities_follow_backend(make_backend, make_mx):
    # A backend with a smaller SIZE and without SMTPUTF8 and DSN: mxguard
    # advertises the smaller SIZE and neither extension.
    be = make_backend(caps=["PIPELINING", "SIZE 1000000", "8BITMIME", "ENHANCEDSTATUSCODES"])
    mx = make_mx(backend=be)
    c = mx.connect()
    r = c.ehlo()
    caps = [l[4:] for l in r.lines[1:]]
    assert set(caps) == {
        "PIPELINING", "SIZE 1000000", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING",
    }, caps


def test_ehlo_never_advertises_backend_only_extensions(make_backend, make_mx):
    be = make_backend(
        caps=["PIPELINING", "SIZE 52428800", "8BITMIME", "CHUNKING", "STARTTLS", "VRFY", "ETRN"],
        xclient=True,
    )
    mx = make_mx(backend=be)
    c = mx.connect()
    caps = [l[4:].split()[0] for l in c.ehlo().lines[1:]]
    # CHUNKING is mxguard's own (RFC 3030 on the client side).
    for bad in ("XCLIENT", "XFORWARD", "BINARYMIME", "STARTTLS", "ETRN", "VRFY", "SMTPUTF8", "DSN"):
        assert bad not in caps, caps


def test_simple_transaction(backend, mx):
    c = mx.connect()
    msg = simple_message("simple")
    assert_reply(c.ehlo(), 250)
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    assert r.lines == ["250 2.1.0 Ok"]  # the backend's reply, verbatim
    r = c.cmd("RCPT TO:<%s>" % RCPT)
    assert r.lines == ["250 2.1.5 Ok"]
    d, final = c.data(msg)
    assert d.lines == ["354 End data with <CR><LF>.<CR><LF>"]
    m = QUEUED.fullmatch(final.lines[0])
    assert m and len(final.lines) == 1, final
    assert c.quit().code == 221
    assert c.closed()

    (txn,) = backend.wait_messages(1)
    assert txn.queue_id == m.group(1)
    assert txn.mail == "MAIL FROM:<%s>" % SENDER or txn.mail.startswith("MAIL FROM:<%s> " % SENDER)
    assert txn.rcpt_addrs == [RCPT]
    s = mx.session(c)
    (t,) = s["txns"]
    assert t.n == 1
    added_headers(txn, msg, received=True, sid_n="%s.1" % s["sid"])
    check_connect(s["connect"], "127.0.0.1", c.local_port, "127.0.0.1:%d" % mx.port)
    check_txn(
        t, result="accept", stage="eom", reply=final.lines[0], from_="<%s>" % SENDER,
        rcpt="<%s>" % RCPT, nrcpt=1, helo="client.example", tls="-", score="0.0",
        symbols="-", backend=final.lines[0],
        size=(str(len(msg)), str(len(txn.data))),
    )
    check_disconnect(s["disconnect"], reason="quit", txns=1)
    # The backend saw a normal dialogue on one connection.
    conns = backend.client_conns()
    assert len(conns) == 1
    cmds = [x.split(" ", 1)[0].upper() for x in conns[0].commands]
    assert cmds[0] == "EHLO"
    assert "XCLIENT" not in cmds and "XFORWARD" not in cmds
    assert cmds[cmds.index("MAIL"):cmds.index("DATA") + 1] == ["MAIL", "RCPT", "DATA"]


def test_large_8bit_dotty_message_is_byte_exact(backend, make_mx):
    # 4 MiB > spool.memory_max (1 MiB): the message spills to the spool file.
    mx = make_mx(config={"spool": {"memory_max": 1048576}})
    msg = dotty_8bit_message(4 * 1024 * 1024, seed=7)
    assert b"\r\n.\r\n" in msg and b"\r\n..\r\n" in msg and msg.count(b"\r\n.") > 1000
    c = mx.connect(timeout=60)
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s> BODY=8BITMIME SIZE=%d" % (SENDER, len(msg))), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    d, final = c.data(msg)
    assert d.code == 354
    assert QUEUED.fullmatch(final.lines[0]), final
    (txn,) = backend.wait_messages(1, timeout=60)
    assert "BODY=8BITMIME" in txn.mail.upper()
    s = mx.session(c, done=False)
    fields = added_headers(txn, msg, received=True, sid_n="%s.1" % s["sid"])
    assert "tests=none" in fields["X-Spam-Status"]
    # On the wire the stuffed message is exactly what the client sent after
    # the added headers.
    hdr_len = len(txn.data) - len(msg)
    assert txn.data_raw[hdr_len:] + b".\r\n" == dot_stuff(msg)
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", stage="eom", size=(str(len(msg)), str(len(txn.data))))


def test_empty_message_and_leading_dot(backend, mx):
    c = mx.connect()
    c.ehlo()
    for body in (b"", b".\r\n", b"..leading\r\n.\r\n"):
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        _, final = c.data(body)
        assert QUEUED.fullmatch(final.lines[0]), (body, final)
    msgs = backend.wait_messages(3)
    for txn, body in zip(msgs, (b"", b".\r\n", b"..leading\r\n.\r\n")):
        added_headers(txn, body, received=True)


def test_multiple_transactions_one_connection(backend, mx):
    c = mx.connect()
    c.ehlo()
    finals = []
    for i in range(3):
        assert_reply(c.cmd("MAIL FROM:<s%d@client.example>" % i), 250)
        assert_reply(c.cmd("RCPT TO:<r%d@test.example>" % i), 250)
        assert_reply(c.cmd("RCPT TO:<r%dbis@test.example>" % i), 250)
        _, final = c.data(simple_message("msg %d" % i))
        assert QUEUED.fullmatch(final.lines[0]), final
        finals.append(final.lines[0])
    assert len(set(finals)) == 3
    c.quit()
    msgs = backend.wait_messages(3)
    s = mx.session(c)
    for i, txn in enumerate(msgs):
        assert txn.mail_from == "s%d@client.example" % i
        assert txn.rcpt_addrs == ["r%d@test.example" % i, "r%dbis@test.example" % i]
        added_headers(txn, simple_message("msg %d" % i), sid_n="%s.%d" % (s["sid"], i + 1))
    # One backend connection carried all three.
    conns = backend.client_conns()
    assert len(conns) == 1 and len(conns[0].transactions) == 3, conns
    assert [t.n for t in s["txns"]] == [1, 2, 3]
    for i, t in enumerate(s["txns"]):
        check_txn(t, result="accept", stage="eom", nrcpt=2, reply=finals[i], backend=finals[i],
                  from_="<s%d@client.example>" % i, rcpt="<r%d@test.example>" % i)
    check_disconnect(s["disconnect"], reason="quit", txns=3)


def test_rset_discards_transaction(backend, mx):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<first@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<first@test.example>"), 250)
    assert c.cmd("RSET").lines == ["250 2.0.0 Ok"]
    # After RSET a RCPT needs a new MAIL.
    assert_reply(c.cmd("RCPT TO:<x@test.example>"), 503, "5.5.1")
    assert_reply(c.cmd("MAIL FROM:<second@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<second@test.example>"), 250)
    _, final = c.data(simple_message("after rset"))
    assert QUEUED.fullmatch(final.lines[0]), final
    assert c.cmd("NOOP").lines == ["250 2.0.0 Ok"]
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert txn.mail_from == "second@client.example"
    assert txn.rcpt_addrs == ["second@test.example"]
    # The backend never got a message for the first envelope, and the
    # backend's transaction state was reset before the second MAIL.
    conns = backend.client_conns()
    cmds = [x for cn in conns for x in cn.commands]
    firsts = [i for i, x in enumerate(cmds) if x.upper().startswith("MAIL FROM:<FIRST@")]
    if firsts:
        i2 = [i for i, x in enumerate(cmds) if x.upper().startswith("MAIL FROM:<SECOND@")][0]
        between = [x.upper() for x in cmds[firsts[0]:i2]]
        assert "RSET" in between or len(conns) > 1, cmds
        assert "DATA" not in between, cmds
    s = mx.session(c)
    txns = s["txns"]
    assert [t["result"] for t in txns] == ["abort", "accept"], txns
    check_txn(txns[0], result="abort", from_="<first@client.example>", rcpt="<first@test.example>",
              nrcpt=1)
    check_txn(txns[1], result="accept", stage="eom", from_="<second@client.example>")
    check_disconnect(s["disconnect"], reason="quit", txns=2)


def test_pipelining_whole_transaction(backend, mx):
    backend.override(r"RCPT TO:<bad@test\.example>", "550 5.1.1 <bad@test.example>: no such user")
    c = mx.connect()
    c.ehlo()
    replies = c.pipeline([
        "MAIL FROM:<%s>" % SENDER,
        "RCPT TO:<good@test.example>",
        "RCPT TO:<bad@test.example>",
        "RCPT TO:<good2@test.example>",
        "DATA",
    ])
    # Strictly in order, each the answer to its own command.
    assert replies[0].lines == ["250 2.1.0 Ok"]
    assert replies[1].lines == ["250 2.1.5 Ok"]
    assert replies[2].lines == ["550 5.1.1 <bad@test.example>: no such user"]
    assert replies[3].lines == ["250 2.1.5 Ok"]
    assert replies[4].code == 354
    msg = simple_message("pipelined")
    c.send(dot_stuff(msg) + b"QUIT\r\n")
    final, bye = c.replies(2)
    assert QUEUED.fullmatch(final.lines[0]), final
    assert bye.code == 221
    assert c.closed()
    (txn,) = backend.wait_messages(1)
    assert txn.accepted_rcpts == ["RCPT TO:<good@test.example>", "RCPT TO:<good2@test.example>"]
    added_headers(txn, msg)
    s = mx.session(c)
    (t,) = s["txns"]
    check_txn(t, result="accept", stage="eom", nrcpt=2, rcpt="<good@test.example>")
    check_disconnect(s["disconnect"], reason="quit", txns=1)


def test_pipelining_message_and_next_transaction_in_one_write(backend, mx):
    # RFC 2920: after the end of data the next command group may follow in
    # the same write as the message.
    c = mx.connect()
    c.ehlo()
    env = "MAIL FROM:<p%d@client.example>\r\nRCPT TO:<%s>\r\nDATA\r\n"
    c.send(env % (0, RCPT))
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    c.send(dot_stuff(simple_message("p0")) + (env % (1, RCPT)).encode())
    rs = c.replies(4)
    assert QUEUED.fullmatch(rs[0].lines[0]), rs
    assert [r.code for r in rs[1:]] == [250, 250, 354], rs
    c.send(dot_stuff(simple_message("p1")) + b"QUIT\r\n")
    final, bye = c.replies(2)
    assert QUEUED.fullmatch(final.lines[0]) and bye.code == 221, (final, bye)
    msgs = backend.wait_messages(2)
    assert [m.mail_from for m in msgs] == ["p0@client.example", "p1@client.example"]
    for i, m in enumerate(msgs):
        added_headers(m, simple_message("p%d" % i))
    s = mx.session(c)
    assert [t["result"] for t in s["txns"]] == ["accept", "accept"]
    check_disconnect(s["disconnect"], reason="quit", txns=2)


def test_xclient_backend(make_backend, make_mx):
    be = make_backend(xclient=True)
    mx = make_mx(backend=be)
    c = mx.connect()
    c.ehlo("client.example")
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    msg = simple_message("xclient")
    _, final = c.data(msg)
    assert QUEUED.fullmatch(final.lines[0]), final
    c.quit()
    (txn,) = be.wait_messages(1)
    (conn,) = be.client_conns()
    cmds = [x.split(" ", 1)[0].upper() for x in conn.commands]
    # EHLO, XCLIENT (maybe several lines), EHLO again, then MAIL.
    assert cmds[0] == "EHLO" and cmds[1] == "XCLIENT", conn.commands
    after = cmds[1:]
    while after and after[0] == "XCLIENT":
        after.pop(0)
    assert after[0] == "EHLO" and after[1] == "MAIL", conn.commands
    assert "XFORWARD" not in cmds
    x = conn.xclient
    assert x.get("ADDR") == "127.0.0.1", conn.xclient_lines
    assert x.get("HELO") == "client.example", conn.xclient_lines
    assert x.get("PROTO") == "ESMTP", conn.xclient_lines
    if "PORT" in x:
        assert x["PORT"] == str(c.local_port), conn.xclient_lines
    # With XCLIENT the backend writes the Received header: mxguard adds none.
    added_headers(txn, msg, received=False)
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", stage="eom")


def test_xclient_second_ehlo_names_client(make_backend, make_mx):
    # XCLIENT resets the backend session; the EHLO that must follow it is
    # the client's own greeting as far as the MTA knows (Postfix puts that
    # name in its Received header and logs, overriding XCLIENT HELO=), so
    # it must carry the client's HELO name, not mxguard's hostname.
    be = make_backend(xclient=True)
    mx = make_mx(backend=be)
    c = mx.connect()
    c.ehlo("client.example")
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    c.quit()
    (conn,) = be.client_conns()
    assert len(conn.helo) >= 2, conn.commands
    assert conn.helo[-1] == "client.example", conn.commands


def test_xclient_helo_proto(make_backend, make_mx):
    be = make_backend(xclient=True)
    mx = make_mx(backend=be)
    c = mx.connect()
    assert_reply(c.cmd("HELO old.client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message())
    assert final.code == 250
    (conn,) = be.client_conns()
    assert conn.xclient.get("PROTO") == "SMTP", conn.xclient_lines
    assert conn.xclient.get("HELO") == "old.client.example", conn.xclient_lines


def test_xforward_backend(make_backend, make_mx):
    be = make_backend(xforward=True)
    mx = make_mx(backend=be)
    c = mx.connect()
    c.ehlo("client.example")
    for i in range(2):
        assert_reply(c.cmd("MAIL FROM:<x%d@client.example>" % i), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        _, final = c.data(simple_message("xf%d" % i))
        assert QUEUED.fullmatch(final.lines[0]), final
    c.quit()
    msgs = be.wait_messages(2)
    (conn,) = be.client_conns()
    cmds = [x.split(" ", 1)[0].upper() for x in conn.commands]
    assert "XCLIENT" not in cmds
    # XFORWARD before every MAIL.
    for i, cmd in enumerate(cmds):
        if cmd == "MAIL":
            assert cmds[i - 1] == "XFORWARD", conn.commands
    for i, txn in enumerate(msgs):
        xf = txn.xforward
        assert xf.get("ADDR") == "127.0.0.1", conn.xforward_lines
        assert xf.get("HELO") == "client.example", conn.xforward_lines
        assert xf.get("PROTO") == "ESMTP", conn.xforward_lines
        if "PORT" in xf:
            assert xf["PORT"] == str(c.local_port)
        added_headers(txn, simple_message("xf%d" % i), received=False)


def test_received_after_helo_says_smtp(backend, mx):
    c = mx.connect()
    assert c.cmd("HELO old.client.example").lines == ["250 mx.test"]
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    msg = simple_message("helo")
    _, final = c.data(msg)
    assert final.code == 250
    (txn,) = backend.wait_messages(1)
    s = mx.session(c, done=False)
    added_headers(txn, msg, received=True, helo="old.client.example", proto="SMTP",
                  sid_n="%s.1" % s["sid"])
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, helo="old.client.example")


def test_backend_replies_pass_through_verbatim(backend, mx):
    backend.override(r"MAIL FROM:<vip@", "250 2.1.0 Sender vip ok, welcome")
    backend.override(r"RCPT TO:<nouser@", "550 5.1.1 <nouser@test.example>: Recipient address rejected: User unknown")
    backend.override(r"RCPT TO:<multi@", ["250-2.1.5 first line of three", "250-2.1.5 second line", "250 2.1.5 last line"])
    backend.override(r"RCPT TO:<full@", ["452-4.2.2 mailbox full", "452 4.2.2 try later"])
    backend.override("EOM", ["250-2.0.0 multi-line final reply", "250 2.0.0 Ok: queued as MULTI42"])
    c = mx.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<vip@client.example>").lines == ["250 2.1.0 Sender vip ok, welcome"]
    assert c.cmd("RCPT TO:<nouser@test.example>").lines == [
        "550 5.1.1 <nouser@test.example>: Recipient address rejected: User unknown"]
    assert c.cmd("RCPT TO:<multi@test.example>").lines == [
        "250-2.1.5 first line of three", "250-2.1.5 second line", "250 2.1.5 last line"]
    assert c.cmd("RCPT TO:<full@test.example>").lines == ["452-4.2.2 mailbox full", "452 4.2.2 try later"]
    _, final = c.data(simple_message("verbatim"))
    assert final.lines == ["250-2.0.0 multi-line final reply", "250 2.0.0 Ok: queued as MULTI42"]
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert txn.accepted_rcpts == ["RCPT TO:<multi@test.example>"]
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", stage="eom", nrcpt=1, from_="<vip@client.example>")
    # The backend's queue id must be findable in the log line.
    assert "MULTI42" in t["backend"], t


def test_backend_rejects_message(backend, mx):
    backend.override("EOM", "554 5.7.1 Message content rejected")
    c = mx.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<%s>" % SENDER)
    c.cmd("RCPT TO:<%s>" % RCPT)
    _, final = c.data(simple_message())
    assert final.lines == ["554 5.7.1 Message content rejected"]
    # The session goes on.
    assert c.cmd("NOOP").code == 250
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, stage="eom", reply="554 5.7.1 Message content rejected",
              backend="554 5.7.1 Message content rejected", result=("reject", "error"))


def test_backend_rejects_sender(backend, mx):
    backend.override(r"MAIL FROM:<spammer@", "553 5.7.1 <spammer@bad.example>: Sender address rejected")
    c = mx.connect()
    c.ehlo()
    r = c.cmd("MAIL FROM:<spammer@bad.example>")
    assert r.lines == ["553 5.7.1 <spammer@bad.example>: Sender address rejected"]
    # No transaction was started: RCPT is out of sequence.
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 503, "5.5.1")
    c.quit()
    s = mx.session(c)
    assert len(s["txns"]) == 1, s
    check_txn(s["txns"][0], stage="mail", result=("reject",),
              reply="553 5.7.1 <spammer@bad.example>: Sender address rejected")


def test_data_when_all_recipients_refused(backend, mx):
    backend.override(r"RCPT TO:", "550 5.1.1 no such user")
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert c.cmd("RCPT TO:<a@test.example>").lines == ["550 5.1.1 no such user"]
    assert c.cmd("RCPT TO:<b@test.example>").lines == ["550 5.1.1 no such user"]
    assert_reply(c.cmd("DATA"), 554, "5.5.1")
    c.quit()
    assert not any(x.upper() == "DATA" for x in backend.all_commands())
    s = mx.session(c)
    assert len(s["txns"]) == 1
    check_txn(s["txns"][0], nrcpt=0)


def test_message_in_odd_splits(backend, mx):
    # The end of data and dot-stuffing split across writes: the terminator
    # byte by byte, a stuffed dot alone at the end of a write.
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert c.cmd("DATA").code == 354
    msg = simple_message("splits", b"one\r\n.two\r\n..\r\nthree\r\n")
    wire = dot_stuff(msg)
    # Cut right after every CR, LF and dot, then the rest in 7-byte pieces.
    cuts = sorted({i + 1 for i, b in enumerate(wire) if b in b"\r\n."} | set(range(0, len(wire), 7)))
    prev = 0
    for cut in cuts + [len(wire)]:
        if cut > prev:
            c.send(wire[prev:cut])
            prev = cut
    final = c.reply()
    assert QUEUED.fullmatch(final.lines[0]), final
    (txn,) = backend.wait_messages(1)
    added_headers(txn, msg)
    c.quit()


def test_smtputf8_and_dsn_parameters_pass_through(backend, mx):
    # The backend advertises SMTPUTF8 and DSN, so mxguard does too and must
    # take UTF-8 addresses and the DSN parameters and relay them as given.
    c = mx.connect()
    caps = [l[4:] for l in c.ehlo().lines[1:]]
    assert "SMTPUTF8" in caps and "DSN" in caps, caps
    mail = "MAIL FROM:<j\u00f6s\u00e9@ex\u00e4mple.example> SMTPUTF8 RET=HDRS ENVID=QQ314159"
    rcpt = "RCPT TO:<\u00fcser@test.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@test.example"
    assert_reply(c.cmd(mail), 250)
    assert_reply(c.cmd(rcpt), 250)
    msg = simple_message("utf8", "gr\u00fc\u00dfe\r\n".encode())
    _, final = c.data(msg)
    assert final.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert txn.mail == mail, txn.mail
    assert txn.rcpts == [rcpt], txn.rcpts
    # RFC 6531 3.7.3: the Received protocol is UTF8SMTP for such mail.
    added_headers(txn, msg, proto="UTF8SMTP")


def test_backend_closes_idle_connection_between_transactions(backend, mx):
    # The MTA drops the idle connection mxguard keeps for the session: the
    # next transaction gets a fresh connection, or a 451 4.4.x, never a
    # hang or a 250 the backend did not give.
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("one"))
    assert final.code == 250
    backend.close_connections()
    backend.wait_for(lambda b: all(cn.closed for cn in b.conns), 10, "backend closed")
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    if r.code == 250:
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        _, final2 = c.data(simple_message("two"))
        assert QUEUED.fullmatch(final2.lines[0]), final2
        assert len(backend.wait_messages(2)) == 2
    else:
        assert_reply(r, 451, "4.4.")
        assert len(backend.messages()) == 1
    c.quit()
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="quit", txns=2)


def test_client_eof_during_data(backend, mx):
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: cut\r\n\r\nhalf a message\r\n")
    port = c.local_port
    c.close()
    s = mx.session(port=port)
    check_disconnect(s["disconnect"], reason="eof", txns=1)
    (t,) = s["txns"]
    check_txn(t, result="abort", stage=("data", "eom"), backend="-")
    backend.wait_for(lambda b: all(cn.closed for cn in b.client_conns()), 10,
                     "backend connection closed")
    assert not any(x.upper() == "DATA" for x in backend.all_commands())
    assert backend.messages() == []


def test_concurrent_sessions(backend, mx):
    # 40 clients at once over the daemon's loops: every message arrives
    # once, intact, with its own session id.
    import threading

    n = 40
    results = [None] * n

    def one(i):
        try:
            with mx.connect() as c:
                c.ehlo("c%d.client.example" % i)
                assert_reply(c.cmd("MAIL FROM:<s%d@client.example>" % i), 250)
                assert_reply(c.cmd("RCPT TO:<r%d@test.example>" % i), 250)
                _, final = c.data(simple_message("concurrent %d" % i, b"body %d\r\n" % i * 50))
                c.quit()
                results[i] = (final.lines[0], c.local_port)
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not t.is_alive() for t in threads)
    errors = [r for r in results if not isinstance(r, tuple)]
    assert not errors, errors
    assert all(QUEUED.fullmatch(r[0]) for r in results), results
    msgs = backend.wait_messages(n)
    by_from = {m.mail_from: m for m in msgs}
    assert len(by_from) == n
    for i in range(n):
        m = by_from["s%d@client.example" % i]
        added_headers(m, simple_message("concurrent %d" % i, b"body %d\r\n" % i * 50),
                      helo="c%d.client.example" % i)
    sids = set()
    for final, port in results:
        s = mx.session(port=port)
        sids.add(s["sid"])
        check_txn(s["txns"][0], result="accept", reply=final)
    assert len(sids) == n
