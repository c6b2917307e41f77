# SPDX-License-Identifier: MIT
"""The backend connection pool (backend_pool): a finished session's clean,
idle backend connection serves the next client of the same loop, carrying
no identity from the first one; XCLIENT connections are never reused; a
pooled connection the backend closed meanwhile costs the client nothing;
idle ones are closed after backend_pool.idle_timeout."""


from helpers import RCPT, SENDER, assert_reply, simple_message

# One loop, so every session shares one pool.
ONE_LOOP = {"loops": 1}


def send_one(mx, subject, helo="client.example"):
    c = mx.connect()
    c.ehlo(helo)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    d, final = c.data(simple_message(subject))
    assert d.code == 354
    assert_reply(final, 250)
    port = c.local_port
    c.quit()
    c.close()
    return port


def test_pool_reuses_connection_with_fresh_xforward(make_backend, make_mx):
    be = make_backend(xforward=True)
    mx = make_mx(backend=be, config=ONE_LOOP)
    p1 = send_one(mx, "first", helo="one.example")
    p2 = send_one(mx, "second", helo="two.example")
    be.wait_messages(2)
    conns = be.client_conns()
    # One backend connection carried both sessions' mail...
    assert len(conns) == 1, conns
    txns = conns[0].transactions
    assert len(txns) == 2
    # ...and each transaction names its own client: XFORWARD is sent again
    # before every MAIL, nothing leaks from the first client.
    assert txns[0].xforward["PORT"] == str(p1)
    assert txns[1].xforward["PORT"] == str(p2)
    assert txns[0].xforward["HELO"] == "one.example"
    assert txns[1].xforward["HELO"] == "two.example"
    # Only one EHLO: the second session skipped connect, greeting, EHLO.
    assert [c.split()[0].upper() for c in conns[0].commands].count("EHLO") == 1


def test_pool_plain_backend_received_names_each_client(make_backend, make_mx):
    be = make_backend()  # neither XCLIENT nor XFORWARD
    mx = make_mx(backend=be, config=ONE_LOOP)
    send_one(mx, "first", helo="one.example")
    send_one(mx, "second", helo="two.example")
    msgs = be.wait_messages(2)
    assert len(be.client_conns()) == 1
    assert msgs[0].data.startswith(b"Received: from one.example ([127.0.0.1])")
    assert msgs[1].data.startswith(b"Received: from two.example ([127.0.0.1])")


def test_pool_never_reuses_xclient(make_backend, make_mx):
    be = make_backend(xclient=True)
    mx = make_mx(backend=be, config=ONE_LOOP)
    send_one(mx, "first")
    send_one(mx, "second")
    be.wait_messages(2)
    conns = be.client_conns()
    # The backend's notion of the client belongs to the first client after
    # XCLIENT: a second client must get its own connection.
    assert len(conns) == 2, conns
    for c in conns:
        assert len(c.xclient_lines) == 1


def test_pool_disabled(make_backend, make_mx):
    be = make_backend(xforward=True)
    mx = make_mx(backend=be, config=dict(ONE_LOOP, backend_pool={"max_idle": 0}))
    send_one(mx, "first")
    send_one(mx, "second")
    be.wait_messages(2)
    conns = be.client_conns()
    assert len(conns) == 2
    # Each one ended with QUIT.
    be.wait_for(lambda b: all(c.closed for c in b.conns), what="closes")
    for c in conns:
        assert c.commands[-1].upper() == "QUIT", c.commands


def test_pool_backend_closed_meanwhile_is_retried(make_backend, make_mx):
    be = make_backend(xforward=True)
    mx = make_mx(backend=be, config=ONE_LOOP)
    send_one(mx, "first")
    # The pooled connection dies at its next MAIL (as if the backend had
    # timed it out just then): the client must still get the backend's
    # 250 on a fresh connection, and never a 4xx.
    be.fail("xforward", "drop", count=1)
    send_one(mx, "second")
    msgs = be.wait_messages(2)
    assert [m.mail_from for m in msgs] == [SENDER, SENDER]
    assert len(be.client_conns()) == 2


def test_pool_idle_timeout_closes_with_quit(make_backend, make_mx):
    be = make_backend(xforward=True)
    mx = make_mx(backend=be, config=dict(ONE_LOOP, backend_pool={"idle_timeout": 0.5}))
    send_one(mx, "first")
    (conn,) = be.client_conns()
    be.wait_for(lambda b: conn.closed, timeout=10, what="idle close")
    assert conn.commands[-1].upper() == "QUIT"
    # The next session opens a new connection and is served normally.
    send_one(mx, "second")
    be.wait_messages(2)
    assert len(be.client_conns()) == 2
