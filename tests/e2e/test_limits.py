# SPDX-License-Identifier: MIT
"""Limits: line length, message size, recipients, errors, idle time and
connection counts, each with its RFC 5321 reply and its log line."""

import re
import time

from helpers import (
    RCPT,
    SENDER,
    added_headers,
    assert_reply,
    check_disconnect,
    check_txn,
    simple_message,
)
from smtp import ServerClosed


def start_txn(c, rcpts=(RCPT,)):
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    for r in rcpts:
        assert_reply(c.cmd("RCPT TO:<%s>" % r), 250)


def test_command_line_too_long(backend, make_mx):
    mx = make_mx(config={"limits": {"line_length": 512}})
    c = mx.connect()
    c.ehlo()
    # Sent in pieces: the daemon must not act on any piece alone.
    long = b"MAIL FROM:<" + b"a" * 3000 + b"@client.example>\r\n"
    for i in range(0, len(long), 700):
        c.send(long[i:i + 700])
    assert_reply(c.reply(), 500, "5.5.2")
    # Exactly one reply for it, and the session goes on.
    assert c.cmd("NOOP").lines == ["250 2.0.0 Ok"]
    assert_reply(c.cmd("NOOP " + "x" * 600), 500, "5.5.2")
    start_txn(c)
    _, final = c.data(simple_message())
    assert final.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert not any("aaaa" in x for x in backend.all_commands())
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="quit", txns=1)


def test_message_line_too_long(backend, make_mx):
    mx = make_mx(config={"limits": {"line_length": 1000}})
    c = mx.connect()
    c.ehlo()
    start_txn(c)
    msg = simple_message("long line", b"short\r\n" + b"y" * 1500 + b"\r\nafter\r\n")
    d, final = c.data(msg)
    assert d.code == 354
    assert_reply(final, 550, "5.6.0")
    # Nothing was forwarded; the session goes on with a good message.
    assert not any(x.upper() == "DATA" for x in backend.all_commands())
    start_txn(c)
    ok = simple_message("fine", b"z" * 990 + b"\r\n")
    _, final2 = c.data(ok)
    assert final2.code == 250, final2
    c.quit()
    (txn,) = backend.wait_messages(1)
    added_headers(txn, ok)
    s = mx.session(c)
    t1, t2 = s["txns"]
    check_txn(t1, result="reject", stage=("data", "eom"), reply=re.compile(r"550 5\.6\.0.*"),
              backend="-")
    check_txn(t2, result="accept", stage="eom")
    check_disconnect(s["disconnect"], reason="quit", txns=2)


def test_message_too_big(backend, make_mx):
    mx = make_mx(config={"limits": {"message_size": 100000}})
    c = mx.connect()
    caps = [l[4:] for l in c.ehlo().lines[1:]]
    assert "SIZE 100000" in caps, caps
    assert_reply(c.cmd("MAIL FROM:<%s> SIZE=100001" % SENDER), 552, "5.3.4")
    start_txn(c)
    big = simple_message("big", (b"x" * 78 + b"\r\n") * 2000)  # 160 kB
    d, final = c.data(big)
    assert d.code == 354
    assert_reply(final, 552, "5.3.4")
    assert not any(x.upper() == "DATA" for x in backend.all_commands())
    start_txn(c)
    _, final2 = c.data(simple_message("small"))
    assert final2.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert b"small" in txn.data
    s = mx.session(c)
    rejected = [t for t in s["txns"] if t["result"] == "reject"]
    assert len(rejected) == 1, s["txns"]
    check_txn(rejected[0], stage=("data", "eom"), reply=re.compile(r"552 5\.3\.4.*"), backend="-")


def test_too_many_recipients(backend, make_mx):
    mx = make_mx(config={"limits": {"recipients": 3}})
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    for i in range(3):
        assert_reply(c.cmd("RCPT TO:<r%d@test.example>" % i), 250)
    assert_reply(c.cmd("RCPT TO:<r3@test.example>"), 452, "4.5.3")
    assert_reply(c.cmd("RCPT TO:<r4@test.example>"), 452, "4.5.3")
    _, final = c.data(simple_message())
    assert final.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert txn.rcpt_addrs == ["r0@test.example", "r1@test.example", "r2@test.example"]
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", nrcpt=3, rcpt="<r0@test.example>")


def test_too_many_errors(backend, make_mx):
    mx = make_mx(config={"limits": {"errors": 3}})
    c = mx.connect()
    c.ehlo()
    replies = []
    for i in range(10):
        try:
            r = c.cmd("BOGUS%d" % i)
        except ServerClosed:
            break
        replies.append(r)
        if r.code == 421:
            break
    codes = [r.code for r in replies]
    assert 421 in codes, codes
    i = codes.index(421)
    assert 2 <= i <= 3, "421 after %d errors with limits.errors = 3: %r" % (i, codes)
    assert all(x == 500 for x in codes[:i]), codes
    assert_reply(replies[i], 421, "4.7.0")
    assert c.closed()
    check_disconnect(mx.session(c)["disconnect"], reason="errors", txns=0)


def test_idle_timeout(backend, make_mx):
    mx = make_mx(config={"timeouts": {"command": 1}})
    c = mx.connect()
    c.ehlo()
    r = c.reply(timeout=15)  # no command sent: the daemon speaks first
    assert_reply(r, 421, "4.4.2")
    assert c.closed()
    check_disconnect(mx.session(c)["disconnect"], reason="timeout", txns=0)


def test_idle_timeout_mid_transaction(backend, make_mx):
    mx = make_mx(config={"timeouts": {"command": 1}})
    c = mx.connect()
    c.ehlo()
    start_txn(c)
    assert_reply(c.reply(timeout=15), 421, "4.4.2")
    assert c.closed()
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="timeout", txns=1)
    (t,) = s["txns"]
    check_txn(t, result="abort", nrcpt=1)
    backend.wait_for(lambda b: all(cn.closed for cn in b.conns), 10, "backend connections closed")
    assert not any(x.upper() == "DATA" for x in backend.all_commands())


def test_data_timeout(backend, make_mx):
    mx = make_mx(config={"timeouts": {"command": 60, "data_block": 1}})
    c = mx.connect()
    c.ehlo()
    start_txn(c)
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: half\r\n\r\nhalf a message")
    closed_reply = None
    try:
        closed_reply = c.reply(timeout=15)
    except ServerClosed:
        pass
    if closed_reply is not None:
        assert_reply(closed_reply, 421, "4.4.2")
    assert c.closed(10)
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="timeout", txns=1)
    (t,) = s["txns"]
    assert t["result"] in ("abort", "tempfail"), t
    assert not any(x.upper() == "DATA" for x in backend.all_commands())


def test_max_connections(backend, make_mx):
    mx = make_mx(config={"limits": {"connections": 3, "connections_per_ip": 100}})
    held = [mx.connect() for _ in range(3)]  # each got its 220
    extra = mx.connect(banner=False)
    r = extra.reply()
    assert_reply(r, 421, "4.7.0")
    assert extra.closed()
    s = mx.session(extra)
    check_disconnect(s["disconnect"], reason="limit", txns=0)
    # The held sessions still work.
    assert held[0].cmd("NOOP").code == 250
    # A slot frees when a session ends (bounded retries: the daemon learns
    # of the close asynchronously).
    port0 = held[0].local_port
    held[0].quit()
    held[0].close()
    mx.session(port=port0)  # its disconnect is logged
    for _ in range(100):
        c = mx.connect(banner=False)
        r = c.reply()
        if r.code == 220:
            break
        c.close()
        time.sleep(0.1)
    assert r.code == 220, r
    c.quit()


def test_max_connections_per_ip(backend, make_mx):
    mx = make_mx(config={"limits": {"connections": 100, "connections_per_ip": 2}})
    a = mx.connect()
    b = mx.connect()
    extra = mx.connect(banner=False)
    assert_reply(extra.reply(), 421, "4.7.0")
    assert extra.closed()
    check_disconnect(mx.session(extra)["disconnect"], reason="limit")
    # Another loopback address is another client.
    other = mx.connect(banner=False, source="127.0.0.2")
    assert other.reply().code == 220
    s = mx.session(other, done=False)
    assert s["connect"]["client"].startswith("[127.0.0.2]:"), s["connect"]
    for x in (a, b, other):
        assert x.cmd("NOOP").code == 250
        x.quit()
