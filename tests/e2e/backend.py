# SPDX-License-Identifier: MIT
"""A scriptable SMTP backend for the e2e tests.

Runs an asyncio server in a background thread of the pytest process and
records exactly what mxguard sends it:

  backend.conns               every connection, in accept order
  conn.raw                    every byte received on it
  conn.commands               the command lines (CRLF stripped), in order
  conn.transactions           one Txn per MAIL, with .mail, .rcpts,
                              .data_raw (as on the wire: still dot-stuffed,
                              without the final ".\\r\\n"), .data (unstuffed),
                              .xforward (attributes sent before it), .reply
                              .bdat_chunks: for a message sent with BDAT
                              (RFC 3030; offer CHUNKING in caps), each
                              chunk as (size, last, bytes); .data and
                              .data_raw are then the chunks joined
  backend.messages()          every Txn whose message arrived completely

Scripting:
  Backend(caps=..., xclient=True | xforward=True, banner=...)
  backend.override(r"RCPT TO:<bad@x>", "550 5.1.1 no such user")
      a regex matched (case-insensitively, from the start) against the
      command line; the special keys "BANNER" and "EOM" replace the banner
      and the reply after the message.  A reply may be multi-line: a list
      of lines or a string with CRLFs.
  backend.fail("rcpt", "drop" | "stall", count=None)
      at a stage ("connect", "ehlo", "helo", "xclient", "xforward", "mail",
      "rcpt", "data", "eom", "rset", ... : the lower-cased verb), close the
      socket without a reply, or never reply.  count limits how many times.
  backend.wait_messages(n, timeout)  bounded wait for n messages.
  backend.bdat_replies = {2: "452 4.3.1 full"}
      the reply to the n-th BDAT chunk of a transaction (1-based); the
      transaction has then failed: later chunks get 503 5.5.1.
  backend.bdat_hold = seconds
      before answering a chunk that is not the last, wait (at most this
      long) for more bytes; txn.bdat_ahead says, per chunk, whether the
      next one came before the reply (a pipelining client) or not.
"""

import asyncio
import itertools
import re
import socket
import threading
import time

DEFAULT_CAPS = [
    "PIPELINING",
    "SIZE 52428800",
    "8BITMIME",
    "ENHANCEDSTATUSCODES",
    "SMTPUTF8",
    "DSN",
]
XCLIENT_CAP = "XCLIENT NAME ADDR PORT PROTO HELO LOGIN"
XFORWARD_CAP = "XFORWARD NAME ADDR PORT PROTO HELO SOURCE"

# The longest line the backend accepts before it gives up on a connection.
MAX_LINE = 64 * 1024 * 1024


def unstuff(raw):
    """Remove SMTP dot-stuffing from a message as sent on the wire."""
    out = []
    for line in raw.splitlines(keepends=True):
        if line.startswith(b"."):
            line = line[1:]
        out.append(line)
    return b"".join(out)


def parse_params(args):
    """'A=1 B=x' -> {'A': '1', 'B': 'x'} (keys upper-cased)."""
    params = {}
    for item in args.split():
        k, _, v = item.partition("=")
        params[k.upper()] = v
    return params


class Txn:
    """One transaction on one backend connection (from MAIL on)."""

    def __init__(self, mail, xforward, xclient):
        self.mail = mail  # the MAIL command line
        self.rcpts = []  # the RCPT command lines, accepted or not
        self.accepted_rcpts = []
        self.xforward = dict(xforward)  # XFORWARD attributes in force
        self.xclient = dict(xclient)  # XCLIENT attributes in force
        self.data_started = False  # DATA got its 354
        self.data_raw = None  # bytes, still dot-stuffed
        self.data = None  # bytes, unstuffed
        self.reply = None  # the reply sent after the message
        self.seq = None  # order of arrival among all messages
        self.queue_id = None
        self.bdat_chunks = []  # (size, last, bytes) per BDAT chunk
        self.bdat_ahead = []  # per held chunk: the next one came first
        self.bdat_failed = False  # a chunk got an error reply

    @property
    def mail_from(self):
        m = re.match(r"MAIL FROM:\s*<([^>]*)>", self.mail, re.I)
        return m.group(1) if m else None

    @property
    def rcpt_addrs(self):
        out = []
        for line in self.rcpts:
            m = re.match(r"RCPT TO:\s*<([^>]*)>", line, re.I)
            out.append(m.group(1) if m else line)
        return out

    def __repr__(self):
        return "Txn(mail=%r, rcpts=%r, data=%s, reply=%r)" % (
            self.mail,
            self.rcpts,
            None if self.data_raw is None else "%d bytes" % len(self.data_raw),
            self.reply,
        )


class Conn:
    """One connection the backend accepted."""

    def __init__(self, n, peer):
        self.n = n
        self.peer = peer
        self.raw = bytearray()
        self.commands = []
        self.transactions = []
        self.helo = []  # EHLO/HELO arguments, in order
        self.xclient = {}  # the last XCLIENT attributes
        self.xclient_lines = []
        self.xforward_lines = []
        self.closed = False
        self.closed_by = None  # "peer" or "us"
        self.tls_version = None  # after STARTTLS: "TLSv1.3"...
        self.tls_error = None  # a failed handshake's exception text
        self.auth_user = None  # after a successful AUTH

    def __repr__(self):
        return "Conn(%d, commands=%r, closed=%r)" % (
            self.n,
            self.commands,
            self.closed,
        )


class _Eof(Exception):
    pass


class Backend:
    def __init__(
        self,
        caps=None,
        xclient=False,
        xforward=False,
        banner="backend.test ESMTP testbackend",
        host="127.0.0.1",
        hostname="backend.test",
        tls=None,
        auth=None,
    ):
        """tls=(certfile, keyfile): offer STARTTLS (before TLS only) and
        do the server side of it.  auth={"user": "password"}: offer AUTH
        PLAIN LOGIN and check against these."""
        self.caps = list(DEFAULT_CAPS if caps is None else caps)
        self.auth = auth
        if auth is not None:
            self.caps.append("AUTH PLAIN LOGIN")
        self._sslctx = None
        if tls is not None:
            import ssl

            self._sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._sslctx.load_cert_chain(tls[0], tls[1])
        if xclient:
            self.caps.append(XCLIENT_CAP)
        if xforward:
            self.caps.append(XFORWARD_CAP)
        self.banner = banner
        self.host = host
        self.hostname = hostname
        self.conns = []
        self._overrides = []  # (compiled regex or special key, reply)
        self._fail = {}  # stage -> [action, remaining or None]
        self.bdat_replies = {}  # chunk number -> reply
        self.bdat_hold = 0.0
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._cv = threading.Condition()
        self._loop = None
        self._server = None
        self._thread = None
        self._writers = set()
        self.port = None

    # -- scripting ---------------------------------------------------------

    def override(self, pattern, reply):
        """Reply `reply` to commands matching `pattern` (see module doc)."""
        if isinstance(reply, (list, tuple)):
            reply = "\r\n".join(reply)
        with self._cv:
            if pattern in ("BANNER", "EOM"):
                self._overrides.insert(0, (pattern, reply))
            else:
                self._overrides.insert(0, (re.compile(pattern, re.I), reply))

    def clear_overrides(self):
        with self._cv:
            self._overrides = []

    def fail(self, stage, action, count=None):
        """Make `stage` "drop" or "stall" (count times, or always)."""
        assert action in ("drop", "stall", None)
        with self._cv:
            if action is None:
                self._fail.pop(stage, None)
            else:
                self._fail[stage] = [action, count]

    def clear_failures(self):
        with self._cv:
            self._fail = {}

    @property
    def address(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    # -- queries -----------------------------------------------------------

    def messages(self):
        """Every transaction whose message was received completely, in the
        order the messages arrived (a pooled backend connection carries the
        messages of several client sessions)."""
        with self._cv:
            return sorted(
                (t for c in self.conns for t in c.transactions if t.data_raw is not None),
                key=lambda t: t.seq,
            )

    def transactions(self):
        with self._cv:
            return [t for c in self.conns for t in c.transactions]

    def all_commands(self):
        with self._cv:
            return [cmd for c in self.conns for cmd in c.commands]

    def client_conns(self):
        """Connections that went further than the EHLO of a probe: those
        that sent anything but EHLO/HELO/QUIT."""
        with self._cv:
            return [
                c
                for c in self.conns
                if any(
                    not re.match(r"(EHLO|HELO|QUIT)\b", cmd, re.I)
                    for cmd in c.commands
                )
            ]

    def wait_messages(self, n, timeout=10.0):
        """Wait until n messages have arrived; returns them (raises on
        timeout)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                msgs = sorted(
                    (t for c in self.conns for t in c.transactions if t.data_raw is not None),
                    key=lambda t: t.seq,
                )
                if len(msgs) >= n:
                    return msgs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        "backend: %d of %d messages after %.1fs; conns=%r"
                        % (len(msgs), n, timeout, self.conns)
                    )
                self._cv.wait(min(left, 0.5))

    def wait_for(self, predicate, timeout=10.0, what="condition"):
        """Wait (bounded) until predicate(backend) is true."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                if predicate(self):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        "backend: %s not met after %.1fs; conns=%r"
                        % (what, timeout, self.conns)
                    )
                self._cv.wait(min(left, 0.2))

    def wait_command(self, regex, timeout=10.0):
        """Wait until some connection received a command matching regex."""
        rx = re.compile(regex, re.I)
        self.wait_for(
            lambda b: any(rx.match(c) for c in b._all_commands_nolock()),
            timeout,
            "command %r" % regex,
        )

    def _all_commands_nolock(self):
        return [cmd for c in self.conns for cmd in c.commands]

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        ready = threading.Event()
        err = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle,
                        host=self.host,
                        port=0,
                        family=fam,
                        limit=MAX_LINE,
                        reuse_address=True,
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except Exception as e:  # pragma: no cover - reported below
                err.append(e)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="backend", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("backend did not start")
        if err:
            raise err[0]
        return self

    def stop_listening(self):
        """Close the listening socket (new connections are refused); open
        connections go on."""

        async def close():
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def close_connections(self):
        """Drop every open connection."""

        async def close():
            for w in list(self._writers):
                w.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def stop(self):
        if self._loop is None:
            return

        async def shutdown():
            self._server.close()
            for w in list(self._writers):
                w.close()
            await asyncio.sleep(0)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    # -- the server --------------------------------------------------------

    def _take_failure(self, stage):
        with self._cv:
            f = self._fail.get(stage)
            if f is None:
                return None
            action, count = f
            if count is not None:
                if count <= 0:
                    return None
                f[1] = count - 1
            return action

    def _find_override(self, key):
        with self._cv:
            for pat, reply in self._overrides:
                if isinstance(pat, str):
                    if pat == key:
                        return reply
                elif key not in ("BANNER", "EOM") and pat.match(key):
                    return reply
        return None

    def _note(self, fn):
        with self._cv:
            fn()
            self._cv.notify_all()

    async def _handle(self, reader, writer):
        peer = writer.get_extra_info("peername")
        with self._cv:
            conn = Conn(len(self.conns), peer)
            self.conns.append(conn)
            self._cv.notify_all()
        self._writers.add(writer)
        try:
            await self._session(conn, reader, writer)
        except (_Eof, ConnectionError, asyncio.IncompleteReadError):
            self._note(lambda: setattr(conn, "closed_by", conn.closed_by or "peer"))
        except asyncio.LimitOverrunError:
            self._note(lambda: setattr(conn, "closed_by", "us"))
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass
            self._note(lambda: setattr(conn, "closed", True))

    async def _readline(self, conn, reader):
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            partial = e.partial
            if partial:
                self._note(lambda: conn.raw.extend(partial))
            raise _Eof()
        self._note(lambda: conn.raw.extend(line))
        return line

    async def _stall(self, conn, reader):
        # Never reply, but keep recording what arrives until the peer goes.
        while True:
            data = await reader.read(65536)
            if not data:
                raise _Eof()
            self._note(lambda: conn.raw.extend(data))

    async def _act(self, conn, reader, writer, stage):
        """Apply a scripted failure; returns True when the caller must not
        reply (never returns for stall; raises _Eof for drop)."""
        action = self._take_failure(stage)
        if action == "drop":
            self._note(lambda: setattr(conn, "closed_by", "us"))
            # SO_LINGER 0 would send a RST; a plain close is a FIN, which
            # is what a crashing MTA's kernel sends.
            writer.close()
            raise _Eof()
        if action == "stall":
            await self._stall(conn, reader)
        return False

    async def _reply(self, writer, text):
        if not text.endswith("\r\n"):
            text += "\r\n"
        writer.write(text.encode("utf-8", "surrogateescape"))
        await writer.drain()

    async def _end_message(self, conn, reader, writer, t, raw, data, reply):
        """The end of a message (the final dot, or BDAT LAST): record it
        (before a scripted failure: the message did arrive), run the "eom"
        script, then answer `reply` or the EOM override or "queued as"."""

        def done():
            t.data_raw = raw
            t.data = data
            t.seq = next(self._seq)

        self._note(done)
        await self._act(conn, reader, writer, "eom")
        qid = "B%08X" % next(self._ids)
        reply = reply or self._find_override("EOM") or ("250 2.0.0 Ok: queued as %s" % qid)

        def fin():
            t.reply = reply
            t.queue_id = qid

        self._note(fin)
        await self._reply(writer, reply)

    async def _auth(self, conn, reader, writer, args):
        """RFC 4954 AUTH with PLAIN (RFC 4616) or LOGIN, checked against
        self.auth; "*" cancels."""
        import base64
        import binascii

        parts = args.split(" ", 1)
        mech = parts[0].upper()
        first = parts[1] if len(parts) > 1 else None

        async def ask(challenge):
            await self._reply(writer, "334 " + challenge)
            line = (await self._readline(conn, reader)).rstrip(b"\r\n").decode("ascii", "replace")
            self._note(lambda: conn.commands.append(line))
            return line

        def b64(text):
            return base64.b64decode(text, validate=True)

        try:
            if mech == "PLAIN":
                resp = first if first is not None else await ask("")
                if resp == "*":
                    return await self._reply(writer, "501 5.7.0 Authentication aborted")
                _, user, pw = b64(resp).split(b"\0", 2)
            elif mech == "LOGIN":
                resp = first if first is not None else await ask("VXNlcm5hbWU6")
                if resp == "*":
                    return await self._reply(writer, "501 5.7.0 Authentication aborted")
                user = b64(resp)
                resp = await ask("UGFzc3dvcmQ6")
                if resp == "*":
                    return await self._reply(writer, "501 5.7.0 Authentication aborted")
                pw = b64(resp)
            else:
                return await self._reply(writer, "504 5.5.4 Unrecognized authentication type")
        except (binascii.Error, ValueError):
            return await self._reply(writer, "501 5.5.2 Cannot decode response")
        u, p = user.decode("utf-8", "replace"), pw.decode("utf-8", "replace")
        if self.auth.get(u) == p:
            self._note(lambda: setattr(conn, "auth_user", u))
            await self._reply(writer, "235 2.7.0 Authentication successful")
        else:
            await self._reply(writer, "535 5.7.8 Error: authentication failed: bad credentials")

    def _ehlo_reply(self, conn=None):
        lines = [self.hostname] + self.caps
        if self._sslctx is not None and conn is not None and conn.tls_version is None:
            lines.append("STARTTLS")
        out = []
        for i, l in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append("250" + sep + l)
        return "\r\n".join(out)

    async def _session(self, conn, reader, writer):
        await self._act(conn, reader, writer, "connect")
        banner = self._find_override("BANNER") or ("220 " + self.banner)
        await self._reply(writer, banner)
        txn = None
        xforward = {}
        greeted = False
        while True:
            rawline = await self._readline(conn, reader)
            line = rawline.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            self._note(lambda: conn.commands.append(line))
            verb = line.split(" ", 1)[0].upper()
            args = line[len(verb) + 1 :] if " " in line else ""
            stage = verb.lower()
            await self._act(conn, reader, writer, stage)
            override = self._find_override(line)

            if verb in ("EHLO", "HELO"):
                self._note(lambda: conn.helo.append(args))
                greeted = True
                txn = None
                reply = override or (
                    self._ehlo_reply(conn) if verb == "EHLO" else "250 " + self.hostname
                )
                await self._reply(writer, reply)
            elif verb == "XCLIENT":
                attrs = parse_params(args)

                def upd():
                    conn.xclient.update(attrs)
                    conn.xclient_lines.append(line)

                self._note(upd)
                if override:
                    await self._reply(writer, override)
                else:
                    # Postfix: XCLIENT resets the session and greets again.
                    greeted = False
                    txn = None
                    await self._reply(writer, "220 " + self.banner)
            elif verb == "XFORWARD":
                attrs = parse_params(args)
                xforward.update(attrs)
                self._note(lambda: conn.xforward_lines.append(line))
                await self._reply(writer, override or "250 2.0.0 Ok")
            elif verb == "MAIL":
                if override:
                    await self._reply(writer, override)
                    if override.startswith("2"):
                        txn = Txn(line, xforward, conn.xclient)
                        self._note(lambda: conn.transactions.append(txn))
                        xforward = {}
                    continue
                if not greeted:
                    await self._reply(writer, "503 5.5.1 Error: send HELO/EHLO first")
                elif txn is not None:
                    await self._reply(writer, "503 5.5.1 Error: nested MAIL command")
                else:
                    txn = Txn(line, xforward, conn.xclient)
                    self._note(lambda: conn.transactions.append(txn))
                    xforward = {}
                    await self._reply(writer, "250 2.1.0 Ok")
            elif verb == "RCPT":
                if txn is None:
                    await self._reply(writer, override or "503 5.5.1 Error: need MAIL command")
                    continue
                reply = override or "250 2.1.5 Ok"
                t = txn

                def add():
                    t.rcpts.append(line)
                    if reply.startswith("2"):
                        t.accepted_rcpts.append(line)

                self._note(add)
                await self._reply(writer, reply)
            elif verb == "DATA":
                if override:
                    await self._reply(writer, override)
                    if not override.startswith("354"):
                        continue
                elif txn is None:
                    await self._reply(writer, "503 5.5.1 Error: need RCPT command")
                    continue
                elif not txn.accepted_rcpts:
                    await self._reply(writer, "554 5.5.1 Error: no valid recipients")
                    continue
                else:
                    await self._reply(writer, "354 End data with <CR><LF>.<CR><LF>")
                t = txn
                if t is None:  # overridden 354 without a transaction
                    t = Txn("", xforward, conn.xclient)
                    self._note(lambda: conn.transactions.append(t))
                self._note(lambda: setattr(t, "data_started", True))
                chunks = []
                while True:
                    dl = await self._readline(conn, reader)
                    # Lenient like a vulnerable MTA: ".\n" also ends it, so
                    # a smuggled message would show up as extra commands.
                    if dl in (b".\r\n", b".\n"):
                        break
                    chunks.append(dl)
                raw = b"".join(chunks)

                await self._end_message(conn, reader, writer, t, raw, unstuff(raw), None)
                txn = None
            elif verb == "BDAT":
                m = re.fullmatch(r"(\d+)( LAST)?", args, re.I)
                if not m:
                    # The chunk's end is unknown: nothing more can be read.
                    await self._reply(writer, "501 5.5.4 Syntax: BDAT size [LAST]")
                    raise _Eof()
                size, last = int(m.group(1)), m.group(2) is not None
                chunk = await reader.readexactly(size)
                self._note(lambda: conn.raw.extend(chunk))
                t = txn
                if t is None or not t.accepted_rcpts or t.bdat_failed:
                    if last:
                        txn = None
                    await self._reply(writer, "503 5.5.1 Error: no transaction for BDAT")
                    continue
                self._note(lambda: t.bdat_chunks.append((size, last, chunk)))
                n = len(t.bdat_chunks)
                if not last and self.bdat_hold > 0:
                    deadline = time.monotonic() + self.bdat_hold
                    while not reader._buffer and time.monotonic() < deadline:
                        await asyncio.sleep(0.005)
                    ahead = bool(reader._buffer)
                    self._note(lambda: t.bdat_ahead.append(ahead))
                reply = self.bdat_replies.get(n) or (override if override else None)
                if reply is not None and not reply.startswith("250"):
                    self._note(lambda: setattr(t, "bdat_failed", True))
                    if last:
                        txn = None
                    await self._reply(writer, reply)
                    continue
                if not last:
                    await self._reply(writer, reply or "250 2.0.0 Ok: %d octets" % size)
                    continue
                raw = b"".join(c[2] for c in t.bdat_chunks)

                await self._end_message(conn, reader, writer, t, raw, raw, reply)
                txn = None
            elif verb == "RSET":
                txn = None
                xforward = {}
                await self._reply(writer, override or "250 2.0.0 Ok")
            elif verb == "NOOP":
                await self._reply(writer, override or "250 2.0.0 Ok")
            elif verb == "AUTH" and self.auth is not None:
                await self._auth(conn, reader, writer, args)
            elif verb == "STARTTLS" and self._sslctx is not None and conn.tls_version is None:
                await self._reply(writer, override or "220 2.0.0 Ready to start TLS")
                if override and not override.startswith("220"):
                    continue
                try:
                    await writer.start_tls(self._sslctx)
                except (OSError, ConnectionError) as e:  # ssl.SSLError is an OSError
                    err = str(e)
                    self._note(lambda: setattr(conn, "tls_error", err))
                    raise _Eof()
                version = writer.get_extra_info("ssl_object").version()
                self._note(lambda: setattr(conn, "tls_version", version))
                # RFC 3207 4.2: the client starts over with EHLO.
                greeted = False
                txn = None
                xforward = {}
            elif verb == "QUIT":
                await self._reply(writer, override or "221 2.0.0 Bye")
                self._note(lambda: setattr(conn, "closed_by", "peer-quit"))
                writer.close()
                return
            else:
                await self._reply(
                    writer, override or "502 5.5.2 Error: command not recognized"
                )
