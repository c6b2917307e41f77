# SPDX-License-Identifier: MIT
"""contrib/logs.md: every shell recipe in it is run, as written (only its
settings lines changed), on a mail log written by a real mxguard in front
of a real Postfix (mxguard's lines and Postfix's maillog in one file, as
syslog writes them to /var/log/mail.log), and its output is checked
against what the test sent."""

import collections
import os
import re
import subprocess

import pytest

from helpers import assert_reply, simple_message
from mxguard import REPO, log_message, parse_records
from smtp import Client

DOC = os.path.join(REPO, "contrib", "logs.md")
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SPAMMER, RELAYER, SENDER_IP = "127.0.0.21", "127.0.0.22", "127.0.0.23"


def recipes():
    """name -> the shell text of each `<!-- recipe: name -->` block."""
    text = open(DOC).read()
    found = re.findall(r"<!-- recipe: ([\w-]+) -->\n```sh\n(.*?)```", text, re.S)
    return dict(found)


def run_recipe(name, **settings):
    """The recipe with its settings lines (`log=...` at the start of a
    line) replaced; its stdout."""
    script = recipes()[name]
    for k, v in settings.items():
        script, n = re.subn(r"(?m)^%s=.*$" % k, "%s='%s'" % (k, v), script)
        assert n == 1, "recipe %s has no %s= line" % (name, k)
    p = subprocess.run(["/bin/sh", "-eu", "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stderr == "", (name, p.stderr)
    return p.stdout


def test_every_recipe_is_tested():
    assert sorted(recipes()) == ["back", "follow", "per-hour", "top-rejected"]


def client(mx, ip):
    c = Client(mx.port, source=ip, timeout=20)
    mx.clients.append(c)
    assert c.banner().code == 220
    assert_reply(c.ehlo(), 250)
    return c


def mail(c, rcpt, msg):
    assert_reply(c.cmd("MAIL FROM:<sender@client.example>"), 250)
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if r.code != 250:
        assert_reply(c.cmd("RSET"), 250)
        return r
    _, final = c.data(msg)
    return final


@pytest.fixture
def maillog(make_mx, postfix, tmp_path):
    """Known traffic through mxguard into Postfix: 3 GTUBE rejects from
    SPAMMER, 1 relay attempt from RELAYER, 2 delivered messages from
    SENDER_IP.  Returns (path of the joined log, mx, [Postfix replies of
    the delivered ones])."""
    mx = make_mx(backend=postfix.address,
                 config={"rules": [os.path.join(REPO, "rules", "default", "*.rules")]})
    before = len(postfix.delivered())
    c = client(mx, SPAMMER)
    for n in range(3):
        r = mail(c, "user@test.example", simple_message("spam %d" % n, body=GTUBE + b"\r\n"))
        assert r.code == 550, r
    c.quit()
    c = client(mx, RELAYER)
    assert mail(c, "victim@foreign.example", simple_message("relay")).code == 554
    c.quit()
    c = client(mx, SENDER_IP)
    queued = []
    for n in range(2):
        r = mail(c, "user%d@test.example" % n, simple_message("ham %d" % n))
        assert r.code == 250, r
        queued.append(r.lines[0])
    c.quit()
    mx.wait_record("disconnect", count=3)
    postfix.wait_delivered(before + 2)
    path = tmp_path / "mail.log"
    path.write_text(mx.log_text() + postfix.maillog())
    return path, mx, queued


def test_follow_a_message_into_postfix(maillog):
    path, mx, queued = maillog
    txns = [r for r in mx.records("txn") if r["result"] == "accept"]
    assert [t["backend"] for t in txns] == queued
    first = txns[0]
    tid = "%s.%d" % (first.sid, first.n)
    qid = re.match(r"250 2\.0\.0 Ok: (?:\d+ bytes )?queued as ([0-9A-Za-z]+)$", queued[0]).group(1)
    out = run_recipe("follow", log=str(path), id=tid).splitlines()
    ours = [l for l in out if "mxguard[" in l]
    theirs = [l for l in out if "mxguard[" not in l]
    # The whole session: connect, both transactions, disconnect.
    assert [log_message(l).split()[1] for l in ours] == ["connect", "txn", "txn", "disconnect"], out
    assert all(log_message(l).startswith(first.sid) for l in ours)
    assert "client=[%s]:" % SENDER_IP in ours[0]
    # Postfix's lines of that queue id alone, from smtpd to delivery; its
    # smtpd saw the real client (XCLIENT).
    assert theirs and all(re.search(r"postfix/[a-z/-]+\[\d+\]: %s: " % qid, l) for l in theirs), out
    assert any(re.search(r"postfix/smtpd\[\d+\]: %s: client=\S*\[%s\]" % (qid, re.escape(SENDER_IP)), l)
               for l in theirs), out
    assert any(re.search(r"%s: to=<user0@test\.example>.* status=sent" % qid, l) for l in theirs), out
    assert not any("user1@test.example" in l for l in theirs), out
    # And back from the queue id to the transaction.
    (line,) = run_recipe("back", log=str(path), qid=qid).splitlines()
    assert log_message(line).startswith(tid + " txn result=accept ")


def test_verdicts_per_hour(maillog):
    path, mx, _ = maillog
    want = collections.Counter()
    for line in mx.log_lines():
        msg = log_message(line)
        m = re.match(r"[0-9a-f]{16}\.\d+ txn result=(\w+)", msg or "")
        if m:
            want["%s:00 %s" % (line[:13], m.group(1))] += 1
    assert sum(want.values()) == 6 and sorted(set(k.split()[1] for k in want)) == ["accept", "reject"]
    got = run_recipe("per-hour", log=str(path)).splitlines()
    assert got == sorted("%s %d" % kv for kv in want.items()), got


@pytest.mark.parametrize("form", ["syslog", "journal"])
def test_per_hour_and_top_rejected_read_syslog_time(maillog, tmp_path, form):
    """The same lines with syslog's time instead of mxguard's (what -d
    writes to /var/log/mail.log), or before mxguard's whole line (the
    unit's journal forwarded to it)."""
    path, mx, _ = maillog
    sys_log = tmp_path / "syslog.log"
    lines = []
    for line in mx.log_lines():
        m = re.match(r"\d{4}-\d\d-(\d\d)T(\d\d:\d\d:\d\d)\.\d+Z (mxguard\[(\d+)\]: .*)$", line)
        if m and form == "syslog":
            lines.append("Nov %s %s gw %s" % (m.group(1), m.group(2), m.group(3)))
        elif m:
            lines.append("Nov %s %s gw mxguard[%s]: %s" % (m.group(1), m.group(2), m.group(4), line))
    sys_log.write_text("\n".join(lines) + "\n")
    want = collections.Counter()
    for line in lines:
        m = re.search(r" txn result=(\w+)", line)
        if m:
            want["%s:00 %s" % (line[:9], m.group(1))] += 1
    got = run_recipe("per-hour", log=str(sys_log)).splitlines()
    assert got == sorted("%s %d" % kv for kv in want.items()), got
    out = run_recipe("top-rejected", log=str(sys_log))
    assert out == "3 %s\n1 %s\n" % (SPAMMER, RELAYER), out


def test_top_rejected_clients(maillog):
    path, _, _ = maillog
    out = run_recipe("top-rejected", log=str(path))
    assert out == "3 %s\n1 %s\n" % (SPAMMER, RELAYER), out
