# SPDX-License-Identifier: MIT
"""The rule engine through the proxy: content rules and their verdicts and
headers, subject_prefix, SMTP-stage rules rejecting before any backend
connection, accept rules, reload of rule files, `mxguard -t` counts and
`mxguard check`."""

import json
import os
import re
import subprocess

from helpers import (
    RCPT,
    SENDER,
    assert_reply,
    check_spam_headers,
    check_txn,
    spam_status,
)
from mxguard import REPO, binary, check_config

DEFAULT_RULES = os.path.join(REPO, "rules", "default", "*.rules")
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def ham(subject="hello", body=b"Hello.\r\n"):
    return (
        b"From: <sender@client.example>\r\n"
        b"To: <user@test.example>\r\n"
        b"Date: Sun, 1 Jun 2025 10:00:00 +0000\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Message-ID: <m1@client.example>\r\n"
        b"\r\n" + body
    )


def rules_file(tmp_path, text, name="local.rules"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def no_backend_session(backend):
    """Nothing but the startup probe (EHLO, QUIT) reached the backend."""
    return [x for x in backend.all_commands() if not re.match(r"(EHLO|QUIT)\b", x)] == [] and all(
        c.commands in (["EHLO mx.test", "QUIT"], ["EHLO mx.test"]) for c in backend.conns
    )


def send(mx, msg, helo="client.example", mail=SENDER, rcpts=(RCPT,)):
    c = mx.connect()
    out = [c.ehlo(helo), c.cmd("MAIL FROM:<%s>" % mail)]
    if out[-1].code != 250:
        c.quit()
        return c, out
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    d, final = c.data(msg)
    out.append(d)
    if final is not None:
        out.append(final)
    c.quit()
    return c, out


def test_gtube_rejected_at_end_of_data(backend, make_mx):
    mx = make_mx(config={"rules": [DEFAULT_RULES]})
    c, out = send(mx, ham(body=b"test\r\n" + GTUBE + b"\r\n"))
    assert_reply(out[-1], 550, "5.7.1", "rejected as spam")
    txn = mx.session(c)["txns"][0]
    check_txn(txn, result="reject", stage="eom")
    assert "GTUBE" in txn["symbols"].split(","), txn
    assert not backend.messages()


def test_ham_passes_with_status_no(backend, make_mx):
    mx = make_mx(config={"rules": [DEFAULT_RULES], "subject_prefix": "[SPAM] "})
    c, out = send(mx, ham())
    assert out[-1].code == 250
    backend.wait_messages(1, timeout=10)
    fields, _ = spam_status(backend.messages()[0])
    st = check_spam_headers(fields)
    assert not st["spam"] and st["tests"] == [], st
    assert b"Subject: hello\r\n" in backend.messages()[0].data
    check_txn(mx.session(c)["txns"][0], result="accept")


def test_tag_headers_and_subject_prefix(backend, make_mx, tmp_path):
    local = rules_file(
        tmp_path,
        "body     PILLS /cheap\\s+pills/i\n"
        "describe PILLS pills\n"
        "score    PILLS 6\n"
        "header   MEDS Subject =~ /meds/i\n"
        "score    MEDS 0.5\n",
    )
    mx = make_mx(config={"rules": [DEFAULT_RULES, local], "subject_prefix": "[SPAM] "})
    body = b"Buy CHEAP\r\n pills now.\r\n.leading dot line\r\n"
    c, out = send(mx, ham(subject="=?utf-8?q?meds_=C3=A9?=", body=body))
    assert out[-1].code == 250
    backend.wait_messages(1, timeout=10)
    data = backend.messages()[0].data
    fields, _ = spam_status(backend.messages()[0])
    st = check_spam_headers(fields)
    assert st["spam"] and st["score"] == 6.5, st
    assert st["tests"] == ["MEDS", "PILLS"], st
    # The prefix goes before the encoded value; the rest is untouched.
    assert b"\r\nSubject: [SPAM] =?utf-8?q?meds_=C3=A9?=\r\n" in data, data
    assert data.count(b"Subject:") == 1
    assert data.endswith(b"\r\n\r\n" + body), data
    assert b"Message-ID: <m1@client.example>\r\n" in data
    check_txn(mx.session(c)["txns"][0], result="tag")


def test_subject_prefix_adds_missing_subject(backend, make_mx, tmp_path):
    local = rules_file(tmp_path, "body SPAMMY /spammy/\nscore SPAMMY 7\n")
    mx = make_mx(config={"rules": [local], "subject_prefix": "[SPAM] "})
    msg = b"From: <a@client.example>\r\nTo: <b@test.example>\r\n\r\nspammy\r\n"
    c, out = send(mx, msg)
    assert out[-1].code == 250
    backend.wait_messages(1, timeout=10)
    data = backend.messages()[0].data
    assert data.endswith(b"To: <b@test.example>\r\nSubject: [SPAM]\r\n\r\nspammy\r\n"), data


def test_helo_rule_rejects_before_backend(backend, make_mx):
    mx = make_mx(config={"rules": [DEFAULT_RULES]})
    c = mx.connect()
    assert c.ehlo("localhost").code == 250
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    assert_reply(r, 550, "5.7.1", "HELO localhost is not a valid identity")
    c.quit()
    txn = mx.session(c)["txns"][0]
    check_txn(txn, result="reject", stage="mail")
    assert "HELO_LOCALHOST_FORGED" in txn["symbols"], txn
    # No backend connection was made for the session.
    assert no_backend_session(backend), backend.conns


def test_connect_rule_tempfails_before_backend(backend, make_mx, tmp_path):
    local = rules_file(tmp_path, 'connect NO_RDNS /^unknown\\[127\\.0\\.0\\.1\\]$/ tempfail "451 4.7.25 no reverse DNS"\n')
    mx = make_mx(config={"rules": [local]})
    c = mx.connect()
    assert c.ehlo().code == 250
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 451, "4.7.25", "no reverse DNS")
    c.quit()
    check_txn(mx.session(c)["txns"][0], result="tempfail", stage="mail")
    assert no_backend_session(backend), backend.conns


def test_mailfrom_and_rcptto_rules(backend, make_mx, tmp_path):
    local = rules_file(
        tmp_path,
        "mailfrom BAD_SENDER /\\@spam\\.example$/ reject\n"
        'rcptto   TRAP /^trap\\@/ reject "550 5.1.1 no such user"\n'
        "rcptto   __ANY_RCPT /./\n",
    )
    mx = make_mx(config={"rules": [local]})
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<x@spam.example>"), 550, "5.7.1", "BAD_SENDER")
    assert no_backend_session(backend), backend.conns
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<trap@test.example>"), 550, "5.1.1", "no such user")
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    d, final = c.data(ham())
    assert final.code == 250
    c.quit()
    backend.wait_messages(1, timeout=10)
    assert backend.messages()[0].rcpts == ["RCPT TO:<%s>" % RCPT]
    txns = mx.session(c)["txns"]
    check_txn(txns[0], result="reject", stage="mail")
    check_txn(txns[1], result="accept")


def test_accept_rule_skips_content_rules(backend, make_mx, tmp_path):
    local = rules_file(tmp_path, "helo TRUSTED /^trusted\\.example$/ accept\n")
    mx = make_mx(config={"rules": [DEFAULT_RULES, local]})
    c, out = send(mx, ham(body=GTUBE + b"\r\n"), helo="trusted.example")
    assert out[-1].code == 250, out
    backend.wait_messages(1, timeout=10)
    c2, out2 = send(mx, ham(body=GTUBE + b"\r\n"), helo="other.example")
    assert out2[-1].code == 550


def test_meta_over_smtp_and_content_rules(backend, make_mx, tmp_path):
    local = rules_file(
        tmp_path,
        "helo __BARE /^\\d+\\.\\d+\\.\\d+\\.\\d+$/\n"
        "body __LOTTERY /lottery/i\n"
        "meta BARE_LOTTERY __BARE && __LOTTERY\n"
        "score BARE_LOTTERY 20\n",
    )
    mx = make_mx(config={"rules": [local]})
    c, out = send(mx, ham(body=b"You won the LOTTERY\r\n"), helo="1.2.3.4")
    assert_reply(out[-1], 550, "5.7.1")
    assert "BARE_LOTTERY" in mx.session(c)["txns"][0]["symbols"].split(",")
    c, out = send(mx, ham(body=b"You won the LOTTERY\r\n"), helo="client.example")
    assert out[-1].code == 250


def test_big_message_scanned_on_worker(backend, make_mx):
    # Spilled to disk (memory_max is 1 MiB) and scanned off the loop.
    mx = make_mx(config={"rules": [DEFAULT_RULES]})
    filler = (b"x" * 76 + b"\r\n") * 30000
    c, out = send(mx, ham(body=filler + GTUBE + b"\r\n"))
    assert_reply(out[-1], 550, "5.7.1")
    c, out = send(mx, ham(body=filler))
    assert out[-1].code == 250


def test_reload_broken_rules_keeps_old_set(backend, make_mx, tmp_path):
    local = rules_file(tmp_path, "body FOO /foo/\nscore FOO 20\n")
    mx = make_mx(config={"rules": [local]})
    c, out = send(mx, ham(body=b"foo\r\n"))
    assert out[-1].code == 550
    mark = len(mx.log_lines())
    with open(local, "w") as f:
        f.write("body FOO /foo/\nscore FOO 20\nbody BAR /(/\n")
    mx.reload()
    mx.wait_log(r"reload failed.*local\.rules:3: bad pattern", since=mark)
    assert mx.alive()
    c, out = send(mx, ham(body=b"foo\r\n"))
    assert out[-1].code == 550
    with open(local, "w") as f:
        f.write("body BAR /bar/\nscore BAR 20\n")
    mark = len(mx.log_lines())
    mx.reload()
    mx.wait_log(r"reload: configuration .* loaded", since=mark)
    c, out = send(mx, ham(body=b"foo\r\n"))
    assert out[-1].code == 250
    c, out = send(mx, ham(body=b"bar\r\n"))
    assert out[-1].code == 550


def test_config_check_counts_and_errors(make_mx, tmp_path):
    local = rules_file(
        tmp_path,
        "body A /a/\nheader B eval:check_foo()\nuri_detail x\nmeta C A\nhelo D /x/\n",
    )
    mx = make_mx(config={"rules": [local]}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 0, out
    assert "rules: 3 rules loaded (body 1, meta 1, helo 1); 2 skipped (eval 1, unknown directive 1)" in out, out
    with open(local, "a") as f:
        f.write("\n\nbody E /[/\n")
    rc, out = check_config(mx.conf_path)
    assert rc == 1
    assert re.search(r"local\.rules:8: bad pattern at offset \d+: ", out), out


def run_check(conf, *args):
    p = subprocess.run(
        [binary(), "check", "-c", conf] + list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_check_command(make_mx, tmp_path):
    local = rules_file(tmp_path, "body TAGME /tagme/\nscore TAGME 6\n")
    mx = make_mx(config={"rules": [DEFAULT_RULES, local], "backend": "127.0.0.1:1"}, start=False)
    mx.write_config()
    spam = tmp_path / "gtube.eml"
    spam.write_bytes(ham(body=GTUBE + b"\r\n"))
    good = tmp_path / "ham.eml"
    good.write_bytes(ham())
    tag = tmp_path / "tag.eml"
    tag.write_bytes(ham(body=b"tagme\r\n"))
    rc, out, err = run_check(mx.conf_path, str(good))
    assert rc == 0, err
    assert out.startswith("%s: accept score=0.0" % good), out
    assert "hits: none" in out and "skipped: network checks" in out
    rc, out, err = run_check(mx.conf_path, str(tag))
    assert rc == 1 and "tag score=6.0" in out and "TAGME(6.0)" in out, out
    rc, out, err = run_check(mx.conf_path, str(good), str(spam))
    assert rc == 3, out
    # Scored on several threads or one: the same output, in order.
    rc1, out1, _ = run_check(mx.conf_path, "-j", "1", str(good), str(spam))
    rc4, out4, _ = run_check(mx.conf_path, "-j", "4", str(good), str(spam), str(tag))
    assert rc1 == 3 and out1 == out and out4.startswith(out), (out, out4)
    assert "%s: reject score=1000.0" % spam in out and "GTUBE(1000.0)" in out, out
    rc, out, err = run_check(mx.conf_path, "--json", str(spam), str(good))
    assert rc == 3
    res = json.loads(out)
    assert [r["verdict"] for r in res] == ["reject", "accept"]
    assert res[0]["symbols"][0]["name"] == "GTUBE"
    assert res[0]["symbols"][0]["score"] == 1000.0
    assert res[0]["symbols"][0]["description"].startswith("Generic Test")
    # --timing: one line on standard error, the verdicts as without it
    assert "timing:" not in err
    rc, tout, terr = run_check(mx.conf_path, "--timing", "-j", "1", str(good), str(spam))
    assert rc == 3 and tout == out1, tout
    assert re.fullmatch(
        r"timing: load [\d.]+ s cpu [\d.]+ s wall, \d+ rules \(\d+ prefiltered\); "
        r"scan of 2 messages on 1 thread [\d.]+ s cpu [\d.]+ s wall\n",
        terr,
    ), terr
    rc, out, err = run_check(mx.conf_path, str(tmp_path / "missing.eml"))
    assert rc == 66 and "cannot read" in err
    rc, out, err = run_check(mx.conf_path)
    assert rc == 64 and "usage" in err
