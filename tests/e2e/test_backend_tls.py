# SPDX-License-Identifier: MIT
"""TLS to the backend (issue 7 item 6): backend_tls = { mode; ca_file;
verify_name; }.  Opportunistic by default when the backend offers
STARTTLS, required, or off; the certificate checked when a CA or a name is
given.  The scriptable backend does the server side (Python's ssl) with a
certificate made at test time."""

import re

import pytest

from helpers import RCPT, SENDER, assert_reply, simple_message, self_signed_cert


@pytest.fixture(scope="module")
def bcert(tmp_path_factory):
    d = tmp_path_factory.mktemp("btls")
    crt, key = self_signed_cert(d, "backend.test", san=True)
    return crt, key


def send(mx, subject="backend tls"):
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    if r.code != 250:
        c.quit()
        return r
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message(subject))
    c.quit()
    return final


def session_conns(be):
    """The backend connections that carried a session (not the probe)."""
    return [c for c in be.conns if any(x.startswith("MAIL") for x in c.commands)]


def test_opportunistic_by_default(make_backend, make_mx, bcert):
    be = make_backend(tls=bcert)
    mx = make_mx(backend=be)
    assert send(mx).code == 250
    (conn,) = session_conns(be)
    assert conn.tls_version in ("TLSv1.2", "TLSv1.3")
    verbs = [x.split(" ")[0] for x in conn.commands]
    assert verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "MAIL"], conn.commands
    assert len(be.messages()) == 1
    assert mx.wait_log(r"backend tls version=TLSv1\.[23] cipher=\S+ verified=no")


def test_xclient_after_starttls(make_backend, make_mx, bcert):
    be = make_backend(tls=bcert, xclient=True)
    mx = make_mx(backend=be)
    assert send(mx).code == 250
    (conn,) = session_conns(be)
    verbs = [x.split(" ")[0] for x in conn.commands]
    assert verbs[:6] == ["EHLO", "STARTTLS", "EHLO", "XCLIENT", "EHLO", "MAIL"], conn.commands
    assert conn.tls_version is not None
    assert conn.xclient.get("ADDR") == "127.0.0.1"


def test_mode_off(make_backend, make_mx, bcert):
    be = make_backend(tls=bcert)
    mx = make_mx(backend=be, config={"backend_tls": {"mode": "off"}})
    assert send(mx).code == 250
    (conn,) = session_conns(be)
    assert "STARTTLS" not in conn.commands and conn.tls_version is None


def test_required_without_offer(make_backend, make_mx):
    be = make_backend()
    mx = make_mx(backend=be, config={"backend_tls": {"mode": "required"}})
    r = send(mx)
    assert_reply(r, 451, "4.4.1")
    assert not be.messages()
    assert not [x for x in be.all_commands() if x.startswith("MAIL")]
    assert mx.wait_log(r"backend offers no STARTTLS and backend_tls\.mode is required")


@pytest.mark.parametrize("mode,code", [("opportunistic", 250), ("required", 451)])
def test_backend_refuses_starttls(make_backend, make_mx, bcert, mode, code):
    be = make_backend(tls=bcert)
    be.override(r"STARTTLS", "454 4.7.0 TLS not available due to local problem")
    mx = make_mx(backend=be, config={"backend_tls": {"mode": mode}})
    r = send(mx)
    assert r.code == code, r
    assert mx.wait_log(r"backend refused STARTTLS: 454 4\.7\.0")
    assert len(be.messages()) == (1 if code == 250 else 0)


def test_verified(make_backend, make_mx, bcert):
    be = make_backend(tls=bcert)
    mx = make_mx(backend=be, config={"backend_tls": {"mode": "required", "ca_file": bcert[0],
                                                      "verify_name": "backend.test"}})
    assert send(mx).code == 250
    assert mx.wait_log(r"backend tls version=\S+ cipher=\S+ verified=yes")


@pytest.mark.parametrize("mode", ["opportunistic", "required"])
def test_verification_failure(make_backend, make_mx, bcert, mode):
    be = make_backend(tls=bcert)
    mx = make_mx(backend=be, config={"backend_tls": {"mode": mode, "ca_file": bcert[0],
                                                      "verify_name": "other.test"}})
    r = send(mx)
    assert_reply(r, 451, "4.4.1")
    assert not be.messages()
    assert not [x for x in be.all_commands() if x.startswith("MAIL")]
    assert mx.wait_log(r'backend tls handshake failed reason="?.*certificate verify failed')


def test_tls_on_both_sides(make_backend, make_mx, bcert):
    from smtp import tls_client_context

    be = make_backend(tls=bcert)
    mx = make_mx(backend=be, listeners=[{"tls": {"cert": bcert[0], "key": bcert[1]}}])
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    assert c.cmd("STARTTLS").code == 220
    c.start_tls(tls_client_context())
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    big = simple_message("big", body=b"x" * 998 + b"\r\n" * 1 + (b"y" * 100 + b"\r\n") * 5000)
    _, final = c.data(big)
    assert final.code == 250, final
    c.quit()
    (txn,) = be.messages()
    assert txn.data.endswith(big.split(b"\r\n\r\n", 1)[1])
    (conn,) = session_conns(be)
    assert conn.tls_version is not None


@pytest.mark.parametrize(
    "btls,message",
    [
        ({"mode": "sometimes"}, r"backend_tls mode must be"),
        ({"ca_file": "/nonexistent/ca.pem"}, r'backend_tls ca_file "/nonexistent/ca.pem"'),
        ({"verify": True}, r'unknown setting "verify" in backend_tls'),
    ],
)
def test_backend_tls_config_errors(make_mx, btls, message):
    from mxguard import check_config

    mx = make_mx(config={"backend_tls": btls}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1, out
    assert re.search(message, out), out
