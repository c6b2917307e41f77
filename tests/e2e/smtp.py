# SPDX-License-Identifier: MIT
"""A small raw SMTP client for the e2e tests.

Raw sockets, so a test can send any bytes (malformed commands, bare LF,
PROXY headers, pipelined batches).  Every read has a timeout, so nothing
hangs: a missing reply raises socket.timeout (TimeoutError).

  c = Client(port)                 connect (host 127.0.0.1 unless given)
  c.banner()                       read the greeting reply
  c.cmd("EHLO x")                  send a line, read its reply
  c.send(b"...")                   send raw bytes
  c.reply()                        read one (multi-line aware) reply
  c.replies(n)                     read n replies
  c.pipeline(["MAIL ...", ...])    one write, then one reply per line
  c.data(msg)                      DATA; message (dot-stuffed here); replies
  c.closed(timeout)                True when the server closed the socket
"""

import socket
import time

DEFAULT_TIMEOUT = 10.0


class Reply:
    def __init__(self, lines):
        self.lines = lines  # str lines without CRLF, e.g. "250-mx.test"
        self.code = int(lines[-1][:3])

    @property
    def text(self):
        """The text of all lines, joined by \\n, codes stripped."""
        return "\n".join(l[4:] for l in self.lines)

    @property
    def raw(self):
        return "".join(l + "\r\n" for l in self.lines)

    @property
    def enhanced(self):
        """The enhanced status code of the last line, or None."""
        parts = self.lines[-1][4:].split(" ", 1)
        if parts and parts[0].count(".") == 2 and parts[0][0] in "245":
            return parts[0]
        return None

    def startswith(self, s):
        return self.lines[0].startswith(s)

    def __str__(self):
        return "\\r\\n".join(self.lines)

    __repr__ = __str__


def dot_stuff(msg):
    """Dot-stuff a message (bytes with CRLF line ends) and add the end."""
    out = []
    for line in msg.splitlines(keepends=True):
        if line.startswith(b"."):
            line = b"." + line
        out.append(line)
    body = b"".join(out)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


class ServerClosed(Exception):
    pass


def tls_client_context(minimum=None, maximum=None):
    """A TLS client context that checks no certificate (test certs are
    self-signed), optionally limited to a protocol range."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class Client:
    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, connect=True,
                 source=None):
        self.host = host
        self.source = source  # local address to bind, e.g. "127.0.0.2"
        self.port = port
        self.timeout = timeout
        self.buf = b""
        self.sock = None
        self.received = bytearray()  # everything the server sent
        if connect:
            self.connect()

    def connect(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        if self.source:
            self.sock.bind((self.source, 0))
        self.sock.connect((self.host, self.port))
        return self

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # -- TLS -----------------------------------------------------------------

    def start_tls(self, ctx=None, server_hostname=None):
        """Turn the connection into a TLS client (after a 220 to STARTTLS,
        or at once for implicit TLS).  ctx: an ssl.SSLContext, by default
        one that accepts any certificate (the tests make their own)."""
        assert not self.buf, "unread bytes before the TLS handshake: %r" % self.buf
        if ctx is None:
            ctx = tls_client_context()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    # -- sending -----------------------------------------------------------

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self.sock.sendall(data)

    def send_line(self, line):
        if isinstance(line, str):
            line = line.encode("utf-8", "surrogateescape")
        self.send(line + b"\r\n")

    # -- receiving ---------------------------------------------------------

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise ServerClosed(
                "server closed the connection; unread %r" % self.buf
            )
        self.received.extend(data)
        self.buf += data

    def read_line(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply line within %.1fs; have %r" % (timeout, self.buf))
            self._fill(left)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "surrogateescape")

    def reply(self, timeout=None):
        """Read one complete reply (all its lines)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        lines = []
        for _ in range(1000):  # bounded: no reply has more lines
            left = max(0.01, deadline - time.monotonic())
            line = self.read_line(left)
            lines.append(line)
            if len(line) < 3 or not line[:3].isdigit():
                raise AssertionError("malformed reply line %r (after %r)" % (line, lines))
            if len(line) == 3 or line[3] == " ":
                return Reply(lines)
            if line[3] != "-":
                raise AssertionError("malformed reply line %r" % line)
        raise AssertionError("reply with too many lines")

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def banner(self, timeout=None):
        return self.reply(timeout)

    def cmd(self, line, timeout=None):
        self.send_line(line)
        return self.reply(timeout)

    def pipeline(self, lines, timeout=None):
        """Send all lines in one write; read one reply per line."""
        data = b"".join(
            (l.encode("utf-8", "surrogateescape") if isinstance(l, str) else l) + b"\r\n"
            for l in lines
        )
        self.send(data)
        return self.replies(len(lines), timeout)

    def data(self, msg, stuff=True, timeout=None):
        """DATA, then the message; returns (354 reply, final reply).  When
        DATA is not answered 354 returns (reply, None)."""
        r = self.cmd("DATA", timeout)
        if r.code != 354:
            return r, None
        self.send(dot_stuff(msg) if stuff else msg)
        return r, self.reply(timeout)

    def ehlo(self, name="client.example", timeout=None):
        return self.cmd("EHLO " + name, timeout)

    def closed(self, timeout=5.0):
        """Wait (bounded) for the server to close; True when it did.  Any
        bytes read meanwhile are kept in self.buf."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._fill(left)
            except ServerClosed:
                return True
            except (socket.timeout, TimeoutError):
                return False
            except OSError:
                return True

    def quit(self):
        r = self.cmd("QUIT")
        return r


def transaction(c, mail_from, rcpts, msg, helo="client.example"):
    """A whole plain transaction on a fresh (bannered) client; returns the
    list of replies (EHLO, MAIL, RCPT..., DATA, end of data)."""
    out = [c.ehlo(helo), c.cmd("MAIL FROM:<%s>" % mail_from)]
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    d, final = c.data(msg)
    out.append(d)
    if final is not None:
        out.append(final)
    return out
