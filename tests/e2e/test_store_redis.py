# SPDX-License-Identifier: MIT
"""The Redis store against a real redis-server (and redis-sentinel).

The cases of tests/unit/test_store.c run again on Redis: both stores must
give the same answers (parity).  Then what only Redis has: a password, a
database number, Sentinel and its failover, and failure: a wrong password,
no server, a server that stops answering or dies and comes back.  The
failure phases run on one long-lived connection on an event loop, as the
daemon has (test_store's MXG_TEST_STORE_OUTAGE mode, stepped through with
files)."""

import os
import subprocess
import time

import pytest

from mxguard import Mxguard, MxguardError, binary, free_port
from helpers import RCPT, SENDER, assert_reply, simple_message


def unit_binary():
    """test_store of the same build as the daemon under test (the ASan run
    sets MXGUARD_BIN=build-asan/mxguard)."""
    return os.path.join(os.path.dirname(binary()), "tests", "unit", "test_store")


def run_unit(url, timeout=120, **env):
    path = unit_binary()
    if not os.path.exists(path):
        pytest.fail("%s not found; build it first (make build)" % path)
    e = dict(os.environ, MXG_TEST_STORE=url)
    e.update({k: str(v) for k, v in env.items()})
    p = subprocess.run(
        [path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=timeout, env=e,
    )
    return p.returncode, p.stdout.decode("utf-8", "replace")


def assert_unit_ok(url, **env):
    rc, out = run_unit(url, **env)
    assert rc == 0, out
    assert "PASSED" in out and "FAILED" not in out, out
    assert "AddressSanitizer" not in out and "runtime error" not in out, out
    return out


def test_parity(redis_server):
    out = assert_unit_ok(redis_server.url)
    # Every case ran on Redis except the memory store's own bound.
    assert "SKIPPED ] test_memory_bound" in out, out


def test_parity_password_and_db(make_redis):
    r = make_redis(password="s3cr/t@x")
    # Reserved characters of the password percent-encoded in the URL.
    assert_unit_ok("redis://:s3cr%2Ft%40x@127.0.0.1:" + str(r.port) + "/3")
    # Only database 3 was written.
    keyspace = r.command("INFO", "keyspace")
    assert b"db3:keys=" in keyspace and b"db0:" not in keyspace, keyspace
    # Redis 6 ACL form: user and password.
    assert_unit_ok("redis://default:s3cr%2Ft%40x@127.0.0.1:" + str(r.port) + "/0")


def test_ipv6_and_host_name(make_redis):
    """An IPv6 address in brackets; a host name (resolved at startup)."""
    r = make_redis(bind="::1")
    assert r.url == "redis://[::1]:%d/0" % r.port
    assert_unit_ok(r.url)
    r4 = make_redis()
    assert_unit_ok("redis://localhost:%d/0" % r4.port)


@pytest.mark.parametrize(
    "auth,error",
    [(":wrong@", "WRONGPASS"), ("", "NOAUTH")],
)
def test_wrong_password_fails_cleanly(make_redis, auth, error):
    r = make_redis(password="right")
    out = assert_unit_ok(
        "redis://%s127.0.0.1:%d/0" % (auth, r.port), MXG_TEST_STORE_EXPECT="down"
    )
    assert error in out, out


def test_no_server_fails_cleanly():
    out = assert_unit_ok("redis://127.0.0.1:%d/0" % free_port(), MXG_TEST_STORE_EXPECT="down")
    assert "Connection refused" in out, out


@pytest.mark.parametrize(
    "url,error",
    [
        ("redis://", "missing host"),
        ("redis://127.0.0.1:0/0", "bad port"),
        ("redis://127.0.0.1:6379x/0", "bad port"),
        ("redis://127.0.0.1:6379/zero", "database must be a number"),
        ("redis://pw@127.0.0.1/0", "user info"),
        ("redis://a:1,b:2/0", "one host only"),
        ("redis://[::1/0", "IPv6"),
        ("redis://no-such-host.invalid:6379/0", "cannot resolve"),
        ("redis+sentinel://127.0.0.1:26379", "master name"),
        ("redis+sentinel://127.0.0.1:26379,/m", "empty host"),
    ],
)
def test_bad_url(url, error):
    rc, out = run_unit(url)
    assert rc == 1, out
    assert "bad store URL" in out and error in out, out


def test_daemon_bad_url_refused(tmp_path, backend):
    """The daemon refuses to start on a URL st_open cannot use, saying why."""
    m = Mxguard(tmp_path, backend.address, config={"store": "redis://127.0.0.1:99999/0"})
    try:
        m.start()  # it may listen for a moment: the store opens after
    except MxguardError:
        pass
    try:
        assert m.proc.wait(timeout=30) == 1
    finally:
        m.kill()
    assert "bad store URL: bad port" in m.log_text()


def test_daemon_serves_mail_with_redis_down(make_mx, redis_server):
    """A daemon on a Redis store starts, serves mail while Redis is dead,
    and shuts down cleanly (the teardown checks exit 0 and, under ASan, a
    clean log)."""
    mx = make_mx(config={"store": redis_server.url})
    for alive in (True, False):
        if not alive:
            redis_server.kill()
        c = mx.connect()
        assert_reply(c.ehlo(), 250)
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        assert_reply(c.data(simple_message())[1], 250)
        assert_reply(c.cmd("QUIT"), 221)


def wait_file(d, name, proc, timeout=90):
    path = os.path.join(d, name)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            out = proc.stdout.read().decode("utf-8", "replace")
            pytest.fail("test_store exited (%s) before phase %s:\n%s" % (proc.returncode, name, out))
        if time.monotonic() > deadline:
            proc.kill()
            out = proc.stdout.read().decode("utf-8", "replace")
            pytest.fail("no phase %s within %ds:\n%s" % (name, timeout, out))
        time.sleep(0.05)


def touch(d, name):
    open(os.path.join(d, name), "w").close()


def start_outage(tmp_path, url, phases, timeout="1.0"):
    d = str(tmp_path / "phases")
    os.makedirs(d)
    env = dict(
        os.environ,
        MXG_TEST_STORE=url,
        MXG_TEST_STORE_OUTAGE=d,
        MXG_TEST_STORE_PHASES=phases,
        MXG_TEST_STORE_TIMEOUT=timeout,
    )
    proc = subprocess.Popen(
        [unit_binary()], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=env,
    )
    return d, proc


def finish_outage(proc):
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    out = out.decode("utf-8", "replace")
    assert proc.returncode == 0, out
    assert "PASSED" in out and "AddressSanitizer" not in out, out
    return out


def test_outage_and_recovery(tmp_path, redis_server):
    """One connection on a loop: the scripts flushed from Redis (SCRIPT
    FLUSH) are sent again (NOSCRIPT, EVAL); a request Redis does not answer
    in timeouts.store fails with "timeout"; Redis killed: calls fail, and
    soon at once (no waiting, no queue); Redis back: calls succeed again,
    on their own."""
    d, proc = start_outage(tmp_path, redis_server.url, "flush,stall,kill")
    wait_file(d, "up", proc)
    assert redis_server.command("SCRIPT", "FLUSH") == b"OK"
    touch(d, "flushed")
    wait_file(d, "flushed-ok", proc)
    assert b"cmdstat_eval:calls=1," in redis_server.command("INFO", "commandstats")
    redis_server.command("CLIENT", "PAUSE", "5000", "ALL")
    touch(d, "stalled")
    wait_file(d, "stalled-ok", proc)
    redis_server.kill()
    touch(d, "killed")
    wait_file(d, "down", proc)
    redis_server.start()
    touch(d, "restarted")
    out = finish_outage(proc)
    assert "while down: redis down:" in out, out


def test_sentinel_parity(sentinel):
    assert_unit_ok(sentinel.url)
    # It wrote to the master Sentinel named.
    assert sentinel.master.command("DBSIZE") > 0


def test_sentinel_unknown_master(sentinel):
    out = assert_unit_ok(
        "redis+sentinel://127.0.0.1:%d,127.0.0.1:%d/nosuchmaster" % (free_port(), sentinel.port),
        MXG_TEST_STORE_EXPECT="down",
    )
    assert "no Sentinel knows the master" in out, out


def test_sentinel_follows_failover_on_master_death(tmp_path, sentinel):
    """The master dies; Sentinel promotes the replica; the connection finds
    the new master by asking Sentinel again."""
    old = sentinel.master.port
    d, proc = start_outage(tmp_path, sentinel.url, "failover")
    wait_file(d, "up", proc)
    sentinel.master.kill()
    touch(d, "killed")
    wait_file(d, "down", proc)
    touch(d, "restarted")  # nothing restarts: Sentinel fails over
    finish_outage(proc)
    assert sentinel.master_port() == sentinel.replica.port != old


def test_sentinel_follows_failover_to_replica(tmp_path, sentinel):
    """A failover while both servers live: the old master turns replica
    (Sentinel closes its clients; a connection it did not close would get
    READONLY, which drops it the same way); the connection asks Sentinel
    for the new master."""
    d, proc = start_outage(tmp_path, sentinel.url, "failover")
    wait_file(d, "up", proc)
    assert sentinel.command("SENTINEL", "FAILOVER", sentinel.MASTER) == b"OK"
    touch(d, "killed")
    wait_file(d, "down", proc)
    touch(d, "restarted")
    finish_outage(proc)
    assert sentinel.master_port() == sentinel.replica.port
