# SPDX-License-Identifier: MIT
"""State shared through Redis, and store failures.

Two mxguard instances on one Redis: a triplet greylisted through one
passes its retry through the other, a rate bucket filled through one is
full for the other, a whitelist entry made with `mxguard ctl` (straight to
Redis, no daemon involved) holds for both.  Redis killed mid-run: the
configured on_store_error outcome (pass: mail flows with
GREYLIST_STORE_ERROR; tempfail: 451 4.3.0), no crash, and recovery by
itself once redis-server is back."""

import itertools
import time

from helpers import assert_reply, simple_message, v1
from smtp import Client

_ports = itertools.count(45100)
RCPT = "user@test.example"


def start(make_mx, backend, url, prefix, config=None, name="mxguard"):
    cfg = {"store": url, "store_prefix": prefix, "debug_clock": True,
           "greylist": {"enabled": True}, "timeouts": {"store": 0.5}}
    cfg.update(config or {})
    mx = make_mx(backend=backend, config=cfg, control=True,
                 listeners=[{"proxy_protocol": True}], name=name)
    return mx


def attempt(mx, ip="198.18.60.1", sender="a@client.example", rcpt=RCPT, data=True):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "192.0.2.1", next(_ports), 25))
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    r = c.cmd("MAIL FROM:<%s>" % sender)
    if r.code != 250:
        c.quit()
        return r
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if r.code == 250 and data:
        _, final = c.data(simple_message("shared"))
        assert_reply(final, 250)
    c.quit()
    return r


def test_two_instances_share_greylisting(make_mx, backend, redis_server):
    prefix = "s%d:" % next(_ports)
    a = start(make_mx, backend, redis_server.url, prefix, name="mxa")
    b = start(make_mx, backend, redis_server.url, prefix, name="mxb")
    assert_reply(attempt(a), 451, "4.7.1")
    # The retry arrives at the other instance (equal-priority MX records).
    b.advance_clock(300)
    assert_reply(attempt(b), 250)
    assert b.records("txn")[0]["greylist"] == "passed"
    # And the passed triplet is known to the first one too.
    a.advance_clock(300)
    assert_reply(attempt(a), 250)
    assert a.records("txn")[-1]["greylist"] == "pass"
    backend.wait_messages(2)


def test_two_instances_share_rate_limits(make_mx, backend, redis_server):
    prefix = "s%d:" % next(_ports)
    bucket = {"ratelimit": ({"name": "SENDER_RATE", "what": "messages",
                             "per": "sender", "limit": 2, "period": 3600,
                             "reply": 451},),
              "greylist": {"enabled": False}}
    a = start(make_mx, backend, redis_server.url, prefix, bucket, name="mxa")
    b = start(make_mx, backend, redis_server.url, prefix, bucket, name="mxb")
    assert_reply(attempt(a, sender="bulk@x.example"), 250)
    assert_reply(attempt(b, sender="bulk@x.example"), 250)
    assert_reply(attempt(a, sender="bulk@x.example"), 451, "4.7.1")
    assert_reply(attempt(b, sender="bulk@x.example"), 451, "4.7.1")


def test_ctl_works_on_redis_without_a_daemon(make_mx, backend, redis_server):
    prefix = "s%d:" % next(_ports)
    a = start(make_mx, backend, redis_server.url, prefix, name="mxa")
    a.stop()
    out = a.ctl("greylist", "whitelist", "add", "client", "198.18.61.1").stdout
    assert "198.18.61.1" in out
    assert "client 198.18.61.1" in a.ctl("greylist", "whitelist", "list").stdout
    a2 = start(make_mx, backend, redis_server.url, prefix, name="mxa2")
    assert_reply(attempt(a2, ip="198.18.61.1"), 250)
    assert_reply(attempt(a2, ip="198.18.61.2"), 451)


def test_redis_down_pass_then_recovers(make_mx, backend, redis_server):
    prefix = "s%d:" % next(_ports)
    mx = start(make_mx, backend, redis_server.url, prefix,
               {"on_store_error": "pass"})
    assert_reply(attempt(mx), 451)  # greylisting works
    redis_server.kill()
    # Down: mail flows, marked; nothing hangs.
    for i in range(3):
        assert_reply(attempt(mx, rcpt="u%d@test.example" % i), 250)
    txns = mx.records("txn")[-3:]
    assert all(t["greylist"] == "error" for t in txns), txns
    assert all("GREYLIST_STORE_ERROR" in t["symbols"] for t in txns)
    mx.wait_log(r"greylist: store error")
    redis_server.start()
    # Back: greylisting again, by itself (reconnect with backoff).
    deadline = time.monotonic() + 20
    while True:
        r = attempt(mx, rcpt="after@test.example", data=False)
        if r.code == 451 and "Greylisted" in r.text:
            break
        assert time.monotonic() < deadline, "greylisting did not recover"
        time.sleep(0.3)
    assert mx.alive()


def test_redis_down_tempfail(make_mx, backend, redis_server):
    prefix = "s%d:" % next(_ports)
    mx = start(make_mx, backend, redis_server.url, prefix,
               {"on_store_error": "tempfail"})
    redis_server.kill()
    r = attempt(mx)
    assert_reply(r, 451, "4.3.0")
    assert not any("RCPT" in c.upper() for c in backend.all_commands())
    redis_server.start()


def test_redis_unreachable_at_start(make_mx, backend, tmp_path):
    from mxguard import free_port
    url = "redis://127.0.0.1:%d/0" % free_port()  # nothing listens there
    mx = start(make_mx, backend, url, "u:", {"on_store_error": "pass"})
    assert_reply(attempt(mx), 250)
    assert "GREYLIST_STORE_ERROR" in mx.records("txn")[0]["symbols"]
