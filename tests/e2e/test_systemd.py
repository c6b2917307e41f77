# SPDX-License-Identifier: MIT
"""systemd: the unit in contrib/ passes `systemd-analyze verify` (pointed at
the built binary), and the readiness protocol mxguard speaks for
Type=notify: READY=1 only once the SMTP port answers, RELOADING=1 then
READY=1 around a SIGHUP (also when the new file is broken), STOPPING=1 at
SIGTERM."""

import os
import re
import socket
import subprocess

from mxguard import binary

UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "mxguard.service")


def test_unit_verifies(tmp_path):
    text = open(UNIT).read()
    assert "Type=notify" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in text
    # The installed paths do not exist here: point it at the build.
    text = text.replace("/usr/sbin/mxguard", os.path.abspath(binary()))
    text = re.sub(r"^Documentation=.*\n", "", text, flags=re.M)
    unit = tmp_path / "mxguard.service"
    unit.write_text(text)
    p = subprocess.run(["systemd-analyze", "verify", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


def recv(sock):
    return sock.recv(4096).decode()


def test_notify_protocol(make_mx, tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    mx = make_mx(start=False)
    mx.start()
    msg = recv(sock)
    assert msg.startswith("READY=1"), msg
    # Ready means ready: the port answers.
    c = mx.connect()
    c.quit()
    good = open(mx.conf_path).read()
    mx.reload()
    assert recv(sock) == "RELOADING=1"
    assert recv(sock).startswith("READY=1\nSTATUS=accepting mail")
    mx.reload(text=good + "loops = ;\n")
    assert recv(sock) == "RELOADING=1"
    assert "reload failed" in recv(sock)
    mx.stop()
    assert recv(sock) == "STOPPING=1"
    sock.close()
