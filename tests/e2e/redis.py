# SPDX-License-Identifier: MIT
"""A real redis-server (and redis-sentinel) for the e2e tests.

  r = RedisServer(workdir, password=None, bind="127.0.0.1").start()
  r.url                  "redis://127.0.0.1:P/0" (with ":PASSWORD@" when set)
  r.port, r.address      P, "127.0.0.1:P" (bind="::1" for IPv6 only)
  r.kill()               SIGKILL (a crash: no reply, connections reset)
  r.start()              (again) on the same port, empty (no persistence)
  r.stop()               SIGTERM, bounded wait, then SIGKILL
  r.command(*args)       one command over RESP, its reply (bytes, int, list;
                         an error reply raises RedisReplyError)

  s = Sentinel(workdir, replica=True).start()
  s.url                  "redis+sentinel://127.0.0.1:SP/mxgmaster"
  s.master, s.replica    RedisServers (the replica replicates the master)
  s.master_port()        the port Sentinel names for the master now
  s.command(*args)       a command to the Sentinel
  s.stop()

Servers listen on 127.0.0.1 only, with --save "" --appendonly no, logs in
workdir.  Every wait is bounded.  (This module is named redis.py, so it
shadows redis-py inside the tests: it speaks RESP itself.)
"""

import os
import signal
import socket
import subprocess
import time

from mxguard import free_port


class RedisReplyError(Exception):
    pass


def _read_line(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed")
    return line[:-2]


def _read_reply(f):
    line = _read_line(f)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisReplyError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_reply(f) for _ in range(n)]
    raise ConnectionError("bad RESP line %r" % line)


def resp_command(port, *args, password=None, timeout=5.0, host="127.0.0.1"):
    """Send one command (AUTH first when password is set); its reply."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        f = s.makefile("rb")
        cmds = ([("AUTH", password)] if password else []) + [args]
        out = b""
        for cmd in cmds:
            parts = [a if isinstance(a, bytes) else str(a).encode() for a in cmd]
            out += b"*%d\r\n" % len(parts)
            for p in parts:
                out += b"$%d\r\n%s\r\n" % (len(p), p)
        s.sendall(out)
        reply = None
        for _ in cmds:
            reply = _read_reply(f)
        return reply


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (OSError, ConnectionError, RedisReplyError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("%s within %.0fs (last error: %s)" % (what, timeout, last))


class RedisServer:
    def __init__(self, workdir, password=None, port=None, replicaof=None, name=None,
                 bind="127.0.0.1"):
        self.port = port or free_port()
        self.password = password
        self.bind = bind
        self.replicaof = replicaof
        self.name = name or "redis-%d" % self.port
        self.workdir = os.path.join(str(workdir), self.name)
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        auth = (":%s@" % self.password) if self.password else ""
        host = self.bind.split()[0]
        host = "[%s]" % host if ":" in host else host
        return "redis://%s%s:%d/0" % (auth, host, self.port)

    def start(self, timeout=15.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", self.bind,
            "--save", "",
            "--appendonly", "no",
            "--dir", self.workdir,
            "--logfile", os.path.join(self.workdir, "redis.log"),
            "--daemonize", "no",
        ]
        if self.password:
            args += ["--requirepass", self.password]
            if self.replicaof:
                args += ["--masterauth", self.password]
        if self.replicaof:
            args += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(lambda: self.command("PING") == b"PONG", timeout, "redis-server on port %d not answering" % self.port)
        return self

    def command(self, *args):
        host = self.bind.split()[0]
        return resp_command(self.port, *args, password=self.password, host=host)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=15)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self):
        try:
            with open(os.path.join(self.workdir, "redis.log")) as f:
                return f.read()
        except OSError:
            return ""


class Sentinel:
    MASTER = "mxgmaster"

    def __init__(self, workdir, replica=True, password=None):
        self.workdir = os.path.join(str(workdir), "sentinel")
        os.makedirs(self.workdir, exist_ok=True)
        self.master = RedisServer(workdir, password=password, name="master")
        self.replica = (
            RedisServer(workdir, password=password, replicaof=self.master.port, name="replica")
            if replica
            else None
        )
        self.port = free_port()
        self.password = password
        self.proc = None

    @property
    def url(self):
        auth = (":%s@" % self.password) if self.password else ""
        return "redis+sentinel://%s127.0.0.1:%d/%s" % (auth, self.port, self.MASTER)

    def command(self, *args):
        return resp_command(self.port, *args)

    def master_port(self):
        r = self.command("SENTINEL", "get-master-addr-by-name", self.MASTER)
        return int(r[1]) if r else None

    def start(self, timeout=30.0):
        self.master.start()
        if self.replica is not None:
            self.replica.start()
            _wait(
                lambda: b"master_link_status:up" in self.replica.command("INFO", "replication"),
                timeout,
                "replica not in sync",
            )
        conf = os.path.join(self.workdir, "sentinel.conf")
        lines = [
            "port %d" % self.port,
            "bind 127.0.0.1",
            "daemonize no",
            "dir %s" % self.workdir,
            "logfile %s" % os.path.join(self.workdir, "sentinel.log"),
            "sentinel monitor %s 127.0.0.1 %d 1" % (self.MASTER, self.master.port),
            "sentinel down-after-milliseconds %s 1000" % self.MASTER,
            "sentinel failover-timeout %s 10000" % self.MASTER,
            "sentinel parallel-syncs %s 1" % self.MASTER,
        ]
        if self.password:
            lines.append("sentinel auth-pass %s %s" % (self.MASTER, self.password))
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            ["redis-sentinel", conf],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: self.master_port() == self.master.port, timeout, "Sentinel does not name the master")
        if self.replica is not None:
            # Sentinel learns the replicas from the master's INFO.
            def knows_replica():
                for r in self.command("SENTINEL", "replicas", self.MASTER):
                    d = dict(zip(r[::2], r[1::2]))
                    if int(d[b"port"]) == self.replica.port and b"disconnected" not in d[b"flags"]:
                        return True
                return False

            _wait(knows_replica, timeout, "Sentinel does not know the replica")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.replica is not None:
            self.replica.stop()
        self.master.stop()

    def log_text(self):
        try:
            with open(os.path.join(self.workdir, "sentinel.log")) as f:
                return f.read()
        except OSError:
            return ""
