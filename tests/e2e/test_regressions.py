# SPDX-License-Identifier: MIT
"""Regression tests, each named after the bug it guards (found in a review
of session.c/relay.c on 2026-11-29; each failed before its fix)."""

import socket
import subprocess
import threading
import time

from helpers import RCPT, SENDER, assert_reply, simple_message


def test_backend_refusing_data_leaves_no_open_transaction(make_backend, make_mx):
    """Bug: when the backend refused DATA (4xx/5xx instead of 354) its MAIL
    stayed open; the client's next MAIL, and the next client on the pooled
    connection, got "503 nested MAIL"."""
    be = make_backend()
    mx = make_mx(backend=be, config={"loops": 1})
    be.override(r"DATA", "451 4.3.0 try later")
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    d, final = c.data(simple_message("one"))
    assert final.lines == ["451 4.3.0 try later"]
    be.clear_overrides()
    # The same session goes on...
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RSET"), 250)
    c.quit()
    c.close()
    # ...and so does the next client on the pooled connection.
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("two"))
    assert_reply(final, 250)
    c.quit()
    cmds = [x.split()[0].upper() for x in be.all_commands()]
    assert cmds.count("RSET") >= 1


def _slow_backend(ls, done):
    """A backend that reads the message slowly (about 3 MB/s)."""
    try:
        s, _ = ls.accept()
    except OSError:  # the test closed the listener
        return
    s.settimeout(60)
    s.sendall(b"220 slow ESMTP\r\n")
    buf = b""
    try:
        while True:
            while b"\n" not in buf:
                d = s.recv(4096)
                if not d:
                    return
                buf += d
            line, buf = buf.split(b"\n", 1)
            verb = line.strip().upper()
            if verb.startswith(b"EHLO"):
                s.sendall(b"250-slow\r\n250 SIZE 52428800\r\n")
            elif verb == b"DATA":
                s.sendall(b"354 go\r\n")
                tail = buf[-5:]
                while not tail.endswith(b"\r\n.\r\n"):
                    d = s.recv(16384)
                    if not d:
                        return
                    tail = (tail + d)[-5:]
                    time.sleep(0.004)
                buf = b""
                done.append(True)
                s.sendall(b"250 2.0.0 queued\r\n")
            elif verb.startswith(b"QUIT"):
                s.sendall(b"221 bye\r\n")
                return
            else:
                s.sendall(b"250 ok\r\n")
    finally:
        s.close()


def test_slow_backend_streaming_is_not_a_timeout(make_mx):
    """Bug: the backend reply timeout (timeouts.backend) ran while the
    message was being streamed, so a backend that read steadily but needed
    longer than that for a large message got the connection cut."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    done = []
    # The first connection is mxguard's startup probe.
    t = threading.Thread(target=lambda: [_slow_backend(ls, done) for _ in range(3)],
                         daemon=True)
    t.start()
    try:
        mx = make_mx(backend="127.0.0.1:%d" % ls.getsockname()[1],
                     config={"loops": 1, "timeouts": {"backend": 2},
                             "limits": {"message_size": 50000000}})
        c = mx.connect(timeout=60)
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        body = (b"x" * 998 + b"\r\n") * 20000  # 20 MB: several seconds
        _, final = c.data(simple_message("big", body=body), timeout=120)
        assert final.lines == ["250 2.0.0 queued"], final
        assert done == [True]
        c.quit()
    finally:
        ls.close()


def test_proxy_header_cut_by_eof_closes(make_mx):
    """Bug: a partial PROXY v2 header followed by a half-close left the
    session open for good (no timeout after EOF): an fd leak anyone could
    cause."""
    mx = make_mx(config={"loops": 1}, listeners=[{"proxy_protocol": True}])
    socks = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", mx.port))
        s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11")  # no length yet
        s.shutdown(socket.SHUT_WR)
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        assert s.recv(10) == b"", "the server must close, without a banner"
        s.close()


def test_accept_out_of_descriptors_pauses(make_mx):
    """Bug: with no descriptor left (EMFILE) the accept callback fired again
    at once, forever: 100 % CPU and about 200,000 log lines a second."""
    mx = make_mx(config={"loops": 1})
    subprocess.run(["prlimit", "--pid", str(mx.pid), "--nofile=30:30"], check=True)
    socks = [socket.create_connection(("127.0.0.1", mx.port)) for _ in range(40)]
    try:
        time.sleep(2)
        warnings = [l for l in mx.log_lines() if "accept:" in l]
        assert 1 <= len(warnings) <= 6, warnings[:10]
        assert "pausing new connections" in warnings[0]
    finally:
        for s in socks:
            s.close()
    # Once descriptors are free again, it accepts again.
    time.sleep(1.5)
    c = mx.connect()
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()


def test_client_timeout_off_while_waiting_for_backend(backend, make_mx):
    """Bug: the client's command timeout kept running while mxguard waited
    for the backend, so a slow backend made mxguard answer "421 timeout"
    instead of the backend's reply or 451 4.4.2."""
    mx = make_mx(config={"loops": 1, "timeouts": {"command": 2, "backend": 4}})
    backend.fail("mail", "stall")
    c = mx.connect(timeout=20)
    c.ehlo()
    r = c.cmd("MAIL FROM:<%s>" % SENDER, timeout=20)
    assert_reply(r, 451, "4.4.2")


def test_sighup_during_startup_is_not_fatal(backend, make_mx):
    """Bug: the port was listening before the signal handlers were set, so
    a SIGHUP sent as soon as the port answered (a script, systemd reload)
    killed mxguard (SIGHUP's default action).  The startup probe of a
    silent backend holds startup open for timeouts.backend seconds."""
    backend.fail("connect", "stall", count=1)
    mx = make_mx(config={"timeouts": {"backend": 3}})
    # start() returned as soon as the port listened: still probing.
    assert not any("started" in l for l in mx.log_lines())
    mx.reload()
    mx.wait_log(r"reload: configuration .* loaded", timeout=15)
    assert mx.alive()
    c = mx.connect()
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()
