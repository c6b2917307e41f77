# SPDX-License-Identifier: MIT
"""A backend that goes away, stalls, or says something unexpected: the
client gets a 4xx (451 4.4.x, or 451 4.3.0), never a 250 after DATA that
the backend did not give, and the session's log line says what happened."""

import re

import pytest

from helpers import RCPT, SENDER, added_headers, assert_reply, check_disconnect, check_txn, simple_message

BACKEND_TIMEOUT = 2  # timeouts.backend in these tests, seconds

# Where a backend failure shows to the client: mxguard opens the backend
# connection at MAIL and answers DATA's 354 itself.
CLIENT_STAGE = {
    "connect": "mail",
    "ehlo": "mail",
    "xclient": "mail",
    "xforward": "mail",
    "mail": "mail",
    "rcpt": "rcpt",
    "data": "eom",
    "eom": "eom",
}


def run_transaction(c, msg):
    """EHLO, MAIL, RCPT, DATA, message until the first non-2xx/3xx reply.
    Returns (stage, reply, all replies by stage)."""
    got = {}
    c.ehlo()
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    got["mail"] = r
    if r.code >= 400:
        return "mail", r, got
    r = c.cmd("RCPT TO:<%s>" % RCPT)
    got["rcpt"] = r
    if r.code >= 400:
        return "rcpt", r, got
    d, final = c.data(msg)
    got["data"] = d
    if final is None:
        return "data", d, got
    got["eom"] = final
    return "eom", final, got


def make_pair(make_backend, make_mx, stage, **mxconf):
    be = make_backend(xclient=(stage == "xclient"), xforward=(stage == "xforward"))
    # The final reply after the message is waited for timeouts.data_done
    # (like Postfix's smtp_data_done_timeout), the rest timeouts.backend.
    conf = {"timeouts": {"backend": BACKEND_TIMEOUT, "data_done": BACKEND_TIMEOUT}}
    conf.update(mxconf)
    mx = make_mx(backend=be, config=conf)
    # The SMTP port listens before the startup probe of the backend: wait
    # for the probe to be over, or a failure set next could hit it instead
    # of the test's connection (seen under ASan with connect-drop).
    mx.wait_log(r"mxguard \S+ started: ")
    return be, mx


@pytest.mark.parametrize("action", ["drop", "stall"])
@pytest.mark.parametrize("stage", list(CLIENT_STAGE))
def test_backend_failure(make_backend, make_mx, stage, action):
    be, mx = make_pair(make_backend, make_mx, stage)
    # Set after start: mxguard's startup probe must see a healthy backend.
    be.fail(stage, action)
    c = mx.connect(timeout=BACKEND_TIMEOUT + 15)
    where, r, got = run_transaction(c, simple_message("failure %s %s" % (stage, action)))
    assert where == CLIENT_STAGE[stage], (where, r, got)
    assert_reply(r, 451, "4.4.")
    assert got.get("data") is None or got["data"].code == 354
    # Never a 250 for the message unless the backend sent one: here it
    # never replied to the end of data.
    for t in be.transactions():
        assert t.reply is None, t
    # The backend connection that failed is closed by mxguard (stall) or
    # already gone (drop); the client session goes on.
    be.wait_for(lambda b: len(b.conns) > 1 and b.conns[-1].closed,
                BACKEND_TIMEOUT + 10,
                "failed backend connection closed")
    assert c.cmd("RSET").code == 250
    c.quit()
    s = mx.session(c)
    (t,) = s["txns"]
    cs = CLIENT_STAGE[stage]
    check_txn(t, result=("tempfail", "error"), stage=("data", "eom") if cs == "eom" else cs,
              reply=r.lines[-1])
    check_disconnect(s["disconnect"], reason="quit", txns=1)


@pytest.mark.parametrize("stage,action", [("rcpt", "drop"), ("eom", "stall"), ("connect", "drop")])
def test_session_recovers_after_backend_failure(make_backend, make_mx, stage, action):
    be, mx = make_pair(make_backend, make_mx, stage)
    be.fail(stage, action, count=1)
    c = mx.connect(timeout=BACKEND_TIMEOUT + 15)
    where, r, _ = run_transaction(c, simple_message("first"))
    assert_reply(r, 451, "4.4.")
    c.cmd("RSET")
    # The next transaction opens a new backend connection and goes through.
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    msg = simple_message("second")
    _, final = c.data(msg)
    assert final.code == 250 and final.lines[0].startswith("250 2.0.0 Ok: queued as"), final
    c.quit()
    delivered = [t for t in be.transactions() if t.reply is not None]
    assert len(delivered) == 1
    added_headers(delivered[0], msg)
    s = mx.session(c)
    assert [t["result"] for t in s["txns"]][-1] == "accept", s["txns"]
    check_disconnect(s["disconnect"], reason="quit", txns=2)


def test_backend_unreachable(make_backend, make_mx):
    be, mx = make_pair(make_backend, make_mx, "mail")
    be.stop_listening()
    c = mx.connect()
    c.ehlo()
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    assert_reply(r, 451, "4.4.1")
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 503, "5.5.1")
    c.quit()
    s = mx.session(c)
    (t,) = s["txns"]
    check_txn(t, result=("tempfail", "error"), stage="mail", reply=re.compile(r"451 4\.4\.1.*"))
    check_disconnect(s["disconnect"], reason="quit", txns=1)


@pytest.mark.parametrize(
    "pattern,reply,where",
    [
        (r"MAIL FROM:", "354 go ahead", "mail"),
        (r"RCPT TO:", "354 go ahead", "rcpt"),
        (r"DATA", "250 2.0.0 Ok", "eom"),
        ("EOM", "354 more please", "eom"),
        (r"RCPT TO:", "220 hello again", "rcpt"),
    ],
)
def test_unexpected_backend_reply(make_backend, make_mx, pattern, reply, where):
    be, mx = make_pair(make_backend, make_mx, "mail")
    be.override(pattern, reply)
    c = mx.connect()
    got_where, r, got = run_transaction(c, simple_message("unexpected"))
    assert got_where == where, (got_where, r, got)
    assert_reply(r, 451, "4.3.0")
    c.quit()
    s = mx.session(c)
    (t,) = s["txns"]
    check_txn(t, result=("tempfail", "error"), stage=("data", "eom") if where == "eom" else where,
              reply=r.lines[-1])
    # A message was never acknowledged to the client on the backend's
    # behalf.
    if where == "eom":
        assert all(x.reply is None or x.reply != r.lines[-1] for x in be.transactions())


def test_backend_data_refusal_passes_through(backend, make_mx):
    mx = make_mx()
    backend.override(r"DATA", "451 4.3.0 Local error in processing")
    c = mx.connect()
    where, r, _ = run_transaction(c, simple_message())
    assert where == "eom"
    assert r.lines == ["451 4.3.0 Local error in processing"]
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, result=("tempfail", "error"), stage=("data", "eom"),
              reply="451 4.3.0 Local error in processing")


@pytest.mark.parametrize("pattern,where", [(r"MAIL FROM:", "mail"), (r"RCPT TO:", "rcpt"), ("EOM", "eom")])
def test_backend_421_ends_client_session(backend, make_mx, pattern, where):
    mx = make_mx()
    backend.override(pattern, "421 4.3.2 Service shutting down")
    c = mx.connect()
    got_where, r, _ = run_transaction(c, simple_message())
    assert got_where == where
    assert r.lines == ["421 4.3.2 Service shutting down"]
    assert c.closed()
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="backend", txns=1)
    (t,) = s["txns"]
    check_txn(t, result=("tempfail", "error"), reply="421 4.3.2 Service shutting down",
              stage=("data", "eom") if where == "eom" else where)
