# SPDX-License-Identifier: MIT
"""Run a real Postfix as an mxguard backend for the e2e tests.

  pf = Postfix().start()       a private instance: config, queue, data and
                               mail directories under a fresh /tmp dir
                               (not pytest's 0700 tmp: Postfix's daemons run
                               as the postfix user and must get in)
  pf.port, pf.address          its smtpd, on 127.0.0.1:<free port>
  pf.wait_delivered(n)         bounded wait for n files in the Maildir
  pf.maillog()                 Postfix's own log (maillog_file)
  pf.stop()

Mail to any address in test.example is delivered by the virtual agent to
<dir>/mail/maildir/.  The smtpd's service line and its mxguard settings
(XCLIENT from 127.0.0.1, the restrictions) are contrib/postfix.md's; it does
no DNS.  Needs root and the Debian package postfix (installed unconfigured:
/etc/postfix/main.cf need not exist; `postfix -c DIR` works for root).
"""

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time

from mxguard import free_port

POSTFIX = "/usr/sbin/postfix"
DOMAIN = "test.example"

# The settings contrib/postfix.md tells an admin to put in main.cf and
# master.cf, read from the guide itself: the test Postfix runs with exactly
# them (test_guides.py checks it), so the guide cannot drift from what is
# tested.  Only the guide's address 127.0.0.1:2525 becomes a free port.
GUIDE = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "postfix.md")
GUIDE_ADDRESS = "127.0.0.1:2525"


def guide_block(name):
    """The text of the block after `<!-- tested: NAME -->` in the guide."""
    with open(GUIDE) as f:
        m = re.search(r"<!-- tested: %s -->\n```\n(.*?)```" % re.escape(name), f.read(), re.S)
    if m is None:
        raise AssertionError("contrib/postfix.md has no tested %s block" % name)
    return m.group(1)


def guide_master_cf(listen):
    block = guide_block("master.cf")
    if block.count(GUIDE_ADDRESS) != 1:
        raise AssertionError("the guide's master.cf block must name %s once" % GUIDE_ADDRESS)
    return block.replace(GUIDE_ADDRESS, listen)


MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {dir}/conf
queue_directory = {dir}/queue
data_directory = {dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
myhostname = backend.test
mydomain = backend.test
myorigin = backend.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# No DNS anywhere: this machine has no network.
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
alias_maps =
alias_database =
biff = no
virtual_mailbox_limit = 0
"""


class PostfixError(AssertionError):
    pass


def _alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


TLS_CF = """\
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
"""


class Postfix:
    def __init__(self, user="nobody", tls=None):
        """tls=(certfile, keyfile): smtpd offers STARTTLS (level may)
        and notes TLS in its Received header."""
        self.tls = tls
        pw = pwd.getpwnam(user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.dir = None
        self.port = None
        self.running = False

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def maildir(self):
        return os.path.join(self.dir, "mail", "maildir")

    def _run(self, *args, timeout=60):
        return subprocess.run(
            [POSTFIX, "-c", os.path.join(self.dir, "conf")] + list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )

    def start(self, timeout=30.0):
        if os.geteuid() != 0:
            raise PostfixError("the Postfix fixture needs root")
        if not os.path.exists(POSTFIX):
            raise PostfixError("postfix is not installed (apt-get install postfix)")
        self.dir = tempfile.mkdtemp(prefix="mxg-pf-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        pf = pwd.getpwnam("postfix")
        for d in ("conf", "queue", "data", "mail"):
            os.makedirs(os.path.join(self.dir, d))
        os.chown(os.path.join(self.dir, "data"), pf.pw_uid, pf.pw_gid)
        os.chown(os.path.join(self.dir, "mail"), self.uid, self.gid)
        self.port = free_port()
        with open(os.path.join(self.dir, "conf", "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=self.dir, domain=DOMAIN, uid=self.uid, gid=self.gid))
            f.write(guide_block("main.cf"))
            if self.tls is not None:
                f.write(TLS_CF.format(cert=self.tls[0], key=self.tls[1]))
        with open(os.path.join(self.dir, "conf", "master.cf"), "w") as f:
            f.write(guide_master_cf("127.0.0.1:%d" % self.port))
            f.write(MASTER_CF)
            if self.tls is not None:
                # smtpd gets its TLS entropy and session cache from here.
                f.write("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")
        p = self._run("start", timeout=timeout)
        self.running = True
        if p.returncode != 0:
            self.stop()
            raise PostfixError(
                "postfix start failed (%d): %s\n%s"
                % (p.returncode, p.stdout.decode("utf-8", "replace"), self.maillog())
            )
        deadline = time.monotonic() + timeout
        from mxguard import _listening

        while not _listening(self.port):
            if time.monotonic() > deadline:
                log = self.maillog()
                self.stop()
                raise PostfixError("postfix not listening after %.0fs:\n%s" % (timeout, log))
            time.sleep(0.05)
        return self

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def delivered(self):
        """The delivered message files (new/ and cur/), oldest first."""
        files = glob.glob(os.path.join(self.maildir, "new", "*")) + glob.glob(
            os.path.join(self.maildir, "cur", "*")
        )
        return sorted(files, key=os.path.getmtime)

    def wait_delivered(self, n=1, timeout=30.0):
        """Bounded wait until n messages are in the Maildir; returns their
        contents (bytes), oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.delivered()
            if len(files) >= n:
                out = []
                for p in files:
                    with open(p, "rb") as f:
                        out.append(f.read())
                return out
            if time.monotonic() > deadline:
                raise PostfixError(
                    "%d of %d messages delivered after %.0fs; maillog:\n%s"
                    % (len(files), n, timeout, self.maillog()[-10000:])
                )
            time.sleep(0.1)

    def stop(self, timeout=30.0):
        if not self.running:
            return
        self.running = False
        try:
            self._run("stop", timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # `postfix stop` only signals master: wait until it is gone.
        pid = self.master_pid()
        deadline = time.monotonic() + timeout
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError, TypeError):
            return 0

    def cleanup(self):
        self.stop()
        if self.dir and not os.environ.get("MXG_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
