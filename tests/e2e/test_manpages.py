# SPDX-License-Identifier: MIT
"""The man pages in contrib/man/ against the code.

mxguard.conf(5) must document every key the parser accepts.  The keys are
found in proxy/config*.c, in every array

    static const char *const NAME[] = { "a", "b", ..., NULL };

(so a new config_*.c file or a new group is picked up without touching this
test).  An array is a list of KEYS when it is px_known_keys (the top-level
keys) or is passed to px_cfg_check_keys(); px_future_keys (accepted and
ignored) is left out; every other such array holds the VALUES of an
enumerated setting (px_cfg_pick).  Values are also taken from the parser's
error messages of the form `X must be "a", "b" or "c"`.

The page's convention:
  - a key is documented by a .TP item whose tag line starts with `.B key`
    (or .BR/.BI, or `\\fBkey`); members of a group are nested under the
    group's item with .RS/.RE;
  - an enumerated value is written quoted in the text: \\(dqvalue\\(dq (or a
    plain "value" in a text line);
  - the keys of px_future_keys are named, bold, in the section
    "KEYS ACCEPTED AND IGNORED", and nothing else is.

Each default that px_config_defaults() or a px_cfg_*_defaults() sets to a
literal must be the "default VALUE" of its item (GROUP.KEY: the KEY item
nested in the GROUP item).

mxguard(8) must name every command of `mxguard ctl` (px_ctl_usage and the
words px_ctl_main dispatches on), and both pages must render without a
warning.  When the binary is built, the EXAMPLE of mxguard.conf(5) must pass
`mxguard -t`.
"""

import os
import re
import shutil
import subprocess

import pytest

from mxguard import binary

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROXY = os.path.join(REPO, "proxy")
CONF5 = os.path.join(REPO, "contrib", "man", "mxguard.conf.5")
MAN8 = os.path.join(REPO, "contrib", "man", "mxguard.8")
IGNORED = "px_future_keys"

# --- C sources -------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<comment>//[^\n]*|/\*.*?\*/)
      | (?P<pre>\#[^\n]*)
      | (?P<str>"(?:[^"\\\n]|\\.)*")
      | (?P<chr>'(?:[^'\\\n]|\\.)*')
      | (?P<id>[A-Za-z_]\w*)
      | (?P<num>\d[\w.]*)
      | (?P<punct>.)""",
    re.S | re.X,
)


def _unescape(lit):
    return bytes(lit[1:-1], "ascii").decode("unicode_escape")


def tokens(path):
    """C tokens of path as (kind, text, function): adjacent string literals
    merged and decoded; function numbers each top-level { } block, so
    names local to one function can be told apart."""
    out, depth, func = [], 0, 0
    with open(path, encoding="utf-8") as f:
        src = f.read()
    for m in _TOKEN.finditer(src):
        kind, text = m.lastgroup, m.group()
        if kind in ("ws", "comment", "pre", "chr"):
            continue
        if kind == "str":
            text = _unescape(text)
            if out and out[-1][0] == "str":
                out[-1] = ("str", out[-1][1] + text, out[-1][2])
                continue
        if text == "{":
            if depth == 0:
                func += 1
            depth += 1
        out.append((kind, text, func if depth > 0 or text == "}" else 0))
        if text == "}":
            depth -= 1
    return out


def string_arrays(toks):
    """[(name, [strings], function or 0 for file scope)]."""
    found = []
    head = ["static", "const", "char", "*", "const"]
    for i in range(len(toks) - 10):
        if [t[1] for t in toks[i:i + 5]] != head:
            continue
        name = toks[i + 5][1]
        if [t[1] for t in toks[i + 6:i + 10]] != ["[", "]", "=", "{"]:
            continue
        values, j = [], i + 10
        while toks[j][1] != "}":
            if toks[j][0] == "str":
                values.append(toks[j][1])
            j += 1
        found.append((name, values, toks[i][2]))
    return found


def call_args(toks, fn):
    """For each call fn(...): (function number, [argument token lists])."""
    calls = []
    for i, t in enumerate(toks):
        if t[1] != fn or i + 1 >= len(toks) or toks[i + 1][1] != "(":
            continue
        if i > 0 and toks[i - 1][0] == "id" and toks[i - 1][1] in ("int", "bool", "void"):
            continue  # the definition or a prototype
        args, cur, depth, j = [], [], 0, i + 2
        while True:
            x = toks[j][1]
            if x in "([{":
                depth += 1
            elif x in ")]}":
                if depth == 0:
                    break
                depth -= 1
            if x == "," and depth == 0:
                args.append(cur)
                cur = []
            else:
                cur.append(toks[j][1])
            j += 1
        args.append(cur)
        calls.append((t[2], args))
    return calls


def config_sources():
    files = sorted(f for f in os.listdir(PROXY) if re.match(r"config.*\.c$", f))
    assert files, "no proxy/config*.c"
    return [os.path.join(PROXY, f) for f in files]


def parser_names():
    """(keys, values, ignored): {name: [where]} for each kind."""
    keys, values, ignored = {}, {}, {}
    for path in config_sources():
        toks = tokens(path)
        short = os.path.relpath(path, REPO)
        checked = {(fn, a[-1][0]) for fn, a in call_args(toks, "px_cfg_check_keys")
                   if len(a[-1]) == 1}
        listed = {a[1][0] for fn, a in call_args(toks, "px_in_list")
                  if len(a) == 2 and len(a[1]) == 1}
        for name, strings, fn in string_arrays(toks):
            where = "%s: %s[]" % (short, name)
            if name == IGNORED:
                target = ignored
            elif (fn, name) in checked or (fn == 0 and any(n == name for _, n in checked)) \
                    or (fn == 0 and name in listed):
                target = keys
            else:
                target = values
            for s in strings:
                target.setdefault(s, []).append(where)
        # `mode must be "mx" or "submission"`
        for kind, text, _ in toks:
            if kind != "str":
                continue
            for m in re.finditer(r'must be ((?:"[^"]+"(?:, | or )?)+)', text):
                for v in re.findall(r'"([^"]+)"', m.group(1)):
                    values.setdefault(v, []).append("%s: %s" % (short, text))
    return keys, values, ignored


# --- roff ------------------------------------------------------------------

_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")


def plain(text):
    """roff source to searchable text: escapes for quotes, dashes and fonts
    undone, macro names and argument quotes dropped."""
    out = []
    for line in text.splitlines():
        if line.startswith('.\\"') or line.startswith("'\\\""):
            continue
        if line.startswith("."):
            parts = line.split(None, 1)
            line = parts[1].replace('"', "") if len(parts) > 1 else ""
        line = line.replace("\\(dq", '"').replace("\\-", "-").replace("\\e", "\\")
        line = line.replace("\\&", "").replace("\\c", "")
        out.append(_FONT.sub("", line))
    return re.sub(r"\s+", " ", " ".join(out))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def tp_tags(text):
    """Names in bold at the start of every .TP tag line."""
    tags, lines = set(), text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != ".TP":
            continue
        for tag in lines[i + 1:]:
            if not tag.startswith('.\\"'):
                break
        m = re.match(r'\.B[RI]?\s+"?([A-Za-z0-9_]+)', tag) or \
            re.match(r"\\fB([A-Za-z0-9_]+)", tag)
        if m:
            tags.add(m.group(1))
    return tags


def section(text, title):
    m = re.search(r"^\.SH \"?%s\"?\n(.*?)(?=^\.SH |\Z)" % re.escape(title), text, re.S | re.M)
    assert m, "no section .SH %s" % title
    return m.group(1)


# --- the tests -----------------------------------------------------------------


def test_scan_finds_the_parser():
    keys, values, ignored = parser_names()
    # The scan must see the core of each kind, or it checks nothing.
    for k in ("hostname", "listen", "message_size", "zone", "delay", "per", "address"):
        assert k in keys, "key %r not found by the scan: fix the test" % k
    for v in ("client_ip", "recipients", "mx", "submission", "tempfail", "helo", "reject"):
        assert v in values, "value %r not found by the scan: fix the test" % v
    assert "dnswl" in ignored and "dnswl" not in keys
    assert "dmarc" in keys and "dmarc" not in ignored


def test_conf5_documents_every_key():
    keys, _, _ = parser_names()
    documented = tp_tags(read(CONF5))
    missing = sorted(k for k in keys if k not in documented)
    assert not missing, (
        "keys the parser accepts but contrib/man/mxguard.conf.5 does not "
        "document (add a .TP item whose tag line is `.B key`):\n" +
        "\n".join("  %s  (%s)" % (k, ", ".join(keys[k])) for k in missing))


def test_conf5_documents_every_value():
    _, values, _ = parser_names()
    text = plain(read(CONF5))
    missing = []
    for v, where in sorted(values.items()):
        want = '"' + v[:-3] if v.endswith("...") else '"%s"' % v
        if want not in text:
            missing.append("  %s  (%s)" % (want, where[0]))
    assert not missing, (
        "enumerated values the parser accepts but contrib/man/mxguard.conf.5 "
        "does not mention quoted (\\(dqvalue\\(dq):\n" + "\n".join(missing))


def test_conf5_lists_the_ignored_keys():
    keys, _, ignored = parser_names()
    sect = section(read(CONF5), "KEYS ACCEPTED AND IGNORED")
    named = set(re.findall(r"^\.BR?\s+([A-Za-z0-9_]+)", sect, re.M))
    assert named == set(ignored), (
        "KEYS ACCEPTED AND IGNORED must name exactly px_future_keys: "
        "missing %s, extra %s" % (sorted(set(ignored) - named), sorted(named - set(ignored))))
    top = {k for k, where in keys.items() if any("px_known_keys" in w for w in where)}
    both = sorted(set(ignored) & top)
    assert not both, "top-level keys both known and ignored: %s" % both


def ctl_commands():
    """(phrases, alternatives, first): the command phrases of px_ctl_usage
    ("greylist whitelist add"), their alternatives ("client|sender|...")
    and the first words px_ctl_main dispatches on (`strcmp(argv[0], ...)`,
    which also finds commands the usage text forgets)."""
    toks = tokens(os.path.join(PROXY, "control.c"))
    usage = None
    for i, t in enumerate(toks):
        if t[1] == "px_ctl_usage" and toks[i + 1][1] == "(" and toks[i + 3][1] == ")" \
                and toks[i + 4][1] == "{":
            usage = next(x[1] for x in toks[i:] if x[0] == "str")
            break
    assert usage, "px_ctl_usage not found in proxy/control.c"
    phrases, alternatives, first = [], set(), set()
    for line in usage.splitlines():
        if not line.startswith("  "):
            continue
        phrase = []
        for w in line.split():
            if not re.match(r"^[a-z|]+$", w):
                break
            if "|" in w:
                alternatives.update(w.split("|"))
                break
            phrase.append(w)
        phrases.append(" ".join(phrase))
        first.add(phrase[0])
    assert len(phrases) >= 5, "px_ctl_usage: %r" % usage
    start = next(i for i, t in enumerate(toks)
                 if t[1] == "px_ctl_main" and toks[i - 1][1] == "int")
    main_fn = next(t[2] for t in toks[start:] if t[1] == "{")
    for fn, args in call_args(toks, "strcmp"):
        if fn == main_fn and args[0] == ["argv", "[", "0", "]"] and len(args[1]) == 1:
            first.add(args[1][0])
    return phrases, alternatives, first


def test_man8_names_every_ctl_command():
    phrases, alternatives, first = ctl_commands()
    sect = section(read(MAN8), "CONTROL COMMANDS")
    text, tags = plain(sect), tp_tags(sect)
    missing = [p for p in phrases if p not in text]
    missing += [w for w in sorted(alternatives) if not re.search(r"\b%s\b" % w, text)]
    missing += ["%s (as a .TP item)" % w for w in sorted(first) if w not in tags]
    assert not missing, ("`mxguard ctl` commands missing from CONTROL COMMANDS in "
                         "contrib/man/mxguard.8: %s" % missing)


# Defaults: `cfg->GROUP.KEY = VALUE;` in px_config_defaults() and every
# px_cfg_*_defaults(), against "default VALUE" in the item of GROUP/KEY.
# Fields not named like their key, and keys whose default depends on the
# group being present:
FIELD_KEYS = {"pregreet_score": "pregreet.score", "store_timeout": "timeouts.store"}
DEFAULT_SKIP = {"greylist.enabled", "reputation.enabled"}  # "true when the group is present"


def code_defaults():
    """{"limits.message_size": 52428800, "spool.dir": "/var/...", ...} for
    every default that is a literal (enums are left out)."""
    out = {}
    for path in config_sources():
        src = read(path)
        for m in re.finditer(r"^(px_config_defaults|px_cfg_\w*_defaults)\(.*?^}", src,
                             re.S | re.M):
            for field, expr in re.findall(r"cfg->([\w.]+)\s*=\s*([^;]+);", m.group(0)):
                field = FIELD_KEYS.get(field, field)
                expr = expr.strip()
                s = re.match(r'^px_strdup\("((?:[^"\\]|\\.)*)"\)$', expr)
                if s:
                    out[field] = s.group(1)
                elif expr in ("true", "false"):
                    out[field] = expr == "true"
                else:
                    expr = re.sub(r"(\d)[uUlL]+\b", r"\1", expr)
                    if re.fullmatch(r"[-\d\s.*+()<]+", expr):
                        out[field] = eval(expr)  # literal arithmetic: 2 * 86400, 1 << 20
    return out


def conf5_items():
    """{"limits.message_size": body text, ...}: each .TP item by its path
    (nested under .RS/.RE), with its text up to the next item or block."""
    items, stack, depth, cur = {}, [], 0, None
    lines = read(CONF5).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        word = line.split()[0] if line.strip() else ""
        if word == ".TP" and i + 1 < len(lines):
            tag = lines[i + 1]
            m = re.match(r'\.B[RI]?\s+"?([A-Za-z0-9_]+)', tag)
            if m:
                stack = stack[:depth] + [m.group(1)]
                cur = ".".join(stack)
                items[cur] = []
                i += 2
                continue
        if word in (".RS", ".RE", ".SH", ".SS", ".TP"):
            depth += {".RS": 1, ".RE": -1}.get(word, 0)
            cur = None
        elif cur is not None:
            items[cur].append(line)
        i += 1
    return {k: plain("\n".join(v)) for k, v in items.items()}


def test_conf5_defaults_match_the_code():
    items = conf5_items()
    wrong = []
    for field, value in sorted(code_defaults().items()):
        if field in DEFAULT_SKIP:
            continue
        if field not in items:
            wrong.append("%s: no .TP item at that path (default %r)" % (field, value))
            continue
        body = items[field]
        if isinstance(value, str):
            ok = ('default "%s"' % value) in body
        elif isinstance(value, bool):
            ok = re.search(r"default:? %s\b" % ("true" if value else "false"), body)
        else:
            m = re.search(r"default:? (-?\d+(?:\.\d+)?)", body)
            ok = m and float(m.group(1)) == float(value)
        if not ok:
            wrong.append("%s: the code's default is %r; the page says: %s"
                         % (field, value, body[:120]))
    assert not wrong, "contrib/man/mxguard.conf.5 defaults:\n  " + "\n  ".join(wrong)


def test_pages_name_the_default_config_path():
    m = re.search(r'#define PX_DEFAULT_CONFIG "([^"]+)"', read(os.path.join(PROXY, "main.c")))
    assert m, "PX_DEFAULT_CONFIG not found in proxy/main.c"
    for page in (MAN8, CONF5):
        assert m.group(1) in read(page), "%s does not name %s" % (page, m.group(1))


def render_commands(page):
    cmds = []
    if shutil.which("groff"):
        cmds.append(["groff", "-man", "-ww", "-z", "-Tutf8", page])
    if shutil.which("man"):
        cmds.append(["man", "--warnings", "-l", "-Tutf8", page])
    return cmds


@pytest.mark.parametrize("page", [MAN8, CONF5], ids=["mxguard.8", "mxguard.conf.5"])
def test_page_renders_without_warnings(page):
    cmds = render_commands(page)
    assert cmds, "neither groff nor man found: install groff-base and man-db"
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MANPAGER="cat", PAGER="cat")
    for cmd in cmds:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0 and p.stderr == "", "%s:\n%s" % (" ".join(cmd), p.stderr)
        if "-z" not in cmd:
            assert "mxguard" in p.stdout


def test_conf5_example_loads(tmp_path):
    if not os.path.exists(binary()):
        pytest.skip("mxguard not built (make build)")
    m = re.search(r"^\.SH EXAMPLE\n\.EX\n(.*?)^\.EE", read(CONF5), re.S | re.M)
    assert m, "mxguard.conf.5: no .SH EXAMPLE with an .EX/.EE block"
    example = m.group(1).replace("\\-", "-").replace("\\e", "\\")
    spool = tmp_path / "spool"
    spool.mkdir()
    assert '"/var/spool/mxguard"' in example
    example = example.replace('"/var/spool/mxguard"', '"%s"' % spool)
    conf = tmp_path / "mxguard.conf"
    conf.write_text(example)
    p = subprocess.run([binary(), "-t", "-c", str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, "the EXAMPLE of mxguard.conf.5 does not load:\n" + p.stderr
