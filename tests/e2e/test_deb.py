# SPDX-License-Identifier: MIT
"""The Debian package: `make deb` builds it (or finds the one built earlier
in this run up to date), `dpkg -i` installs it on this machine, the
installed files, user, unit and configuration are checked, the installed
/usr/sbin/mxguard runs as the mxguard user (as the unit's ExecStart would)
in front of the test backend and relays a message, then `dpkg --purge`
removes it and the test checks nothing of it stays but the system user
(Debian keeps system users on purge).

Needs root, and a machine without mxguard installed: when mxguard is there
from elsewhere (a package, `make install`) the test fails at once rather
than purge it.  Whatever happens, the finally clauses purge what this test
installed and remove the user it caused to be created."""

import fcntl
import glob
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from helpers import RCPT, SENDER, simple_message
from mxguard import REPO, Mxguard

DEB_DIR = os.path.join(REPO, "build", "deb")
LOCK = "/run/lock/mxguard-deb-test.lock"
# What the package puts on the machine; none of it may exist beforehand.
PATHS = [
    "/usr/sbin/mxguard",
    "/etc/mxguard",
    "/usr/share/mxguard",
    "/lib/systemd/system/mxguard.service",
    "/usr/share/man/man8/mxguard.8.gz",
    "/usr/share/man/man5/mxguard.conf.5.gz",
    "/usr/share/doc/mxguard",
    "/var/spool/mxguard",
]
# man's cache of formatted pages: systemd-analyze verify runs man for the
# unit's Documentation= pages, which writes them.
MAN_CACHE = ["/var/cache/man/cat8/mxguard.8.gz", "/var/cache/man/cat5/mxguard.conf.5.gz"]
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def run(*argv, ok=True, timeout=300, **kw):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)
    if ok and p.returncode != 0:
        pytest.fail("%s exited %d:\n%s\n%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr),
                    pytrace=False)
    return p


def dpkg_status():
    """'' when dpkg knows no mxguard, else its Status field (e.g.
    'install ok installed', 'deinstall ok config-files')."""
    p = run("dpkg-query", "-W", "-f", "${Status}", "mxguard", ok=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def dpkg(*args):
    """dpkg, waiting (bounded) while another apt/dpkg holds its lock."""
    for _ in range(120):
        p = run("dpkg", *args, ok=False)
        if p.returncode == 0 or "lock" not in p.stderr:
            break
        time.sleep(5)
    if p.returncode != 0:
        pytest.fail("dpkg %s exited %d:\n%s\n%s" % (" ".join(args), p.returncode, p.stdout,
                                                   p.stderr), pytrace=False)
    return p


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def changelog_version():
    return run("dpkg-parsechangelog", "-l", os.path.join(REPO, "debian", "changelog"),
               "-S", "Version").stdout.strip()


def build_deb():
    """`make deb` (a no-op when the package is up to date); the path of
    the .deb of debian/changelog's version."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    p = subprocess.run(["make", "-C", REPO, "deb"], capture_output=True, text=True,
                       timeout=3600, env=env)
    assert p.returncode == 0, "make deb failed:\n" + (p.stdout + p.stderr)[-20000:]
    debs = glob.glob(os.path.join(DEB_DIR, "mxguard_%s_*.deb" % changelog_version()))
    assert len(debs) == 1, (debs, os.listdir(DEB_DIR))
    return debs[0]


@pytest.fixture
def machine_lock():
    """One package test at a time on this machine (two checkouts testing at
    once would install over each other)."""
    f = open(LOCK, "w")
    for _ in range(720):
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(5)
    else:
        pytest.fail("another package test holds %s for an hour" % LOCK)
    yield
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


def refuse_foreign_install():
    if os.geteuid() != 0:
        pytest.fail("the package test installs a .deb: it needs root")
    st = dpkg_status()
    if st:
        pytest.fail("mxguard is already known to dpkg here (%s): this test installs and "
                    "purges its own build, so it will not touch it; remove it first "
                    "(dpkg --purge mxguard)" % st, pytrace=False)
    there = [p for p in PATHS if os.path.lexists(p)]
    if there:
        pytest.fail("mxguard files are on this machine outside dpkg (make install?): %s; "
                    "the package test would overwrite them" % ", ".join(there), pytrace=False)


def check_installed():
    """Files, user, spool, unit and configuration as the package leaves
    them."""
    assert dpkg_status() == "install ok installed"
    assert run("dpkg-query", "-W", "-f", "${Version}", "mxguard").stdout == changelog_version()
    upstream = changelog_version().rsplit("-", 1)[0]
    assert run("/usr/sbin/mxguard", "-V").stdout.strip() == "mxguard " + upstream
    # The shipped configuration is the example, as a conffile; the rules
    # it names are the ones in the source tree.
    with open(os.path.join(REPO, "contrib", "mxguard.conf.example")) as f:
        assert open("/etc/mxguard/mxguard.conf").read() == f.read()
    conffiles = run("dpkg-query", "-W", "-f", "${Conffiles}", "mxguard").stdout
    assert re.search(r"^ /etc/mxguard/mxguard\.conf [0-9a-f]{32}$", conffiles, re.M), conffiles
    assert re.search(r'^rules = \[ "/usr/share/mxguard/rules/\*\.rules", '
                     r'"/etc/mxguard/rules\.d/\*\.rules" \];$',
                     open("/etc/mxguard/mxguard.conf").read(), re.M)
    shipped = sorted(os.listdir(os.path.join(REPO, "rules", "default")))
    assert sorted(os.listdir("/usr/share/mxguard/rules")) == shipped
    assert os.path.isdir("/etc/mxguard/rules.d")
    for page in ("/usr/share/man/man8/mxguard.8.gz", "/usr/share/man/man5/mxguard.conf.5.gz"):
        assert os.path.isfile(page), page
    assert os.path.isfile("/usr/share/doc/mxguard/examples/fail2ban/filter.d/mxguard.conf")
    # The system user the unit runs as, and its spool.
    pw = pwd.getpwnam("mxguard")
    assert pw.pw_uid < 1000 and pw.pw_shell in ("/usr/sbin/nologin", "/bin/false"), pw
    assert grp.getgrgid(pw.pw_gid).gr_name == "mxguard"
    assert pw.pw_dir == "/var/lib/mxguard"
    st = os.stat("/var/spool/mxguard")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (pw.pw_uid, pw.pw_gid, 0o750)
    # The unit: the one in contrib/, verified where it is installed (its
    # binary, config and man pages are there now), not enabled by the
    # install (debian/rules: the admin edits the config first).
    unit = "/lib/systemd/system/mxguard.service"
    with open(os.path.join(REPO, "contrib", "mxguard.service")) as f:
        assert open(unit).read() == f.read()
    p = run("systemd-analyze", "verify", unit, ok=False, timeout=120)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr
    assert not glob.glob("/etc/systemd/system/*.wants/mxguard.service")
    # ExecStartPre: the shipped config checks as the unit's user.
    p = run("setpriv", "--reuid=mxguard", "--regid=mxguard", "--init-groups", "--",
            "/usr/sbin/mxguard", "-t", "-c", "/etc/mxguard/mxguard.conf")
    out = p.stdout + p.stderr
    assert re.search(r"rules: [1-9]\d* rules loaded", out), out
    assert "configuration OK" in out, out


def relay_through_installed(backend, workdir):
    """The installed binary as the unit runs it (User=mxguard, foreground,
    stderr to the journal: here to a file), with the packaged spool and
    rules, on a free loopback port: a message reaches the backend, GTUBE
    is refused by the shipped rules."""
    mx = Mxguard(
        workdir, backend.address, bin="/usr/sbin/mxguard",
        prefix=["setpriv", "--reuid=mxguard", "--regid=mxguard", "--init-groups", "--"],
        config={
            "spool": {"dir": "/var/spool/mxguard"},
            "rules": ["/usr/share/mxguard/rules/*.rules", "/etc/mxguard/rules.d/*.rules"],
        })
    mx.start()
    try:
        ps = run("ps", "-o", "user=", "-p", str(mx.pid)).stdout.strip()
        assert ps == "mxguard", ps
        c = mx.connect()
        assert c.ehlo().code == 250
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        assert c.cmd("RCPT TO:<%s>" % RCPT).code == 250
        _, r = c.data(simple_message("via the package"))
        assert r.code == 250, r
        backend.wait_messages(1)
        assert b"Subject: via the package" in backend.messages()[0].data
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        assert c.cmd("RCPT TO:<%s>" % RCPT).code == 250
        _, r = c.data(simple_message("gtube", body=GTUBE + b"\r\n"))
        assert r.code == 550, r
        c.quit()
        recs = mx.wait_record("txn", count=2)
        assert [r["result"] for r in recs] == ["accept", "reject"], recs
        assert "GTUBE" in recs[1]["symbols"]
        assert len(backend.messages()) == 1
    finally:
        mx.stop()


def check_purged():
    assert dpkg_status() == ""
    left = [p for p in PATHS if os.path.lexists(p)]
    assert left == [], left
    assert not os.path.lexists("/var/lib/mxguard")
    # Debian keeps system users on purge (debian/postrm says why).
    assert user_exists("mxguard")


def test_deb_build_install_run_purge(backend, machine_lock):
    refuse_foreign_install()
    had_user, had_group = user_exists("mxguard"), group_exists("mxguard")
    had_cache = [p for p in MAN_CACHE if os.path.exists(p)]
    deb = build_deb()
    info = run("dpkg-deb", "-f", deb, "Package", "Depends").stdout
    assert info.startswith("Package: mxguard\n") and "adduser" in info, info
    # Not started by the package, so stopped by its own prerm on removal.
    prerm = run("dpkg-deb", "-I", deb, "prerm").stdout
    assert "deb-systemd-invoke stop mxguard.service" in prerm, prerm
    workdir = tempfile.mkdtemp(prefix="mxguard-deb-")
    # Readable by the mxguard user (pytest's tmp dirs are 0700).
    os.chmod(workdir, 0o755)
    try:
        dpkg("-i", deb)
        check_installed()
        relay_through_installed(backend, workdir)
        dpkg("--purge", "mxguard")
        check_purged()
    finally:
        if dpkg_status():
            run("dpkg", "--purge", "mxguard", ok=False)
        if not had_user and user_exists("mxguard"):
            run("userdel", "mxguard", ok=False)
        if not had_group and group_exists("mxguard"):
            run("groupdel", "mxguard", ok=False)
        shutil.rmtree(workdir, ignore_errors=True)
        for p in MAN_CACHE:
            if p not in had_cache and os.path.exists(p):
                os.unlink(p)
    assert user_exists("mxguard") == had_user and group_exists("mxguard") == had_group
