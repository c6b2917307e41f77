# SPDX-License-Identifier: MIT
"""contrib/fail2ban: a real mxguard writes the log of known abuse from
known loopback addresses (a DNSBL-listed client, relay attempts, a failed
AUTH, a directory harvest, a pregreeting client, a client sending garbage)
and of legitimate traffic (a clean message, a content reject, a recipient
the backend does not know); Debian's fail2ban-regex, with the shipped
filter, finds exactly the failures and blames each on its client.  The jail
is read by fail2ban's own config reader."""

import base64
import collections
import os
import re
import shutil
import subprocess

import pytest

from helpers import RCPT, SENDER, assert_reply, simple_message, self_signed_cert
from mxguard import REPO
from smtp import Client

FILTER = os.path.join(REPO, "contrib", "fail2ban", "filter.d", "mxguard.conf")
JAIL = os.path.join(REPO, "contrib", "fail2ban", "jail.d", "mxguard.conf")
USER, PASSWORD = "alice@example.test", "s3cret-Pa55"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

# Client address -> failures the filter must count for it.
LISTED, RELAY, AUTH, HARVEST, PREGREET, GARBAGE = (
    "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15", "127.0.0.16")
GOOD = "127.0.0.17"
EXPECTED = {LISTED: 2, RELAY: 2, AUTH: 1, HARVEST: 1, PREGREET: 1, GARBAGE: 1}


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("f2b")
    crt, key = self_signed_cert(d, "mx.test")
    return {"cert": crt, "key": key}


def rev(ip):
    return ".".join(reversed(ip.split(".")))


def client(mx, ip, i=0, banner=True):
    c = Client(mx.listeners[i]["port"], source=ip, timeout=20)
    mx.clients.append(c)
    if banner:
        b = c.banner(timeout=20)
        assert b.code == 220, b
    return c


def produce_log(mx, backend):
    """Every kind of line the filter counts, and lines it must not."""
    # A client on the DNSBL: two transactions refused at RCPT.
    c = client(mx, LISTED)
    assert_reply(c.ehlo(), 250)
    for _ in range(2):
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        r = c.cmd("RCPT TO:<%s>" % RCPT)
        assert_reply(r, 550, "5.7.1")
        assert "blocked using bl.test" in r.lines[-1], r
        assert_reply(c.cmd("RSET"), 250)
    c.quit()
    # Two relay attempts.
    c = client(mx, RELAY)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    for rcpt in ("a@foreign.example", "b@foreign.example"):
        assert_reply(c.cmd("RCPT TO:<%s>" % rcpt), 554, "5.7.1")
    c.quit()
    # A wrong password on the submission listener (STARTTLS, then AUTH).
    c = client(mx, AUTH, i=1)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("STARTTLS"), 220)
    c.start_tls()
    assert_reply(c.ehlo(), 250)
    bad = base64.b64encode(("\0%s\0wrong" % USER).encode()).decode()
    assert_reply(c.cmd("AUTH PLAIN " + bad), 535)
    c.quit()
    # A directory harvest: limits.unknown_recipients = 2, then 421.
    c = client(mx, HARVEST)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    for n in range(2):
        assert_reply(c.cmd("RCPT TO:<nobody%d@test.example>" % n), 550, "5.1.1")
    r = c.cmd("RCPT TO:<nobody9@test.example>")
    assert r.code == 421 and "too many unknown recipients" in r.lines[-1], r
    assert c.closed()
    # A client that talks before the greeting: refused at RCPT.
    c = client(mx, PREGREET, banner=False)
    assert c.read_line(timeout=20) == "220-mx.test ESMTP mxguard"
    c.send(b"EHLO early.example\r\n")
    assert c.read_line(timeout=20) == "220 mx.test ESMTP mxguard"
    assert_reply(c.reply(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 550, "5.5.1")
    c.quit()
    # Garbage until limits.errors (3) ends the session.
    c = client(mx, GARBAGE)
    for _ in range(3):
        assert c.cmd("FOO").code == 500
    r = c.reply()
    assert r.code == 421 and "too many errors" in r.lines[-1], r
    assert c.closed()
    # Legitimate: a clean message, a GTUBE reject, one unknown recipient.
    c = client(mx, GOOD)
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("clean"))
    assert final.code == 250, final
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<nobody@test.example>"), 550, "5.1.1")
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("spam", body=GTUBE + b"\r\n"))
    assert final.code == 550, final
    c.quit()
    # Every session has ended in the log (7 of them).
    mx.wait_record("disconnect", count=7)
    backend.wait_messages(1)


def fail2ban_regex(logfile, tmp_path):
    """fail2ban-regex with the shipped filter (next to Debian's
    common.conf, which it includes) -> [(ip, line)] for each failure, and
    the summary line."""
    conf = tmp_path / "fail2ban" / "filter.d"
    conf.mkdir(parents=True)
    shutil.copy("/etc/fail2ban/filter.d/common.conf", conf)
    shutil.copy(FILTER, conf)
    out = subprocess.run(
        ["fail2ban-regex", "--print-all-matched", "-o", "ip", str(logfile),
         str(conf / "mxguard.conf")],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = subprocess.run(
        ["fail2ban-regex", str(logfile), str(conf / "mxguard.conf")],
        capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    return out.stdout.split(), summary.stdout


_STDERR = re.compile(r"^\d{4}-\d\d-(\d\d)T(\d\d:\d\d:\d\d)\.\d+Z (mxguard\[\d+\]: .*)$")


def as_syslog(text):
    """mxguard -d: syslog's time and host, then mxguard[PID]: message."""
    out = []
    for line in text.splitlines():
        m = _STDERR.match(line)
        assert m, line
        out.append("Nov %s %s gw %s" % (m.group(1), m.group(2), m.group(3)))
    return "\n".join(out) + "\n"


def as_journal_forwarded(text):
    """The unit's stderr, through the journal to syslog: syslog's prefix,
    then mxguard's whole line."""
    out = []
    for line in text.splitlines():
        m = _STDERR.match(line)
        assert m, line
        pid = re.match(r"mxguard\[(\d+)\]", m.group(3)).group(1)
        out.append("Nov %s %s gw mxguard[%s]: %s" % (m.group(1), m.group(2), pid, line))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("form", ["stderr", "syslog", "journal"])
def test_fail2ban_filter_on_a_real_log(make_mx, make_backend, dns, cert, tmp_path, form):
    backend = make_backend(auth={USER: PASSWORD})
    backend.override(r"RCPT TO:<nobody", "550 5.1.1 <nobody@test.example>: Recipient "
                     "address rejected: User unknown in virtual mailbox table")
    dns.add(rev(LISTED) + ".bl.test", "A", "127.0.0.2")
    mx = make_mx(
        backend=backend,
        listeners=[{}, {"mode": "submission", "tls": cert}],
        config={
            "dns": {"servers": [dns.address], "timeout": 2.0},
            "dnsbl": ({"zone": "bl.test", "weight": 10.0, "symbol": "RBL_TEST"},),
            "dnsbl_threshold": 5.0,
            "greet_delay": 1.5,
            "pregreet": {"action": "reject"},
            "limits": {"unknown_recipients": 2, "errors": 3},
            "rules": [os.path.join(REPO, "rules", "default", "*.rules")],
        })
    produce_log(mx, backend)
    logfile = tmp_path / "mail.log"
    text = mx.log_text()
    logfile.write_text({"stderr": text, "syslog": as_syslog(text),
                        "journal": as_journal_forwarded(text)}[form])
    ips, summary = fail2ban_regex(logfile, tmp_path)
    assert collections.Counter(ips) == EXPECTED, (ips, logfile.read_text())
    m = re.search(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", summary, re.M)
    assert m and int(m.group(3)) == sum(EXPECTED.values()), summary
    # Every line of the sessions that must not be banned is no failure.
    assert GOOD not in ips


def test_jail_reads_with_the_filter():
    """fail2ban's config reader takes the jail (and finds its filter) when
    both are installed where the jail's comment says."""
    text = open(JAIL).read()
    assert re.search(r"^filter\s*=\s*mxguard$", text, re.M)
    assert re.search(r"^enabled\s*=\s*true$", text, re.M)
    import tempfile

    d = tempfile.mkdtemp(prefix="mxg-f2b-")
    try:
        os.makedirs(os.path.join(d, "filter.d"))
        os.makedirs(os.path.join(d, "jail.d"))
        os.makedirs(os.path.join(d, "action.d"))
        shutil.copy("/etc/fail2ban/filter.d/common.conf", os.path.join(d, "filter.d"))
        shutil.copy(FILTER, os.path.join(d, "filter.d"))
        for f in ("jail.conf", "fail2ban.conf", "paths-common.conf", "paths-debian.conf"):
            shutil.copy(os.path.join("/etc/fail2ban", f), d)
        for f in os.listdir("/etc/fail2ban/action.d"):
            if f.startswith(("iptables", "nftables")):
                shutil.copy(os.path.join("/etc/fail2ban/action.d", f), os.path.join(d, "action.d"))
        shutil.copy(JAIL, os.path.join(d, "jail.d"))
        p = subprocess.run(["fail2ban-client", "-c", d, "-t"], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0 and "OK: configuration test is successful" in p.stdout + p.stderr, \
            p.stdout + p.stderr
        # The jail it would start: ours alone, on the journal, our filter.
        p = subprocess.run(["fail2ban-client", "-c", d, "-d"], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert re.findall(r"^\['add', '([^']+)', '([^']+)'\]$", p.stdout, re.M) == \
            [("mxguard", "systemd")], p.stdout
        assert "['set', 'mxguard', 'maxretry', 5]" in p.stdout, p.stdout
        assert "_SYSTEMD_UNIT=mxguard.service" in p.stdout, p.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)
