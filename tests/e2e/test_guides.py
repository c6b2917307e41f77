# SPDX-License-Identifier: MIT
"""The integration guides in contrib/: the Postfix guide's main.cf and
master.cf lines are the ones the test Postfix runs with (postfix.py reads
them from the guide; here: postconf shows exactly them, and mail crosses
that Postfix through mxguard with the real client in Postfix's log);
every mxguard configuration the guides show passes `mxguard -t`; the
Received header the Exchange guide shows has the form mxguard writes."""

import os
import re
import subprocess

import pytest

from helpers import assert_reply, simple_message
from mxguard import REPO, binary
from postfix import GUIDE_ADDRESS, guide_block
from smtp import Client

DOCS = os.path.join(REPO, "contrib")
GUIDES = ("postfix.md", "exchange.md", "scale-out.md")


def snippets():
    """(file, n, text) of every `<!-- check: mxguard.conf -->` block."""
    out = []
    for path in [os.path.join(DOCS, g) for g in GUIDES]:
        found = re.findall(r"<!-- check: mxguard\.conf -->\n```\n(.*?)```", open(path).read(), re.S)
        out += [(os.path.basename(path), i, t) for i, t in enumerate(found)]
    return out


def test_each_guide_has_its_config_checked():
    names = sorted(set(f for f, _, _ in snippets()))
    assert names == ["exchange.md", "postfix.md", "scale-out.md"], names


@pytest.mark.parametrize("doc,n,text", snippets(), ids=lambda v: str(v)[:20])
def test_guide_config_checks(doc, n, text, tmp_path):
    """As written; only the spool directory (which -t requires to exist
    and be writable) is one of the test's."""
    assert "spool" not in text
    conf = tmp_path / "mxguard.conf"
    conf.write_text(text + 'spool = { dir = "%s"; };\n' % tmp_path)
    p = subprocess.run([binary(), "-t", "-c", str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "configuration OK" in p.stdout + p.stderr


def settings(block):
    """'key = value' lines of a main.cf text (comments dropped)."""
    out = {}
    for line in block.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def test_guide_main_cf_is_what_postfix_runs(postfix):
    want = settings(guide_block("main.cf"))
    assert want["smtpd_authorized_xclient_hosts"] == "127.0.0.1"
    p = subprocess.run(["postconf", "-c", os.path.join(postfix.dir, "conf"), "-n"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    running = settings(p.stdout)
    for k, v in want.items():
        assert running.get(k) == v, (k, v, running.get(k))
    # Postfix would warn about a setting given twice: the harness sets
    # none of the guide's keys itself.
    main_cf = open(os.path.join(postfix.dir, "conf", "main.cf")).read()
    for k in want:
        assert len(re.findall(r"(?m)^%s\s*=" % re.escape(k), main_cf)) == 1, k
    assert "overriding earlier entry" not in p.stderr, p.stderr


def test_guide_master_cf_is_what_postfix_runs(postfix):
    (line,) = [l for l in guide_block("master.cf").splitlines() if l.strip()]
    assert line.startswith(GUIDE_ADDRESS + " ")
    p = subprocess.run(["postconf", "-c", os.path.join(postfix.dir, "conf"), "-M"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    want = line.replace(GUIDE_ADDRESS, postfix.address).split()
    assert want in [l.split() for l in p.stdout.splitlines()], p.stdout


def test_mail_through_mxguard_into_the_guides_postfix(make_mx, postfix):
    """With the guide's settings Postfix takes XCLIENT from mxguard: its
    log names the real client (127.0.0.41), not 127.0.0.1, and mxguard
    refuses a relay attempt before Postfix sees it."""
    before = len(postfix.delivered())
    mx = make_mx(backend=postfix.address)
    c = Client(mx.port, source="127.0.0.41", timeout=20)
    mx.clients.append(c)
    assert c.banner().code == 220
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<sender@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<someone@foreign.example>"), 554, "5.7.1")
    assert_reply(c.cmd("RCPT TO:<guide@test.example>"), 250)
    _, final = c.data(simple_message("guide"))
    assert final.code == 250, final
    qid = re.match(r"250 2\.0\.0 Ok: (?:\d+ bytes )?queued as (\w+)$", final.lines[0]).group(1)
    c.quit()
    postfix.wait_delivered(before + 1)
    log = postfix.maillog()
    assert re.search(r"postfix/smtpd\[\d+\]: %s: client=\S*\[127\.0\.0\.41\]" % qid, log), log[-3000:]
    assert "foreign.example" not in log


# The Received header mxguard writes when the backend takes no XCLIENT
# (Exchange): "from HELO ([rDNS ]IP)", "by HOSTNAME (mxguard) with
# ESMTP[S] id SESSION.N;", the date.
RECEIVED = re.compile(
    r"Received: from (\S+) \((?:(\S+) )?\[([0-9A-Fa-f.:]+)\]\)\r?\n"
    r"\tby (\S+) \(mxguard\) with (ESMTPS?) id ([0-9a-f]{16}\.\d+);\r?\n\t(.+)")


def test_exchange_guides_received_header_is_mxguards(make_mx, backend):
    text = open(os.path.join(DOCS, "exchange.md")).read()
    m = re.search(r"\n    (Received: from .*\n    \t.*\n    \t.*)\n", text)
    assert m, "no Received example in contrib/exchange.md"
    example = m.group(1).replace("\n    ", "\n")
    shown = RECEIVED.match(example)
    assert shown, example
    assert shown.group(3) == "203.0.113.9" and shown.group(6) == "7788d0349e7d16da.1"
    # The test backend, like Exchange, offers neither XCLIENT nor XFORWARD.
    mx = make_mx()
    c = Client(mx.port, source="127.0.0.42", timeout=20)
    mx.clients.append(c)
    assert c.banner().code == 220
    assert_reply(c.ehlo("mail.example.net"), 250)
    assert_reply(c.cmd("MAIL FROM:<sender@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<user@test.example>"), 250)
    _, final = c.data(simple_message("exchange"))
    assert final.code == 250, final
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert not [x for x in backend.all_commands() if re.match(r"X(CLIENT|FORWARD)", x)]
    got = RECEIVED.match(txn.data.decode())
    assert got, txn.data[:400]
    (rec,) = mx.records("txn")
    assert (got.group(1), got.group(3), got.group(4), got.group(5), got.group(6)) == (
        "mail.example.net", "127.0.0.42", "mx.test", "ESMTP", "%s.%d" % (rec.sid, rec.n))
