#!/usr/bin/python3
"""bench/imap100k.py: IMAP (and POP3) on one very large Maildir INBOX.

Generates a Maildir of N messages (default 100,000: small messages with
the headers real mail has, flags mixed as a read mailbox has them) and
times, against any IMAP server that serves it:

  select-cold   the first SELECT (the server builds its index)
  select        SELECT again, from a new connection (the index exists)
  select-restart  SELECT again after the server was restarted (only
                with --postern: the mail process starts from nothing but
                the files it keeps in the Maildir)
  flags         FETCH 1:* (FLAGS)
  env-cold      FETCH 1:* (ENVELOPE BODYSTRUCTURE), the first time
  env           the same again (from the server's cache)
  search-from   SEARCH FROM "<one sender>" (a header search)
  search-subj   SEARCH SUBJECT "<words>"
  search-text   SEARCH TEXT "<words in one body>" (reads the messages)
  pop3-list     POP3 LIST, pop3-uidl: POP3 UIDL (when --pop3-port)

Each time is from sending the command to the last byte of the tagged
answer, read by a plain reader (literals honoured, nothing parsed), so
the client's own speed matters little.  After each case the memory of
the server's mail process is printed when it can be read (--server-pid,
or --server-proc NAME: every process of that name owned by the user
running this script, or any when root): RSS and PSS, summed.
With --strace the files the server opened during each case are counted
(strace -f -e trace=open,openat attached to the server process), so one
can check that SELECT and the cached FETCH open no message file.

Usage:
  bench/imap100k.py --maildir DIR [--count N] --generate-only
  bench/imap100k.py --maildir DIR --user U --password P [--host H]
                    [--port 143] [--pop3-port 110] [--server-proc imap]
  bench/imap100k.py --maildir DIR --postern BUILDDIR [--run-as USER]

--maildir is generated when it holds no messages yet (--regenerate to
start again).  With --postern BUILDDIR the script starts a private
posternd (unprivileged mode, passwd-file user "bench", ~/Maildir a
symlink to --maildir, loopback ports) from an out-of-tree build and
stops it at the end (as root it runs posternd as --run-as, default
nobody, and gives that user the Maildir); point --host/--port at Dovecot for the comparison
instead (its mail_location must be that Maildir, e.g. maildir:DIR).
"""

import argparse
import imaplib
import os
import poplib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

WORDS = ("report meeting invoice agenda budget release review draft "
         "minutes quarterly schedule travel project update proposal "
         "contract summary feedback launch notes").split()
NAMES = ("Alice Martin", "Bob Chen", "Carol Diaz", "Dave Okafor",
         "Eve Novak", "Frank Weber", "Grace Kim", "Heidi Larsen")


# ---------------------------------------------------------------- mailbox

def make_message(i, rnd):
    """Message i: bytes with LF line ends, as delivered."""
    n = rnd.randrange(len(NAMES))
    sender = NAMES[n]
    saddr = "%s%d@%s" % (sender.split()[0].lower(), i % 997,
                         ("example.org", "example.net", "example.com")[n % 3])
    subj = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(2, 7)))
    if rnd.random() < 0.3:
        subj = "Re: " + subj
    if rnd.random() < 0.1:
        subj = "[list-%d] %s" % (n, subj)
    t = 1600000000 + i * 300
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))
    hdr = [
        "Return-Path: <%s>" % saddr,
        "Received: from mx%d.example.org (mx%d.example.org [192.0.2.%d])"
        % (n, n, n + 1),
        "\tby mail.example.test (Postern) with ESMTPS id Q%08X"
        % (i * 2654435761 & 0xffffffff),
        "\tfor <user@example.test>; %s" % date,
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1;",
        "\tb=%s" % ("%064x" % (i * 0x9e3779b97f4a7c15 & (2**256 - 1))),
        "From: %s <%s>" % (sender, saddr),
        "To: User <user@example.test>",
    ]
    if rnd.random() < 0.3:
        hdr.append("Cc: %s <cc%d@example.net>"
                   % (rnd.choice(NAMES), i % 101))
    hdr += [
        "Subject: %s" % subj,
        "Date: %s" % date,
        "Message-ID: <%d.%d@example.org>" % (t, i),
    ]
    if subj.startswith("Re: ") and i > 0:
        hdr.append("In-Reply-To: <%d.%d@example.org>" % (t - 300, i - 1))
        hdr.append("References: <%d.%d@example.org>" % (t - 300, i - 1))
    hdr += ["MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit"]
    body = []
    for _ in range(rnd.randrange(3, 15)):
        body.append(" ".join(rnd.choice(WORDS)
                             for _ in range(rnd.randrange(5, 12))))
    body.append("message number %d" % i)
    return ("\n".join(hdr) + "\n\n" + "\n".join(body) + "\n").encode()


def count_messages(maildir):
    n = 0
    for sub in ("cur", "new"):
        try:
            n += sum(1 for e in os.scandir(os.path.join(maildir, sub))
                     if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return n


def generate(maildir, count, seed=42):
    """count messages into maildir/cur, with flags of a read mailbox."""
    rnd = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    start = time.time()
    cur = os.path.join(maildir, "cur")
    for i in range(count):
        data = make_message(i, rnd)
        r = rnd.random()
        flags = "S" if r < 0.7 else ""
        if rnd.random() < 0.05:
            flags = "F" + flags
        if rnd.random() < 0.1:
            flags = "R" + flags if "S" in flags else flags
        flags = "".join(sorted(flags))
        name = "%d.M%dP%d.bench,S=%d:2,%s" % (1600000000 + i, i, 1000 + i %
                                             7, len(data), flags)
        path = os.path.join(cur, name)
        with open(path, "wb") as f:
            f.write(data)
        t = 1600000000 + i
        os.utime(path, (t, t))
        if i and i % 20000 == 0:
            print("  generated %d messages (%.0f s)" % (i, time.time() -
                                                        start), flush=True)
    print("generated %d messages in %s (%.1f s)" %
          (count, maildir, time.time() - start), flush=True)


# ---------------------------------------------------------------- clients

class RawIMAP:
    """A minimal IMAP client: commands out, answers counted, not parsed
    (literals skipped by their length, so a line inside one never looks
    like the tagged answer)."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.pos = 0        # what of buf is consumed
        self.tagn = 0
        self.line()     # greeting

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed")
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                ln = self.buf[self.pos:i]
                self.pos = i + 2
                return ln
            self._fill()

    def skip(self, n):
        while len(self.buf) - self.pos < n:
            self._fill()
        self.pos += n

    lit = re.compile(rb"\{(\d+)\+?\}$")

    def cmd(self, text):
        """Send one command; return (tagged line, untagged lines, bytes)."""
        self.tagn += 1
        tag = b"b%d" % self.tagn
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = nbytes = 0
        first = []
        while True:
            ln = self.line()
            nbytes += len(ln) + 2
            while True:
                m = self.lit.search(ln)
                if not m:
                    break
                n = int(m.group(1))
                self.skip(n)
                nbytes += n
                ln = self.line()
                nbytes += len(ln) + 2
            if ln.startswith(tag + b" "):
                if not ln.startswith(tag + b" OK"):
                    raise RuntimeError("%s: %s" % (text, ln.decode()))
                return ln, lines, nbytes, first
            lines += 1
            if len(first) < 3:
                first.append(ln)

    def close(self):
        try:
            self.cmd("LOGOUT")
        except (EOFError, OSError, RuntimeError):
            pass
        self.sock.close()


def imap_login(args):
    """Check the account with imaplib (it tells what is wrong), then log
    in with the plain reader."""
    im = imaplib.IMAP4(args.host, args.port, timeout=args.timeout)
    im.login(args.user, args.password)
    im.logout()
    c = RawIMAP(args.host, args.port, args.timeout)
    c.cmd('LOGIN "%s" "%s"' % (args.user, args.password))
    return c


# ---------------------------------------------------------------- server

def proc_mem(pids):
    """(RSS, PSS) in KiB summed over pids, None where unreadable."""
    rss = pss = 0
    ok = False
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for ln in f:
                    if ln.startswith("Rss:"):
                        rss += int(ln.split()[1])
                    elif ln.startswith("Pss:"):
                        pss += int(ln.split()[1])
            ok = True
        except OSError:
            continue
    return (rss, pss) if ok else (None, None)


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def server_pids(args):
    """The server's mail processes: --server-pid, or the processes named
    --server-proc (below --server-root's process when given: our own
    posternd), of our user unless we are root."""
    if args.server_pid:
        return [args.server_pid]
    if not args.server_proc:
        return []
    me = os.getuid()
    root = getattr(args, "server_root", None)
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                comm = f.read().strip()
            if comm != args.server_proc:
                continue
            if me != 0 and os.stat("/proc/%s" % d).st_uid != me:
                continue
        except OSError:
            continue
        if root:
            p = int(d)
            while p > 1 and p != root:
                p = parent_of(p)
            if p != root:
                continue
        out.append(int(d))
    return out


class Strace:
    """Count open()/openat() of the server's processes while a case runs."""

    def __init__(self, pids):
        self.pids = pids
        self.proc = None
        self.out = None

    def start(self):
        if not self.pids or not shutil.which("strace"):
            return
        fd, self.out = tempfile.mkstemp(prefix="imap100k-strace.")
        os.close(fd)
        cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat",
               "-o", self.out]
        for p in self.pids:
            cmd += ["-p", str(p)]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        time.sleep(0.5)     # attached

    def stop(self):
        if not self.proc:
            return None
        time.sleep(0.2)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        total = msgs = 0
        with open(self.out) as f:
            for ln in f:
                if "open" not in ln or "= -1" in ln:
                    continue
                total += 1
                if "/cur/" in ln or "/new/" in ln:
                    msgs += 1
        os.unlink(self.out)
        self.proc = None
        return total, msgs


class PrivatePostern:
    """posternd from a build tree, unprivileged, one user 'bench' whose
    ~/Maildir is the bench Maildir."""

    def __init__(self, build, maildir, password, run_as):
        self.build = os.path.abspath(build)
        self.dir = tempfile.mkdtemp(prefix="imap100k-")
        # As root, posternd would run in root mode; the bench runs it
        # unprivileged as run_as, which gets the files.
        self.pw = None
        if os.getuid() == 0:
            import pwd
            self.pw = pwd.getpwnam(run_as)
            os.chmod(self.dir, 0o755)
        self.password = password
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.proc = None
        home = os.path.join(self.dir, "home", "bench")
        os.makedirs(home)
        os.symlink(os.path.abspath(maildir), os.path.join(home, "Maildir"))
        libexec = os.path.join(self.dir, "libexec")
        os.makedirs(libexec)
        # Every service posternd may start, as the build tree has them
        # (some are built in a subdirectory of their name).
        for name in ("smtpd", "qmgr", "local", "smtp", "auth",
                     "imap-login", "imap", "pop3-login", "pop3"):
            for rel in ("%s/%s" % (name, name), name):
                src = os.path.join(self.build, rel)
                if os.path.isfile(src) and os.access(src, os.X_OK):
                    os.symlink(src, os.path.join(libexec, name))
                    break
        self.conf = os.path.join(self.dir, "postern.conf")
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write("bench:{PLAIN}%s::::%s::\n" % (password, home))
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "myhostname = bench.example.test",
                "inet_interfaces = loopback-only",
                "smtp_listen =", "submission_listen =", "smtps_listen =",
                "imaps_listen =", "pop3s_listen =",
                "imap_listen = 127.0.0.1:%d" % self.imap_port,
                "pop3_listen = 127.0.0.1:%d" % self.pop3_port,
                "queue_directory = %s/spool" % self.dir,
                "data_directory = %s/data" % self.dir,
                "daemon_directory = %s" % libexec,
                "mail_spool_directory = %s/mail" % self.dir,
                "mail_location = maildir:~/Maildir",
                "passdb = passwd-file:%s" % users,
                "userdb = passwd-file:%s" % users,
                "disable_plaintext_auth = no",
                "alias_maps =",
                ""]))
        if self.pw:
            for top in (self.dir, os.path.abspath(maildir)):
                for d, dirs, files in os.walk(top):
                    for n in dirs + files + ["."]:
                        os.lchown(os.path.join(d, n), self.pw.pw_uid,
                                  self.pw.pw_gid)

    def start(self):
        self.log = open(os.path.join(self.dir, "posternd.log"), "w")
        pw = self.pw

        def drop():
            if pw:
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        self.proc = subprocess.Popen(
            [os.path.join(self.build, "posternd"), "-c", self.conf,
             "--foreground"], stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=drop, cwd="/")
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.imap_port),
                                         timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        with open(os.path.join(self.dir, "posternd.log")) as f:
            sys.stderr.write(f.read()[-3000:])
        self.stop()
        sys.exit("posternd did not start")

    def stop(self):
        if os.environ.get("IMAP100K_KEEP"):
            print("kept %s" % self.dir)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if not os.environ.get("IMAP100K_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- cases

def run_cases(args):
    results = []
    pids = []

    def case(name, fn):
        nonlocal pids
        st = Strace(pids) if args.strace else None
        if st:
            st.start()
        t0 = time.perf_counter()
        info = fn()
        dt = time.perf_counter() - t0
        opened = st.stop() if st else None
        pids = server_pids(args) or pids
        rss, pss = proc_mem(pids)
        line = "%-14s %8.3f s  %s" % (name, dt, info)
        if rss is not None:
            line += "  rss %d MiB pss %d MiB" % (rss // 1024, pss // 1024)
        if opened is not None:
            line += "  opens %d (message files %d)" % opened
        print(line, flush=True)
        results.append((name, dt))

    c = imap_login(args)
    pids = server_pids(args)

    def select():
        _, _, _, first = c.cmd("SELECT INBOX")
        exists = [ln for ln in first if ln.endswith(b"EXISTS")]
        return exists[0].decode() if exists else ""

    case("select-cold", select)
    c.close()
    c = imap_login(args)
    case("select", select)
    if getattr(args, "restart", None):
        c.close()
        args.restart()
        c = imap_login(args)
        pids = server_pids(args)
        case("select-restart", select)

    def fetch(items):
        def fn():
            _, n, nb, _ = c.cmd("FETCH 1:* (%s)" % items)
            return "%d responses, %.1f MB" % (n, nb / 1e6)
        return fn

    case("flags", fetch("FLAGS"))
    case("env-cold", fetch("ENVELOPE BODYSTRUCTURE"))
    case("env", fetch("ENVELOPE BODYSTRUCTURE"))

    def search(crit):
        def fn():
            _, _, nb, first = c.cmd("SEARCH %s" % crit)
            hits = len(first[0].split()) - 2 if first else 0
            return "%s: %d hits" % (crit, hits)
        return fn

    case("search-from", search('FROM "grace7@"'))
    case("search-subj", search('SUBJECT "quarterly budget"'))
    case("search-text", search('TEXT "message number %d"' %
                               (args.count // 2)))
    c.close()

    if args.pop3_port:
        def pop3(cmd):
            def fn():
                p = poplib.POP3(args.host, args.pop3_port,
                                timeout=args.timeout)
                p.user(args.user)
                p.pass_(args.password)
                t0 = time.perf_counter()
                resp, lines, _ = (p.list() if cmd == "LIST" else p.uidl())
                dt = time.perf_counter() - t0
                p.quit()
                return "%d lines (command alone %.3f s)" % (len(lines), dt)
            return fn
        case("pop3-list", pop3("LIST"))
        case("pop3-uidl", pop3("UIDL"))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=143)
    ap.add_argument("--pop3-port", type=int)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--server-proc",
                    help="process name of the mail process (imap)")
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--postern", metavar="BUILDDIR",
                    help="start a private posternd from this build")
    ap.add_argument("--run-as", default="nobody",
                    help="with --postern as root: the user posternd runs "
                    "as (gets the Maildir); default nobody")
    args = ap.parse_args()

    if args.regenerate and os.path.isdir(args.maildir):
        shutil.rmtree(args.maildir)
    have = count_messages(args.maildir)
    if have == 0:
        generate(args.maildir, args.count)
    elif have != args.count:
        print("note: %s holds %d messages, not %d" %
              (args.maildir, have, args.count))
        args.count = have
    if args.generate_only:
        return

    pp = None
    if args.postern:
        args.user = "bench"
        args.password = args.password or "bench-pw"
        pp = PrivatePostern(args.postern, args.maildir, args.password,
                            args.run_as)
        pp.start()
        args.host, args.port = "127.0.0.1", pp.imap_port
        args.pop3_port = pp.pop3_port
        args.server_proc = args.server_proc or "imap"
        args.server_root = pp.proc.pid

        def restart():
            pp.proc.send_signal(signal.SIGTERM)
            pp.proc.wait(30)
            pp.log.close()
            pp.start()
            args.server_root = pp.proc.pid
        args.restart = restart
    if not args.user or not args.password:
        sys.exit("--user and --password (or --postern) are needed")
    try:
        print("server %s:%d, %d messages" % (args.host, args.port,
                                             args.count), flush=True)
        run_cases(args)
    finally:
        if pp:
            pp.stop()


if __name__ == "__main__":
    main()
