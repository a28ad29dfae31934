"""
Harness of Postern's integration tests: start a real posternd in a
temporary directory on free loopback ports and talk to it with real
clients (smtplib, raw sockets, sendmail, mail, swaks).

Fixtures
  make_server   factory: make_server(mail="mbox", conf="...", ...) -> Server
  server        one Server per test, default options
  mserver       one Server per test module (for tests that do not
                interfere); the module may set SERVER_OPTIONS = {...}
  root_users    root mode only: two system users "pst...a", "pst...b"

Each Server has its own directory under $POSTERN_BUILDDIR/testsuite/tmp
holding the config file, users and aliases files, queue and data
directories and the log (posternd runs in the foreground; its stderr and
the services' log lines go to server.log_path).

When the tests run as root (as in CI), an ordinary server still runs in
unprivileged mode: posternd and the postern commands are run as the
system user "pstrun" (created when missing).  Root-mode servers
(make_server(root_mode=True)) run posternd as root with system users.
"""
import email
import email.policy
import email.utils
import grp
import mailbox
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import socket
import string
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SRCDIR = Path(os.environ.get("POSTERN_SRCDIR") or
              Path(__file__).resolve().parents[2])
BUILDDIR = Path(os.environ.get("POSTERN_BUILDDIR") or SRCDIR).resolve()
SERVICES = ("smtpd", "qmgr", "local", "smtp", "auth", "pop3-login", "pop3",
            "imap-login", "imap")
# Services built in a subdirectory of the build tree (a source directory
# has their name there); installed under their plain name all the same.
SERVICE_BUILD_PATHS = {"auth": "auth/auth", "pop3": "pop3/pop3",
                       "smtp": "smtp/smtp",
                       "imap": "imap/imap"}


def service_build_path(name):
    return BUILDDIR / SERVICE_BUILD_PATHS.get(name, name)


IS_ROOT = os.geteuid() == 0
HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
RUN_USER = "pstrun"          # unprivileged-mode servers when we are root
DEFAULT_USERS = ("demo", "alice", "bob", "carol")
PASSWORD = "secret-pw"
WAIT = 20                    # seconds any "wait until" may take
BASE_ALIASES = ("postmaster: demo\n"
                "root: demo\n"
                "MAILER-DAEMON: postmaster\n")
QID_RE = r"[0-9A-Za-z]{8,32}"
# A postern.conf line for tests that need mail to remote domains to stay
# queued (deferred) without DNS or a remote server: the retry transport
# defers every recipient outside $mydestination.
REMOTE_DEFERRED = ("default_transport = retry:4.4.1 remote delivery is "
                   "disabled in this test\n")

requires_root = pytest.mark.skipif(not IS_ROOT,
                                   reason="root-mode test: needs root")


# ---------------------------------------------------------------- helpers

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def wait_for(pred, timeout=WAIT, interval=0.05):
    """Poll pred() until it returns something true or timeout passes;
    return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def parse(raw):
    """A delivered message (bytes) as an email.message.Message."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def header_block(raw):
    """The header block of raw message bytes (up to the empty line)."""
    end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end + 1]


def headers(raw):
    """[(name, unfolded value)] of the header block, in order."""
    out = []
    for line in header_block(raw).decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        if line[0] in " \t" and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif ":" in line:
            name, value = line.split(":", 1)
            out.append((name, value.strip()))
    return out


def header_values(raw, name):
    return [v for n, v in headers(raw) if n.lower() == name.lower()]


def body_of(raw):
    i = raw.find(b"\n\n")
    return b"" if i < 0 else raw[i + 2:]


def make_msg(subject, body="hello\n", sender=None, to=None, extra=(),
             date=True, msgid=True):
    """A message as text with LF line ends (smtplib turns them into
    CRLF and dot-stuffs).  sender/to None = no From:/To: header."""
    lines = []
    if sender:
        lines.append("From: %s" % sender)
    if to:
        lines.append("To: %s" % to)
    lines.append("Subject: %s" % subject)
    if date:
        lines.append("Date: %s" % email.utils.formatdate(localtime=True))
    if msgid:
        lines.append("Message-ID: %s" %
                     email.utils.make_msgid(domain="client.example.test"))
    lines.extend(extra)
    return "\n".join(lines) + "\n\n" + body


def crlf(data):
    """Message text or bytes with every line ending made CRLF (smtplib
    converts str itself, but sends bytes as they are)."""
    if isinstance(data, str):
        data = data.encode()
    return re.sub(rb"\r?\n", b"\r\n", data)


def subjects(raws):
    return [parse(r).get("Subject", "") for r in raws]


def pids_with_arg(arg):
    """PIDs of processes whose command line has arg as one argument."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and arg.encode() in args:
            out.append(int(d))
    return out


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_uids(pid):
    """(real, effective, saved, fs) uids of a process."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return tuple(int(x) for x in line.split()[1:5])
    raise AssertionError("no Uid line for pid %d" % pid)


def ensure_system_user(name, home=None, system=True):
    """Create a user with useradd when missing (root only).  Returns True
    if it was created here."""
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    cmd = ["useradd"]
    if system:
        cmd += ["--system", "--no-create-home", "--home-dir",
                home or "/nonexistent", "--shell", "/usr/sbin/nologin"]
    else:
        cmd += ["--create-home", "--shell", "/bin/sh"]
    subprocess.run(cmd + [name], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return True


# ------------------------------------------------ binaries and tmp root

class _Env:
    """Where the binaries and the temporary directories are, decided
    once per session."""

    def __init__(self):
        self.posternd = BUILDDIR / "posternd"
        self.postern = BUILDDIR / "postern"
        self.libexec = BUILDDIR / "testsuite" / "libexec"
        self.tmp_root = BUILDDIR / "testsuite" / "tmp"
        self.staged = None
        self._ready = False

    def setup(self):
        if self._ready:
            return
        self._ready = True
        missing = [str(p) for p in (self.posternd, self.postern)
                   if not os.access(p, os.X_OK)]
        missing += [str(service_build_path(s)) for s in SERVICES
                    if not os.access(service_build_path(s), os.X_OK)]
        if missing:
            pytest.fail("not built: %s (set POSTERN_BUILDDIR)" %
                        ", ".join(missing), pytrace=False)
        self.libexec.mkdir(parents=True, exist_ok=True)
        for s in SERVICES:
            link = self.libexec / s
            if not (link.exists() and
                    link.resolve() == service_build_path(s)):
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(service_build_path(s))
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        if IS_ROOT:
            # Both stay: other test runs may be using them right now.
            ensure_system_user(RUN_USER)
            ensure_system_user("postern")
            os.chmod(self.tmp_root, 0o755)
            if not self._reachable():
                self._stage()
        # UNIX socket paths must stay well below 108 bytes.
        if len(str(self.tmp_root)) > 50:
            self._stage()

    def _reachable(self):
        """Can an unprivileged user reach the binaries and tmp root?"""
        pw = pwd.getpwnam(RUN_USER)
        r = subprocess.run(
            ["sh", "-c", 'test -x "$1" && test -x "$2" && test -x "$3"',
             "sh", str(self.posternd), str(self.libexec / "smtpd"),
             str(self.tmp_root)],
            user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def _stage(self):
        """Copy the binaries to a short, world-reachable directory."""
        if self.staged:
            return
        top = Path(tempfile.mkdtemp(prefix="pst-it-", dir="/tmp"))
        os.chmod(top, 0o755)
        bindir = top / "bin"
        libexec = top / "libexec"
        bindir.mkdir()
        libexec.mkdir()
        for p in ("posternd", "postern"):
            shutil.copy2(BUILDDIR / p, bindir / p)
        for s in SERVICES:
            shutil.copy2(service_build_path(s), libexec / s)
        self.posternd = bindir / "posternd"
        self.postern = bindir / "postern"
        self.libexec = libexec
        self.tmp_root = top / "tmp"
        self.tmp_root.mkdir(mode=0o755)
        os.chmod(self.tmp_root, 0o755)
        self.staged = top

    def cleanup(self, keep=False):
        if self.staged and not keep:
            shutil.rmtree(self.staged, ignore_errors=True)


ENV = _Env()


def pytest_sessionfinish(session, exitstatus):
    ENV.cleanup(keep=getattr(session, "postern_failed", False))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        item.session.postern_failed = True
        item.module.postern_failed = True


# ------------------------------------------------------------ raw SMTP

class RawSMTP:
    """A byte-exact SMTP client on a plain socket."""

    def __init__(self, port, host="127.0.0.1", timeout=WAIT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, [text lines]) of one possibly multi-line reply."""
        lines = []
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit():
                raise AssertionError("bad reply line %r" % line)
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect(self, code, data=None):
        if data is not None:
            self.send(data)
        c, lines = self.reply()
        assert c == code, "expected %d, got %d %s" % (code, c, lines)
        return lines

    def at_eof(self):
        """True when the server closed the connection (nothing more)."""
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- server

class Server:
    """One posternd with its own config, directories and log."""

    def __init__(self, name, *, mail="maildir", users=DEFAULT_USERS,
                 aliases="", conf="", mynetworks="127.0.0.0/8, [::1]/128",
                 root_mode=False, system_users=(), smtps=False,
                 pop3=False, imap=False):
        if root_mode and not IS_ROOT:
            pytest.skip("root mode needs root")
        ENV.setup()
        safe = re.sub(r"[^A-Za-z0-9]", "", name)[:16] or "t"
        self.dir = Path(tempfile.mkdtemp(prefix=safe + "-",
                                         dir=ENV.tmp_root))
        os.chmod(self.dir, 0o755)
        self.root_mode = root_mode
        if IS_ROOT and not root_mode:
            pw = pwd.getpwnam(RUN_USER)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.conf = self.dir / "postern.conf"
        self.log_path = self.dir / "server.log"
        self.spool = self.dir / "spool"
        self.data = self.dir / "data"
        self.bindir = self.dir / "bin"
        self.mail_spool = self.dir / "mail"
        self.smtp_port, self.submission_port = free_ports(2)
        # Opt-in implicit TLS listener (RFC 8314); off by default.
        self.smtps_port = None
        if smtps:
            while self.smtps_port in (None, self.smtp_port,
                                      self.submission_port):
                self.smtps_port = free_port()
        # Opt-in POP3 (110/995) and IMAP (143/993) listeners, plaintext
        # and implicit TLS, on free loopback ports.
        taken = {self.smtp_port, self.submission_port, self.smtps_port}
        self.pop3_port = self.pop3s_port = None
        self.imap_port = self.imaps_port = None
        if pop3:
            self.pop3_port, self.pop3s_port = self._more_ports(taken, 2)
        if imap:
            self.imap_port, self.imaps_port = self._more_ports(taken, 2)
        self.proc = None
        self.logf = None
        self.mail = mail
        self.system_users = tuple(system_users)
        self.users = tuple(users) if not root_mode else self.system_users
        self.conf_extra = conf
        self.mynetworks = mynetworks
        if root_mode:
            first = self.users[0] if self.users else "root"
            self.base_aliases = ("postmaster: %s\nMAILER-DAEMON: postmaster\n"
                                 % first)
        else:
            self.base_aliases = BASE_ALIASES
        self.aliases_text = self.base_aliases + aliases
        self._prepare()

    @staticmethod
    def _more_ports(taken, n):
        ports = []
        while len(ports) < n:
            p = free_port()
            if p not in taken:
                taken.add(p)
                ports.append(p)
        return ports

    # ---- files ----

    def chown(self, path):
        if IS_ROOT:
            os.chown(path, self.uid, self.gid)

    def mkdir(self, path, mode=0o755):
        """mkdir -p; every directory created is owned by the server's
        user."""
        path = Path(path)
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            os.chmod(d, 0o755)
            self.chown(d)
        os.chmod(path, mode)
        return path

    def write(self, path, content, mode=0o644, owner=None):
        """Write a file owned by the server's user (or owner=(uid, gid))."""
        path = Path(path)
        if isinstance(content, str):
            content = content.encode()
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        if owner is not None:
            os.chown(path, *owner)
        else:
            self.chown(path)
        return path

    def config_text(self):
        if self.mail == "mbox":
            location = "mbox:~/mail:INBOX=%s/%%u" % self.mail_spool
        else:
            location = "maildir:~/Maildir"
        lines = [
            "# written by the integration test harness",
            "myhostname = " + HOSTNAME,
            "mydomain = " + DOMAIN,
            "mydestination = $myhostname, localhost, $mydomain",
            "inet_interfaces = loopback-only",
            "mynetworks = " + self.mynetworks,
            "smtp_listen = 127.0.0.1:%d" % self.smtp_port,
            "submission_listen = 127.0.0.1:%d" % self.submission_port,
            ("smtps_listen = 127.0.0.1:%d" % self.smtps_port
             if self.smtps_port else "smtps_listen ="),
            self._listen_line("pop3_listen", self.pop3_port),
            self._listen_line("pop3s_listen", self.pop3s_port),
            self._listen_line("imap_listen", self.imap_port),
            self._listen_line("imaps_listen", self.imaps_port),
            "queue_directory = %s" % self.spool,
            "data_directory = %s" % self.data,
            "daemon_directory = %s" % ENV.libexec,
            "alias_maps = hash:%s/aliases" % self.dir,
            "alias_database = hash:%s/aliases" % self.dir,
            "mail_spool_directory = %s" % self.mail_spool,
            "mail_location = " + location,
        ]
        if self.root_mode:
            lines += ["run_user = postern", "passdb = shadow",
                      "userdb = passwd"]
        else:
            lines += ["passdb = passwd-file:%s/users" % self.dir,
                      "userdb = passwd-file:%s/users" % self.dir]
        return "\n".join(lines) + "\n" + self.conf_extra.strip("\n") + "\n"

    @staticmethod
    def _listen_line(name, port):
        if port:
            return "%s = 127.0.0.1:%d" % (name, port)
        return name + " ="

    def write_config(self, extra=None):
        if extra is not None:
            self.conf_extra = extra
        self.write(self.conf, self.config_text())

    def _prepare(self):
        self.chown(self.dir)
        self.mkdir(self.bindir)
        for name in ("sendmail", "mailq", "newaliases"):
            (self.bindir / name).symlink_to(ENV.postern)
        if self.root_mode:
            self.mail_spool.mkdir()
            try:
                mail_gid = grp.getgrnam("mail").gr_gid
            except KeyError:
                mail_gid = 0
            os.chown(self.mail_spool, 0, mail_gid)
            os.chmod(self.mail_spool, 0o2775)
        else:
            self.mkdir(self.mail_spool)
        self.write_config()
        self.write(self.dir / "users", "")
        if not self.root_mode:
            for u in self.users:
                self.postern("user", "add", u, "-p", PASSWORD, check=True)
        self.set_aliases(self.aliases_text, add_base=False)

    def set_aliases(self, text, add_base=True):
        """Write the aliases file and build it with `postern aliases`."""
        self.aliases_text = (self.base_aliases if add_base else "") + text
        self.write(self.dir / "aliases", self.aliases_text)
        self.postern("aliases", check=True)

    # ---- commands ----

    def env(self, extra=None):
        env = dict(os.environ)
        env.update({
            "POSTERN_CONFIG": str(self.conf),
            "PATH": "%s:%s" % (self.bindir, env.get("PATH", "/usr/bin:/bin")),
            "LC_ALL": "C.UTF-8",
            "TZ": env.get("TZ", "UTC"),
        })
        if IS_ROOT and not self.root_mode:
            env.update({"HOME": str(self.dir), "USER": RUN_USER,
                        "LOGNAME": RUN_USER})
        env.pop("POSTERN_LOG_STDERR", None)
        if extra:
            env.update(extra)
        return env

    def _user_kw(self, as_user):
        """subprocess keywords that run a command as the given user
        (None: the server's user)."""
        if not IS_ROOT:
            return {}
        if as_user is None:
            if self.root_mode:
                return {}
            uid, gid = self.uid, self.gid
        elif as_user == "root":
            return {}
        else:
            pw = pwd.getpwnam(as_user)
            uid, gid = pw.pw_uid, pw.pw_gid
        return {"user": uid, "group": gid, "extra_groups": []}

    def run(self, argv, input=None, check=False, timeout=60, as_user=None,
            env=None, cwd=None):
        """Run a command; returns CompletedProcess with text .out/.err."""
        if isinstance(input, str):
            input = input.encode()
        kw = self._user_kw(as_user)
        r = subprocess.run([str(a) for a in argv], input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=self.env(env),
                           cwd=cwd or self.dir, **kw)
        r.out = r.stdout.decode("utf-8", "replace")
        r.err = r.stderr.decode("utf-8", "replace")
        if check and r.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" %
                                 (" ".join(map(str, argv)), r.returncode,
                                  r.out, r.err))
        return r

    def postern(self, *args, **kw):
        return self.run([ENV.postern, "-c", self.conf] + list(args), **kw)

    def sendmail(self, *args, **kw):
        return self.run([self.bindir / "sendmail"] + list(args), **kw)

    def mailq(self, **kw):
        return self.run([self.bindir / "mailq"], **kw)

    # ---- lifecycle ----

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        if self.logf:
            self.logf.close()
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(ENV.posternd), "-c", str(self.conf), "--foreground"],
            stdin=subprocess.DEVNULL, stdout=self.logf,
            stderr=subprocess.STDOUT, env=self.env(), cwd=self.dir,
            start_new_session=True, **self._user_kw(None))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "posternd exited with status %s before answering\n%s" %
                    (self.proc.returncode, self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.smtp_port),
                                              timeout=2) as s:
                    f = s.makefile("rb")
                    line = f.readline()
                    if line.startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        self._wait_internal_sockets(deadline)
                        return line.decode().strip()
                    last = line
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError("no 220 greeting on port %d within %ds "
                             "(last: %r)\n%s" %
                             (self.smtp_port, timeout, last, self.log_tail()))

    def _wait_internal_sockets(self, deadline):
        """smtpd may answer before local, qmgr and auth have bound their
        sockets; tests that expect delivery at accept need them all."""
        names = ("local", "qmgr", "auth", "smtp")
        while time.monotonic() < deadline:
            if all((self.spool / "private" / n).exists() for n in names):
                return
            time.sleep(0.05)
        raise AssertionError("internal sockets missing after start\n%s" %
                             self.log_tail())

    def stop(self, timeout=45):
        """postern stop; then SIGTERM, then SIGKILL whatever is left."""
        if self.proc is None:
            self.kill_all()
            return None
        r = None
        if self.proc.poll() is None:
            try:
                r = self.postern("stop", timeout=timeout)
            except subprocess.TimeoutExpired:
                r = None
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_all(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        self.kill_all()
        return r

    def _signal_all(self, sig):
        pids = set(pids_with_arg(str(self.conf)))
        if self.proc is not None and self.proc.poll() is None:
            pids.add(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        return pids

    def kill_all(self):
        """SIGKILL posternd and every process started with our config."""
        pids = self._signal_all(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        wait_for(lambda: not any(proc_alive(p) for p in pids), timeout=10)
        if self.logf:
            self.logf.close()
            self.logf = None
        return pids

    def close(self, failed=False):
        try:
            self.stop()
        finally:
            if failed:
                print("---- server log (%s) ----" % self.log_path)
                print(self.log_tail(80))
            elif not os.environ.get("POSTERN_KEEP_TMP"):
                shutil.rmtree(self.dir, ignore_errors=True)

    # ---- log ----

    def log(self):
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [l for l in self.log().splitlines() if rx.search(l)]

    def wait_log(self, pattern, timeout=WAIT, count=1):
        """Wait until count log lines match pattern; return them."""
        lines = wait_for(lambda: (lambda ls: ls if len(ls) >= count
                                  else None)(self.log_lines(pattern)),
                         timeout=timeout)
        if not lines:
            raise AssertionError("no log line matching %r within %ds\n%s" %
                                 (pattern, timeout, self.log_tail()))
        return lines

    # ---- SMTP ----

    def smtp(self, port=None, timeout=WAIT):
        s = smtplib.SMTP("127.0.0.1", port or self.smtp_port,
                         local_hostname="client.example.test",
                         timeout=timeout)
        return s

    def raw(self, port=None):
        r = RawSMTP(port or self.smtp_port)
        return r

    def send(self, sender, rcpts, msg, mail_options=(), rcpt_options=(),
             port=None):
        """One SMTP transaction; returns the queue ID from the 250 reply
        after DATA.  Every reply must be positive."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with self.smtp(port) as s:
            code, text = s.ehlo()
            assert code == 250, (code, text)
            code, text = s.mail(sender, list(mail_options))
            assert code == 250, ("MAIL", code, text)
            for r in rcpts:
                code, text = s.rcpt(r, list(rcpt_options))
                assert code == 250, ("RCPT", r, code, text)
            code, text = s.data(crlf(msg))
            assert code == 250, ("DATA", code, text)
            m = re.search(r"queued as (\S+)", text.decode())
            assert m, text
            return m.group(1)

    # ---- mailboxes ----

    def make_home(self, user):
        """Create user's home directory (unprivileged mode) and return it."""
        h = self.home(user)
        if not self.root_mode:
            self.mkdir(h)
        return h

    def home(self, user):
        if self.root_mode:
            return Path(pwd.getpwnam(user).pw_dir)
        return self.data / "home" / user

    def maildir(self, user):
        return self.home(user) / "Maildir"

    def maildir_files(self, user):
        md = self.maildir(user)
        files = []
        for sub in ("new", "cur"):
            try:
                files += [md / sub / n for n in os.listdir(md / sub)
                          if not n.startswith(".")]
            except FileNotFoundError:
                pass
        return sorted(files)

    def messages(self, user):
        """Raw bytes of every message in user's mailbox, oldest first."""
        if self.mail == "mbox":
            return [m.as_bytes() for m in self.mbox_messages(user)]
        out = []
        for p in self.maildir_files(user):
            try:
                out.append(p.read_bytes())
            except FileNotFoundError:
                pass
        return out

    def count(self, user):
        if self.mail == "mbox":
            return len(self.mbox_messages(user))
        return len(self.maildir_files(user))

    def mbox_path(self, user):
        return self.mail_spool / user

    def mbox_busy(self, user):
        """An mbox is being written while its dotlock exists (a reader
        would see a partial message)."""
        return (self.mail == "mbox" and
                os.path.exists(str(self.mbox_path(user)) + ".lock"))

    def mbox_messages(self, user):
        p = self.mbox_path(user)
        if not p.exists():
            return []
        box = mailbox.mbox(str(p), create=False)
        try:
            return list(box)
        finally:
            box.close()

    def wait_messages(self, user, n, timeout=WAIT):
        """Wait until user's mailbox holds at least n messages; return
        all of them (raw bytes)."""
        got = wait_for(lambda: not self.mbox_busy(user) and
                       self.count(user) >= n, timeout=timeout)
        if not got:
            raise AssertionError(
                "%s has %d messages, expected %d within %ds\n%s" %
                (user, self.count(user), n, timeout, self.log_tail()))
        return self.messages(user)

    def with_token(self, user, token):
        if isinstance(token, str):
            token = token.encode()
        return [m for m in self.messages(user) if token in m]

    def wait_token(self, user, token, n=1, timeout=WAIT):
        """Wait until n messages containing token (e.g. a unique Subject)
        are in user's mailbox; return all such messages."""
        got = wait_for(lambda: (lambda ms: ms if len(ms) >= n else None)(
            [] if self.mbox_busy(user) else self.with_token(user, token)),
            timeout=timeout)
        if not got:
            raise AssertionError(
                "%s: %d messages with %r, expected %d within %ds\n%s" %
                (user, len(self.with_token(user, token)), token, n, timeout,
                 self.log_tail()))
        return got

    QUEUES = ("tmp", "incoming", "active", "deferred", "hold")

    def queue_files(self, subdirs=QUEUES):
        out = []
        for sub in subdirs:
            try:
                out += [sub + "/" + n for n in os.listdir(self.spool / sub)]
            except FileNotFoundError:
                pass
        return out

    def wait_queue_empty(self, timeout=WAIT,
                         subdirs=QUEUES):
        """Wait until no message is queued (everything delivered or
        bounced)."""
        if not wait_for(lambda: not self.queue_files(subdirs),
                        timeout=timeout):
            raise AssertionError("queue not empty after %ds: %s\n%s" %
                                 (timeout, self.queue_files(subdirs),
                                  self.log_tail()))

    def wait_deferred(self, qid, timeout=WAIT):
        if not wait_for(lambda: (self.spool / "deferred" / qid).exists(),
                        timeout=timeout):
            raise AssertionError("%s not deferred within %ds: %s\n%s" %
                                 (qid, timeout, self.queue_files(),
                                  self.log_tail()))

    # ---- status ----

    def status(self):
        """{service: (pid, started, restarts)} from $data_directory/status."""
        out = {}
        try:
            text = (self.data / "status").read_text()
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            f = line.split()
            if len(f) >= 4 and f[1].isdigit():
                out[f[0]] = (int(f[1]), f[2], f[3])
        return out

    def service_pid(self, name, timeout=WAIT):
        st = wait_for(lambda: self.status().get(name), timeout=timeout)
        assert st, "no %s in %s/status:\n%s" % (name, self.data,
                                                self.log_tail())
        return st[0]


# -------------------------------------------------------------- fixtures

def _failed(node):
    for when in ("setup", "call"):
        rep = getattr(node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def make_server(request):
    servers = []

    def make(start=True, **kw):
        s = Server(request.node.name, **kw)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in servers:
        s.close(failed=_failed(request.node))


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture(scope="module")
def mserver(request):
    opts = getattr(request.module, "SERVER_OPTIONS", {})
    s = Server("m" + request.module.__name__.replace("test_", ""), **opts)
    s.start()
    yield s
    s.close(failed=getattr(request.module, "postern_failed", False))


@pytest.fixture(scope="session")
def root_users():
    """Two system users for root-mode tests, created with useradd for
    this test run (names "pst" + a random tag + "a"/"b", so concurrent
    runs do not share mailboxes) and removed at the end."""
    if not IS_ROOT:
        pytest.skip("root-mode test: needs root")
    tag = "".join(random.choice(string.ascii_lowercase + string.digits)
                  for _ in range(6))
    users = ("pst%sa" % tag, "pst%sb" % tag)
    for u in users:
        ensure_system_user(u, system=False)
    yield users
    for u in users:
        subprocess.run(["userdel", "--remove", u], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


@pytest.fixture
def fakedns():
    """A DNS server of the test's own on 127.0.0.1 (fakedns.py), UDP and
    TCP on one free port.  fakedns.set(name, type, values) fills its zone;
    fakedns.conf_line() is the postern.conf line that points $dns_servers
    at it; servfail()/drop()/garbage() make names misbehave."""
    from fakedns import FakeDNS
    dns = FakeDNS().start()
    yield dns
    dns.stop()
