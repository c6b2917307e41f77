# SPDX-License-Identifier: MIT
"""PROXY protocol v1 and v2 on listeners with proxy_protocol = true: the
client address from the header is the one mxguard logs and passes on
(XCLIENT ADDR, Received); a bad or missing header closes the connection
before any banner."""

import socket

import pytest

from helpers import V2_SIG, v1, v2
from helpers import RCPT, SENDER, added_headers, assert_reply, check_connect, check_disconnect, check_txn, simple_message
from smtp import Client

@pytest.fixture
def xbackend(make_backend):
    return make_backend(xclient=True)


@pytest.fixture
def pmx(make_mx, xbackend):
    """Listener 0 takes PROXY headers, listener 1 does not."""
    return make_mx(backend=xbackend, listeners=[{"proxy_protocol": True}, {}])


def proxied(mx, header, i=0, chunks=1):
    c = Client(mx.listeners[i]["port"])
    mx.clients.append(c)
    step = max(1, len(header) // chunks)
    for k in range(0, len(header), step):
        c.send(header[k:k + step])
    return c


def deliver(c):
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("proxied"))
    assert final.code == 250, final
    c.quit()


CASES = [
    ("v1", "TCP4", lambda: v1("203.0.113.9", "192.0.2.1", 40000, 25), "203.0.113.9", 40000, 1),
    ("v1", "TCP4 byte by byte", lambda: v1("203.0.113.10", "192.0.2.1", 40010, 25), "203.0.113.10", 40010, 10**6),
    ("v1", "TCP6", lambda: v1("2001:db8::9", "2001:db8::1", 40001, 25), "2001:db8::9", 40001, 1),
    ("v2", "TCP4", lambda: v2("203.0.113.11", "192.0.2.1", 40002, 25), "203.0.113.11", 40002, 1),
    ("v2", "TCP4 with TLVs, split", lambda: v2("203.0.113.12", "192.0.2.1", 40003, 25,
                                               tlvs=b"\x04\x00\x03abc\x01\x00\x02h2"), "203.0.113.12", 40003, 3),
    ("v2", "TCP6", lambda: v2("2001:db8::a", "2001:db8::1", 40004, 25), "2001:db8::a", 40004, 1),
]


@pytest.mark.parametrize("version,name,header,addr,port,chunks", CASES, ids=[c[0] + " " + c[1] for c in CASES])
def test_proxy_header(pmx, xbackend, version, name, header, addr, port, chunks):
    c = proxied(pmx, header(), chunks=min(chunks, len(header())))
    assert c.banner().lines == ["220 mx.test ESMTP mxguard"]
    deliver(c)
    s = pmx.session(port=port)
    check_connect(s["connect"], addr, port, listener="127.0.0.1:%d" % pmx.port, proxy=version)
    check_disconnect(s["disconnect"], reason="quit", txns=1)
    check_txn(s["txns"][0], result="accept")
    (conn,) = xbackend.client_conns()
    want = ("IPV6:" + addr) if ":" in addr else addr
    assert conn.xclient.get("ADDR", "").upper() in (want.upper(), addr.upper()), conn.xclient_lines
    if "PORT" in conn.xclient:
        assert conn.xclient["PORT"] == str(port)


def test_proxy_v2_local(pmx, xbackend):
    # LOCAL: a health check from the balancer itself; the socket's own
    # address stands.
    c = proxied(pmx, v2(command=0))
    assert c.banner().code == 220
    deliver(c)
    s = pmx.session(c)
    check_connect(s["connect"], "127.0.0.1", c.local_port, proxy=("v2", "-"))
    (conn,) = xbackend.client_conns()
    assert conn.xclient.get("ADDR") == "127.0.0.1", conn.xclient_lines


def test_proxy_v1_unknown(pmx, xbackend):
    c = proxied(pmx, b"PROXY UNKNOWN\r\n")
    assert c.banner().code == 220
    deliver(c)
    s = pmx.session(c)
    check_connect(s["connect"], "127.0.0.1", c.local_port, proxy=("v1", "-"))


def test_proxy_address_in_received(make_backend, make_mx):
    be = make_backend()  # neither XCLIENT nor XFORWARD: mxguard writes Received
    mx = make_mx(backend=be, listeners=[{"proxy_protocol": True}])
    c = proxied(mx, v1("203.0.113.9", "192.0.2.1", 40005, 25))
    assert c.banner().code == 220
    deliver(c)
    (txn,) = be.wait_messages(1)
    s = mx.session(port=40005)
    added_headers(txn, simple_message("proxied"), received=True, client_ip="203.0.113.9",
                  sid_n="%s.1" % s["sid"])


def test_proxy_address_in_xforward(make_backend, make_mx):
    be = make_backend(xforward=True)
    mx = make_mx(backend=be, listeners=[{"proxy_protocol": True}])
    c = proxied(mx, v2("2001:db8::77", "2001:db8::1", 40006, 25))
    assert c.banner().code == 220
    deliver(c)
    (txn,) = be.wait_messages(1)
    assert txn.xforward.get("ADDR", "").upper() in ("IPV6:2001:DB8::77", "2001:DB8::77"), txn.xforward


BAD = {
    "missing header, SMTP instead": b"EHLO client.example\r\n",
    "v1 bad address": b"PROXY TCP4 203.0.113.999 192.0.2.1 40000 25\r\n",
    "v1 family mismatch": b"PROXY TCP4 2001:db8::1 192.0.2.1 40000 25\r\n",
    "v1 bad port": b"PROXY TCP4 203.0.113.9 192.0.2.1 70000 25\r\n",
    "v1 unknown protocol": b"PROXY UDP4 203.0.113.9 192.0.2.1 40000 25\r\n",
    "v1 missing fields": b"PROXY TCP4 203.0.113.9\r\n",
    "v1 bare LF": b"PROXY TCP4 203.0.113.9 192.0.2.1 40000 25\n",
    "v1 too long": b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
    "v2 bad version": V2_SIG + b"\x31\x11\x00\x0c" + bytes(12),
    "v2 bad command": V2_SIG + b"\x2f\x11\x00\x0c" + bytes(12),
    "v2 short address block": V2_SIG + b"\x21\x11\x00\x04" + bytes(4),
    "v2 bad signature": b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x0c" + bytes(12),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_proxy_header_closes_without_banner(pmx, xbackend, name):
    c = proxied(pmx, BAD[name])
    assert c.closed(10), "connection not closed"
    assert bytes(c.received) == b"", "sent %r before closing" % bytes(c.received)
    # The daemon goes on.
    ok = proxied(pmx, v1("203.0.113.20", "192.0.2.1", 40020, 25))
    assert ok.banner().code == 220
    ok.quit()
    assert xbackend.client_conns() == []


def test_proxy_line_on_normal_listener_is_unknown_command(pmx, xbackend):
    c = pmx.connect(i=1)
    assert_reply(c.cmd("PROXY TCP4 203.0.113.9 192.0.2.1 40000 25"), 500, "5.5.2")
    deliver(c)
    s = pmx.session(c)
    check_connect(s["connect"], "127.0.0.1", c.local_port,
                  listener="127.0.0.1:%d" % pmx.listeners[1]["port"], proxy="-")
    (conn,) = xbackend.client_conns()
    assert conn.xclient.get("ADDR") == "127.0.0.1"


def test_ipv6_listener(make_backend, make_mx):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no ::1")
    be = make_backend()
    mx = make_mx(backend=be, listeners=[{"host": "::1"}])
    c = mx.connect()
    deliver(c)
    (txn,) = be.wait_messages(1)
    s = mx.session(c)
    check_connect(s["connect"], "::1", c.local_port, listener="[::1]:%d" % mx.port)
    added_headers(txn, simple_message("proxied"), received=True, client_ip=("IPv6:::1", "::1"))
