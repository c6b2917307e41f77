# SPDX-License-Identifier: MIT
"""Rate limits (`ratelimit` buckets): connections per client address or
network at connect, messages per client or sender at MAIL, recipients at
RCPT; over the limit the bucket's symbol and 421 4.7.0 (session closed) or
451 4.7.1; the bucket drains with the (test) clock; `mxguard ctl ratelimit
show/reset`; per-sender buckets skip the null sender.  Each case runs
against each store."""

import itertools
import re

import pytest

from helpers import assert_reply, simple_message, v1
from smtp import Client, ServerClosed

_ports = itertools.count(43100)


def start(make_mx, backend, store, buckets, config=None):
    cfg = {"store": store, "debug_clock": True, "ratelimit": tuple(buckets)}
    cfg.update(config or {})
    mx = make_mx(backend=backend, config=cfg, control=True,
                 listeners=[{"proxy_protocol": True}])
    return mx


def connect(mx, ip):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "192.0.2.1", next(_ports), 25))
    return c


def bucket(name, what, per, limit, period=60, reply=451, score=None):
    b = {"name": name, "what": what, "per": per, "limit": limit,
         "period": period, "reply": reply}
    if score is not None:
        b["score"] = score
    return b


def test_connections_421(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               [bucket("CONN_RATE", "connections", "client_ip", 3, 60, 421)])
    for _ in range(3):
        c = connect(mx, "198.18.1.1")
        assert_reply(c.banner(), 220)
        c.quit()
    c = connect(mx, "198.18.1.1")
    assert_reply(c.banner(), 421, "4.7.0")
    with pytest.raises(ServerClosed):
        c.reply(5)
    # Another address is not affected.
    c = connect(mx, "198.18.1.2")
    assert_reply(c.banner(), 220)
    c.quit()
    # 3 per 60 s: one more after 20 s.
    mx.advance_clock(21)
    c = connect(mx, "198.18.1.1")
    assert_reply(c.banner(), 220)
    c.quit()
    mx.wait_log(r"disconnect .*reason=policy")
    assert "level=" in mx.ctl("ratelimit", "show", "CONN_RATE", "198.18.1.1").stdout


def test_connections_451_defers_recipients(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               [bucket("CONN_NET", "connections", "client_net", 1, 60, 451)])
    c = connect(mx, "198.18.2.1")
    assert_reply(c.banner(), 220)
    c.quit()
    c = connect(mx, "198.18.2.200")  # same /24
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<user@test.example>"), 451, "4.7.1")
    c.quit()


def test_messages_per_sender(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               [bucket("SENDER_RATE", "messages", "sender", 2, 3600, 451, 2.5)])
    c = connect(mx, "198.18.3.1")
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    for i in range(2):
        assert_reply(c.cmd("MAIL FROM:<Bulk@client.example>"), 250)
        assert_reply(c.cmd("RCPT TO:<user@test.example>"), 250)
        _, final = c.data(simple_message("m%d" % i))
        assert_reply(final, 250)
    # Case does not make another sender.
    assert_reply(c.cmd("MAIL FROM:<bulk@CLIENT.example>"), 451, "4.7.1")
    # Another sender, and the null sender, pass.
    assert_reply(c.cmd("MAIL FROM:<other@client.example>"), 250)
    assert_reply(c.cmd("RSET"), 250)
    assert_reply(c.cmd("MAIL FROM:<>"), 250)
    assert_reply(c.cmd("RSET"), 250)
    c.quit()
    txns = mx.records("txn")
    refused = [t for t in txns if t["result"] == "tempfail"]
    assert refused and refused[0]["ratelimit"] == "SENDER_RATE"
    assert "SENDER_RATE" in refused[0]["symbols"]
    backend.wait_messages(2)
    # Reset: the sender may send again.
    out = mx.ctl("ratelimit", "reset", "SENDER_RATE", "bulk@client.example").stdout
    assert "reset" in out
    c = connect(mx, "198.18.3.1")
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<bulk@client.example>"), 250)
    c.quit()


def test_messages_per_domain_421_closes(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               [bucket("DOMAIN_RATE", "messages", "sender_domain", 1, 3600, 421)])
    c = connect(mx, "198.18.4.1")
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@spam.example>"), 250)
    assert_reply(c.cmd("RSET"), 250)
    assert_reply(c.cmd("MAIL FROM:<b@spam.example>"), 421, "4.7.0")
    with pytest.raises(ServerClosed):
        c.reply(5)


def test_recipients_per_client(make_mx, backend, store):
    mx = start(make_mx, backend, store,
               [bucket("RCPT_RATE", "recipients", "client_ip", 3, 3600, 451)])
    c = connect(mx, "198.18.5.1")
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    for i in range(3):
        assert_reply(c.cmd("RCPT TO:<u%d@test.example>" % i), 250)
    assert_reply(c.cmd("RCPT TO:<u9@test.example>"), 451, "4.7.1")
    _, final = c.data(simple_message("three"))
    assert_reply(final, 250)
    c.quit()
    (txn,) = backend.wait_messages(1)
    assert txn.rcpt_addrs == ["u0@test.example", "u1@test.example", "u2@test.example"]


def test_config_errors(make_mx, backend, tmp_path):
    from mxguard import check_config, libconfig
    bad = [
        ({"name": "x", "what": "messages", "per": "sender", "limit": 1, "period": 1},
         "must be a symbol"),
        ({"name": "X", "what": "bytes", "per": "sender", "limit": 1, "period": 1},
         "what must be"),
        ({"name": "X", "what": "connections", "per": "sender", "limit": 1, "period": 1},
         "client_ip or client_net"),
        ({"name": "X", "what": "messages", "per": "sender", "limit": 1, "period": 1,
          "reply": 450}, "reply must be 421 or 451"),
        ({"name": "X", "what": "messages", "per": "sender", "period": 1},
         "needs limit and period"),
    ]
    for i, (b, msg) in enumerate(bad):
        path = tmp_path / ("bad%d.conf" % i)
        path.write_text(libconfig({"backend": "127.0.0.1:25",
                                   "listen": ({"address": "127.0.0.1:2525"},),
                                   "spool": {"dir": str(tmp_path)},
                                   "ratelimit": (b,)}))
        rc, out = check_config(str(path))
        assert rc == 1, out
        assert msg in out, out
        assert re.search(re.escape(str(path)) + r":\d+: ", out), out
