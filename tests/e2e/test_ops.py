# SPDX-License-Identifier: MIT
"""Operations: config check, reload, shutdown, greet delay and pregreet,
HELO symbols and tagging."""

import os
import re
import socket
import time

import pytest

from helpers import (
    RCPT,
    SENDER,
    added_headers,
    assert_reply,
    check_disconnect,
    check_spam_headers,
    check_txn,
    simple_message,
    spam_status,
)
from mxguard import check_config, free_port
from smtp import Client, ServerClosed, dot_stuff


def flat_config(tmp_path, overrides=None):
    """The documented config, one setting per line, so a test knows the line
    of each; overrides maps a line number (1-based) to its new text."""
    lines = [
        'hostname = "mx.test";',
        "listen = (",
        '  { address = "127.0.0.1:%d"; mode = "mx"; proxy_protocol = false; }' % free_port(),
        ");",
        'backend = "127.0.0.1:%d";' % free_port(),
        "loops = 2;",
        "workers = 2;",
        "greet_delay = 0;",
        'pregreet = { action = "score"; };',
        "limits = { message_size = 10485760; recipients = 100; line_length = 2048; "
        "connections = 1000; connections_per_ip = 100; errors = 20; };",
        "timeouts = { command = 300; data_block = 180; data_done = 600; backend = 120; shutdown = 30; };",
        'spool = { dir = "%s"; memory_max = 1048576; };' % tmp_path,
        "actions = { tag = 5.0; tempfail = 10.0; reject = 15.0; };",
    ]
    for n, text in (overrides or {}).items():
        lines[n - 1] = text
    path = os.path.join(str(tmp_path), "check.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_config_check_good(tmp_path):
    path = flat_config(tmp_path)
    rc, out = check_config(path)
    assert rc == 0, out


BAD_CONFIGS = {
    "syntax error": (6, "loops = ;"),
    "wrong type": (6, 'loops = "two";'),
    "bad listener mode": (3, '  { address = "127.0.0.1:2525"; mode = "bogus"; proxy_protocol = false; }'),
    "bad listener address": (3, '  { address = "127.0.0.1:99999"; mode = "mx"; proxy_protocol = false; }'),
    "bad listener address 2": (3, '  { address = "not an address"; mode = "mx"; proxy_protocol = false; }'),
    "bad backend": (5, 'backend = "127.0.0.1";'),
    "bad greet_delay": (8, 'greet_delay = "soon";'),
    "negative greet_delay": (8, "greet_delay = -1;"),
    "bad pregreet action": (9, 'pregreet = { action = "explode"; };'),
    "negative limit": (10, "limits = { message_size = 10485760; recipients = -5; line_length = 2048; "
                           "connections = 1000; connections_per_ip = 100; errors = 20; };"),
    "bad timeout type": (11, 'timeouts = { command = "long"; data_block = 180; data_done = 600; backend = 120; shutdown = 30; };'),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_config_check_bad(tmp_path, name):
    line, text = BAD_CONFIGS[name]
    path = flat_config(tmp_path, {line: text})
    rc, out = check_config(path)
    assert rc == 1, "exit %d for a bad config (%s); output: %r" % (rc, name, out)
    assert re.search(r"(?m)^%s:%d: \S" % (re.escape(path), line), out), (
        "no '%s:%d: message' in %r" % (path, line, out))


def test_config_check_missing_file(tmp_path):
    path = os.path.join(str(tmp_path), "nope.conf")
    rc, out = check_config(path)
    assert rc == 1
    assert path in out, out


def test_config_check_does_not_listen(tmp_path):
    # -t only checks: it must not bind (a running daemon may own the port).
    path = flat_config(tmp_path)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", open(path).read()).group(1))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    try:
        rc, out = check_config(path)
        assert rc == 0, out
    finally:
        s.close()


def banner_of_new_connection(mx):
    c = Client(mx.port)
    try:
        return c.banner().lines[-1]
    finally:
        c.close()


def test_reload_good_config(backend, make_mx):
    mx = make_mx()
    old = mx.connect()
    old.ehlo()
    assert banner_of_new_connection(mx) == "220 mx.test ESMTP mxguard"
    cfg = dict(mx.config)
    cfg["hostname"] = "mx2.test"
    mx.reload(cfg)
    for _ in range(100):  # bounded wait for the new config to apply
        b = banner_of_new_connection(mx)
        if b != "220 mx.test ESMTP mxguard":
            break
        time.sleep(0.1)
    assert b == "220 mx2.test ESMTP mxguard", b
    # The session opened before the reload goes on.
    assert old.cmd("NOOP").code == 250
    assert_reply(old.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(old.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = old.data(simple_message("across reload"))
    assert final.code == 250
    old.quit()
    check_disconnect(mx.session(old)["disconnect"], reason="quit", txns=1)
    # New sessions use the new name everywhere.
    c = mx.connect()
    assert c.ehlo().lines[0] == "250-mx2.test"
    c.quit()
    assert mx.alive()


def test_reload_bad_config_keeps_old(backend, make_mx):
    mx = make_mx()
    mark = len(mx.log_lines())
    text = open(mx.conf_path).read()
    mx.reload(text=text.replace('hostname = "mx.test";', 'hostname = "mx3.test";\nloops = ;'))
    # The error names the file and the line.
    mx.wait_log(r"%s:\d+:" % re.escape(os.path.basename(mx.conf_path)), since=mark)
    assert mx.alive()
    assert banner_of_new_connection(mx) == "220 mx.test ESMTP mxguard"
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message())
    assert final.code == 250
    c.quit()
    # A good config after the bad one applies.
    cfg = dict(mx.config)
    cfg["hostname"] = "mx4.test"
    mx.reload(cfg)
    for _ in range(100):
        b = banner_of_new_connection(mx)
        if b != "220 mx.test ESMTP mxguard":
            break
        time.sleep(0.1)
    assert b == "220 mx4.test ESMTP mxguard"


def connection_refused(port, timeout=10.0):
    """Bounded wait until connecting to port is refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.1)
    return False


def test_sigterm_lets_session_finish(backend, make_mx):
    mx = make_mx(config={"timeouts": {"shutdown": 20}})
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    assert c.cmd("DATA").code == 354
    msg = simple_message("shutdown", b"first half\r\n" * 100 + b"second half\r\n" * 100)
    wire = dot_stuff(msg)
    c.send(wire[: len(wire) // 2])
    mx.signal_stop()
    assert connection_refused(mx.port), "still accepting after SIGTERM"
    assert mx.alive(), "exited with a session mid-transaction"
    c.send(wire[len(wire) // 2:])
    final = c.reply()
    assert final.code == 250 and "queued as" in final.lines[0], final
    assert c.cmd("QUIT").code == 221
    rc = mx.wait_exit(30)
    assert rc == 0
    (txn,) = backend.wait_messages(1)
    added_headers(txn, msg)
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="quit", txns=1)
    check_txn(s["txns"][0], result="accept")
    mx.stop()  # sanitizer check, exit code


def test_sigterm_shutdown_timeout(backend, make_mx):
    mx = make_mx(config={"timeouts": {"shutdown": 1}})
    c = mx.connect()
    c.ehlo()
    mx.signal_stop()
    rc = mx.wait_exit(20)
    assert rc == 0
    # The idle client was told or simply closed.
    try:
        r = c.reply(timeout=2)
        assert r.code == 421, r
    except (ServerClosed, OSError):
        pass
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="shutdown", txns=0)
    mx.stop()


# -- greet delay and pregreet --------------------------------------------------


def transaction_after_banner(c, helo="client.example"):
    assert_reply(c.ehlo(helo), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("greet"))
    return final


def test_greet_delay_patient_client(backend, make_mx):
    mx = make_mx(config={"greet_delay": 1})
    c = mx.connect(banner=False)
    b = c.banner(timeout=15)
    assert b.lines == ["220-mx.test ESMTP mxguard", "220 mx.test ESMTP mxguard"], b
    final = transaction_after_banner(c)
    assert final.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    fields = added_headers(txn, simple_message("greet"))
    assert "tests=none" in fields["X-Spam-Status"]
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", symbols="-", score="0.0")


def test_pregreet_scored(backend, make_mx):
    # 2 s: room for a slow test machine between reading 220- and talking.
    mx = make_mx(config={"greet_delay": 2, "pregreet": {"action": "score"}})
    c = mx.connect(banner=False)
    first = c.read_line(timeout=10)
    assert first == "220-mx.test ESMTP mxguard"
    c.send(b"EHLO early.example\r\n")  # talks before the final 220
    assert c.read_line(timeout=15) == "220 mx.test ESMTP mxguard"
    assert_reply(c.reply(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("early"))
    assert final.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    fields, _ = spam_status(txn)
    st = check_spam_headers(fields)
    assert "PREGREET" in st["tests"], fields
    (t,) = mx.session(c)["txns"]
    check_txn(t, helo="early.example")
    assert "PREGREET" in t["symbols"].split(","), t


def test_pregreet_before_anything(backend, make_mx):
    mx = make_mx(config={"greet_delay": 1})
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(b"EHLO hasty.example\r\n")
    b = c.banner(timeout=15)
    assert b.lines[-1] == "220 mx.test ESMTP mxguard", b
    assert_reply(c.reply(), 250)
    c.quit()
    s = mx.session(c)
    check_disconnect(s["disconnect"], reason="quit")


def test_pregreet_rejected(backend, make_mx):
    mx = make_mx(config={"greet_delay": 1.5, "pregreet": {"action": "reject"}})
    c = mx.connect(banner=False)
    assert c.read_line(timeout=10) == "220-mx.test ESMTP mxguard"
    c.send(b"EHLO early.example\r\n")
    assert c.read_line(timeout=15) == "220 mx.test ESMTP mxguard"
    assert_reply(c.reply(), 250)
    c.cmd("MAIL FROM:<%s>" % SENDER)
    r = c.cmd("RCPT TO:<%s>" % RCPT)
    assert r.lines == ["550 5.5.1 Protocol error"], r
    assert_reply(c.cmd("RCPT TO:<other@test.example>"), 550, "5.5.1")
    c.quit()
    assert not any(x.upper().startswith("RCPT") for x in backend.all_commands())
    s = mx.session(c)
    (t,) = s["txns"]
    check_txn(t, result="reject", stage="rcpt", reply="550 5.5.1 Protocol error", nrcpt=0)
    assert "PREGREET" in t["symbols"].split(","), t


def test_no_pregreet_without_delay_for_patient_client(backend, make_mx):
    mx = make_mx(config={"greet_delay": 0, "pregreet": {"action": "reject"}})
    c = mx.connect()
    final = transaction_after_banner(c)
    assert final.code == 250
    c.quit()


# -- HELO checks and tagging ---------------------------------------------------

# (HELO argument, the symbol it must give, other HELO_ symbols it may give)
HELO_CASES = [
    ("1.2.3.4", "HELO_BARE_IP", {"HELO_IP_MISMATCH"}),
    ("localhost", "HELO_LOCALHOST", {"HELO_NOT_FQDN"}),
    ("mx.test", "HELO_OURNAME", set()),
    ("foo", "HELO_NOT_FQDN", set()),
    ("[10.1.2.3]", "HELO_IP_MISMATCH", set()),
]


@pytest.mark.parametrize("helo,symbol,also", HELO_CASES)
def test_helo_symbols(backend, mx, helo, symbol, also):
    c = mx.connect()
    final = transaction_after_banner(c, helo)
    assert final.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    fields, st = spam_status(txn)
    parsed = check_spam_headers(fields)
    assert symbol in parsed["tests"], st
    # No unrelated HELO_ symbol fires.
    extra = {x for x in parsed["tests"] if x.startswith("HELO_")} - {symbol}
    assert extra <= also, st
    added_headers(txn, simple_message("greet"), helo=helo)
    (t,) = mx.session(c)["txns"]
    check_txn(t, helo=helo, score="%.1f" % parsed["score"])
    assert symbol in t["symbols"].split(","), t


def test_helo_good_name_has_no_symbols(backend, mx):
    c = mx.connect()
    assert transaction_after_banner(c, "mail.client.example").code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    fields, st = spam_status(txn)
    assert st == "X-Spam-Status: No, score=0.0 required=5.0 tests=none\r\n", st
    (t,) = mx.session(c)["txns"]
    check_txn(t, symbols="-", score="0.0")


def test_tag_over_threshold(backend, make_mx):
    mx = make_mx(config={"actions": {"tag": 0.1, "tempfail": 100.0, "reject": 200.0}})
    c = mx.connect()
    final = transaction_after_banner(c, "1.2.3.4")
    assert final.code == 250
    c.quit()
    (txn,) = backend.wait_messages(1)
    fields, st = spam_status(txn)
    parsed = check_spam_headers(fields, required="0.1")
    assert parsed["spam"] and "HELO_BARE_IP" in parsed["tests"], st
    assert fields["X-Spam-Flag"] == "X-Spam-Flag: YES\r\n"
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="tag", stage="eom")


def test_privilege_drop(backend, make_mx):
    """user/group: root binds the port, then the daemon runs as nobody and
    still relays, spilling a large message to a spool folder nobody owns."""
    import pwd
    import shutil
    import tempfile

    nobody = pwd.getpwnam("nobody")
    spool = tempfile.mkdtemp(prefix="mxg-spool-", dir="/tmp")
    try:
        os.chmod(spool, 0o700)
        os.chown(spool, nobody.pw_uid, nobody.pw_gid)
        mx = make_mx(config={"user": "nobody", "group": "nogroup",
                             "spool": {"dir": spool, "memory_max": 65536}})
        # The port listens before the drop: wait until startup is over.
        mx.wait_log(r"mxguard \S+ started")
        with open("/proc/%d/status" % mx.pid) as f:
            status = f.read()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        assert set(uids) == {str(nobody.pw_uid)}, status
        gids = re.search(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        assert gids[0] != "0" and gids[1] != "0", status
        big = simple_message("big", body=(b"0123456789abcdef" * 4 + b"\r\n") * 8000)
        c = mx.connect()
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        _, final = c.data(big)
        assert final.code == 250, final
        c.quit()
        (txn,) = backend.wait_messages(1)
        assert txn.data.endswith(big)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def test_privilege_drop_unknown_user(backend, make_mx):
    import subprocess

    from mxguard import binary

    mx = make_mx(config={"user": "no-such-user-mxguard"}, start=False)
    mx.write_config()
    # It refuses to go on as root by mistake: exit 1 with the reason.
    p = subprocess.run([binary(), "-c", mx.conf_path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    assert p.returncode == 1, p
    assert b'unknown user "no-such-user-mxguard"' in p.stderr, p


def test_second_instance_on_the_same_address_fails(backend, make_mx):
    """Each loop listens on a socket of its own, in one SO_REUSEPORT group:
    a second mxguard started on the same address must still fail to bind
    (exit 1, the reason in the log) instead of joining the group and
    taking part of the clients; the first one goes on serving."""
    import subprocess

    from mxguard import binary

    mx = make_mx(config={"loops": 2})
    other = make_mx(start=False)
    other.config["listen"] = mx.config["listen"]
    other.write_config()
    p = subprocess.run([binary(), "-c", other.conf_path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    assert p.returncode == 1, p
    assert b"cannot listen on 127.0.0.1:%d: Address already in use" % mx.port in p.stderr, p
    for _ in range(4):
        c = mx.connect()
        assert_reply(c.cmd("NOOP"), 250)
        c.quit()


def test_log_level(make_mx, backend):
    """log = { level = "warning"; }: no connect/txn lines, warnings still;
    a reload to "info" brings them back."""
    mx = make_mx(config={"log": {"level": "warning", "target": "stderr",
                                 "facility": "local3"}})
    backend.stop_listening()
    backend.close_connections()
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 451, "4.4.1")
    c.quit()
    mx.wait_log(r"warning: [0-9a-f]{16} backend .*")
    time.sleep(0.3)
    assert mx.records("connect") == [] and mx.records("txn") == []
    cfg = dict(mx.config)
    cfg["log_level"] = "info"
    del cfg["log"]
    mx.reload(config=cfg)
    mx.wait_log(r"reload: configuration")
    c = mx.connect()
    c.quit()
    mx.wait_record("connect")


@pytest.mark.parametrize("text,msg", [
    ('log = { target = "file"; };', "log target must be"),
    ('log = { facility = "kern"; };', "log facility must be"),
    ('log = { level = "loud"; };', "level must be"),
    ('log_level = "verbose";', "log_level must be"),
    ('log = { colour = true; };', 'unknown setting "colour" in log'),
])
def test_log_config_errors(tmp_path, text, msg):
    path = flat_config(tmp_path)
    with open(path, "a") as f:
        f.write(text + "\n")
    rc, out = check_config(path)
    assert rc == 1 and msg in out, out
    assert re.search(re.escape(path) + r":\d+: ", out), out


def test_queue_id_header_names_the_txn_log_line(backend, make_mx):
    """Every message passed on carries X-Mxguard-Queue-ID with the id of its
    transaction log line (issue 8: follow one message from mxguard's log into
    the backend's); two transactions of one session get different ids."""
    from helpers import queue_id

    mx = make_mx()
    c = mx.connect()
    c.ehlo()
    for _ in range(2):
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        _, final = c.data(simple_message())
        assert final.code == 250
    c.quit()
    txns = backend.wait_messages(2)
    recs = mx.session(c)["txns"]
    assert [r.n for r in recs] == [1, 2]
    ids = [queue_id(t.data) for t in txns]
    assert ids == ["%s.%d" % (r.sid, r.n) for r in recs]
    assert ids[0] != ids[1]
