# SPDX-License-Identifier: MIT
"""Recipient verification (issue 7 item 3): `recipients_file` lists the
addresses (and `@domain` catch-alls) of the domains it names; an unknown
address of such a domain gets 550 5.1.1 from mxguard and never reaches the
backend; other domains are the backend's to verify (its reply passed
through); postmaster is always known; the file follows a reload; a bad
line is a FILE:LINE error.  Directory harvest: after
`limits.unknown_recipients` unknown recipients (ours or the backend's
5.1.x) the session ends with 421 4.7.0."""

import re

import pytest

from helpers import assert_reply
from mxguard import check_config, libconfig
from smtp import ServerClosed

DOMAINS = ["test.example", "catchall.test", "other.example"]


def start(make_mx, tmp_path, entries, limit=None):
    path = tmp_path / "recipients"
    path.write_text("# our users\n" + "\n".join(entries) + "\n")
    cfg = {"accepted_domains": DOMAINS, "recipients_file": str(path)}
    if limit is not None:
        cfg["limits"] = {"unknown_recipients": limit}
    return make_mx(config=cfg), path


def rcpts(mx, addrs):
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    out = [c.cmd("RCPT TO:<%s>" % a) for a in addrs]
    c.quit()
    return out


def backend_rcpts(backend):
    return [re.search(r"<([^>]*)>", c).group(1).lower()
            for c in backend.all_commands() if c.upper().startswith("RCPT")]


def test_known_unknown_and_unverified(make_mx, backend, tmp_path):
    mx, _ = start(make_mx, tmp_path, ["alice@test.example", "@catchall.test"])
    r = rcpts(mx, ["alice@test.example", "Alice@TEST.example", "bob@test.example",
                   "anyone@catchall.test", "x@other.example", "postmaster@test.example"])
    assert [x.code for x in r] == [250, 250, 550, 250, 250, 250]
    assert_reply(r[2], 550, "5.1.1")
    assert "User unknown in relay recipient table" in r[2].text
    assert "bob@test.example" not in backend_rcpts(backend)
    assert "x@other.example" in backend_rcpts(backend)
    mx.wait_log(r"unknown recipient rcpt=<bob@test\.example>")


def test_reload_rereads_the_file(make_mx, backend, tmp_path):
    mx, path = start(make_mx, tmp_path, ["alice@test.example"])
    assert_reply(rcpts(mx, ["bob@test.example"])[0], 550, "5.1.1")
    path.write_text("alice@test.example\nbob@test.example\n")
    mx.reload()
    mx.wait_log(r"reload: configuration .* loaded")
    assert_reply(rcpts(mx, ["bob@test.example"])[0], 250)


def test_harvest_cap(make_mx, backend, tmp_path):
    backend.override(r"RCPT TO:<[^>]*@other\.example>", "550 5.1.1 User unknown")
    mx, _ = start(make_mx, tmp_path, ["alice@test.example"], limit=3)
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")   # ours
    assert_reply(c.cmd("RCPT TO:<u2@other.example>"), 550, "5.1.1")  # the backend's
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)         # known: not counted
    assert_reply(c.cmd("RCPT TO:<u3@test.example>"), 550, "5.1.1")
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 421, "4.7.0")
    with pytest.raises(ServerClosed):
        c.reply(5)
    mx.wait_log(r"disconnect reason=limit")


@pytest.mark.parametrize("line,msg", [
    ("not-an-address", "expected user@domain or @domain"),
    ("a@nodot", "expected user@domain or @domain"),
    ("two words@x.example", "one address per line"),
])
def test_bad_file(tmp_path, line, msg):
    rfile = tmp_path / "recipients"
    rfile.write_text("ok@test.example\n%s\n" % line)
    conf = tmp_path / "r.conf"
    conf.write_text(libconfig({"backend": "127.0.0.1:25", "spool": {"dir": str(tmp_path)},
                               "listen": ({"address": "127.0.0.1:2525"},),
                               "accepted_domains": DOMAINS,
                               "recipients_file": str(rfile)}))
    rc, out = check_config(str(conf))
    assert rc == 1 and msg in out, out
    assert "%s:2:" % rfile in out, out
