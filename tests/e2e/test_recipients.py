# SPDX-License-Identifier: MIT
"""Recipient verification (issue 7 item 3): `recipients_file` lists the
addresses (and `@domain` catch-alls) of the domains it names; an unknown
address of such a domain gets 550 5.1.1 from mxguard and never reaches the
backend; other domains are the backend's to verify (its reply passed
through); postmaster is always known; the file follows a reload; a bad
line is a FILE:LINE error.  Directory harvest: after
`limits.unknown_recipients` unknown recipients (ours or the backend's
5.1.x) the session ends with 421 4.7.0.

`recipients_redis`: a Redis set (entries as in the file, asked through the
store's connection at each RCPT): known, unknown, catch-all, case; a SADD
or SREM counts at the next RCPT without a reload; Redis down -> 451 4.3.0
(never accepted nor refused blind), back -> mail flows again; FILE:LINE
errors (a memory store among them).

`limits.unknown_recipients_per_client` / `unknown_recipients_window`: the
harvest cap across sessions, per client address, in the store (memory and
Redis): over it the next RCPT gets 421 4.7.0 and the session ends, a new
connection is refused with 421 4.7.0, another address is unaffected, the
count drains with the (test) clock, `mxguard ctl ratelimit reset
unknown_recipients IP` clears it, and two instances on one Redis share
it."""

import itertools
import re
import time

import pytest

from helpers import assert_reply, v1
from mxguard import check_config, free_port, libconfig
from smtp import Client, ServerClosed
from test_metrics import parse, scrape, value

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


# -- recipients_redis ----------------------------------------------------------

KEY = "mxguard:recipients"


def start_redis(make_mx, redis_server, members, domains=None, extra=None):
    if members:
        redis_server.command("SADD", KEY, *members)
    group = {"key": KEY}
    if domains is not None:
        group["domains"] = domains
    cfg = {"store": redis_server.url, "accepted_domains": DOMAINS,
           "recipients_redis": group, "timeouts": {"store": 0.5}}
    cfg.update(extra or {})
    return make_mx(config=cfg)


def test_redis_set_known_unknown_catch_all(make_mx, backend, redis_server):
    port = free_port()
    mx = start_redis(make_mx, redis_server, ["alice@test.example", "@catchall.test"],
                     domains=["test.example", "catchall.test"],
                     extra={"metrics": {"address": "127.0.0.1:%d" % port}})
    r = rcpts(mx, ["alice@test.example", "Alice@TEST.example", "bob@test.example",
                   "anyone@catchall.test", "x@other.example", "postmaster@test.example"])
    assert [x.code for x in r] == [250, 250, 550, 250, 250, 250]
    assert_reply(r[2], 550, "5.1.1")
    assert "User unknown in relay recipient table" in r[2].text
    got = backend_rcpts(backend)
    assert "bob@test.example" not in got
    assert "x@other.example" in got  # not a domain the set verifies
    mx.wait_log(r"unknown recipient rcpt=<bob@test\.example> client=\[127\.0\.0\.1\] "
                r"source=redis")
    m = parse(scrape(port))
    assert value(m, "mxguard_recipient_lookups_total", result="known") == 3
    assert value(m, "mxguard_recipient_lookups_total", result="unknown") == 1
    assert value(m, "mxguard_recipient_lookups_total", result="error") == 0


def test_redis_set_verifies_every_accepted_domain_by_default(make_mx, backend,
                                                             redis_server):
    mx = start_redis(make_mx, redis_server, ["alice@test.example"])
    r = rcpts(mx, ["alice@test.example", "x@other.example", "y@catchall.test"])
    assert [x.code for x in r] == [250, 550, 550]
    assert backend_rcpts(backend) == ["alice@test.example"]


def test_redis_set_changes_count_at_once(make_mx, backend, redis_server):
    mx = start_redis(make_mx, redis_server, ["alice@test.example"])
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<bob@test.example>"), 550, "5.1.1")
    redis_server.command("SADD", KEY, "bob@test.example")  # redis-cli SADD
    assert_reply(c.cmd("RCPT TO:<bob@test.example>"), 250)  # same session
    redis_server.command("SADD", KEY, "@other.example")
    assert_reply(c.cmd("RCPT TO:<anybody@other.example>"), 250)
    redis_server.command("SREM", KEY, "bob@test.example")
    assert_reply(c.cmd("RCPT TO:<bob@test.example>"), 550, "5.1.1")
    c.quit()


def test_file_and_redis_set_together(make_mx, backend, redis_server, tmp_path):
    path = tmp_path / "recipients"
    path.write_text("alice@test.example\n")
    mx = start_redis(make_mx, redis_server, ["carol@test.example"],
                     extra={"recipients_file": str(path)})
    r = rcpts(mx, ["alice@test.example", "carol@test.example", "dave@test.example"])
    assert [x.code for x in r] == [250, 250, 550]


def test_redis_down_tempfails_then_recovers(make_mx, backend, redis_server):
    port = free_port()
    mx = start_redis(make_mx, redis_server, ["alice@test.example"],
                     extra={"metrics": {"address": "127.0.0.1:%d" % port}})
    assert_reply(rcpts(mx, ["alice@test.example"])[0], 250)
    redis_server.kill()
    r = rcpts(mx, ["alice@test.example", "bob@test.example", "x@other.example"])
    # Never accepted nor refused blind: the client retries later.
    for x in r:
        assert_reply(x, 451, "4.3.0")
        assert "Temporary lookup failure" in x.text
    assert backend_rcpts(backend) == ["alice@test.example"]
    mx.wait_log(r"recipient lookup failed rcpt=<alice@test\.example> source=redis")
    m = parse(scrape(port))
    assert value(m, "mxguard_recipient_lookups_total", result="error") == 3
    assert value(m, "mxguard_store_operations_total", result="error") >= 3
    # Back (empty, as a new server): the store reconnects by itself.
    redis_server.start()
    redis_server.command("SADD", KEY, "alice@test.example")
    # Each event loop has its own store connection and reconnects on its
    # own: recovered when several sessions in a row (whatever loop they
    # land on) get the set's answers; until then only 451s.
    deadline = time.monotonic() + 30
    good = 0
    while good < 6:
        codes = [x.code for x in rcpts(mx, ["alice@test.example", "bob@test.example"])]
        if codes == [250, 550]:
            good += 1
            continue
        assert codes == [451, 451], codes
        good = 0
        assert time.monotonic() < deadline, "lookups did not recover"
        time.sleep(0.3)
    assert mx.alive()


def test_redis_set_of_the_wrong_type_tempfails(make_mx, backend, redis_server):
    redis_server.command("SET", KEY, "not a set")
    mx = start_redis(make_mx, redis_server, [])
    assert_reply(rcpts(mx, ["alice@test.example"])[0], 451, "4.3.0")
    mx.wait_log(r"recipient lookup failed .*WRONGTYPE")


def test_reload_refuses_a_redis_set_on_the_memory_store(make_mx, backend, redis_server):
    mx = make_mx(config={"accepted_domains": DOMAINS})
    cfg = dict(mx.config)
    cfg["store"] = redis_server.url
    cfg["recipients_redis"] = {"key": KEY}
    mx.reload(cfg)
    mx.wait_log(r"reload failed, keeping the running configuration: recipients_redis "
                r"needs the Redis store")
    assert_reply(rcpts(mx, ["bob@test.example"])[0], 250)  # still the backend's


def _conf(tmp_path, extra):
    cfg = {"backend": "127.0.0.1:25", "spool": {"dir": str(tmp_path)},
           "listen": ({"address": "127.0.0.1:2525"},),
           "accepted_domains": DOMAINS}
    cfg.update(extra)
    text = libconfig(cfg)
    conf = tmp_path / "r.conf"
    conf.write_text(text)
    return str(conf), text


@pytest.mark.parametrize("extra,key,msg", [
    ({"recipients_redis": {"key": KEY}}, "recipients_redis",
     "recipients_redis needs a Redis store"),
    ({"store": "redis://127.0.0.1:6379/0", "recipients_redis": {"domains": ["test.example"]}},
     "recipients_redis", "key"),
    ({"store": "redis://127.0.0.1:6379/0", "recipients_redis": {"key": ""}},
     "key", "recipients_redis key must be 1 to 200 characters"),
    ({"store": "redis://127.0.0.1:6379/0",
      "recipients_redis": {"key": KEY, "domains": ["elsewhere.example"]}},
     "domains", "recipients_redis domain \"elsewhere.example\" is not in accepted_domains"),
    ({"store": "redis://127.0.0.1:6379/0", "recipients_redis": {"key": KEY, "ttl": 5}},
     "ttl", "ttl"),
    ({"limits": {"unknown_recipients_window": 0}}, "unknown_recipients_window",
     "unknown_recipients_window"),
    ({"limits": {"unknown_recipients_per_client": -1}}, "unknown_recipients_per_client",
     "unknown_recipients_per_client"),
])
def test_config_errors(tmp_path, extra, key, msg):
    conf, text = _conf(tmp_path, extra)
    rc, out = check_config(conf)
    assert rc == 1 and msg in out, out
    line = next(i for i, l in enumerate(text.splitlines(), 1) if re.search(r"\b%s\b" % key, l))
    assert "%s:%d:" % (conf, line) in out, (out, text)


# -- limits.unknown_recipients_per_client ----------------------------------------

_ports = itertools.count(46100)


def start_cap(make_mx, backend, store, tmp_path, limit=3, window=600, name="mxguard",
              prefix=None):
    path = tmp_path / ("recipients-" + name)
    path.write_text("alice@test.example\n")
    cfg = {"store": store, "debug_clock": True, "accepted_domains": DOMAINS,
           "recipients_file": str(path),
           "limits": {"unknown_recipients_per_client": limit,
                      "unknown_recipients_window": window}}
    if prefix is not None:
        cfg["store_prefix"] = prefix
    return make_mx(backend=backend, config=cfg, control=True, name=name,
                   listeners=[{"proxy_protocol": True}])


def connect(mx, ip):
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "192.0.2.1", next(_ports), 25))
    return c


def session(mx, ip):
    c = connect(mx, ip)
    assert_reply(c.banner(), 220)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 250)
    return c


def assert_closed_with_421(c, r):
    assert_reply(r, 421, "4.7.0")
    assert "too many unknown recipients" in r.text
    with pytest.raises(ServerClosed):
        c.reply(5)


def test_cap_across_sessions(make_mx, backend, store, tmp_path):
    backend.override(r"RCPT TO:<[^>]*@other\.example>", "550 5.1.1 User unknown")
    mx = start_cap(make_mx, backend, store, tmp_path, limit=3)
    c = session(mx, "198.18.70.1")
    assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")   # ours
    assert_reply(c.cmd("RCPT TO:<u2@other.example>"), 550, "5.1.1")  # the backend's
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)         # not counted
    c.quit()
    # A new session from the same address: one more unknown, then 421.
    c = session(mx, "198.18.70.1")
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<u3@test.example>"), 550, "5.1.1")
    assert_closed_with_421(c, c.cmd("RCPT TO:<alice@test.example>"))
    mx.wait_log(r"unknown recipient limit reached client=\[198\.18\.70\.1\] limit=3 window=600")
    mx.wait_log(r"disconnect reason=limit")
    # The next connection from it is refused at once.
    c = connect(mx, "198.18.70.1")
    assert_closed_with_421(c, c.banner())
    mx.wait_log(r"unknown recipient limit client=\[198\.18\.70\.1\] stage=connect")
    # Another address is not affected.
    c = session(mx, "198.18.70.2")
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    assert_reply(c.cmd("RCPT TO:<u4@test.example>"), 550, "5.1.1")
    c.quit()
    # The count drains: after the window the client is welcome again.
    mx.advance_clock(601)
    c = session(mx, "198.18.70.1")
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    c.quit()


def test_cap_reset_with_ctl(make_mx, backend, store, tmp_path):
    mx = start_cap(make_mx, backend, store, tmp_path, limit=1)
    c = session(mx, "198.18.75.1")
    assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")
    c.quit()
    c = connect(mx, "198.18.75.1")
    assert_closed_with_421(c, c.banner())
    out = mx.ctl("ratelimit", "show", "unknown_recipients", "198.18.75.1").stdout
    m = re.match(r"unknown_recipients 198\.18\.75\.1 level=([0-9.]+)$", out.strip())
    assert m and 0.9 < float(m.group(1)) <= 1, out  # drained a little since
    mx.ctl("ratelimit", "reset", "unknown_recipients", "198.18.75.1")
    c = session(mx, "198.18.75.1")
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    c.quit()


def test_cap_refuses_a_concurrent_session_at_its_next_rcpt(make_mx, backend, store, tmp_path):
    mx = start_cap(make_mx, backend, store, tmp_path, limit=2)
    other = session(mx, "198.18.71.1")  # open before the harvest
    c = session(mx, "198.18.71.1")
    assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")
    assert_reply(c.cmd("RCPT TO:<u2@test.example>"), 550, "5.1.1")
    assert_closed_with_421(c, c.cmd("RCPT TO:<u3@test.example>"))
    assert_closed_with_421(other, other.cmd("RCPT TO:<alice@test.example>"))


def test_cap_window_drains_gradually(make_mx, backend, store, tmp_path):
    # 2 per 600 s: after 300 s one more unknown is allowed, not two.
    mx = start_cap(make_mx, backend, store, tmp_path, limit=2, window=600)
    c = session(mx, "198.18.72.1")
    assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")
    assert_reply(c.cmd("RCPT TO:<u2@test.example>"), 550, "5.1.1")
    c.quit()
    assert_closed_with_421(*(lambda c: (c, c.banner()))(connect(mx, "198.18.72.1")))
    mx.advance_clock(301)
    c = session(mx, "198.18.72.1")
    assert_reply(c.cmd("RCPT TO:<u3@test.example>"), 550, "5.1.1")
    assert_closed_with_421(c, c.cmd("RCPT TO:<alice@test.example>"))


def test_cap_skips_relay_networks(make_mx, backend, store, tmp_path):
    path = tmp_path / "recipients"
    path.write_text("alice@test.example\n")
    mx = make_mx(backend=backend, control=True, listeners=[{"proxy_protocol": True}],
                 config={"store": store, "accepted_domains": DOMAINS,
                         "relay_networks": ["198.18.73.0/24"],
                         "recipients_file": str(path),
                         "limits": {"unknown_recipients_per_client": 1}})
    for _ in range(3):
        c = session(mx, "198.18.73.1")
        assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")
        assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
        c.quit()


@pytest.mark.parametrize("on_error", ["pass", "tempfail"])
def test_cap_with_redis_down(make_mx, backend, redis_server, tmp_path, on_error):
    path = tmp_path / "recipients"
    path.write_text("alice@test.example\n")
    mx = make_mx(backend=backend, listeners=[{"proxy_protocol": True}],
                 config={"store": redis_server.url, "accepted_domains": DOMAINS,
                         "recipients_file": str(path), "on_store_error": on_error,
                         "timeouts": {"store": 0.5},
                         "limits": {"unknown_recipients_per_client": 1}})
    redis_server.kill()
    c = session(mx, "198.18.76.1")
    r = c.cmd("RCPT TO:<alice@test.example>")
    if on_error == "pass":
        # The cap is a defence, not a gate: mail flows, logged.
        assert_reply(r, 250)
        assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")
        assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    else:
        assert_reply(r, 451, "4.3.0")
    c.quit()
    mx.wait_log(r"harvest: store error")
    assert mx.alive()


def test_cap_off_by_default(make_mx, backend, tmp_path):
    mx, _ = start(make_mx, tmp_path, ["alice@test.example"])
    for _ in range(3):
        r = rcpts(mx, ["u1@test.example", "u2@test.example", "alice@test.example"])
        assert [x.code for x in r] == [550, 550, 250]


def test_cap_shared_by_two_instances(make_mx, backend, redis_server, tmp_path):
    prefix = "h%d:" % next(_ports)
    a = start_cap(make_mx, backend, redis_server.url, tmp_path, limit=2, name="mxa",
                  prefix=prefix)
    b = start_cap(make_mx, backend, redis_server.url, tmp_path, limit=2, name="mxb",
                  prefix=prefix)
    c = session(a, "198.18.74.1")
    assert_reply(c.cmd("RCPT TO:<u1@test.example>"), 550, "5.1.1")
    assert_reply(c.cmd("RCPT TO:<u2@test.example>"), 550, "5.1.1")
    c.quit()
    c = connect(b, "198.18.74.1")
    assert_closed_with_421(c, c.banner())
    c = session(b, "198.18.74.2")
    assert_reply(c.cmd("RCPT TO:<alice@test.example>"), 250)
    c.quit()
