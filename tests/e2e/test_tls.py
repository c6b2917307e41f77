# SPDX-License-Identifier: MIT
"""STARTTLS (RFC 3207) and implicit TLS (RFC 8314) on the client side, with
a certificate made at test time by `openssl req` and Python's ssl client:
the advertisement, the state reset after the handshake, plaintext pipelined
after STARTTLS never executed (CVE-2011-0411), tls.required, implicit
listeners, the protocol range, the TLS facts in the log and in the Received
header the backend gets, and handshakes that fail or never finish."""

import re
import socket
import ssl

import pytest

from helpers import RCPT, SENDER, assert_reply, check_txn, simple_message, self_signed_cert
from mxguard import check_config
from smtp import Client, ServerClosed, tls_client_context


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = self_signed_cert(d, "mx.test")
    return {"cert": crt, "key": key}


def tls_listener(cert, **kw):
    t = dict(cert)
    t.update(kw)
    return {"tls": t}


@pytest.fixture
def tmx(make_mx, cert):
    return make_mx(listeners=[tls_listener(cert)])


def caps(reply):
    return [l[4:] for l in reply.lines[1:]]


def starttls(c, **ctx):
    r = c.cmd("STARTTLS")
    assert r.lines == ["220 2.0.0 Ready to start TLS"], r
    c.start_tls(tls_client_context(**ctx) if ctx else None)
    return c


def deliver(c, subject="tls"):
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message(subject))
    assert final.code == 250, final


def test_starttls_delivery(tmx, backend):
    c = tmx.connect()
    r = c.ehlo()
    assert "STARTTLS" in caps(r), r
    starttls(c)
    version = c.sock.version()
    cipher = c.sock.cipher()[0]
    # RFC 3207 4.2: the client's EHLO is forgotten...
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 503, "5.5.1")
    # ...and STARTTLS is no longer offered, nor accepted.
    r = c.ehlo()
    assert "STARTTLS" not in caps(r), r
    assert_reply(c.cmd("STARTTLS"), 554, "5.5.1")
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("over tls"))
    assert final.code == 250, final
    c.quit()
    (txn,) = backend.messages()
    head = txn.data.split(b"\r\n\r\n", 1)[0].decode()
    m = re.search(r"Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n"
                  r"\t\(using (\S+) with cipher (\S+) \((\d+)/(\d+) bits\)\)\r\n"
                  r"\tby mx\.test \(mxguard\) with ESMTPS id ", head)
    assert m, head
    assert (m.group(1), m.group(2)) == (version, cipher)
    s = tmx.session(c)
    (t,) = s["txns"]
    check_txn(t, result="accept", tls=version)
    assert tmx.wait_log(r"%s tls version=%s cipher=%s bits=\d+ implicit=no"
                        % (s["sid"], re.escape(version), re.escape(cipher)))


def test_xclient_backend_still_gets_tls_received(make_backend, make_mx, cert):
    be = make_backend(xclient=True)
    mx = make_mx(backend=be, listeners=[tls_listener(cert)])
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    starttls(c)
    deliver(c)
    c.quit()
    (txn,) = be.messages()
    assert re.search(rb"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)\r\n\tby mx\.test "
                     rb"\(mxguard\) with ESMTPS id", txn.data), txn.data[:600]
    assert any(cmd.startswith("XCLIENT") for cmd in be.all_commands())


def test_plain_listener_has_no_starttls(mx):
    c = mx.connect()
    assert "STARTTLS" not in caps(c.ehlo())
    assert_reply(c.cmd("STARTTLS"), 502, "5.5.1")
    assert_reply(c.cmd("NOOP"), 250)


def test_starttls_refused_in_transaction_and_with_arguments(tmx):
    c = tmx.connect()
    assert_reply(c.ehlo(), 250)
    assert_reply(c.cmd("STARTTLS now"), 501)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("STARTTLS"), 503, "5.5.1")
    assert_reply(c.cmd("RSET"), 250)
    starttls(c)
    deliver(c)


@pytest.mark.parametrize("injected", ["RSET", "MAIL FROM:<injected@evil.test>", "QUIT"])
def test_plaintext_after_starttls_is_discarded(tmx, backend, injected):
    # CVE-2011-0411: the command rides in the same packet as STARTTLS; it
    # must neither be answered in the clear (that would break the
    # handshake) nor run after it (an extra reply, or a MAIL in progress).
    c = tmx.connect()
    assert_reply(c.ehlo(), 250)
    c.send(b"STARTTLS\r\n" + injected.encode() + b"\r\n")
    r = c.reply()
    assert r.lines == ["220 2.0.0 Ready to start TLS"], r
    c.start_tls()
    assert_reply(c.cmd("NOOP"), 250, "2.0.0")
    assert_reply(c.ehlo(), 250)
    # A MAIL now is not "nested": no injected one is in progress.
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message("after injection"))
    assert final.code == 250, final
    r = c.quit()
    assert r.code == 221, r
    assert not any("injected" in cmd for cmd in backend.all_commands())
    assert tmx.wait_log(r"discarded %d bytes pipelined after STARTTLS" % (len(injected) + 2))


def test_required_tls(make_mx, cert, backend):
    mx = make_mx(listeners=[tls_listener(cert, required=True)])
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    assert r.lines == ["530 5.7.0 Must issue a STARTTLS command first"], r
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 503, "5.5.1")
    assert not [x for x in backend.all_commands() if x.startswith(("MAIL", "RCPT"))]
    starttls(c)
    deliver(c)
    c.quit()
    assert len(backend.messages()) == 1


def test_implicit_tls(make_mx, cert, backend):
    mx = make_mx(listeners=[tls_listener(cert, implicit=True), {}])
    c = Client(mx.port)
    mx.clients.append(c)
    c.start_tls()
    assert c.banner().lines == ["220 mx.test ESMTP mxguard"]
    r = c.ehlo()
    assert "STARTTLS" not in caps(r), r
    assert_reply(c.cmd("STARTTLS"), 554, "5.5.1")
    deliver(c, "implicit")
    c.quit()
    (txn,) = backend.messages()
    assert b"with ESMTPS id" in txn.data
    s = mx.session(c)
    check_txn(s["txns"][0], result="accept", tls=c.sock.version())
    assert mx.wait_log(r"%s tls version=\S+ cipher=\S+ bits=\d+ implicit=yes" % s["sid"])
    # The plain listener beside it stays plain.
    p = mx.connect(i=1)
    assert "STARTTLS" not in caps(p.ehlo())


def test_protocols_setting(make_mx, cert, backend):
    mx = make_mx(listeners=[tls_listener(cert, protocols=["TLSv1.2"])])
    c = mx.connect()
    assert_reply(c.ehlo(), 250)
    starttls(c)
    assert c.sock.version() == "TLSv1.2"
    deliver(c)
    c.quit()
    check_txn(mx.session(c)["txns"][0], tls="TLSv1.2")
    # A client that insists on TLS 1.3 cannot connect; the daemon lives on.
    c2 = mx.connect()
    assert_reply(c2.ehlo(), 250)
    assert c2.cmd("STARTTLS").code == 220
    port2 = c2.local_port
    with pytest.raises((ssl.SSLError, OSError)):
        c2.start_tls(tls_client_context(minimum=ssl.TLSVersion.TLSv1_3))
    assert mx.wait_log(r"tls handshake failed client=\[127\.0\.0\.1\]:%d reason=" % port2)
    c3 = mx.connect()
    assert_reply(c3.ehlo(), 250)


def test_handshake_garbage_and_eof(tmx, backend):
    # Plaintext where the ClientHello should be.
    c = tmx.connect()
    assert_reply(c.ehlo(), 250)
    assert c.cmd("STARTTLS").code == 220
    c.send(b"EHLO plain.example\r\nMAIL FROM:<x@y.test>\r\n")
    assert c.closed()
    assert not c.buf, c.buf
    # A client that goes away in the middle of the handshake.
    c2 = tmx.connect()
    assert_reply(c2.ehlo(), 250)
    assert c2.cmd("STARTTLS").code == 220
    c2.send(b"\x16\x03\x01\x00\x80\x01")  # a ClientHello cut short
    c2.sock.shutdown(socket.SHUT_WR)
    assert c2.closed()
    assert tmx.wait_log(r"tls handshake failed client=\[127\.0\.0\.1\]:%d" % c.local_port)
    assert tmx.wait_log(r"tls handshake failed client=\[127\.0\.0\.1\]:%d" % c2.local_port)
    tmx.wait_record("disconnect", count=2, reason="tls")
    assert not [x for x in backend.all_commands() if x.startswith(("MAIL", "RCPT"))]
    # Still serving.
    c3 = tmx.connect()
    starttls(c3)
    deliver(c3)


def test_handshake_timeout(make_mx, cert):
    mx = make_mx(listeners=[tls_listener(cert, implicit=True)], config={"timeouts": {"command": 1}})
    c = Client(mx.port)
    mx.clients.append(c)
    assert c.closed(timeout=15)
    assert c.buf == b""
    assert mx.wait_log(r"tls handshake timed out client=\[127\.0\.0\.1\]:%d" % c.local_port)


def test_implicit_listener_with_plaintext_client(make_mx, cert):
    mx = make_mx(listeners=[tls_listener(cert, implicit=True)])
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(b"EHLO plain.example\r\n")
    assert c.closed()
    # Nothing in the clear, not even a banner.
    assert not c.buf.startswith(b"220"), c.buf
    assert mx.wait_log(r"tls handshake failed client=\[127\.0\.0\.1\]:%d" % c.local_port)


def test_many_handshakes_then_stop(make_mx, cert, backend):
    # Sessions left in every TLS state when the daemon stops: the teardown
    # checks a clean exit (and, under ASan, no leak).
    mx = make_mx(listeners=[tls_listener(cert)])
    left = []
    for i in range(4):
        c = mx.connect()
        assert_reply(c.ehlo(), 250)
        assert c.cmd("STARTTLS").code == 220
        if i % 2:
            c.start_tls()
            assert_reply(c.ehlo(), 250)
        left.append(c)


@pytest.mark.parametrize(
    "tls,message",
    [
        ({"key": "KEY"}, r'missing required setting "cert"'),
        ({"cert": "CERT"}, r'missing required setting "key"'),
        ({"cert": "CERT", "key": "KEY", "protocols": ["TLSv1"]}, r'"TLSv1" is not one of'),
        ({"cert": "CERT", "key": "KEY", "protocols": []}, r"tls protocols is empty"),
        ({"cert": "CERT", "key": "KEY", "ciphers": "NOPE-NOTHING"}, r'tls ciphers "NOPE-NOTHING"'),
        ({"cert": "/nonexistent.pem", "key": "KEY"}, r'tls cert "/nonexistent.pem"'),
        ({"cert": "CERT", "key": "CERT"}, r'tls key "'),
        ({"cert": "CERT", "key": "KEY", "implicit": True, "required": True}, r"required makes no sense"),
        ({"cert": "CERT", "key": "KEY", "verify": True}, r'unknown setting "verify" in tls'),
    ],
)
def test_tls_config_errors(make_mx, cert, tls, message):
    t = {k: (cert["cert"] if v == "CERT" else cert["key"] if v == "KEY" else v) for k, v in tls.items()}
    mx = make_mx(listeners=[{"tls": t}], start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1, out
    assert out.startswith(mx.conf_path + ":"), out
    assert re.search(message, out), out


def test_tls_config_ok(make_mx, cert):
    mx = make_mx(listeners=[tls_listener(cert, protocols=["TLSv1.2", "TLSv1.3"], ciphers="HIGH:!aNULL")],
                 start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 0, out


class _BioClient:
    """A TLS client over a MemoryBIO pair, so the PROXY header and the
    ClientHello leave in one write."""

    def __init__(self, port, header):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.local_port = self.sock.getsockname()[1]
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = tls_client_context().wrap_bio(self.inc, self.out)
        self.buf = b""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.sock.sendall(header + self.out.read())
        for _ in range(100):  # bounded: a handshake is a few round trips
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pump(self):
        self._flush()
        data = self.sock.recv(65536)
        if not data:
            raise ServerClosed("closed")
        self.inc.write(data)

    def line(self):
        for _ in range(100):
            if b"\r\n" in self.buf:
                l, self.buf = self.buf.split(b"\r\n", 1)
                return l.decode()
            try:
                self.buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pump()
        raise AssertionError("no line")

    def cmd(self, text):
        self.obj.write(text.encode() + b"\r\n")
        self._flush()
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines


def test_implicit_tls_behind_proxy_protocol(make_mx, cert, backend):
    from helpers import v1

    mx = make_mx(listeners=[dict(tls_listener(cert, implicit=True), proxy_protocol=True)])
    c = _BioClient(mx.port, v1("203.0.113.44", "192.0.2.1", 42044, 465))
    try:
        assert c.line() == "220 mx.test ESMTP mxguard"
        assert c.cmd("EHLO client.example")[0] == "250-mx.test"
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[0].startswith("250")
        assert c.cmd("QUIT")[0].startswith("221")
    finally:
        c.sock.close()
    s = mx.session(port=42044)
    assert s["connect"]["client"] == "[203.0.113.44]:42044"
    assert mx.wait_log(r"%s tls version=\S+ cipher=\S+ bits=\d+ implicit=yes" % s["sid"])
