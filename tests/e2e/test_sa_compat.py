# SPDX-License-Identifier: MIT
"""SpamAssassin's own rule files, loaded by mxguard, against SpamAssassin
itself (Debian's `spamassassin`, installed by `make test`).

Both read the same rule directory.  For every message of sa_corpus/, the
rules SpamAssassin (`spamassassin -L -t`: local tests, score set 0) reports
must be the ones `mxguard check` reports, among the rules mxguard can
evaluate: those it loaded that are not metas naming a skipped rule
(`mxguard check --list-rules` says "complete").  Left out, by design:

  - eval: tests (Perl code: HTML_MESSAGE, NO_RELAYS, MIME_QP_LONG_LINE,
    ...) and metas that name them, directly or through other metas: mxguard
    disables those, as SpamAssassin disables metas whose dependencies are
    undefined;
  - header rules on X-Spam-Relays-* (SpamAssassin's parse of the Received
    chain, e.g. RCVD_ILLEGAL_IP): mxguard does not build those pseudo-
    headers and skips the rules as an unsupported form;
  - the few ReplaceTags rules (__FILL_THIS_FORM_LONG1, ...) whose expanded
    pattern exceeds PCRE2's compiled-size limit (Debian builds libpcre2
    with a 2-byte link size): skipped as an unsupported form.

KNOWN_DIFFERENCES lists a comparable rule where the two still differ, and
why; it is empty: on this corpus they agree.
"""

import glob
import json
import os
import re
import shutil
import subprocess

import pytest

from mxguard import binary

CORPUS = os.path.join(os.path.dirname(__file__), "sa_corpus")

KNOWN_DIFFERENCES = {}


def sa_rules_dir():
    """The rule directory SpamAssassin uses: sa-update's if it ran, else
    the package's."""
    updates = sorted(glob.glob("/var/lib/spamassassin/*/updates_spamassassin_org"))
    if updates and glob.glob(os.path.join(updates[-1], "*.cf")):
        return updates[-1]
    return "/usr/share/spamassassin"


@pytest.fixture(scope="module")
def sa_conf(tmp_path_factory):
    if shutil.which("spamassassin") is None:
        pytest.fail("spamassassin is not installed (scripts/install-deps.sh installs it)")
    d = tmp_path_factory.mktemp("sa")
    (d / "spool").mkdir()
    conf = d / "mx.conf"
    conf.write_text(
        'backend = "127.0.0.1:1";\n'
        'listen = ( { address = "127.0.0.1:1"; mode = "mx"; } );\n'
        'spool = { dir = "%s"; };\n'
        'rules = [ "%s/*.cf" ];\n' % (d / "spool", sa_rules_dir())
    )
    return str(conf), d


def run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600, **kw)


def test_sa_rules_load_with_counts(sa_conf):
    conf, _ = sa_conf
    p = run([binary(), "-t", "-c", conf])
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode() + out
    m = re.search(r"rules: (\d+) rules loaded \((.*?)\).*; (\d+) skipped \((.*?)\)", out)
    assert m, out
    print(out)  # the counts, for the record (pytest -s)
    loaded = dict((k, int(v)) for k, v in (x.rsplit(" ", 1) for x in m.group(2).split(", ")))
    assert int(m.group(1)) > 1000
    for t in ("header", "body", "rawbody", "uri", "full", "meta"):
        assert loaded.get(t, 0) > 0, (t, out)
    skipped = dict((k, int(v)) for k, v in (x.rsplit(" ", 1) for x in m.group(4).split(", ")))
    assert skipped.get("eval", 0) > 0, out


def sa_hits(conf_dir, msgs):
    """spamassassin -L -t on each message, all at once: {path: set}."""
    home = conf_dir / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home))
    procs = {}
    for m in msgs:
        procs[m] = subprocess.Popen(
            ["spamassassin", "-L", "-t", "-x", "--configpath=" + sa_rules_dir()],
            stdin=open(m, "rb"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    out = {}
    for m, p in procs.items():
        text = p.communicate(timeout=600)[0].decode("utf-8", "replace")
        st = re.search(r"^X-Spam-Status: .*?tests=(.*?)\s+autolearn=", text, re.S | re.M)
        assert st, "no X-Spam-Status from spamassassin for %s:\n%s" % (m, text[:2000])
        out[m] = set(re.sub(r"\s+", "", st.group(1)).split(",")) - {"none", ""}
    return out


def test_sa_hits_match(sa_conf):
    conf, d = sa_conf
    p = run([binary(), "check", "-c", conf, "--list-rules"])
    assert p.returncode == 0, p.stderr
    comparable = set()
    for line in p.stdout.decode().splitlines():
        name, typ, _score, state = line.split("\t")
        if state == "complete" and typ != "builtin":
            comparable.add(name)
    msgs = sorted(glob.glob(os.path.join(CORPUS, "*.eml")))
    assert len(msgs) >= 8
    sa = sa_hits(d, msgs)
    p = run([binary(), "check", "-c", conf, "--json"] + msgs)
    assert p.returncode in (0, 1, 2, 3), p.stderr
    mx = {r["file"]: {s["name"] for s in r["symbols"]} for r in json.loads(p.stdout)}
    problems = []
    seen_hits = 0
    for m in msgs:
        want = sa[m] & comparable
        got = mx[m] & comparable
        seen_hits += len(want)
        for rule in sorted(want ^ got):
            if rule in KNOWN_DIFFERENCES:
                continue
            problems.append(
                "%s: %s hit by %s only"
                % (os.path.basename(m), rule, "SpamAssassin" if rule in want else "mxguard")
            )
    assert not problems, "\n".join(problems)
    # The comparison compares something: many rules hit on the corpus.
    assert seen_hits >= 30, seen_hits
