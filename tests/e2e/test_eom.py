# SPDX-License-Identifier: MIT
"""End of data: the time from the final dot (or BDAT LAST) to the reply is
logged in the txn line, split into checks_ms (our decision) and backend_ms
(the message sent to the backend's final reply), and counted in
eod_decision_seconds / eod_backend_seconds; an end-of-data check that
stalls is cut short at eom_budget, and the message is decided on what came
in (a URIBL lookup that never returns counts as not listed)."""

import re

import pytest

from helpers import RCPT, assert_reply, check_txn

ZONE = "multi.uribl.test"

MSG = (b"From: a@client.example\r\nTo: " + RCPT.encode() + b"\r\nSubject: links\r\n"
       b"\r\nSee http://www.stalled.example/ today.\r\n")


def send(c, how):
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    if how == "data":
        _, final = c.data(MSG, timeout=60)
        return final
    c.send(b"BDAT %d LAST\r\n" % len(MSG) + MSG)
    return c.reply(timeout=60)


def test_eod_latency_logged(backend, mx):
    c = mx.connect()
    assert_reply(send(c, "data"), 250)
    c.quit()
    backend.wait_messages(1)
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept", checks_ms=re.compile(r"\d+"), backend_ms=re.compile(r"\d+"))


def test_no_eod_no_latency(backend, mx):
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    c.quit()
    (t,) = mx.session(c)["txns"]
    check_txn(t, checks_ms="-", backend_ms="-")


@pytest.mark.parametrize("how", ["data", "bdat"])
def test_stalled_check_decided_at_budget(make_mx, backend, dns, how):
    # The URIBL query is never answered, and neither the DNS timeout nor
    # the filter timeout would end the wait before 30 s: the budget does.
    dns.drop("stalled.example." + ZONE)
    mx = make_mx(config={"dns": {"servers": [dns.address], "timeout": 60},
                         "uribl": ({"zone": ZONE, "weight": 4.0},),
                         "timeouts": {"filter": 600},
                         "eom_budget": 2})
    c = mx.connect()
    final = send(c, how)
    assert_reply(final, 250)
    c.quit()
    backend.wait_messages(1)
    (t,) = mx.session(c)["txns"]
    check_txn(t, result="accept")
    assert int(t["checks_ms"]) >= 1900, t
    # Not a speed test: a bound that only tells the 2 s budget from the 30 s
    # it would otherwise be (timeouts.filter is 600 here).
    assert int(t["checks_ms"]) < 25000, t
    assert "URIBL" not in t["symbols"], t
    mx.wait_log(r"filter uribl timed out at stage")
    assert dns.count("stalled.example." + ZONE) >= 1
