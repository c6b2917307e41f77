# SPDX-License-Identifier: MIT
"""Relay control at RCPT (issue 7, items 1 and 2): mxguard itself refuses a
recipient outside accepted_domains with Postfix's "554 5.7.1 <addr>: Relay
access denied" unless the client is in relay_networks, and the classic
address tricks never reach the backend as a recipient."""

import re

import pytest

from helpers import assert_reply, check_txn, simple_message, v1
from mxguard import check_config
from smtp import Client

DOMAINS = ["example.test"]
DENIED = "5.7.1"

# (recipient as sent between < and >, expected code, enhanced code).
# 554: a valid address that would relay (or route) elsewhere; 501/553: the
# parser refuses it before relay control.
TRICKS = [
    ("user@evil.test", 554, DENIED),                         # plain relaying
    ("USER@EVIL.TEST", 554, DENIED),                         # upper case
    ("user%evil.test@example.test", 554, DENIED),            # percent hack
    ("user%evil.test%example.test@example.test", 554, DENIED),
    ("evil.test!user@example.test", 554, DENIED),            # bang path
    ("@example.test:user@evil.test", 554, DENIED),           # source route
    ("@a.example.test,@example.test:user@evil.test", 554, DENIED),
    ('"user@evil.test"@example.test', 554, DENIED),          # quoted @
    ('"user%evil.test"@example.test', 554, DENIED),          # quoted %
    ('"evil.test!user"@example.test', 554, DENIED),          # quoted !
    ('"user\\@evil.test"@example.test', 554, DENIED),        # escaped @
    ("user%40evil.test@example.test", 554, DENIED),          # %-encoded @
    ("user@[127.0.0.1]", 554, DENIED),                       # IP literal
    ("user@[IPv6:::1]", 554, DENIED),
    ("user@[IPv6:::ffff:127.0.0.1]", 554, DENIED),
    ("user@example.test.evil.test", 554, DENIED),            # suffix
    ("user@EXAMPLE.TEST.evil.test", 554, DENIED),
    ("user@evilexample.test", 554, DENIED),                  # not a label
    ("user@sub.example.test", 554, DENIED),                  # no wildcard
    ("postmaster@evil.test", 554, DENIED),
    ("user@evil.test@example.test", 501, "5.1.3"),           # several @
    ("user@@example.test", 501, "5.1.3"),
    ("user@example.test.", 501, "5.1.3"),                    # trailing dot
    ("user@example.test%evil.test", 501, "5.1.3"),
    ("user@ex%61mple.test", 501, "5.1.3"),
    ("user@evil.test\\@example.test", 501, "5.1.3"),
    ("@evil.test", 501, "5.1.3"),
    ("user@", 501, "5.1.3"),
    ("", 501, "5.1.3"),                                      # <>
    (" ", 501, "5.1.3"),
    ("user@ex\u00e4mple.test", 553, "5.6.7"),                # UTF-8, no SMTPUTF8
]

# Accepted from anyone: what the backend must then see.
LEGIT = [
    ("user@example.test", "user@example.test"),
    ("User.Name@EXAMPLE.Test", "User.Name@EXAMPLE.Test"),
    # RFC 5321 appendix C: the route is dropped, the mailbox kept.
    ("@relay.evil.test:route@example.test", "route@example.test"),
    ('"john smith"@example.test', '"john smith"@example.test'),
    ("postmaster", "postmaster"),
]


def rcpt_commands(backend):
    return [c for c in backend.all_commands() if c.upper().startswith("RCPT")]


@pytest.fixture
def relay_mx(make_mx):
    return make_mx(config={"accepted_domains": DOMAINS, "limits": {"errors": 100}})


def test_relay_battery_never_reaches_backend(relay_mx, backend):
    assert len(TRICKS) >= 20
    c = relay_mx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    for addr, code, enh in TRICKS:
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert_reply(r, code, enh)
        if code == 554:
            assert r.lines == ["554 5.7.1 <%s>: Relay access denied" % re.sub(r"^@[^:]*:", "", addr)], r
    r, _ = c.data(simple_message())
    assert_reply(r, 554, "5.5.1")
    assert rcpt_commands(backend) == []
    c.quit()
    s = relay_mx.session(c)
    (t,) = s["txns"]
    check_txn(t, result="reject", stage="rcpt", nrcpt=0)
    denied = [l for l in relay_mx.log_lines() if " relay denied " in l]
    assert len(denied) == sum(1 for t in TRICKS if t[1] == 554), denied
    assert any("rcpt=<user%evil.test@example.test> why=routing client=[127.0.0.1]" in l for l in denied)
    assert any("rcpt=<user@evil.test> why=foreign" in l for l in denied)
    assert any("rcpt=<user@[127.0.0.1]> why=literal" in l for l in denied)


def test_legit_recipients_reach_backend(relay_mx, backend):
    c = relay_mx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    for addr, _ in LEGIT:
        assert_reply(c.cmd("RCPT TO:<%s>" % addr), 250)
    _, final = c.data(simple_message("legit"))
    assert final.code == 250, final
    c.quit()
    (txn,) = backend.messages()
    assert txn.rcpt_addrs == [want for _, want in LEGIT]


@pytest.fixture
def relay_net_mx(make_mx):
    """Listener 0 takes PROXY headers; 203.0.113.0/24 may relay."""
    return make_mx(
        config={"accepted_domains": DOMAINS, "relay_networks": ["203.0.113.0/24", "2001:db8:1::/48"],
                "limits": {"errors": 100}},
        listeners=[{"proxy_protocol": True}],
    )


def proxied(mx, src, sport):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(src, "2001:db8::1" if ":" in src else "192.0.2.1", sport, 25))
    assert c.banner().code == 220
    return c


@pytest.mark.parametrize("src", ["203.0.113.7", "2001:db8:1::7"])
def test_relay_network_may_relay(relay_net_mx, backend, src):
    relayable = [a for a, code, _ in TRICKS if code == 554]
    c = proxied(relay_net_mx, src, 41000)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<sender@example.test>"), 250)
    for addr in relayable:
        assert_reply(c.cmd("RCPT TO:<%s>" % addr), 250)
    _, final = c.data(simple_message("from a relay network"))
    assert final.code == 250, final
    c.quit()
    (txn,) = backend.messages()
    assert txn.rcpt_addrs == [re.sub(r"^@[^:]*:", "", a) for a in relayable]
    assert not [l for l in relay_net_mx.log_lines() if " relay denied " in l]


def test_outside_relay_network_is_refused(relay_net_mx, backend):
    c = proxied(relay_net_mx, "198.51.100.7", 41001)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<sender@example.test>"), 250)
    r = c.cmd("RCPT TO:<user@evil.test>")
    assert r.lines == ["554 5.7.1 <user@evil.test>: Relay access denied"], r
    assert_reply(c.cmd("RCPT TO:<user@example.test>"), 250)
    c.quit()
    assert [a for a in rcpt_commands(backend)] == ["RCPT TO:<user@example.test>"]
    assert relay_net_mx.wait_log(r"relay denied rcpt=<user@evil\.test> why=foreign client=\[198\.51\.100\.7\]")


def test_soft_bounce_turns_relay_denial_into_4xx(make_mx, backend):
    mx = make_mx(config={"accepted_domains": DOMAINS, "soft_bounce": True})
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    r = c.cmd("RCPT TO:<user@evil.test>")
    assert r.lines == ["454 4.7.1 <user@evil.test>: Relay access denied"], r
    assert rcpt_commands(backend) == []


def test_no_relay_settings_refuses_everything(make_mx, backend):
    mx = make_mx(config={"accepted_domains": None})
    assert mx.wait_log(r"neither accepted_domains .* nor relay_networks is set")
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    for addr in ("user@test.example", "user@localhost", "user@evil.test"):
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert r.lines == ["554 5.7.1 <%s>: Relay access denied" % addr], r
    c.quit()
    assert rcpt_commands(backend) == []
    rc, out = check_config(mx.conf_path)
    assert rc == 0, out
    assert "warning: neither accepted_domains" in out and "554 5.7.1" in out, out


def test_accepted_domains_file_and_reload(make_mx, backend, tmp_path):
    path = tmp_path / "domains"
    path.write_text("# our domains\nfile.test\n  .sub.file.test   # and below\n\n[127.0.0.2]\n")
    mx = make_mx(config={"accepted_domains": None, "accepted_domains_file": str(path)})

    def try_rcpts(addrs):
        c = mx.connect()
        assert_reply(c.ehlo(), 250)
        assert_reply(c.cmd("MAIL FROM:<>"), 250)
        out = [c.cmd("RCPT TO:<%s>" % a).code for a in addrs]
        c.quit()
        return out

    addrs = ["a@file.test", "a@FILE.TEST", "a@x.sub.file.test", "a@sub.file.test", "a@[127.0.0.2]",
             "a@[127.0.0.1]", "a@new.test"]
    assert try_rcpts(addrs) == [250, 250, 250, 554, 250, 554, 554]
    path.write_text("file.test\nnew.test\n")
    n = len(mx.log_lines())
    mx.reload()
    mx.wait_log(r"reload: configuration .* loaded", since=n)
    assert try_rcpts(addrs) == [250, 250, 554, 554, 554, 554, 250]
    # A broken file on reload keeps the running set.
    path.write_text("file.test\nbad domain.test\n")
    n = len(mx.log_lines())
    mx.reload()
    mx.wait_log(r"reload failed, keeping the running configuration: .*domains:2: one domain per line",
                since=n)
    assert try_rcpts(["a@new.test"]) == [250]


@pytest.mark.parametrize(
    "content,message",
    [
        ("ok.test\nbad_domain.test\n", r"domains:2: \"bad_domain.test\": not a domain name"),
        ("ok.test\n[300.1.1.1]\n", r"domains:2: \"\[300.1.1.1\]\": not an address literal"),
        ("..test\n", r"domains:1: "),
        ("x" * 2000 + "\n", r"domains:1: line too long"),
    ],
)
def test_accepted_domains_file_errors(tmp_path, make_mx, content, message):
    path = tmp_path / "domains"
    path.write_text(content)
    mx = make_mx(config={"accepted_domains_file": str(path)}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1, out
    assert out.startswith(mx.conf_path + ":"), out
    assert re.search(message, out), out


def test_accepted_domains_file_missing(tmp_path, make_mx):
    mx = make_mx(config={"accepted_domains_file": str(tmp_path / "nope")}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1 and "No such file" in out, out


def test_bad_accepted_domain_in_config(make_mx):
    mx = make_mx(config={"accepted_domains": ["example.test", "exa mple.test"]}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1, out
    assert re.search(re.escape(mx.conf_path) + r':\d+: accepted_domains "exa mple.test": not a domain name', out), out
