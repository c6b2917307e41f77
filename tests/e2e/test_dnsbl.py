# SPDX-License-Identifier: MIT
"""DNSBL / DNSWL checks against a scripted DNS server (dnsserver.py).

mxguard's resolver forwards to the `dns` fixture (dns.servers); the client
address is claimed with a PROXY v1 header.  At connect every list in
`dnsbl` is asked (A, the reversed address under the zone, all lists at
once); a list whose answer matches its `codes` (any 127/8 address without
codes; never 127.255.255.252-255, the operator error codes) adds its
symbol scored with its weight; when the listed weights sum to at least
`dnsbl_threshold`, every RCPT of the session gets 550 5.7.1.  Negative
answers, SERVFAIL and timeouts count as not listed.
"""

import itertools
import re
import time

import pytest

from helpers import RCPT, SENDER, added_headers, assert_reply, check_spam_headers, check_txn
from helpers import simple_message, split_headers, v1
from smtp import Client

IP = "203.0.113.7"
REV = "7.113.0.203"  # IP reversed, by hand

_ports = itertools.count(40100)

NO_QUERY = (
    "no query reached the test DNS server; note that libunbound answers every "
    "name under test. itself (NXDOMAIN, its default local-zone \"test.\" static) "
    "unless that zone is removed (ub_ctx_zone_remove) or made transparent"
)


def bl(zone, weight, symbol, codes=None):
    """One `dnsbl` list entry."""
    d = {"zone": zone, "weight": float(weight)}
    if codes is not None:
        d["codes"] = codes
    d["symbol"] = symbol
    return d


@pytest.fixture
def start(make_mx, dns):
    """start(lists, threshold=None, timeout=2.0, backend=None, extra=None)
    -> an mxguard with one PROXY listener whose resolver forwards to `dns`
    (dns.timeout = timeout; extra: more config overrides)."""

    def start(lists, threshold=None, timeout=2.0, backend=None, extra=None):
        config = {
            "dns": {"servers": [dns.address], "timeout": float(timeout)},
            "dnsbl": tuple(lists),
        }
        config.update(extra or {})
        if threshold is not None:
            config["dnsbl_threshold"] = float(threshold)
        mx = make_mx(backend=backend, config=config, listeners=[{"proxy_protocol": True}])
        mx.dns = dns
        return mx

    return start


def connect_as(mx, ip, port=None):
    """A client whose PROXY v1 header claims ip; the banner is read.
    Returns (client, claimed source port)."""
    port = next(_ports) if port is None else port
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(ip, "2001:db8::25" if ":" in ip else "192.0.2.1", port, 25))
    assert_reply(c.banner(), 220)
    return c, port


def deliver(mx, backend, ip, subject, required=None):
    """One whole accepted transaction from ip.  Returns (spam header dict
    from check_spam_headers, the txn log record).  required: actions.tag
    as X-Spam-Status shows it, when not the default 5.0."""
    c, port = connect_as(mx, ip)
    assert_reply(c.ehlo("client.example"), 250)
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
    _, final = c.data(simple_message(subject))
    assert final is not None and final.code == 250, final
    assert_reply(c.quit(), 221)
    tag = ("Subject: %s\r\n" % subject).encode()
    backend.wait_for(
        lambda b: any(t.data_raw is not None and tag in t.data_raw for c_ in b.conns for t in c_.transactions),
        what="message %r" % subject,
    )
    (txn,) = [t for t in backend.messages() if tag in t.data]
    if required is None:
        client_ip = ("IPv6:" + ip, ip) if ":" in ip else ip
        fields = added_headers(txn, simple_message(subject), received=True, client_ip=client_ip)
        st = check_spam_headers(fields)
    else:
        added, rest = split_headers(txn.data)
        assert rest == simple_message(subject), txn.data
        st = check_spam_headers({n: f.decode() for n, f in added}, required=required)
    s = mx.session(port=port)
    assert len(s["txns"]) == 1, s
    assert mx.dns.queries, NO_QUERY
    rec = check_txn(s["txns"][0], result=("accept", "tag"))
    return st, rec


def symbols(rec):
    return [] if rec["symbols"] == "-" else rec["symbols"].split(",")


def assert_scored(st, rec, syms, score):
    """X-Spam-Status tests= and the txn log symbols= are exactly syms (any
    order), score= both equal score."""
    assert sorted(st["tests"]) == sorted(syms), st
    assert st["score"] == pytest.approx(score), st
    assert sorted(symbols(rec)) == sorted(syms), rec
    assert float(rec["score"]) == pytest.approx(score), rec


def blocked(mx, backend, ip, zone, nrcpt_tries=2):
    """A session from ip: EHLO and MAIL pass, every RCPT (also in a second
    transaction) is 550 5.7.1 naming ip and zone; nothing reaches the
    backend's RCPT/DATA.  Returns the session's txn log records."""
    c, port = connect_as(mx, ip)
    assert_reply(c.ehlo("client.example"), 250)
    want = r"^550 5\.7\.1 Service unavailable; client \[%s\] blocked using %s(?:$|[^\w.])" % (
        re.escape(ip), re.escape(zone))
    for n in range(2):
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        for i in range(nrcpt_tries):
            r = c.cmd("RCPT TO:<user%d@test.example>" % i)
            assert_reply(r, 550, "5.7.1")
            assert re.search(want, r.lines[-1]), "reply %r does not match %r" % (r, want)
        r, final = c.data(simple_message("blocked"))
        assert r.code >= 500 and final is None, (r, final)
        if n == 0:
            assert_reply(c.cmd("RSET"), 250)
    assert_reply(c.quit(), 221)
    s = mx.session(port=port)
    assert len(s["txns"]) == 2, s
    assert mx.dns.queries, NO_QUERY
    for rec in s["txns"]:
        check_txn(rec, result="reject", stage="rcpt")
    assert backend.messages() == []
    assert not [x for x in backend.all_commands() if re.match(r"(RCPT|DATA)\b", x, re.I)], backend.conns
    return s["txns"]


# -- listed / not listed ---------------------------------------------------------


def test_listed_adds_symbol_and_score(start, dns, backend):
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    mx = start([bl("bl.test", 3.0, "RBL_BL", codes="127.0.0.[2..11]")])
    st, rec = deliver(mx, backend, IP, "listed")
    assert_scored(st, rec, ["RBL_BL"], 3.0)
    assert not st["spam"]
    assert dns.count(REV + ".bl.test", "A") >= 1, dns.queries


def test_not_listed_no_symbol(start, dns, backend):
    # The control for the test above: same config, no record (NXDOMAIN).
    mx = start([bl("bl.test", 3.0, "RBL_BL", codes="127.0.0.[2..11]")], threshold=3.0)
    st, rec = deliver(mx, backend, IP, "clean")
    assert_scored(st, rec, [], 0.0)
    assert dns.count(REV + ".bl.test", "A") >= 1, dns.queries


def test_over_threshold_rejects_every_rcpt(start, dns, backend):
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    mx = start([bl("bl.test", 3.0, "RBL_BL", codes="127.0.0.[2..11]")], threshold=3.0)
    txns = blocked(mx, backend, IP, "bl.test")
    for rec in txns:
        assert "RBL_BL" in symbols(rec), rec
    # The daemon goes on: another address is not blocked.
    st, rec = deliver(mx, backend, "203.0.113.8", "other client")
    assert_scored(st, rec, [], 0.0)


def test_under_threshold_accepted_with_symbol(start, dns, backend):
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    mx = start([bl("bl.test", 1.0, "RBL_BL")], threshold=3.0)
    st, rec = deliver(mx, backend, IP, "under threshold")
    assert_scored(st, rec, ["RBL_BL"], 1.0)


def test_weights_add_up_to_threshold(start, dns, backend):
    dns.add(REV + ".one.test", "A", "127.0.0.2")
    dns.add(REV + ".two.test", "A", "127.0.0.3")
    mx = start([bl("one.test", 1.5, "RBL_ONE"), bl("two.test", 1.5, "RBL_TWO")], threshold=3.0)
    txns = blocked(mx, backend, IP, "one.test")
    assert sorted(symbols(txns[0])) == ["RBL_ONE", "RBL_TWO"], txns[0]


def test_reject_names_first_listed_positive_list_in_config_order(start, dns, backend):
    # Config order: unlisted black, a listed white, then zz before aa; zz
    # answers last (so neither alphabetical order nor the order the
    # answers come in can pass by luck).
    for z in ("wl.test", "zz.test", "aa.test"):
        dns.add("%s.%s" % (REV, z), "A", "127.0.0.2")
    dns.delay(REV + ".zz.test", 0.3)
    mx = start(
        [
            bl("first.test", 5.0, "RBL_FIRST"),
            bl("wl.test", -1.0, "DNSWL_WL"),
            bl("zz.test", 2.0, "RBL_ZZ"),
            bl("aa.test", 2.0, "RBL_AA"),
        ],
        threshold=3.0,
    )
    txns = blocked(mx, backend, IP, "zz.test")
    assert sorted(symbols(txns[0])) == ["DNSWL_WL", "RBL_AA", "RBL_ZZ"], txns[0]


def test_whitelist_cancels_blacklist(start, dns, backend):
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    dns.add(REV + ".wl.test", "A", "127.0.10.2")
    mx = start([bl("bl.test", 3.0, "RBL_BL"), bl("wl.test", -5.0, "DNSWL_WL")], threshold=3.0)
    st, rec = deliver(mx, backend, IP, "whitelisted")
    assert_scored(st, rec, ["DNSWL_WL", "RBL_BL"], -2.0)
    assert dns.count(REV + ".wl.test", "A") >= 1


def test_no_threshold_never_rejects(start, dns, backend):
    dns.add(REV + ".one.test", "A", "127.0.0.2")
    dns.add(REV + ".two.test", "A", "127.0.0.2")
    # 4.0: over any threshold one might default to, under actions.tag.
    mx = start([bl("one.test", 2.0, "RBL_ONE"), bl("two.test", 2.0, "RBL_TWO")])
    st, rec = deliver(mx, backend, IP, "no threshold")
    assert_scored(st, rec, ["RBL_ONE", "RBL_TWO"], 4.0)
    assert not st["spam"]


def test_no_threshold_never_rejects_whatever_the_weight(start, dns, backend):
    # Scores far from the actions, so only a DNSBL reject could refuse it.
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    mx = start([bl("bl.test", 100.0, "RBL_BL")],
               extra={"actions": {"tag": 500.0, "tempfail": 600.0, "reject": 700.0}})
    st, rec = deliver(mx, backend, IP, "heavy weight", required="500.0")
    assert st["tests"] == ["RBL_BL"] and st["score"] == 100.0, st
    check_txn(rec, result="accept", symbols="RBL_BL", score="100.0")


def test_no_threshold_score_reaches_tag(start, dns, backend):
    # Without a threshold the weight is just score: 6.0 >= actions.tag
    # (5.0) marks the message, it is still delivered.
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    mx = start([bl("bl.test", 6.0, "RBL_BL")])
    st, rec = deliver(mx, backend, IP, "tagged")
    assert_scored(st, rec, ["RBL_BL"], 6.0)
    assert st["spam"]
    assert rec["result"] == "tag", rec


# -- return codes ------------------------------------------------------------------

CODES = [
    # (codes, answer addresses, listed)
    ("127.0.0.[2..11]", ["127.0.0.2"], True),
    ("127.0.0.[2..11]", ["127.0.0.11"], True),
    ("127.0.0.[2..11]", ["127.0.0.12"], False),
    ("127.0.0.[2..11]", ["127.0.0.1"], False),
    ("127.0.0.[2..11]", ["127.0.0.20", "127.0.0.4"], True),
    ("127.0.0.[2;4;10..11]", ["127.0.0.3"], False),
    ("127.0.0.[2;4;10..11]", ["127.0.0.4"], True),
    ("127.0.0.[2;4;10..11]", ["127.0.0.10"], True),
    ("127.0.0.2,127.0.1.[3..5]", ["127.0.1.4"], True),
    ("127.0.0.2,127.0.1.[3..5]", ["127.0.1.2"], False),
    ("127.0.0.2,127.0.1.[3..5]", ["127.0.0.2"], True),
    ("127.[0..1].0.2", ["127.1.0.2"], True),
    ("127.[0..1].0.2", ["127.2.0.2"], False),
    (None, ["127.0.0.20"], True),
    (None, ["127.1.2.3"], True),
    (None, ["10.0.0.2"], False),
]


@pytest.mark.parametrize("codes,answer,listed", CODES,
                         ids=["%s=%s" % (c[0], "+".join(c[1])) for c in CODES])
def test_return_codes(start, dns, backend, codes, answer, listed):
    for a in answer:
        dns.add(REV + ".bl.test", "A", a)
    mx = start([bl("bl.test", 2.0, "RBL_BL", codes=codes)], threshold=3.0)
    st, rec = deliver(mx, backend, IP, "codes")
    if listed:
        assert_scored(st, rec, ["RBL_BL"], 2.0)
    else:
        assert_scored(st, rec, [], 0.0)
    assert dns.count(REV + ".bl.test", "A") >= 1


def test_code_outside_codes_does_not_block(start, dns, backend):
    dns.add(REV + ".bl.test", "A", "127.0.0.20")
    mx = start([bl("bl.test", 3.0, "RBL_BL", codes="127.0.0.[2..11]")], threshold=3.0)
    st, rec = deliver(mx, backend, IP, "outside codes")
    assert_scored(st, rec, [], 0.0)
    assert dns.count(REV + ".bl.test", "A") >= 1


@pytest.mark.parametrize("code", ["127.255.255.252", "127.255.255.253", "127.255.255.254",
                                  "127.255.255.255"])
@pytest.mark.parametrize("codes", [None, "127.255.255.[0..255]"], ids=["no codes", "codes match"])
def test_operator_error_code_not_counted(start, dns, backend, code, codes):
    from mxguard import free_port
    from test_metrics import parse, scrape, value
    port = free_port()
    dns.add(REV + ".bl.test", "A", code)
    mx = start([bl("bl.test", 3.0, "RBL_BL", codes=codes)], threshold=3.0,
               extra={"metrics": {"address": "127.0.0.1:%d" % port}})
    st, rec = deliver(mx, backend, IP, "operator error")
    assert_scored(st, rec, [], 0.0)
    mx.wait_log(r"warning:(?=.*operator error)(?=.*\bbl\.test\b)", timeout=5)
    # ... and counted, by zone.
    m = parse(scrape(port))
    assert value(m, "mxguard_dnsbl_operator_errors_total", zone="bl.test") == 1


# -- address forms -------------------------------------------------------------------

V6 = [
    ("2001:db8::1",
     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"),
    ("2001:db8:1234:5678:9abc:def0:1:2",
     "2.0.0.0.1.0.0.0.0.f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.8.b.d.0.1.0.0.2"),
]


@pytest.mark.parametrize("ip,nibbles", V6, ids=[v[0] for v in V6])
def test_ipv6_nibble_query(start, dns, backend, ip, nibbles):
    name = nibbles + ".bl.test"
    dns.add(name, "A", "127.0.0.2")
    mx = start([bl("bl.test", 2.0, "RBL_BL")], threshold=3.0)
    st, rec = deliver(mx, backend, ip, "ipv6")
    assert {q for q in dns.queries if q[1] == "A"} == {(name, "A")}, dns.queries
    assert_scored(st, rec, ["RBL_BL"], 2.0)


def test_ipv4_query_name(start, dns, backend):
    mx = start([bl("bl.test", 2.0, "RBL_BL")], threshold=3.0)
    deliver(mx, backend, "192.0.2.45", "ipv4 name")
    assert {q for q in dns.queries if q[1] == "A"} == {("45.2.0.192.bl.test", "A")}, dns.queries


def test_rfc5782_test_points(start, dns, backend):
    dns.add("2.0.0.127.bl.test", "A", "127.0.0.2")
    dns.add("2.0.0.127.bl.test", "TXT", "test point")
    mx = start([bl("bl.test", 3.0, "RBL_BL", codes="127.0.0.[2..11]")], threshold=3.0)
    blocked(mx, backend, "127.0.0.2", "bl.test")
    st, rec = deliver(mx, backend, "127.0.0.1", "rfc5782 127.0.0.1")
    assert_scored(st, rec, [], 0.0)
    assert dns.count("2.0.0.127.bl.test", "A") >= 1
    assert dns.count("1.0.0.127.bl.test", "A") >= 1


# -- failures never block ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["nxdomain", "nodata", "servfail"])
def test_negative_and_failed_answers_do_not_count(start, dns, backend, how):
    name = REV + ".bl.test"
    dns.add(name, "TXT", "a TXT only, so NODATA for A")
    getattr(dns, how)(name)
    mx = start([bl("bl.test", 3.0, "RBL_BL")], threshold=3.0)
    st, rec = deliver(mx, backend, IP, how)
    assert_scored(st, rec, [], 0.0)
    assert dns.count(name, "A") >= 1


def test_timeout_does_not_count(start, dns, backend):
    name = REV + ".bl.test"
    dns.drop(name)
    mx = start([bl("bl.test", 3.0, "RBL_BL")], threshold=3.0, timeout=1.0)
    st, rec = deliver(mx, backend, IP, "timeout")
    assert_scored(st, rec, [], 0.0)
    assert dns.count(name, "A") >= 1


def test_lists_queried_in_parallel(start, dns, backend):
    # Both names are dropped: the session still completes (the two
    # timeouts run side by side) and both were asked, the second before
    # any retransmission of the first (one after the other, the resolver
    # would retry the first name before it gives up and asks the second).
    dns.drop(REV + ".one.test")
    dns.drop(REV + ".two.test")
    mx = start([bl("one.test", 3.0, "RBL_ONE"), bl("two.test", 3.0, "RBL_TWO")],
               threshold=3.0, timeout=1.0)
    st, rec = deliver(mx, backend, IP, "parallel")
    assert_scored(st, rec, [], 0.0)
    assert dns.count(REV + ".one.test", "A") >= 1, dns.queries
    assert dns.count(REV + ".two.test", "A") >= 1, dns.queries
    assert set(dns.queries[:2]) == {(REV + ".one.test", "A"), (REV + ".two.test", "A")}, dns.queries


def test_timeout_of_one_list_keeps_the_others(start, dns, backend):
    dns.drop(REV + ".slow.test")
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    mx = start([bl("slow.test", 3.0, "RBL_SLOW"), bl("bl.test", 1.0, "RBL_BL")],
               threshold=3.0, timeout=1.0)
    st, rec = deliver(mx, backend, IP, "one slow list")
    assert_scored(st, rec, ["RBL_BL"], 1.0)
    assert dns.count(REV + ".slow.test", "A") >= 1, dns.queries


# -- cache -----------------------------------------------------------------------------


def test_positive_answer_cached(start, dns, backend):
    name = REV + ".bl.test"
    dns.add(name, "A", "127.0.0.2", ttl=300)
    mx = start([bl("bl.test", 1.0, "RBL_BL")], threshold=3.0)
    for i in range(3):
        st, rec = deliver(mx, backend, IP, "cached %d" % i)
        assert_scored(st, rec, ["RBL_BL"], 1.0)
    assert dns.count(name, "A") == 1, dns.queries


def test_negative_answer_cached(start, dns, backend):
    name = REV + ".bl.test"  # no record: NXDOMAIN with SOA (minimum 300)
    mx = start([bl("bl.test", 1.0, "RBL_BL")], threshold=3.0)
    for i in range(3):
        st, rec = deliver(mx, backend, IP, "neg cached %d" % i)
        assert_scored(st, rec, [], 0.0)
    assert dns.count(name, "A") == 1, dns.queries


def test_cache_is_per_name(start, dns, backend):
    # The control for the cache tests: another address is asked anew.
    dns.add(REV + ".bl.test", "A", "127.0.0.2")
    mx = start([bl("bl.test", 1.0, "RBL_BL")], threshold=3.0)
    st, _ = deliver(mx, backend, IP, "first")
    assert st["tests"] == ["RBL_BL"]
    st, _ = deliver(mx, backend, "203.0.113.8", "second")
    assert st["tests"] == []
    assert dns.count(REV + ".bl.test", "A") == 1
    assert dns.count("8.113.0.203.bl.test", "A") == 1


# -- sessions and lookups ------------------------------------------------------------


@pytest.mark.parametrize("how", ["drop", "delay"])
@pytest.mark.parametrize("leave", ["quit", "close"])
def test_client_leaves_while_lookups_pending(start, dns, backend, how, leave):
    # The session ends with its queries in flight; their answer (delay)
    # or timeout (drop) comes later, for a session that is gone.  The
    # daemon goes on and stops cleanly (teardown checks exit 0, and ASan
    # reports with $ASAN).
    name = REV + ".bl.test"
    dns.add(name, "A", "127.0.0.2")
    if how == "drop":
        dns.drop(name)
    else:
        dns.delay(name, 0.5)
    mx = start([bl("bl.test", 3.0, "RBL_BL")], threshold=3.0, timeout=1.0)
    c = Client(mx.port)
    mx.clients.append(c)
    c.send(v1(IP, "192.0.2.1", next(_ports), 25))
    if leave == "quit":
        c.send(b"QUIT\r\n")
    c.close()
    dns.wait_query(name, "A", timeout=10)
    time.sleep(1.5)  # past the answer / the timeout (a bounded pause, no assertion)
    st, rec = deliver(mx, backend, "203.0.113.8", "after")
    assert_scored(st, rec, [], 0.0)
    assert mx.alive()


def test_concurrent_sessions(start, dns, backend):
    # Many sessions with lookups in flight at once; each gets its own
    # answer.
    ips = ["203.0.113.%d" % i for i in range(10, 22)]
    for i, ip in enumerate(ips):
        if i % 2 == 0:
            dns.add("%s.bl.test" % ".".join(reversed(ip.split("."))), "A", "127.0.0.2")
    mx = start([bl("bl.test", 3.0, "RBL_BL")], threshold=3.0)
    clients = [connect_as(mx, ip) for ip in ips]
    for (c, port), ip in zip(clients, ips):
        assert_reply(c.ehlo("client.example"), 250)
        assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    for i, ((c, port), ip) in enumerate(zip(clients, ips)):
        r = c.cmd("RCPT TO:<%s>" % RCPT)
        if i % 2 == 0:
            assert_reply(r, 550, "5.7.1", text=r"client \[%s\] blocked using bl\.test" % re.escape(ip))
        else:
            assert_reply(r, 250)
        c.quit()
    for i, ((c, port), ip) in enumerate(zip(clients, ips)):
        s = mx.session(port=port)
        (rec,) = s["txns"]
        if i % 2 == 0:
            check_txn(rec, result="reject", stage="rcpt", symbols="RBL_BL")
        else:
            check_txn(rec, symbols="-")
    assert backend.messages() == []
