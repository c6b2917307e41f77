# SPDX-License-Identifier: MIT
"""SMTP AUTH passthrough on submission listeners (issue 7 item 7): AUTH is
advertised only under TLS and only when the backend offers it; the SASL
exchange is relayed and the backend decides (235 / 535 passed through);
an authenticated session may relay anywhere; secrets never reach the log;
sender_login_match."""

import base64

import pytest

from helpers import RCPT, assert_reply, simple_message, self_signed_cert
from smtp import Client

USER, PASSWORD = "alice@example.test", "s3cret-Pa55"
FOREIGN = "bob@elsewhere.test"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


PLAIN_IR = b64("\0%s\0%s" % (USER, PASSWORD))


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    crt, key = self_signed_cert(d, "mx.test")
    return {"cert": crt, "key": key}


@pytest.fixture
def abackend(make_backend):
    return make_backend(auth={USER: PASSWORD})


@pytest.fixture
def smx(make_mx, abackend, cert):
    """Listener 0: submission with STARTTLS; listener 1: mx with STARTTLS."""
    return make_mx(backend=abackend, listeners=[{"mode": "submission", "tls": cert}, {"tls": cert}])


def caps(r):
    return [l[4:] for l in r.lines[1:]]


def tls_client(mx, i=0):
    c = mx.connect(i=i)
    assert "AUTH PLAIN LOGIN" not in caps(c.ehlo())
    assert c.cmd("STARTTLS").code == 220
    c.start_tls()
    return c


def relay_foreign(c):
    assert_reply(c.cmd("MAIL FROM:<%s>" % USER), 250)
    return c.cmd("RCPT TO:<%s>" % FOREIGN)


def no_secret_in_log(mx):
    text = "\n".join(mx.log_lines())
    for secret in (PASSWORD, PLAIN_IR, b64(PASSWORD)):
        assert secret not in text


def test_auth_plain_then_relay(smx, abackend):
    c = smx.connect()
    r = c.ehlo()
    assert not [x for x in caps(r) if x.startswith("AUTH")], r
    r = c.cmd("AUTH PLAIN " + PLAIN_IR)
    assert r.lines == ["538 5.7.11 Encryption required for requested authentication mechanism"], r
    assert c.cmd("STARTTLS").code == 220
    c.start_tls()
    assert "AUTH PLAIN LOGIN" in caps(c.ehlo())
    r = c.cmd("AUTH PLAIN " + PLAIN_IR)
    assert r.lines == ["235 2.7.0 Authentication successful"], r
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 503, "5.5.1")
    assert_reply(relay_foreign(c), 250)
    _, final = c.data(simple_message("submitted"))
    assert final.code == 250, final
    c.quit()
    (txn,) = abackend.messages()
    assert txn.rcpt_addrs == [FOREIGN]
    (conn,) = [x for x in abackend.conns if x.auth_user]
    assert conn.auth_user == USER
    assert smx.wait_log(r"auth result=ok user=alice@example\.test mech=PLAIN")
    no_secret_in_log(smx)


def test_auth_login_multi_step(smx, abackend):
    c = tls_client(smx)
    assert_reply(c.ehlo(), 250)
    assert c.cmd("AUTH LOGIN").lines == ["334 VXNlcm5hbWU6"]
    assert c.cmd(b64(USER)).lines == ["334 UGFzc3dvcmQ6"]
    assert c.cmd(b64(PASSWORD)).lines == ["235 2.7.0 Authentication successful"]
    assert_reply(relay_foreign(c), 250)
    assert smx.wait_log(r"auth result=ok user=alice@example\.test mech=LOGIN")
    no_secret_in_log(smx)


def test_auth_plain_without_initial_response(smx, abackend):
    c = tls_client(smx)
    assert_reply(c.ehlo(), 250)
    assert c.cmd("AUTH PLAIN").lines == ["334 "]
    assert_reply(c.cmd(PLAIN_IR), 235, "2.7.0")


def test_wrong_password_is_the_backends_535(smx, abackend):
    c = tls_client(smx)
    assert_reply(c.ehlo(), 250)
    bad = b64("\0%s\0wrong" % USER)
    r = c.cmd("AUTH PLAIN " + bad)
    assert r.lines == ["535 5.7.8 Error: authentication failed: bad credentials"], r
    r = relay_foreign(c)
    assert r.lines == ["554 5.7.1 <%s>: Relay access denied" % FOREIGN], r
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert not [x for x in abackend.all_commands() if FOREIGN in x]
    assert smx.wait_log(r"auth result=fail user=alice@example\.test mech=PLAIN code=535")
    # A second try is allowed.
    assert_reply(c.cmd("RSET"), 250)
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 235)


def test_cancel(smx):
    c = tls_client(smx)
    assert_reply(c.ehlo(), 250)
    assert c.cmd("AUTH LOGIN").code == 334
    assert_reply(c.cmd("*"), 501, "5.7.0")
    assert_reply(c.cmd("NOOP"), 250)


def test_auth_refused_where_not_offered(smx, make_mx, cert, backend):
    # The mx listener of the same daemon does not offer AUTH.
    c = tls_client(smx, i=1)
    assert not [x for x in caps(c.ehlo()) if x.startswith("AUTH")]
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 502, "5.5.1")
    # A backend without AUTH: nothing to pass through to.
    mx = make_mx(backend=backend, listeners=[{"mode": "submission", "tls": cert}])
    c = tls_client(mx)
    assert not [x for x in caps(c.ehlo()) if x.startswith("AUTH")]
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 502, "5.5.1")


def test_unknown_mechanism_and_order(smx):
    c = tls_client(smx)
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 503, "5.5.1")  # EHLO first
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4")
    assert_reply(c.cmd("MAIL FROM:<%s>" % USER), 250)
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 503, "5.5.1")


def test_sender_login_match(make_mx, abackend, cert):
    mx = make_mx(backend=abackend, listeners=[{"mode": "submission", "tls": cert}],
                 config={"sender_login_match": True})
    c = tls_client(mx)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 235)
    r = c.cmd("MAIL FROM:<mallory@example.test>")
    assert r.lines == ["553 5.7.1 <mallory@example.test>: Sender address rejected: not owned by user %s"
                       % USER], r
    assert_reply(c.cmd("MAIL FROM:<ALICE@example.test>"), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % FOREIGN), 250)
    assert_reply(c.cmd("RSET"), 250)
    assert_reply(c.cmd("MAIL FROM:<>"), 250)


def test_authenticated_user_on_a_dnsbl_listed_address(make_mx, abackend, cert, dns):
    # The client's address is listed over dnsbl_threshold: anonymous RCPTs
    # get 550 5.7.1, an authenticated user's do not.
    from helpers import v1

    dns.add("7.113.0.203.bl.test", "A", "127.0.0.2")
    mx = make_mx(backend=abackend,
                 listeners=[{"mode": "submission", "proxy_protocol": True, "tls": cert}],
                 config={"dns": {"servers": [dns.address], "timeout": 2.0},
                         "dnsbl": ({"zone": "bl.test", "weight": 10.0, "symbol": "RBL_TEST"},),
                         "dnsbl_threshold": 5.0})
    for authed, want in ((False, 550), (True, 250)):
        c = Client(mx.port)
        mx.clients.append(c)
        c.send(v1("203.0.113.7", "192.0.2.1", 43000 + authed, 587))
        assert c.banner().code == 220
        assert c.ehlo().code == 250
        assert c.cmd("STARTTLS").code == 220
        c.start_tls()
        assert_reply(c.ehlo(), 250)
        if authed:
            assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 235)
        assert_reply(c.cmd("MAIL FROM:<%s>" % USER), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), want)
        c.quit()
    assert dns.queries


def test_authenticated_skip_greylisting_but_not_rate_limits(make_mx, abackend, cert):
    """An authenticated session is not greylisted (greylist=skip) while
    an anonymous one on the same daemon is; rate limits still count it."""
    mx = make_mx(backend=abackend,
                 listeners=[{"mode": "submission", "tls": cert}],
                 config={"greylist": {"enabled": True},
                         "ratelimit": ({"name": "SUBMIT_RATE", "what": "recipients",
                                        "per": "client_ip", "limit": 1, "period": 3600,
                                        "reply": 451},)})
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % USER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 451, "4.7.1")  # greylisted
    c.quit()
    c = tls_client(mx)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("AUTH PLAIN " + PLAIN_IR), 235)
    assert_reply(c.cmd("MAIL FROM:<%s>" % USER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % FOREIGN), 451, "4.7.1")  # bucket full
    c.quit()
    recs = mx.records("txn")
    assert recs[0]["greylist"] == "new"
    assert recs[1]["greylist"] == "skip" and recs[1]["ratelimit"] == "SUBMIT_RATE"
