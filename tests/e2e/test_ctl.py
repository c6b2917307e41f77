# SPDX-License-Identifier: MIT
"""`mxguard ctl status` through the control socket: uptime, open
connections, config path and generation, the result of the last reload
(with the FILE:LINE reason when it failed); and the control socket's
errors (no daemon, bad request)."""

import os
import socket
import subprocess

from mxguard import binary


def status(mx):
    # -s: the config file may be the broken one a reload refused.
    p = subprocess.run([binary(), "ctl", "-s", mx.config["control_socket"], "status"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    kv = {}
    for part in out.replace('"', "").split(" "):
        if "=" in part:
            k, v = part.split("=", 1)
            kv[k] = v
    return kv, out


def start(make_mx):
    mx = make_mx(control=True)
    return mx


def test_status(make_mx):
    mx = start(make_mx)
    c1, c2 = mx.connect(), mx.connect()
    kv, _ = status(mx)
    assert kv["connections"] == "2"
    assert kv["generation"] == "1"
    assert kv["last_reload"] == "never"
    assert kv["config"] == mx.conf_path
    assert kv["store"] == "memory"
    assert int(kv["uptime"]) >= 0
    c1.quit()
    c2.quit()
    mx.wait_record("disconnect", count=2)
    assert status(mx)[0]["connections"] == "0"


def test_status_after_reloads(make_mx):
    mx = start(make_mx)
    good = open(mx.conf_path).read()
    mx.reload(text=good + "loops = ;\n")
    mx.wait_log(r"reload failed")
    # ctl -c reads the file too, and says what is wrong with it.
    p = mx.ctl("status", check=False)
    assert p.returncode == 1 and mx.conf_path + ":" in p.stderr
    kv, out = status(mx)
    assert kv["last_reload"] == "failed"
    assert "reload_error=" in out and mx.conf_path + ":" in out
    assert kv["generation"] == "1"
    mx.reload(text=good)
    mx.wait_log(r"reload: configuration .* loaded")
    kv, _ = status(mx)
    assert kv["last_reload"] == "ok" and kv["generation"] == "2"


def test_no_daemon(make_mx):
    mx = start(make_mx)
    mx.stop()
    p = mx.ctl("status", check=False)
    assert p.returncode == 1 and "is mxguard running" in p.stderr
    assert not os.path.exists(mx.config["control_socket"])  # removed at exit


def test_bad_requests_answered(make_mx):
    mx = start(make_mx)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(mx.config["control_socket"])
    s.sendall(b"HELLO\nSTORE\t99\n"
              # a greylist call without its auto-whitelist key and times
              b"STORE\t0\t1\tk\t1\t5\t-\t1\n"
              # a rate limit with a zero period
              b"STORE\t1\t1\tk\t4\t1\t1\t1\t0\t-\t1\n"
              b"STORE\t0\t2\tk\tc\t5\t1700000000\t300\t3600\t7200\t0\t-\t1\n")
    data = b""
    while data.count(b"\n") < 5:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    lines = data.decode().splitlines()
    assert lines[0] == "ERR unknown request"
    assert lines[1] == "ERR bad request"
    assert lines[2].startswith("OK\t-1\twrong number of keys")
    assert lines[3].startswith("OK\t-1\tbad rate")
    assert lines[4].startswith("OK\t0\t-\t3\t0\t300\t")  # first sight
    s.close()
    assert mx.alive()
