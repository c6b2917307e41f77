# SPDX-License-Identifier: MIT
"""The status page on the metrics listener: after known traffic (accepted,
tagged, rejected by content, rejected by the backend) /api/stats and
/api/history hold exactly what the txn log lines say; the window of the last
hour moves with the clock; the password guards every path; and a real
browser (headless Chromium) renders the page from that data, showing
hostile senders and replies as text, never as markup, with a screenshot
saved beside the test's files."""

import base64
import collections
import html.parser
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from helpers import assert_reply
from mxguard import free_port

RULES = (
    "body TAGME /tagme/\n"
    "score TAGME 6\n"
    "body REJECTME /rejectme/\n"
    "score REJECTME 20\n"
)
HOSTILE = '"<script>x"@a.example'
BACKEND_REJECT = "550 5.1.1 <b>no such user</b>"


def wait_listening(port):
    # The HTTP listener starts just after the SMTP ones: wait for it.
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "metrics port not listening"
            time.sleep(0.05)


def get(port, path, password=None):
    """-> (status, headers, body bytes)."""
    wait_listening(port)
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if password is not None:
        tok = base64.b64encode(b"ops:" + password.encode()).decode()
        req.add_header("Authorization", "Basic " + tok)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(port, path, password=None):
    status, headers, body = get(port, path, password)
    assert status == 200, (path, status, body)
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    return json.loads(body.decode("utf-8"))


def unlog(v):
    """A log value's text: \\xHH escapes decoded (txnlog.c)."""
    raw = re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), v)
    return raw.encode("latin-1").decode("utf-8", errors="replace")


def message(body):
    return (
        b"From: <sender@client.example>\r\n"
        b"To: <user@test.example>\r\n"
        b"Subject: status page\r\n"
        b"\r\n" + body + b"\r\n"
    )


def send(mx, sender, body, rcpt="user@test.example", code=250):
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % sender), 250)
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if r.code == 250:
        _, final = c.data(message(body))
        assert_reply(final, code)
    else:
        assert_reply(r, code)
    c.quit()


def known_traffic(mx, backend):
    """Five transactions, one session each: accept, tag, two rejected at
    the end of data (one from a hostile address), one refused by the
    backend at RCPT with markup in its reply."""
    backend.override(r"RCPT TO:<nobody@", BACKEND_REJECT)
    send(mx, "alice@good.example", b"plain text")
    send(mx, "bob@tagged.example", b"please tagme")
    send(mx, HOSTILE, b"rejectme now", code=550)
    send(mx, "carol@Spam.Example", b"rejectme too", code=550)
    send(mx, "dave@spam.example", b"", rcpt="nobody@test.example", code=550)
    mx.wait_record("disconnect", count=5)
    backend.wait_messages(2)
    txns = mx.records("txn")
    assert [t["result"] for t in txns] == ["accept", "tag", "reject", "reject", "reject"]
    return txns


def make_status_mx(make_mx, tmp_path, **extra):
    port = free_port()
    rules = tmp_path / "status.rules"
    rules.write_text(RULES)
    metrics = {"address": "127.0.0.1:%d" % port}
    metrics.update(extra)
    mx = make_mx(config={"metrics": metrics, "rules": [str(rules)]})
    return mx, port


def scrape_value(port, name, **labels):
    text = get(port, "/metrics")[2].decode()
    want = name + ("{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
                   if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def test_api_after_known_traffic(make_mx, backend, tmp_path):
    mx, port = make_status_mx(make_mx, tmp_path)
    txns = known_traffic(mx, backend)
    st = api(port, "/api/stats")
    hist = api(port, "/api/history")

    assert st["transactions"] == {"accept": 1, "tag": 1, "reject": 3, "tempfail": 0,
                                  "abort": 0, "error": 0, "other": 0}
    # Each symbol once per transaction, as the log lines list them.
    want = collections.Counter(s for t in txns if t["symbols"] != "-"
                               for s in t["symbols"].split(","))
    assert want["REJECTME"] == 2 and want["TAGME"] == 1
    assert {r["name"]: r["count"] for r in st["top_symbols"]} == dict(want)
    assert st["top_symbols"][0] == {"name": "REJECTME", "count": 2}
    assert st["top_rejected_networks"] == [{"name": "127.0.0.0/24", "count": 3}]
    assert st["top_rejected_domains"] == [{"name": "spam.example", "count": 2},
                                          {"name": "a.example", "count": 1}]
    assert st["connections"] == 0
    # Health: the backend answered in every transaction it saw; no DNS
    # lookups (the tests turn DNS checks off); the store as counted by
    # the metrics.
    be = st["health"]["backend"]
    assert be["state"] == "ok"
    assert be["ok"] == sum(1 for t in txns if t["backend"] != "-") == 3
    assert be["errors"] == 0 and be["last_error"] is None
    assert be["address"] == mx.config["backend"]
    assert st["health"]["dns"]["state"] == "unknown"
    assert st["health"]["dns"]["ok"] == 0
    assert st["health"]["store"]["ok"] == scrape_value(
        port, "mxguard_store_operations_total", result="ok")

    # History: sixty consecutive minutes, the current one last, holding
    # all five transactions.
    minutes = hist["minutes"]
    assert len(minutes) == 60
    assert all(b["start"] - a["start"] == 60 for a, b in zip(minutes, minutes[1:]))
    assert minutes[-1]["start"] <= hist["now"] < minutes[-1]["start"] + 60
    total = collections.Counter()
    for m in minutes:
        total.update(m["counts"])
    assert dict(total) == st["transactions"]

    # The last transactions, newest first, field by field as logged.
    got = hist["transactions"]
    assert len(got) == 5
    for g, t in zip(got, reversed(txns)):
        assert g["id"] == "%s.%d" % (t.sid, t.n)
        assert g["client"] == "127.0.0.1"
        assert "<%s>" % g["from"] == unlog(t["from"])
        assert g["nrcpt"] == int(t["nrcpt"])
        assert g["result"] == t["result"]
        assert g["score"] == float(t["score"])
        assert g["symbols"] == ([] if t["symbols"] == "-" else t["symbols"].split(","))
        assert g["reply"] == (None if t["reply"] == "-" else unlog(t["reply"]))
        assert g["backend"] == (None if t["backend"] == "-" else unlog(t["backend"]))
        assert abs(g["time"] - hist["now"]) < 600
    assert got[2]["from"] == HOSTILE
    assert got[0]["backend"] == BACKEND_REJECT
    assert got[0]["reply"] == BACKEND_REJECT
    assert got[4]["backend"].startswith("250 ")
    # Raw markup never appears in the JSON text itself.
    for path in ("/api/stats", "/api/history"):
        body = get(port, path)[2]
        assert b"<" not in body and b">" not in body, body


def test_backend_failure_shows_in_health(make_mx, backend, tmp_path):
    mx, port = make_status_mx(make_mx, tmp_path)
    send(mx, "alice@good.example", b"plain text")
    backend.stop_listening()
    backend.close_connections()
    c = mx.connect()
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<a@client.example>"), 451, "4.4.1")
    c.quit()
    mx.wait_record("disconnect", count=2)
    be = api(port, "/api/stats")["health"]["backend"]
    assert be["state"] == "failing"
    assert be["ok"] == 1 and be["errors"] == 1
    assert be["last_error_kind"] == "unreachable"
    assert be["last_error"] >= be["last_ok"]


def test_history_window_moves_with_the_clock(make_mx, backend, tmp_path):
    port = free_port()
    mx = make_mx(config={"metrics": {"address": "127.0.0.1:%d" % port},
                         "debug_clock": True}, control=True)
    send(mx, "alice@good.example", b"plain text")
    mx.wait_record("disconnect")
    hist = api(port, "/api/history")
    assert sum(m["counts"]["accept"] for m in hist["minutes"]) == 1
    # An hour and a minute later the chart is empty; the totals and the
    # list of transactions are not windowed.
    mx.advance_clock(3660)
    hist = api(port, "/api/history")
    assert sum(sum(m["counts"].values()) for m in hist["minutes"]) == 0
    assert len(hist["transactions"]) == 1
    assert api(port, "/api/stats")["transactions"]["accept"] == 1
    send(mx, "bob@good.example", b"plain text")
    mx.wait_record("disconnect", count=2)
    hist = api(port, "/api/history")
    assert hist["minutes"][-1]["counts"]["accept"] == 1
    assert sum(sum(m["counts"].values()) for m in hist["minutes"]) == 1


def test_password_guards_every_path(make_mx, backend, tmp_path):
    mx, port = make_status_mx(make_mx, tmp_path, password="s3cret")
    for path in ("/", "/api/stats", "/api/history", "/metrics"):
        status, headers, _ = get(port, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert get(port, path, password="wrong")[0] == 401, path
        assert get(port, path, password="s3cret")[0] == 200, path
    status, headers, body = get(port, "/", password="s3cret")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert body.startswith(b"<!DOCTYPE html>")
    assert api(port, "/api/stats", password="s3cret")["transactions"]["accept"] == 0
    assert get(port, "/api/nope", password="s3cret")[0] == 404
    assert get(port, "/index.php", password="s3cret")[0] == 404


def test_page_is_self_contained(make_mx, backend, tmp_path):
    """No URL to anywhere else: the page works air-gapped."""
    mx, port = make_status_mx(make_mx, tmp_path)
    page = get(port, "/")[2].decode()
    # Data goes in as text only (the page's comment names innerHTML).
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write",
                 "eval(", "new Function"):
        assert sink not in page, sink
    for bad in ("http://", "https://", "//cdn", "<link", "@import", "src="):
        # The SVG namespace is a name, not something fetched.
        assert bad not in page.replace('"http://www.w3.org/2000/svg"', ""), bad


# -- a real browser -------------------------------------------------------------


class Dom(html.parser.HTMLParser):
    """The rendered DOM: every element as (tag, attrs, text inside)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.elements = []

    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": dict(attrs), "text": []}
        self.elements.append(e)
        if tag not in ("meta", "br", "input", "img", "link", "rect", "line"):
            self.stack.append(e)
        else:
            e["text"] = ""

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": ""})

    def handle_endtag(self, tag):
        if tag not in (e["tag"] for e in self.stack):
            return  # the end of a void element (</rect>)
        while self.stack:
            e = self.stack.pop()
            e["text"] = "".join(e["text"])
            if e["tag"] == tag:
                break

    def handle_data(self, data):
        for e in self.stack:
            e["text"].append(data)

    def find(self, tag=None, **attrs):
        out = []
        for e in self.elements:
            if tag is not None and e["tag"] != tag:
                continue
            ok = True
            for k, v in attrs.items():
                k = k.rstrip("_").replace("_", "-")
                have = e["attrs"].get(k) or ""
                if k == "class":
                    ok = ok and v in have.split()
                else:
                    ok = ok and have == v
            if ok:
                out.append(e)
        return out

    def text(self, e):
        return e["text"] if isinstance(e["text"], str) else "".join(e["text"])


def chromium(*args, tmp_path):
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed (scripts/install-deps.sh installs it)"
    cmd = [exe, "--headless", "--disable-gpu", "--no-first-run",
           "--disable-extensions", "--disable-dev-shm-usage",
           "--user-data-dir=%s" % (tmp_path / "chromium-profile"),
           # Chromium refuses its sandbox as root, and CI containers often
           # lack the namespaces it needs; it only loads our own page from
           # loopback here.
           "--no-sandbox"]
    p = subprocess.run(cmd + list(args), capture_output=True, timeout=180,
                       env=dict(os.environ, HOME=str(tmp_path)))
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return p.stdout.decode("utf-8")


def test_page_in_headless_chromium(make_mx, backend, tmp_path):
    mx, port = make_status_mx(make_mx, tmp_path)
    txns = known_traffic(mx, backend)
    url = "http://127.0.0.1:%d/" % port
    wait_listening(port)
    dump = chromium("--virtual-time-budget=10000", "--dump-dom", url, tmp_path=tmp_path)
    (tmp_path / "status-dom.html").write_text(dump)
    dom = Dom()
    dom.feed(dump)
    dom.close()
    body = dom.find("body")[0]
    assert body["attrs"].get("data-loaded") == "yes", dump[-2000:]

    # Verdict counts.
    for v, n in (("accept", 1), ("tag", 1), ("reject", 3), ("tempfail", 0)):
        box = [e for e in dom.elements if e["attrs"].get("id") == "count-" + v]
        assert len(box) == 1, v
        # <span class="n">N</span><span class="l">verdict</span>
        assert dom.text(box[0]) == "%d%s" % (n, v)

    # The transactions table: five rows, newest first, the known senders.
    rows = dom.find("tr", class_="txn")
    assert [r["attrs"]["data-id"] for r in rows] == [
        "%s.%d" % (t.sid, t.n) for t in reversed(txns)]
    froms = [dom.text(e) for e in dom.find("td", class_="from")]
    assert froms == [unlog(t["from"]) for t in reversed(txns)]
    assert "<%s>" % HOSTILE in froms
    verdicts = [dom.text(e) for e in dom.find("td", class_="verdict")]
    assert verdicts == ["reject", "reject", "reject", "tag", "accept"]
    backends = [dom.text(e) for e in dom.find("td", class_="backend")]
    assert backends[0] == BACKEND_REJECT
    symbols = [dom.text(e) for e in dom.find("td", class_="symbols")]
    assert "REJECTME" in symbols[1] and "TAGME" in symbols[3]

    # SECURITY: the hostile strings are text; no element came from them.
    assert len(dom.find("script")) == 1  # the page's own
    assert dom.find("b") == []
    assert "<script>x" not in dump and "<b>no such" not in dump

    # Tops and health.
    domains = [dom.text(e) for e in dom.find("td")
               if dom.text(e) in ("spam.example", "a.example")]
    assert domains[:2] == ["spam.example", "a.example"]
    assert any(dom.text(e) == "127.0.0.0/24" for e in dom.find("td"))
    state = [e for e in dom.elements if e["attrs"].get("id") == "health-backend"]
    assert dom.text(state[0]).startswith("ok")

    # The chart: one bar segment per verdict and minute, five in all.
    rects = [e for e in dom.find("rect") if "data-count" in e["attrs"]]
    assert sum(int(e["attrs"]["data-count"]) for e in rects) == 5
    assert {e["attrs"]["data-verdict"] for e in rects} == {"accept", "tag", "reject"}

    # A screenshot, kept with the test's files.
    shot = tmp_path / "status-page.png"
    chromium("--virtual-time-budget=10000", "--window-size=1280,1400",
             "--hide-scrollbars", "--screenshot=%s" % shot, url, tmp_path=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print("status page screenshot: %s" % shot)


def test_requests_waiting_at_startup_are_served(make_mx, backend, tmp_path):
    """Regression: the metrics port is bound early in startup and its
    thread started before the configuration was made current, so a request
    already waiting was served with no configuration (a NULL dereference,
    seen under ASan as a crash in px_config_ref).  The backend holds its
    banner so startup waits in the probe while the requests queue up."""
    import threading
    backend.fail("connect", "stall", count=1)
    mx, port = make_status_mx(make_mx, tmp_path)
    results = {}

    def fetch(path):
        results[path] = get(port, path)[0]

    threads = [threading.Thread(target=fetch, args=(p,))
               for p in ("/", "/api/stats", "/api/history", "/metrics")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"/": 200, "/api/stats": 200, "/api/history": 200, "/metrics": 200}
    mx.wait_log(r"mxguard 0\.1\.0 started")
