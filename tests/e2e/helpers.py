# SPDX-License-Identifier: MIT
"""Shared helpers for the e2e tests: messages, added-header parsing, and
assertions on replies and log records."""

import ipaddress
import random
import os
import re
import subprocess
import struct

from mxguard import SID

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
RFC5322_DATE = (
    r"(?:(?:%s), )?\d{1,2} (?:%s) \d{4} \d\d:\d\d(?::\d\d)? [+-]\d{4}(?: \([^)]*\))?"
    % (DAYS, MONTHS)
)

RCPT = "user@test.example"
SENDER = "sender@client.example"


def simple_message(subject="test", body=b"Hello.\r\n"):
    return (
        b"From: <sender@client.example>\r\n"
        b"To: <user@test.example>\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Message-ID: <" + subject.encode().replace(b" ", b".") + b"@client.example>\r\n"
        b"\r\n" + body
    )


def dotty_8bit_message(size, seed=1, max_line=990):
    """A message of about `size` bytes with 8-bit text, many lines that
    start with dots, and lines that are just "." or ".."; CRLF line ends,
    no bare CR/LF, no NUL.  Deterministic for a seed."""
    rnd = random.Random(seed)
    alphabet = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t"
    lines = [
        b"From: <sender@client.example>",
        b"To: <user@test.example>",
        b"Subject: =?utf-8?q?8bit_dots?=",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b".",
        b"..",
        b"...",
        b". leading dot and space",
        "caf\u00e9 \u00fcber na\u00efve \u65e5\u672c\u8a9e".encode("utf-8"),
    ]
    total = sum(len(l) + 2 for l in lines)
    specials = [b".", b"..", b".x", b"..x", b". ", b"", b"From foo", b"\xff\xfe.", b"...."]
    while total < size:
        k = rnd.random()
        if k < 0.15:
            line = rnd.choice(specials)
        else:
            n = rnd.randint(0, max_line)
            line = bytes(rnd.choice(alphabet) for _ in range(n)) if n < 64 else (
                rnd.randbytes(n).translate(_SAFE)
            )
            if k < 0.35:
                line = b"." + line[: max_line - 1]
        lines.append(line)
        total += len(line) + 2
    lines.append(b"last line")
    return b"\r\n".join(lines) + b"\r\n"


# Map every byte to a safe text byte: no NUL, CR, LF.
_SAFE = bytes(
    (b if b not in (0, 10, 13) else 0x20) for b in range(256)
)


# -- the headers mxguard prepends ---------------------------------------------


def split_headers(data):
    """Split the leading header fields mxguard added (Received, Received-SPF,
    Authentication-Results, X-Spam-*)
    from the rest.  Returns (list of (name, full field bytes)), rest).
    The transaction id field (X-Mxguard-Queue-ID) every passed-on message
    carries is checked here, once, in its place after Received, and left
    out of the list."""
    added = []
    pos = 0
    queue_ids = 0
    for _ in range(20):  # bounded
        m = re.match(rb"X-Mxguard-Queue-ID: [0-9a-f]{16}\.[0-9]+\r\n", data[pos:])
        if m:
            assert queue_ids == 0 and all(n == "Received" for n, _ in added), data[:pos + 64]
            queue_ids += 1
            pos += m.end()
            continue
        m = re.match(rb"(Received|Received-SPF|Authentication-Results|X-Spam-Status|X-Spam-Score|X-Spam-Flag):",
                     data[pos:])
        if not m:
            break
        # A field runs to the CRLF not followed by a fold (SP or HTAB).
        end = pos
        while True:
            i = data.find(b"\r\n", end)
            if i < 0:
                end = len(data)
                break
            end = i + 2
            if end < len(data) and data[end : end + 1] in (b" ", b"\t"):
                continue
            break
        added.append((m.group(1).decode(), data[pos:end]))
        pos = end
    assert queue_ids == 1, data[:200]
    return added, data[pos:]


def queue_id(data):
    """The transaction id in the X-Mxguard-Queue-ID field mxguard added."""
    m = re.search(rb"^X-Mxguard-Queue-ID: (\S+)\r\n", data, re.M)
    assert m, data[:300]
    return m.group(1).decode()


def added_headers(txn, original, received=True, sid_n=None, helo="client.example",
                  client_ip="127.0.0.1", proto="ESMTP"):
    """Check the message a backend got is `original` with mxguard's headers
    on top, in order; returns {name: field text}.  received: whether a
    Received header is expected.  sid_n: the '<sid>.<n>' id it must name."""
    assert txn.data is not None, "backend got no message: %r" % txn
    added, rest = split_headers(txn.data)
    names = [n for n, _ in added]
    assert rest == original, (
        "message body not byte-identical: added=%r; first difference at %d"
        % (names, _first_diff(rest, original))
    )
    exp = (["Received"] if received else []) + ["X-Spam-Status", "X-Spam-Score"]
    fields = {n: f.decode("utf-8", "replace") for n, f in added}
    status = fields.get("X-Spam-Status", "")
    if status.startswith("X-Spam-Status: Yes"):
        exp.append("X-Spam-Flag")
    assert names == exp, "added headers %r, expected %r" % (names, exp)
    if received:
        rx = (
            r"Received: from %s \(\[%s\]\)\r\n\tby mx\.test \(mxguard\) with %s id (%s\.\d+);\r\n\t%s\r\n$"
            % (re.escape(helo), _alt(client_ip), proto, SID, RFC5322_DATE)
        )
        m = re.match(rx, fields["Received"])
        assert m, "Received header %r does not match %r" % (fields["Received"], rx)
        if sid_n is not None:
            assert m.group(1) == sid_n, (m.group(1), sid_n)
    if sid_n is not None:
        assert queue_id(txn.data) == sid_n, (queue_id(txn.data), sid_n)
    check_spam_headers(fields)
    # The raw (wire) form is the same message, dot-stuffed.
    assert txn.data_raw == stuff(txn.data), "backend wire data is not the dot-stuffed message"
    return fields


def _alt(x):
    """A regex for a string or any of a tuple of strings."""
    if isinstance(x, tuple):
        return "(?:" + "|".join(re.escape(v) for v in x) + ")"
    return re.escape(x)


def check_spam_headers(fields, required="5.0"):
    st = fields["X-Spam-Status"]
    m = re.match(
        r"X-Spam-Status: (Yes|No), score=(-?\d+\.\d) required=(-?\d+\.\d) tests=(\S+)\r\n$", st
    )
    assert m, "bad X-Spam-Status %r" % st
    score = float(m.group(2))
    assert m.group(3) == required, st
    sc = fields["X-Spam-Score"]
    assert sc == "X-Spam-Score: %s\r\n" % m.group(2), (sc, st)
    spam = m.group(1) == "Yes"
    assert spam == (score >= float(required)), st
    if spam:
        assert fields.get("X-Spam-Flag") == "X-Spam-Flag: YES\r\n", fields
    else:
        assert "X-Spam-Flag" not in fields
    tests = m.group(4)
    return {"spam": spam, "score": score, "tests": [] if tests == "none" else tests.split(",")}


def spam_status(txn):
    added, _ = split_headers(txn.data)
    fields = {n: f.decode("utf-8", "replace") for n, f in added}
    return fields, fields.get("X-Spam-Status")


def stuff(data):
    out = []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"."):
            line = b"." + line
        out.append(line)
    return b"".join(out)


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# -- replies -----------------------------------------------------------------


def assert_reply(r, code, enhanced=None, text=None):
    """r's code is `code` (int or 'NNN' or a tuple of them); its enhanced code
    starts with `enhanced` (e.g. '4.4.' or '5.6.0'); its last line's text
    matches regex `text`."""
    codes = code if isinstance(code, tuple) else (code,)
    assert r.code in tuple(int(c) for c in codes), "reply %r, expected %r %s" % (r, code, enhanced or "")
    if enhanced is not None:
        alts = enhanced if isinstance(enhanced, tuple) else (enhanced,)
        assert r.enhanced is not None and r.enhanced.startswith(alts), (
            "reply %r, expected enhanced code %s" % (r, " or ".join(alts))
        )
    if text is not None:
        assert re.search(text, r.lines[-1]), "reply %r does not match %r" % (r, text)
    # Every line of a multi-line reply has the same code.
    assert all(l[:3] == r.lines[-1][:3] for l in r.lines), r


# -- log records ---------------------------------------------------------------


def check_connect(rec, client_ip, client_port=None, listener=None, mode="mx", proxy="-"):
    assert re.fullmatch(SID, rec.sid), rec
    c = rec["client"]
    if ":" in client_ip:
        want = "[%s]:" % client_ip
    else:
        want = "[%s]:" % client_ip
    assert c.startswith(want), "client=%s, want %s" % (c, want)
    if client_port is not None:
        assert c == "%s%d" % (want, client_port), rec
    assert re.fullmatch(r"\d+", c[len(want):]), rec
    if listener is not None:
        assert rec["listener"] == listener, rec
    assert rec["mode"] == mode, rec
    if isinstance(proxy, tuple):
        assert rec["proxy"] in proxy, rec
    else:
        assert rec["proxy"] == proxy, rec


TXN_KEYS = ["result", "stage", "reply", "from", "rcpt", "nrcpt", "size", "helo",
            "tls", "score", "symbols", "backend", "checks_ms", "backend_ms", "ms"]


def check_txn(rec, **want):
    """A txn record has every key, in the documented order, ms an integer;
    and each want[key] equals (str), is in (tuple), or matches (re pattern
    given as re.compile) its value."""
    assert rec.kind == "txn" and rec.n is not None, rec
    keys = list(rec.kv)
    order = [k for k in keys if k in TXN_KEYS]
    assert order == [k for k in TXN_KEYS if k in keys], "txn keys out of order: %r" % keys
    missing = [k for k in TXN_KEYS if k not in rec.kv]
    assert not missing, "txn line lacks %r: %s" % (missing, rec)
    assert re.fullmatch(r"\d+", rec["ms"]), rec
    assert re.fullmatch(r"\d+", rec["nrcpt"]), rec
    assert re.fullmatch(r"-|\d+", rec["size"]), rec
    assert rec["result"] in ("accept", "tag", "reject", "tempfail", "abort", "error"), rec
    assert rec["stage"] in ("connect", "helo", "mail", "rcpt", "data", "eom"), rec
    _match_all(rec, want)
    return rec


def check_disconnect(rec, **want):
    assert rec.kind == "disconnect", rec
    for k in ("reason", "txns", "ms"):
        assert k in rec.kv, "disconnect line lacks %s: %s" % (k, rec)
    assert re.fullmatch(r"\d+", rec["ms"]), rec
    assert re.fullmatch(r"\d+", rec["txns"]), rec
    assert rec["reason"] in (
        "quit", "eof", "timeout", "errors", "smuggling", "bdat", "shutdown", "limit", "backend"
    ), rec
    _match_all(rec, want)
    return rec


def _match_all(rec, want):
    for k, v in want.items():
        k = k.rstrip("_")  # from_ -> from
        got = rec.get(k)
        if isinstance(v, tuple):
            assert got in v, "%s=%r, expected one of %r: %s" % (k, got, v, rec)
        elif isinstance(v, re.Pattern):
            assert got is not None and v.fullmatch(got), "%s=%r, expected /%s/: %s" % (
                k, got, v.pattern, rec)
        else:
            assert got == str(v), "%s=%r, expected %r: %s" % (k, got, v, rec)


# -- PROXY protocol headers (haproxy doc/proxy-protocol.txt) -------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src=None, dst=None, sport=0, dport=0, command=1, tlvs=b""):
    """command 1 = PROXY, 0 = LOCAL (then src may be None)."""
    if src is None:
        return V2_SIG + bytes([0x20 | command, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


def self_signed_cert(directory, name="mx.test", san=False):
    """A throwaway EC certificate and key for `name` made with `openssl req`
    in directory; san=True adds subjectAltName=DNS:name (for clients that
    verify the name).  Returns (cert path, key path)."""
    key, crt = os.path.join(str(directory), "key.pem"), os.path.join(str(directory), "cert.pem")
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + name]
    if san:
        argv += ["-addext", "subjectAltName=DNS:" + name]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return crt, key
