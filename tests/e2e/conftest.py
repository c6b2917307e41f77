# SPDX-License-Identifier: MIT
"""Fixtures for the mxguard end-to-end tests.

  backend           a started Backend (backend.py) with the default
                    capabilities (no XCLIENT, no XFORWARD)
  make_backend(**kw) more backends (e.g. xclient=True); all stopped after
  mx                an mxguard (mxguard.py) in front of `backend`, defaults
  make_mx(backend=None, config=None, listeners=None, start=True)
                    more daemons or other configs; each is stopped at
                    teardown, which asserts it exits 0 (and ASan-clean
                    logs when $ASAN is set)
  postfix           a real Postfix (postfix.py), one per test session

Run:  /usr/bin/python3 -m pytest tests/e2e
      MXGUARD_BIN=build-asan/mxguard ASAN=1 /usr/bin/python3 -m pytest tests/e2e
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from backend import Backend  # noqa: E402
from mxguard import Mxguard, binary  # noqa: E402
from postfix import Postfix  # noqa: E402


def pytest_report_header(config):
    return "mxguard binary: %s%s" % (
        binary(),
        "" if os.path.exists(binary()) else " (MISSING: run `make build`)",
    )


@pytest.fixture
def make_backend():
    made = []

    def make(**kw):
        b = Backend(**kw).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def backend(make_backend):
    return make_backend()


@pytest.fixture
def make_mx(tmp_path, backend):
    made = []
    default_backend = backend

    def make(backend=None, config=None, listeners=None, start=True, **kw):
        if not os.path.exists(binary()):
            pytest.fail("mxguard binary %s not found; build it first (make build)" % binary())
        be = backend if backend is not None else default_backend
        addr = be if isinstance(be, str) else be.address
        d = tmp_path / ("mx%d" % len(made))
        d.mkdir()
        m = Mxguard(d, addr, config=config, listeners=listeners, **kw)
        made.append(m)
        if start:
            m.start()
        return m

    yield make
    errors = []
    for m in made:
        try:
            m.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("mxguard shutdown check failed:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def mx(make_mx):
    return make_mx()


@pytest.fixture(scope="session")
def postfix():
    pf = Postfix().start()
    yield pf
    pf.cleanup()


@pytest.fixture
def dns():
    """A started DnsServer (dnsserver.py) on 127.0.0.1:<free port>, UDP and
    TCP; stopped after the test."""
    from dnsserver import DnsServer

    d = DnsServer().start()
    yield d
    d.stop()


# -- Redis (redis.py) ----------------------------------------------------------
#
#   redis_server      a started redis-server on a free loopback port:
#                     .url ("redis://127.0.0.1:P/0"), .kill(), .start()
#                     (again, same port, empty), .command(*args)
#   make_redis(password=None, bind="127.0.0.1")
#                     more servers; each stopped after the test
#   sentinel          a master, a replica and one redis-sentinel watching
#                     them: .url ("redis+sentinel://127.0.0.1:SP/mxgmaster"),
#                     .master, .replica (RedisServers), .master_port()


@pytest.fixture
def make_redis(tmp_path):
    from redis import RedisServer

    made = []

    def make(password=None, start=True, bind="127.0.0.1"):
        r = RedisServer(tmp_path, password=password, bind=bind)
        made.append(r)
        return r.start() if start else r

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def redis_server(make_redis):
    return make_redis()


@pytest.fixture
def sentinel(tmp_path):
    from redis import Sentinel

    s = Sentinel(tmp_path)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(params=["memory", "redis"])
def store(request):
    """The store URL of each parametrised run: the memory store, then a
    redis-server of the test's own."""
    if request.param == "memory":
        return "memory"
    return request.getfixturevalue("redis_server").url
