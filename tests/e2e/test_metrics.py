# SPDX-License-Identifier: MIT
"""Prometheus metrics on `metrics.address`: after known traffic the
counters say what happened (connections by listener and reason,
transactions by result, recipients by outcome, replies by class, relayed
bytes, symbols, backend errors, store operations, stage histograms); the
text parses as exposition format 0.0.4; a password requires HTTP Basic
auth; other paths are 404."""

import base64
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from helpers import assert_reply, simple_message
from mxguard import free_port

LINE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|\+Inf|NaN)$')


def scrape(port, path="/metrics", password=None):
    # The HTTP listener starts just after the SMTP ones: wait for it.
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "metrics port not listening"
            time.sleep(0.05)
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if password is not None:
        tok = base64.b64encode(b"prometheus:" + password.encode()).decode()
        req.add_header("Authorization", "Basic " + tok)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def parse(text):
    """-> {(name, frozenset of label pairs): value}; checks every line."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = LINE.match(line)
        assert m, "bad exposition line %r" % line
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


def test_counters_after_known_traffic(make_mx, backend):
    port = free_port()
    mx = make_mx(config={"metrics": {"address": "127.0.0.1:%d" % port}})
    listener = mx.config["listen"][0]["address"]
    backend.override(r"RCPT TO:<nobody@", "550 5.1.1 unknown user")
    sizes = 0
    for i in range(2):
        c = mx.connect()
        assert_reply(c.ehlo("client"), 250)  # not a FQDN: HELO_NOT_FQDN
        assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
        assert_reply(c.cmd("RCPT TO:<user@test.example>"), 250)
        assert_reply(c.cmd("RCPT TO:<nobody@test.example>"), 550)
        msg = simple_message("m%d" % i)
        _, final = c.data(msg)
        assert_reply(final, 250)
        c.quit()
    mx.wait_record("disconnect", count=2)
    backend.wait_messages(2)
    m = parse(scrape(port))
    assert value(m, "mxguard_connections_total", listener=listener, reason="quit") == 2
    assert value(m, "mxguard_connections_current") == 0
    assert value(m, "mxguard_transactions_total", result="accept") == 2
    assert value(m, "mxguard_recipients_total", outcome="accepted") == 2
    assert value(m, "mxguard_recipients_total", outcome="rejected") == 2
    assert value(m, "mxguard_smtp_replies_total", **{"class": "5xx"}) == 2
    assert value(m, "mxguard_smtp_replies_total", **{"class": "3xx"}) == 2
    assert value(m, "mxguard_symbols_total", symbol="HELO_NOT_FQDN") == 2
    sizes = sum(int(t["size"]) for t in mx.records("txn"))
    assert value(m, "mxguard_messages_relayed_bytes_total") == sizes > 0
    assert value(m, "mxguard_stage_duration_seconds_count", stage="mail") == 2
    assert value(m, "mxguard_stage_duration_seconds_count", stage="rcpt") == 4
    assert value(m, "mxguard_eod_decision_seconds_count") == 2
    assert value(m, "mxguard_stage_duration_seconds_bucket", stage="mail", le="+Inf") == 2
    # Backend down: counted.
    backend.stop_listening()
    backend.close_connections()  # the pool's idle ones too
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 451, "4.4.1")
    c.quit()
    mx.wait_record("disconnect", count=3)
    m = parse(scrape(port))
    assert value(m, "mxguard_backend_errors_total", kind="unreachable") == 1
    assert value(m, "mxguard_connections_total", listener=listener, reason="quit") == 3


def test_store_operations_counted(make_mx, backend):
    port = free_port()
    mx = make_mx(config={"metrics": {"address": "127.0.0.1:%d" % port},
                         "greylist": {"enabled": True}})
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<user@test.example>"), 451, "4.7.1")
    assert_reply(c.cmd("RCPT TO:<user2@test.example>"), 451, "4.7.1")
    c.quit()
    mx.wait_record("disconnect")
    m = parse(scrape(port))
    assert value(m, "mxguard_store_operations_total", result="ok") == 2
    assert value(m, "mxguard_recipients_total", outcome="deferred") == 2
    assert value(m, "mxguard_symbols_total", symbol="GREYLIST") == 1


def test_password_and_paths(make_mx, backend):
    port = free_port()
    make_mx(config={"metrics": {"address": "127.0.0.1:%d" % port,
                                "password": "s3cret"}})
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(port)
    assert e.value.code == 401
    assert e.value.headers["WWW-Authenticate"].startswith("Basic")
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(port, password="wrong")
    assert e.value.code == 401
    assert "mxguard_connections_current 0" in scrape(port, password="s3cret")
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(port, "/nope", password="s3cret")
    assert e.value.code == 404


def test_metrics_address_in_use_fails_start(make_mx, backend):
    from mxguard import MxguardError
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        mx = make_mx(config={"metrics": {"address": "127.0.0.1:%d" % s.getsockname()[1]}},
                     start=False)
        with pytest.raises(MxguardError) as e:
            mx.start()
        assert "metrics: cannot listen" in str(e.value)
        mx.proc = None  # it exited, as it should: nothing to stop
    finally:
        s.close()
