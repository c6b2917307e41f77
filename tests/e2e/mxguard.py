# SPDX-License-Identifier: MIT
"""Run the real mxguard daemon for the e2e tests.

  mx = Mxguard(workdir, backend="127.0.0.1:PORT", config={...overrides})
  mx.start()                   write the config, start `mxguard -c FILE`
                               (stderr to workdir/mxguard.log), wait
                               (bounded) until every listener is listening
  mx.port, mx.listeners        the listen ports (mx.listeners[i]["port"])
  mx.connect(i=0)              an smtp.Client on listener i (closed at stop)
  mx.log_lines()               stderr so far, as str lines
  mx.wait_log(regex, timeout)  bounded wait for a log line; returns a Match
  mx.reload(config=None)       optionally rewrite the config, then SIGHUP
  mx.stop()                    SIGTERM, bounded wait, kill if needed;
                               asserts exit code 0 and, when $ASAN is set,
                               no sanitizer report in the log
  check_config(path)           `mxguard -t -c FILE` -> (exit code, stderr)
  Mxguard(..., bin=PATH, prefix=[...])  another binary (an installed one),
                               started through a command that execs it

The binary is $MXGUARD_BIN, or <repo>/build/mxguard.
"""

import copy
import itertools
import os
import re
import signal
import socket
import subprocess
import time

import smtp

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def binary():
    return os.environ.get("MXGUARD_BIN") or os.path.join(REPO, "build", "mxguard")


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bind to port 0, close)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


# -- libconfig writer --------------------------------------------------------


class Raw(str):
    """A value written to the config as is (e.g. a deliberately bad one)."""


def _value(v, indent):
    pad = "\t" * indent
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r) else r + ".0"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        inner = "".join(
            "%s\t%s = %s;\n" % (pad, k, _value(x, indent + 1)) for k, x in v.items()
        )
        return "{\n" + inner + pad + "}"
    if isinstance(v, tuple):  # a list of groups: ( {...}, {...} )
        return "(\n" + ",\n".join(pad + "\t" + _value(x, indent + 1) for x in v) + "\n" + pad + ")"
    if isinstance(v, list):  # an array of scalars
        return "[ " + ", ".join(_value(x, indent) for x in v) + " ]"
    raise TypeError("cannot write %r to libconfig" % (v,))


def libconfig(cfg):
    """dict -> libconfig text.  Tuples are lists ( ), lists are arrays [ ];
    a key whose value is None is left out."""
    return "".join(
        "%s = %s;\n" % (k, _value(v, 0)) for k, v in cfg.items() if v is not None
    )


def merge(base, over):
    """Deep-merge dict `over` into a copy of `base`."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def default_config(workdir, backend, port):
    return {
        "hostname": "mx.test",
        "listen": (
            {"address": "127.0.0.1:%d" % port, "mode": "mx", "proxy_protocol": False},
        ),
        "backend": backend,
        "loops": 2,
        "workers": 2,
        "greet_delay": 0,
        "pregreet": {"action": "score"},
        "limits": {
            "message_size": 10485760,
            "recipients": 100,
            "line_length": 2048,
            "connections": 1000,
            "connections_per_ip": 100,
            "errors": 20,
        },
        "timeouts": {
            "command": 300,
            "data_block": 180,
            "data_done": 600,
            "backend": 10,
            "shutdown": 5,
        },
        "spool": {"dir": os.path.join(workdir, "spool"), "memory_max": 1048576},
        "actions": {"tag": 5.0, "tempfail": 10.0, "reject": 15.0},
        # Relay control: the tests mail test.example (helpers.RCPT and
        # friends); a test about relaying brings its own settings.  No
        # relay_networks, so the loopback client is held to the rules an
        # Internet client meets.
        "accepted_domains": ["test.example"],
        # No reverse DNS lookups unless a test asks (with its own DNS
        # server): tests never send DNS traffic off the machine.
        "fcrdns": False,
        # And should any lookup happen anyway, it goes to a dead loopback
        # port, never to /etc/resolv.conf's resolver; a test that wants
        # answers names its own DNS server.
        "dns": {"servers": ["127.0.0.1:9"], "timeout": 1.0},
        # No SPF either, for the same reason: test_spf.py and the
        # Authentication-Results tests turn it on with their DNS server.
        "spf": {"enabled": False},
        # Nor DKIM key lookups: test_dkim.py turns it on.
        "dkim": {"enabled": False},
        # Nor DMARC policy lookups: test_dmarc.py turns it on.
        "dmarc": {"enabled": False},
    }


# -- log parsing -------------------------------------------------------------

SID = r"[0-9a-f]{16}"
_KV = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_kv(text):
    """'a=1 b="x y" c=-' -> {'a': '1', 'b': 'x y', 'c': '-'}"""
    out = {}
    for k, v in _KV.findall(text):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        out[k] = v
    return out


_LOGLINE = re.compile(r"mxguard\[(\d+)\]: (.*)$")


def log_message(line):
    """The message part of a log line (after 'mxguard[pid]: '), or None."""
    m = _LOGLINE.search(line)
    return m.group(2) if m else None


class LogRecord:
    """One session log line: kind is connect / txn / disconnect / spf / dkim /
    dmarc."""

    def __init__(self, sid, n, kind, kv, line):
        self.sid = sid
        self.n = n  # the transaction number for txn lines
        self.kind = kind
        self.kv = kv
        self.line = line

    def __getitem__(self, k):
        return self.kv[k]

    def get(self, k, d=None):
        return self.kv.get(k, d)

    def __repr__(self):
        return self.line


_REC = re.compile(r"^(" + SID + r")(?:\.(\d+))? (connect|txn|disconnect|spf|dkim|dmarc) (.*)$")


def parse_records(lines):
    out = []
    for line in lines:
        msg = log_message(line)
        if msg is None:
            continue
        m = _REC.match(msg)
        if not m:
            continue
        out.append(
            LogRecord(
                m.group(1),
                int(m.group(2)) if m.group(2) else None,
                m.group(3),
                parse_kv(m.group(4)),
                line,
            )
        )
    return out


# -- the daemon ----------------------------------------------------------------


def _listening(port, v6=False):
    """True when something listens on TCP port (from /proc; opens no
    connection, so the daemon logs no probe session)."""
    want = ":%04X" % port
    for path in ("/proc/net/tcp6", "/proc/net/tcp") if v6 else ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def check_config(path, timeout=20):
    """Run `mxguard -t -c path`; returns (exit code, stderr text)."""
    p = subprocess.run(
        [binary(), "-t", "-c", path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    return p.returncode, p.stderr.decode("utf-8", "replace") + p.stdout.decode(
        "utf-8", "replace"
    )


class MxguardError(AssertionError):
    pass


_prefixes = itertools.count(1)


class Mxguard:
    def __init__(self, workdir, backend, config=None, listeners=None, name="mxguard",
                 control=False, bin=None, prefix=None):
        """listeners: a list of dicts like {"mode": "mx", "proxy_protocol":
        True, "host": "::1"}; each gets a free port.  config: overrides
        merged into the default config.  bin: the binary (default
        binary()); prefix: argv before it, a command that execs it (e.g.
        setpriv to run it as another user: the pid stays the daemon's)."""
        self.workdir = str(workdir)
        self.bin = bin or binary()
        self.prefix = list(prefix or [])
        os.makedirs(os.path.join(self.workdir, "spool"), exist_ok=True)
        self.backend = backend
        self.name = name
        self.conf_path = os.path.join(self.workdir, name + ".conf")
        self.log_path = os.path.join(self.workdir, name + ".log")
        self.listeners = []
        for spec in listeners or [{}]:
            spec = dict(spec)
            host = spec.pop("host", "127.0.0.1")
            port = free_port(host)
            addr = ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))
            ent = {"address": addr, "mode": spec.pop("mode", "mx"),
                   "proxy_protocol": spec.pop("proxy_protocol", False)}
            ent.update(spec)
            self.listeners.append({"host": host, "port": port, "entry": ent})
        base = default_config(self.workdir, backend, self.listeners[0]["port"])
        base["listen"] = tuple(l["entry"] for l in self.listeners)
        self.config = merge(base, config)
        if control:
            # A control socket for `mxguard ctl`, and a key prefix of its
            # own so keys of other tests on a shared Redis do not matter.
            self.config["control_socket"] = os.path.join(self.workdir, name + ".sock")
            self.config.setdefault("store_prefix", "%s%d:" % (name, next(_prefixes)))
        self.proc = None
        self.logf = None
        self.clients = []
        self.returncode = None

    @property
    def port(self):
        return self.listeners[0]["port"]

    @property
    def pid(self):
        return self.proc.pid

    def write_config(self, config=None, text=None):
        if text is None:
            text = libconfig(config if config is not None else self.config)
        with open(self.conf_path, "w") as f:
            f.write(text)

    def start(self, timeout=15.0):
        self.write_config()
        self.logf = open(self.log_path, "ab")
        env = dict(os.environ)
        if env.get("ASAN"):
            # Full stacks in leak reports: libevent has no frame pointers,
            # so the fast unwinder stops inside it.
            opts = env.get("ASAN_OPTIONS", "")
            if "fast_unwind_on_malloc" not in opts:
                env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "fast_unwind_on_malloc=0"
        self.proc = subprocess.Popen(
            self.prefix + [self.bin, "-c", self.conf_path],
            stdin=subprocess.DEVNULL,
            stdout=self.logf,
            stderr=self.logf,
            cwd=self.workdir,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise MxguardError(
                    "mxguard exited with %s at start:\n%s"
                    % (self.proc.returncode, self.log_text())
                )
            if all(_listening(l["port"], ":" in l["host"]) for l in self.listeners):
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise MxguardError(
                    "mxguard not listening after %.0fs:\n%s" % (timeout, self.log_text())
                )
            time.sleep(0.02)

    def connect(self, i=0, timeout=smtp.DEFAULT_TIMEOUT, banner=True, source=None):
        """A client on listener i; with banner=True the 220 is read and
        checked."""
        l = self.listeners[i]
        c = smtp.Client(l["port"], host=l["host"], timeout=timeout, source=source)
        self.clients.append(c)
        if banner:
            b = c.banner()
            assert b.code == 220, b
        return c

    # -- log ---------------------------------------------------------------

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def records(self, kind=None, sid=None):
        recs = parse_records(self.log_lines())
        return [r for r in recs if (kind is None or r.kind == kind) and (sid is None or r.sid == sid)]

    def wait_log(self, regex, timeout=10.0, count=1, since=0):
        """Wait until `count` log lines (from line `since` on) match regex;
        returns the Match of the last of them."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            found = []
            for line in self.log_lines()[since:]:
                m = rx.search(line)
                if m:
                    found.append(m)
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                raise MxguardError(
                    "no %d log line(s) matching %r within %.1fs; log:\n%s"
                    % (count, regex, timeout, self.log_text()[-20000:])
                )
            time.sleep(0.05)

    def wait_record(self, kind, timeout=10.0, count=1, pred=None, **kv):
        """Wait for `count` connect/txn/disconnect records whose keys equal
        the given values (and pred(rec) when given); returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            recs = [
                r
                for r in self.records(kind)
                if all(r.get(k) == v for k, v in kv.items()) and (pred is None or pred(r))
            ]
            if len(recs) >= count:
                return recs
            if time.monotonic() > deadline:
                raise MxguardError(
                    "no %d %s record(s) with %r within %.1fs; log:\n%s"
                    % (count, kind, kv, timeout, self.log_text()[-20000:])
                )
            time.sleep(0.05)

    def session(self, client=None, port=None, timeout=10.0, done=True):
        """The records of the session of `client` (found by its local
        port in the connect line), waiting for its disconnect line when
        done=True.  Returns dict(connect=rec, txns=[...], disconnect=rec)."""
        cport = port if port is not None else client.local_port
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records()
            conn = [
                r
                for r in recs
                if r.kind == "connect" and r.get("client", "").endswith("]:%d" % cport)
            ]
            if conn:
                sid = conn[-1].sid
                txns = [r for r in recs if r.kind == "txn" and r.sid == sid]
                disc = [r for r in recs if r.kind == "disconnect" and r.sid == sid]
                if disc or not done:
                    return {
                        "sid": sid,
                        "connect": conn[-1],
                        "txns": txns,
                        "disconnect": disc[0] if disc else None,
                    }
            if time.monotonic() > deadline:
                raise MxguardError(
                    "no %s session log for client port %d within %.1fs; log:\n%s"
                    % ("complete" if done else "", cport, timeout, self.log_text()[-20000:])
                )
            time.sleep(0.05)

    # -- control -----------------------------------------------------------

    def ctl(self, *args, check=True):
        """`mxguard ctl -c CONF ARGS`; asserts exit 0 unless check=False.
        Returns the CompletedProcess (text)."""
        p = subprocess.run([binary(), "ctl", "-c", self.conf_path] + list(args),
                           capture_output=True, text=True, timeout=20)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    def advance_clock(self, seconds):
        """Move the store clock (needs debug_clock and a control socket)."""
        self.ctl("clock", "advance", str(seconds))

    def reload(self, config=None, text=None):
        if config is not None or text is not None:
            if config is not None:
                self.config = config
            self.write_config(config, text)
        self.proc.send_signal(signal.SIGHUP)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def signal_stop(self):
        """Send SIGTERM without waiting."""
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout=None):
        if timeout is None:
            timeout = float(self.config["timeouts"]["shutdown"]) + 10
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise MxguardError(
                "mxguard did not exit within %.0fs of SIGTERM; killed. log:\n%s"
                % (timeout, self.log_text()[-20000:])
            )

    def sanitizer_errors(self):
        text = self.log_text()
        bad = [
            l
            for l in text.splitlines()
            if "ERROR: AddressSanitizer" in l
            or "runtime error:" in l
            or "ERROR: LeakSanitizer" in l
        ]
        return bad

    def stop(self, close_clients=True, check=True):
        """SIGTERM; bounded wait; asserts exit 0 (and sanitizer-clean logs
        under $ASAN).  Idempotent."""
        if self.proc is None:
            return None
        if close_clients:
            self.close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.wait_exit()
        finally:
            if self.logf:
                self.logf.close()
                self.logf = None
        self.returncode = rc
        self.proc = None
        if check:
            if rc != 0:
                raise MxguardError(
                    "mxguard exited with %r (want 0); log:\n%s" % (rc, self.log_text()[-20000:])
                )
            if os.environ.get("ASAN"):
                bad = self.sanitizer_errors()
                if bad:
                    raise MxguardError("sanitizer reports:\n%s" % self.log_text()[-40000:])
        return rc
