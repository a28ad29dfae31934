"""bench/benchlib: what the benchmarks share.

Helpers of bench/smtp and bench/auth: process trees and their CPU and
memory, disk counters, machine facts for the results, Debian packages,
temporary system users, a private Postfix instance and a private Postern
instance (each with its own configuration, queue and data directories in a
temporary directory, listening on a loopback port only), the Maildir the
servers deliver to, and the lock that keeps two benchmarks from running at
once.  A benchmark sets NAME (its name in log lines) and imports the rest.
"""

import datetime
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)

# The benchmark's name in log lines ("bench/smtp").
NAME = "bench"

# System users made for one run (own names, so nothing is shared with a
# user that happens to exist) and removed at its end.
RCPT_USER = "pstbench%d" % os.getpid()      # the mailbox owner
RUN_USER = "pstbenchd%d" % os.getpid()      # Postern's run_user if no postern
LOCK = "/run/lock/postern-bench.lock"       # one bench at a time
SENDER = "bench@example.test"
DOMAIN = "localdomain"
HOSTNAME = "bench.localdomain"

# Postfix in its documented best configuration for many small messages to
# one local Maildir (TUNING_README, QSHAPE_README, postconf(5)): more parallel
# local deliveries, no connection limits, no flow-control pauses, no DNS,
# no biff notifications.  fsync behaviour is left at Postfix's defaults.
POSTFIX_TUNING = [
    ("default_process_limit", "200"),
    ("local_destination_concurrency_limit", "20"),
    ("smtpd_client_connection_count_limit", "0"),
    ("smtpd_client_connection_rate_limit", "0"),
    ("in_flow_delay", "0"),
    ("smtp_host_lookup", "native"),
    ("disable_dns_lookups", "yes"),
    ("smtpd_peername_lookup", "no"),
    ("biff", "no"),
]

# Postern settings that are only written when this build knows them (the
# parameter table grows over time); the same concurrency as Postfix's.
POSTERN_OPTIONAL = [
    ("local_destination_concurrency_limit", "20"),
]


def log(msg):
    print(NAME + ": " + msg, file=sys.stderr, flush=True)


def die(msg, code=1):
    log(msg)
    raise SystemExit(code)


def run(cmd, check=True, **kw):
    """Run a command, capture its output, fail loudly when asked."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, **kw)
    if check and p.returncode != 0:
        die("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode,
                                           p.stdout.strip()))
    return p


# ---------------------------------------------------------------------------
# machine facts, processes, disk counters

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout, alive=None):
    """Wait until 127.0.0.1:port answers with an SMTP greeting."""
    end = time.time() + timeout
    while time.time() < end:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.settimeout(2)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def proc_table():
    """pid -> (ppid, ticks of utime+stime+cutime+cstime)."""
    tab = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        # fields after "comm": state ppid ... utime(14) stime cutime cstime
        tab[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return tab


def tree_pids(root, tab=None):
    tab = tab if tab is not None else proc_table()
    kids = {}
    for pid, (ppid, _) in tab.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in tab:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def tree_cpu(root):
    """CPU seconds used by a process tree so far (reaped children included
    through their parents' cutime/cstime)."""
    tab = proc_table()
    ticks = sum(tab[p][1] for p in tree_pids(root, tab))
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss(root):
    """(sum of VmRSS, sum of Pss, both KiB; number of processes) of a
    process tree.  RSS counts shared library pages once per process; Pss
    divides them among the processes that share them."""
    rss = pss = n = 0
    for pid in tree_pids(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                        n += 1
                        break
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
        except OSError:
            pass
    return rss, pss, n


def cpu_busy():
    """Seconds all CPUs together were busy (not idle, not iowait)."""
    with open("/proc/stat") as f:
        fl = [int(x) for x in f.readline().split()[1:]]
    return (sum(fl[:8]) - fl[3] - fl[4]) / os.sysconf("SC_CLK_TCK")


def disk_of(path):
    """Name of the block device (in /proc/diskstats) holding path."""
    dev = os.stat(path).st_dev
    want = "%d:%d" % (os.major(dev), os.minor(dev))
    with open("/proc/diskstats") as f:
        for line in f:
            fl = line.split()
            if "%s:%s" % (fl[0], fl[1]) == want:
                return fl[2]
    return None


def disk_written(dev):
    """Bytes written to a block device so far (0 when unknown)."""
    if dev is None:
        return 0
    with open("/proc/diskstats") as f:
        for line in f:
            fl = line.split()
            if fl[2] == dev:
                return int(fl[9]) * 512
    return 0


def machine_facts(tmpdir):
    facts = {"nproc": str(os.cpu_count()), "kernel": os.uname().release}
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    facts["cpu"] = model
    with open("/proc/meminfo") as f:
        facts["memory"] = "%d MiB" % (int(f.readline().split()[1]) // 1024)
    p = run(["df", "-T", "-P", tmpdir], check=False)
    fl = p.stdout.splitlines()[-1].split() if p.returncode == 0 else []
    facts["filesystem"] = ("%s on %s (%s)" % (fl[1], fl[0], tmpdir)
                           if len(fl) > 1 else "?")
    if len(fl) > 6:
        with open("/proc/mounts") as f:
            for line in f:
                m = line.split()
                if m[1] == fl[6]:
                    facts["filesystem"] += ", mounted %s" % m[3]
        if fl[1] == "ext4" and fl[0].startswith("/dev/"):
            dev = os.path.basename(os.path.realpath(fl[0]))
            has = os.path.isdir("/proc/fs/jbd2/%s-8" % dev)
            facts["filesystem"] += (", with a journal" if has
                                    else ", without a journal")
    facts["date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")
    p = run(["git", "-C", TOP, "rev-parse", "--short", "HEAD"], check=False)
    commit = p.stdout.strip() if p.returncode == 0 else "?"
    p = run(["git", "-C", TOP, "status", "--porcelain", "--untracked-files=no"],
            check=False)
    if p.returncode == 0 and p.stdout.strip():
        commit += " (with uncommitted changes)"
    facts["commit"] = commit
    return facts


# ---------------------------------------------------------------------------
# packages and users

def ensure_postfix():
    need = [shutil.which("smtp-source") or "/usr/sbin/smtp-source",
            "/usr/sbin/postfix", "/usr/lib/postfix/sbin/local"]
    if all(os.path.exists(p) for p in need):
        return
    log("installing Debian's postfix package (for smtp-source and postfix)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sel = "postfix postfix/main_mailer_type select No configuration\n"
    subprocess.run(["debconf-set-selections"], input=sel, text=True,
                   check=False)
    p = run(["apt-get", "install", "-y", "-q", "postfix"], check=False,
            env=env)
    if p.returncode != 0:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", "postfix"], env=env)
    for p in need:
        if not os.path.exists(p):
            die("%s is still missing after installing postfix" % p)


class Users:
    """System users the bench needs; those it creates it deletes again."""

    def __init__(self):
        self.created = []
        self.moved = {}

    def ensure(self, name, home):
        try:
            old = pwd.getpwnam(name).pw_dir
            if old != home:
                run(["usermod", "-d", home, name])
                self.moved[name] = old
        except KeyError:
            run(["useradd", "--system", "--no-create-home", "--home-dir", home,
                 "--shell", "/usr/sbin/nologin", name])
            self.created.append(name)
        return pwd.getpwnam(name)

    def cleanup(self):
        for name in self.created:
            run(["userdel", name], check=False)
            run(["groupdel", name], check=False)
        for name, home in self.moved.items():
            run(["usermod", "-d", home, name], check=False)
        self.created, self.moved = [], {}


# ---------------------------------------------------------------------------
# the two servers

class Postfix:
    name = "Postfix"

    def __init__(self, base, port, maildir_home, extra):
        self.base = base
        self.extra = extra
        self.port = port
        self.etc = os.path.join(base, "etc")
        self.queue = os.path.join(base, "queue")
        self.data = os.path.join(base, "data")
        self.home = maildir_home
        self.master = None

    def settings(self):
        names = [k for k, _ in self.extra]
        return [kv for kv in POSTFIX_TUNING if kv[0] not in names] + \
            list(self.extra)

    def setup(self):
        # post-install creates data_directory and the queue subdirectories
        # with Postfix's owners; the top of the queue stays root's.
        for d in (self.etc, self.queue):
            os.makedirs(d, exist_ok=True)
        aliases = os.path.join(self.etc, "aliases")
        main = [
            "# private Postfix instance for " + NAME,
            "compatibility_level = 3.6",
            "queue_directory = " + self.queue,
            "data_directory = " + self.data,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "syslog_name = postfix-bench",
            # No syslog in many containers: postlogd writes this file, as
            # Postern writes its own log, so both pay for logging.
            "maillog_file = " + os.path.join(self.base, "maillog"),
            "myhostname = " + HOSTNAME,
            "mydomain = " + DOMAIN,
            "myorigin = $myhostname",
            "mydestination = $mydomain, $myhostname, localhost",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "alias_maps = hash:" + aliases,
            "alias_database = hash:" + aliases,
            "home_mailbox = Maildir/",
            "append_dot_mydomain = no",
        ] + ["%s = %s" % kv for kv in self.settings()]
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("\n".join(main) + "\n")
        # Debian's master.cf without the port-25 listener and without
        # chroot; smtpd only on the private loopback port.
        svc = [
            ("127.0.0.1:%d" % self.port, "inet", "n", "-", "n", "-", "-",
             "smtpd"),
            ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
            ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
            ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
            ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
            ("error", "unix", "-", "-", "n", "-", "-", "error"),
            ("retry", "unix", "-", "-", "n", "-", "-", "error"),
            ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
            ("local", "unix", "-", "n", "n", "-", "-", "local"),
            ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
        ]
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            for s in svc:
                f.write("%-16s %-10s %-3s %-3s %-3s %-6s %-3s %s\n" % s)
        with open(aliases, "w") as f:
            f.write("postmaster: root\nMAILER-DAEMON: postmaster\n")
        run(["postalias", "-c", self.etc, aliases])

    def start(self):
        p = run(["postfix", "-c", self.etc, "start"], check=False)
        if p.returncode != 0:
            die("postfix -c %s start failed:\n%s%s" % (
                self.etc, p.stdout, self.log_tail()))
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        end = time.time() + 15
        while time.time() < end and self.master is None:
            try:
                with open(pidfile) as f:
                    self.master = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                time.sleep(0.1)
        if self.master is None or not wait_port(self.port, 15):
            die("the private Postfix instance did not start:\n" +
                self.log_tail())

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.base, "maillog")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.master is not None and os.path.exists(
            "/proc/%d" % self.master)

    def root_pid(self):
        return self.master

    def stop(self):
        if self.master is None:
            return
        pids = tree_pids(self.master)
        run(["postfix", "-c", self.etc, "stop"], check=False)
        end = time.time() + 15
        while time.time() < end and self.alive():
            time.sleep(0.1)
        for pid in pids:            # only what this instance started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.master = None


class Postern:
    name = "Postern"

    def __init__(self, base, port, build, mode, run_user, owner, extra,
                 listen="smtp_listen"):
        self.base = base
        self.listen = listen        # the listener that gets the port
        # The bench user's stored password; in root mode a passwd-file
        # passdb is written for it only when set (userdb stays passwd).
        self.password_hash = None
        self.extra = extra
        self.owner = owner
        self.port = port
        self.build = build
        self.mode = mode
        self.run_user = run_user
        self.conf = os.path.join(base, "postern.conf")
        self.queue = os.path.join(base, "spool")
        self.data = os.path.join(base, "data")
        self.libexec = os.path.join(base, "libexec")
        self.proc = None
        self.logf = None
        self.optional = []
        self.lines = []

    # Every service posternd insists on (master_services_check).
    SERVICES = ("smtpd", "qmgr", "local", "smtp", "auth")

    @staticmethod
    def find_build(hint, services=SERVICES):
        """Directory holding posternd, postern and the services."""
        cands = [hint] if hint else [
            os.environ.get("POSTERN_BUILD"), TOP, "/usr/local/sbin",
            "/usr/sbin"]
        for c in cands:
            if not c or not os.path.isfile(os.path.join(c, "posternd")):
                continue
            svc = Postern.find_services(c, services)
            if svc is not None:
                return c, svc
        return None, None

    @staticmethod
    def find_services(d, services=SERVICES):
        places = [d, os.path.join(d, "smtp"), os.path.join(d, "auth"),
                  "/usr/local/libexec/postern", "/usr/libexec/postern"]
        out = {}
        for s in services:
            for p in places:
                f = os.path.join(p, s)
                if os.path.isfile(f) and os.access(f, os.X_OK):
                    out[s] = f
                    break
            else:
                return None
        return out

    def settings(self):
        return list(self.optional) + list(self.extra)

    def write_conf(self, optional):
        lines = [
            "# private Postern instance for " + NAME,
            "myhostname = " + HOSTNAME,
            "mydomain = " + DOMAIN,
            "myorigin = $myhostname",
            "mydestination = $mydomain, $myhostname, localhost",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
        ] + ["%s = %s" % (name, "127.0.0.1:%d" % self.port
                          if name == self.listen else "")
             for name in ("smtp_listen", "submission_listen", "smtps_listen",
                          "pop3_listen", "pop3s_listen", "imap_listen",
                          "imaps_listen")] + [
            "queue_directory = " + self.queue,
            "data_directory = " + self.data,
            "daemon_directory = " + self.libexec,
            "mail_location = maildir:~/Maildir",
            "alias_maps =",
            "alias_database =",
        ]
        if self.mode == "root":
            lines.append("run_user = " + self.run_user)
            if self.password_hash is not None:
                lines.append("passdb = passwd-file:" +
                             os.path.join(self.base, "users"))
        else:
            users = os.path.join(self.base, "users")
            lines += ["passdb = passwd-file:" + users,
                      "userdb = passwd-file:" + users]
        lines += ["%s = %s" % kv for kv in optional + self.extra]
        self.lines = lines
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def setup(self, services, home):
        os.makedirs(self.libexec, exist_ok=True)
        os.makedirs(self.data, exist_ok=True)
        for s, path in services.items():
            os.symlink(path, os.path.join(self.libexec, s))
        if self.mode == "user":
            # Dovecot passwd-file line: empty uid/gid = the running user.
            with open(os.path.join(self.base, "users"), "w") as f:
                f.write("%s:%s::::%s::\n" % (
                    RCPT_USER, self.password_hash or "{PLAIN}bench", home))
        elif self.password_hash is not None:
            with open(os.path.join(self.base, "users"), "w") as f:
                f.write("%s:%s::::::\n" % (RCPT_USER, self.password_hash))
        postern = os.path.join(self.build, "postern")
        # Keep the optional settings this build knows.
        known = []
        for kv in POSTERN_OPTIONAL:
            self.write_conf([kv])
            p = run([postern, "-c", self.conf, "config", kv[0]], check=False)
            if p.returncode == 0 and "unknown" not in p.stdout:
                known.append(kv)
        self.optional = known
        self.write_conf(known)
        if self.mode == "user":
            for root, dirs, files in os.walk(self.base):
                for x in [root] + [os.path.join(root, y)
                                   for y in dirs + files]:
                    os.lchown(x, self.owner.pw_uid, self.owner.pw_gid)
        p = run([postern, "-c", self.conf, "check"], check=False)
        if p.returncode != 0:
            die("postern check rejects the bench config:\n" + p.stdout)

    def start(self):
        posternd = os.path.join(self.build, "posternd")
        self.logf = open(os.path.join(self.base, "posternd.log"), "w")
        cmd = [posternd, "-c", self.conf, "--foreground"]
        if self.mode == "user":
            cmd = ["setpriv", "--reuid=" + RCPT_USER, "--regid=" + RCPT_USER,
                   "--clear-groups", "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.logf,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_port(self.port, 15, alive=self.alive):
            die("Postern did not start; its output:\n" + self.log_tail())

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.base, "posternd.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None:
            return
        pids = tree_pids(self.proc.pid)
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids:            # only what this instance started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None


# ---------------------------------------------------------------------------
# the Maildir, results, the lock

def count_new(newdir):
    try:
        return len(os.listdir(newdir))
    except FileNotFoundError:
        return 0


def reset_maildir(home, owner):
    """An empty Maildir for the next run.  The previous one is moved aside,
    not deleted: deleting thousands of files just before a run would make
    the filesystem's inode allocation slower during it (ext4 without a
    journal skips recently deleted inodes one by one), and would measure
    the bench instead of the servers.  Everything goes at exit."""
    md = os.path.join(home, "Maildir")
    if os.path.exists(md):
        old = os.path.join(os.path.dirname(os.path.dirname(home)), "old")
        os.makedirs(old, exist_ok=True)
        os.rename(md, os.path.join(old, "Maildir.%d" % len(os.listdir(old))))
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), mode=0o700, exist_ok=True)
    for d in (md, md + "/cur", md + "/new", md + "/tmp"):
        os.chown(d, owner.pw_uid, owner.pw_gid)
    return os.path.join(md, "new")


def fmt(x, nd=0):
    if x is None:
        return "n/a"
    return ("%%.%df" % nd) % x


def take_lock(wait):
    """Only one benchmark at a time: two would share the CPUs and the disk
    and both measure nonsense.  Returns the open lock file."""
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    f = open(LOCK, "a+")
    end = time.monotonic() + wait
    said = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > end:
                f.seek(0)
                die("another benchmark is still running (%s); try again "
                    "later" % f.read().strip(), 75)
            if not said:
                f.seek(0)
                log("waiting for another benchmark to finish (%s)" %
                    f.read().strip())
                said = True
            time.sleep(1)
    f.seek(0)
    f.truncate()
    f.write("pid %d\n" % os.getpid())
    f.flush()
    return f


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------
# POP3 and IMAP (bench/pop3, bench/imap): the mail both servers serve, a
# private Dovecot with its pop3 or imap service, Postern with its login and
# mail processes, and the load client (bench/mailload.c, built with cc).

MAIL_PASSWORD = "Bench-pw.42"
# Every generated message ends with this line; the load client checks it.
MAIL_TRAILER = "end of bench message"
MAIL_WORDS = ("the quick brown fox jumps over a lazy dog while mail "
              "servers count octets and flags in every folder of the "
              "office").split()


def make_mail(i, size, seed=1):
    """Message number i (bytes, LF line ends, as Maildir files usually
    hold them) of about size bytes: between half and one and a half times
    size, the same for the same (i, size, seed).  Some body lines start
    with a dot, so POP3 byte-stuffing is exercised."""
    x = (i * 2654435761 + seed * 40503) & 0xffffffff
    target = size // 2 + x % (size + 1)
    head = (
        "Return-Path: <sender%d@bench.example>\n"
        "Received: from client.bench.example (client.bench.example "
        "[192.0.2.%d])\n\tby bench.localdomain with ESMTP id B%08X\n"
        "\tfor <reader@bench.localdomain>; Mon, 23 Nov 2026 10:%02d:%02d "
        "+0000\n"
        "From: Sender %d <sender%d@bench.example>\n"
        "To: Reader <reader@bench.localdomain>\n"
        "Subject: bench message %d about %s\n"
        "Date: Mon, 23 Nov 2026 10:%02d:%02d +0000\n"
        "Message-ID: <%d.%08x@bench.example>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n\n" % (
            i % 97, 1 + i % 250, x, (i // 60) % 60, i % 60, i % 97, i % 97,
            i, MAIL_WORDS[x % len(MAIL_WORDS)], (i // 60) % 60, i % 60, i,
            x))
    lines, n, k = [], len(head) + len(MAIL_TRAILER) + 1, x
    while n < target:
        k = (k * 1103515245 + 12345) & 0x7fffffff
        words, w = [], 0
        while w < 60:
            word = MAIL_WORDS[(k >> (len(words) % 16)) % len(MAIL_WORDS)]
            words.append(word)
            w += len(word) + 1
        line = " ".join(words)
        if k % 17 == 0:
            line = "." + line
        lines.append(line)
        n += len(line) + 1
    return (head + "\n".join(lines + [MAIL_TRAILER]) + "\n").encode()


def mail_vsize(data):
    """The size a POP3 or IMAP server reports: with CRLF line ends."""
    return len(data) + data.count(b"\n")


# Generated messages are kept between runs under TMPDIR/MAIL_CACHE, one
# directory per (count, mean size, seed), and the Maildirs of a run are hard
# links to them: deleting a link is cheap, while deleting 100,000 files on
# a filesystem mounted with "discard" takes minutes.  Maildir files are
# never changed in place (flags are renames), so the servers cannot alter
# the cached copies; each server's Maildir still has its own names.
MAIL_CACHE = "postern-bench-mail"
MAIL_CACHE_VERSION = 1              # bump when make_mail changes


class MessageStore:
    """count messages of make_mail(i, size, seed) as files m0, m1, ...
    (mode 0644, owned by root) in a directory under tmpdir, written once
    and reused by later runs; sizes[i] and vsizes[i] are their sizes."""

    def __init__(self, tmpdir, count, size, seed):
        self.dir = os.path.join(tmpdir, MAIL_CACHE, "v%d-%d-%d-%d" % (
            MAIL_CACHE_VERSION, count, size, seed))
        self.count = count
        manifest = os.path.join(self.dir, "manifest")
        self.sizes, self.vsizes = [], []
        try:
            with open(manifest) as f:
                for line in f:
                    a, b = line.split()
                    self.sizes.append(int(a))
                    self.vsizes.append(int(b))
        except (OSError, ValueError):
            self.sizes, self.vsizes = [], []
        if len(self.sizes) == count:
            return
        log("writing %d messages of about %d bytes to %s (kept for later "
            "runs)" % (count, size, self.dir))
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        os.chmod(os.path.dirname(self.dir), 0o755)
        t = 1795000000
        self.sizes, self.vsizes = [], []
        for i in range(count):
            data = make_mail(i, size, seed)
            name = os.path.join(self.dir, "m%d" % i)
            with open(name, "wb") as f:
                f.write(data)
            os.chmod(name, 0o644)
            os.utime(name, (t + i, t + i))
            self.sizes.append(len(data))
            self.vsizes.append(mail_vsize(data))
        # The manifest last: a store without one is incomplete.
        with open(manifest + ".tmp", "w") as f:
            for a, b in zip(self.sizes, self.vsizes):
                f.write("%d %d\n" % (a, b))
        os.rename(manifest + ".tmp", manifest)


def fill_maildir(home, store, owner, sizes=True):
    """A Maildir under home (owned by owner) holding the messages of store
    (a MessageStore) in new/, as a delivery agent leaves them, each a hard
    link to the store's file.  With sizes, the file names carry the size
    and the size with CRLF (",S=N,W=N") as Dovecot's own delivery (LDA,
    LMTP) and Postern's store write them, so neither server has to read a
    file to learn its size; without, names are as Postfix's local(8) writes
    them and each server computes the sizes once for its index."""
    md = os.path.join(home, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), mode=0o700, exist_ok=True)
    t = 1795000000
    for i in range(store.count):
        name = os.path.join(md, "new", "%d.M%dP%dQ%d.bench.localdomain%s" % (
            t + i, i % 1000000, os.getpid(), i + 1,
            ",S=%d,W=%d" % (store.sizes[i], store.vsizes[i]) if sizes
            else ""))
        os.link(os.path.join(store.dir, "m%d" % i), name)
    for d in (home, md, md + "/cur", md + "/new", md + "/tmp"):
        os.chown(d, owner.pw_uid, owner.pw_gid)


def wait_greeting(port, prefix, timeout, alive=None):
    """Wait until 127.0.0.1:port greets with prefix (b"+OK", b"* OK")."""
    end = time.time() + timeout
    while time.time() < end:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.settimeout(2)
                if s.recv(512).startswith(prefix):
                    s.sendall(b"QUIT\r\n" if prefix == b"+OK" else
                              b"x LOGOUT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def mail_build(hint, proto):
    """(build directory, {service: path}) of a Postern build with the
    login and mail processes of proto, or (None, None)."""
    services = tuple(dict.fromkeys(Postern.SERVICES + (
        "auth", proto + "-login", proto)))
    cands = [hint] if hint else [
        os.environ.get("POSTERN_BUILD"), TOP, "/usr/local/sbin", "/usr/sbin"]
    for d in cands:
        if not d or not os.path.isfile(os.path.join(d, "posternd")):
            continue
        places = [d] + [os.path.join(d, x) for x in (
            "smtp", "auth", "pop3", "imap", "login")] + [
            "/usr/local/libexec/postern", "/usr/libexec/postern"]
        out = {}
        for s in services:
            for p in places:
                f = os.path.join(p, s)
                if os.path.isfile(f) and os.access(f, os.X_OK):
                    out[s] = f
                    break
        if len(out) == len(services):
            return d, out
    return None, None


def mail_password_hash(build, scheme):
    """One stored password for both servers' passwd-files."""
    if build is not None:
        p = run([os.path.join(build, "postern"), "pw", "-s", scheme, "-p",
                 MAIL_PASSWORD], check=False)
        if p.returncode == 0 and p.stdout.startswith("{"):
            return p.stdout.strip()
    return run(["doveadm", "pw", "-s", scheme, "-p",
                MAIL_PASSWORD]).stdout.strip()


def ensure_dovecot_mail(proto):
    """Debian's dovecot-core and dovecot-PROTOd, installed when missing."""
    pkgs = []
    if not (shutil.which("dovecot") and shutil.which("doveadm")):
        pkgs.append("dovecot-core")
    if not os.path.exists("/usr/lib/dovecot/" + proto):
        pkgs.append("dovecot-%sd" % proto)
    if not pkgs:
        return
    log("installing Debian's %s" % " ".join(pkgs))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    p = run(["apt-get", "install", "-y", "-q"] + pkgs, check=False, env=env)
    if p.returncode != 0:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q"] + pkgs, env=env)
    if not os.path.exists("/usr/lib/dovecot/" + proto):
        die("dovecot's %s is still missing after installing %s" % (
            proto, " ".join(pkgs)))


class DovecotMail:
    """A private Dovecot serving POP3 or IMAP on one loopback port (own
    base_dir, state_dir and log; the system instance is not touched).
    Login processes in the documented high-performance mode
    (service_count = 0, process_min_avail = one per CPU); passwd-file
    passdb, static userdb: every user is the bench's system user with its
    own home under homes; fsync at Dovecot's default (mail_fsync =
    optimized); no TLS."""
    name = "Dovecot"

    def __init__(self, base, port, proto, homes, owner, password_hash,
                 users, extra=()):
        self.base = base
        self.port = port
        self.proto = proto
        self.homes = homes
        self.owner = owner
        self.password_hash = password_hash
        self.users = users
        self.extra = list(extra)
        self.conf = os.path.join(base, "dovecot.conf")
        self.master = None
        self.greeting = b"+OK" if proto == "pop3" else b"* OK"

    def settings(self):
        """Settings beyond protocol, listener, paths, passdb and userdb."""
        n = str(os.cpu_count() or 1)
        out = [("service %s-login/service_count" % self.proto, "0"),
               ("service %s-login/process_min_avail" % self.proto, n),
               ("mail_max_userip_connections", "10000"),
               ("service %s/process_limit" % self.proto, "4096"),
               ("first_valid_uid", str(self.owner.pw_uid)),
               ("ssl", "no"), ("disable_plaintext_auth", "no")]
        names = [k for k, _ in self.extra]
        return [kv for kv in out if kv[0] not in names] + self.extra

    def setup(self):
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        users = os.path.join(self.base, "users")
        with open(users, "w") as f:
            for u in self.users:
                f.write("%s:%s::::::\n" % (u, self.password_hash))
        # The auth process runs as Dovecot's internal user.
        os.chmod(users, 0o644)
        st = dict(self.settings())
        svc = {}
        plain = []
        for k, v in st.items():
            if k.startswith("service "):
                s, opt = k[len("service "):].split("/", 1)
                svc.setdefault(s, []).append((opt, v))
            else:
                plain.append((k, v))
        other = "imap" if self.proto == "pop3" else "pop3"
        conf = [
            "# private Dovecot instance for " + NAME,
            "protocols = " + self.proto,
            "listen = 127.0.0.1",
            "base_dir = " + os.path.join(self.base, "run"),
            "state_dir = " + os.path.join(self.base, "state"),
            "log_path = " + os.path.join(self.base, "dovecot.log"),
            "mail_location = maildir:~/Maildir",
            "auth_mechanisms = plain login",
        ] + ["%s = %s" % kv for kv in plain] + [
            "passdb {",
            "  driver = passwd-file",
            "  args = " + users,
            "}",
            "userdb {",
            "  driver = static",
            "  args = uid=%d gid=%d home=%s/%%u" % (
                self.owner.pw_uid, self.owner.pw_gid, self.homes),
            "}",
            "service %s-login {" % self.proto,
            "  inet_listener %s {" % self.proto,
            "    address = 127.0.0.1",
            "    port = %d" % self.port,
            "  }",
            "  inet_listener %ss {" % self.proto,
            "    port = 0",
            "  }",
        ] + ["  %s = %s" % kv for kv in svc.pop(self.proto + "-login", [])
             ] + ["}",
                  "service %s-login {" % other,
                  "  inet_listener %s {" % other,
                  "    port = 0",
                  "  }",
                  "  inet_listener %ss {" % other,
                  "    port = 0",
                  "  }",
                  "}"]
        for s, opts in svc.items():
            conf += ["service %s {" % s] + ["  %s = %s" % kv for kv in opts
                                            ] + ["}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")

    def read_pid(self):
        try:
            with open(os.path.join(self.base, "run", "master.pid")) as f:
                self.master = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass

    def start(self):
        out = os.path.join(self.base, "start.out")
        with open(out, "w") as f:
            p = subprocess.run(["dovecot", "-c", self.conf],
                               stdin=subprocess.DEVNULL, stdout=f,
                               stderr=subprocess.STDOUT)
        if p.returncode != 0:
            with open(out) as f:
                die("dovecot -c %s failed:\n%s%s" % (self.conf, f.read(),
                                                      self.log_tail()))
        end = time.time() + 15
        while time.time() < end and self.master is None:
            self.read_pid()
            time.sleep(0.1)
        if self.master is None or not wait_greeting(
                self.port, self.greeting, 15, self.alive):
            die("the private Dovecot instance did not start:\n" +
                self.log_tail())

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.base, "dovecot.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.master is not None and os.path.exists(
            "/proc/%d" % self.master)

    def root_pid(self):
        return self.master

    def stop(self):
        if self.master is None:
            self.read_pid()
        if self.master is None:
            return
        pids = tree_pids(self.master)
        with open(os.devnull, "w") as null:
            subprocess.run(["dovecot", "-c", self.conf, "stop"],
                           stdin=subprocess.DEVNULL, stdout=null,
                           stderr=null)
        end = time.time() + 15
        while time.time() < end and self.alive():
            time.sleep(0.1)
        for pid in pids:            # only what this instance started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.master = None


class PosternMail(Postern):
    """Postern serving POP3 or IMAP only (its SMTP listeners empty; smtpd,
    qmgr and local still run, idle, and count in its memory), root mode:
    login processes as run_user, one mail process per mail uid.  passdb
    and userdb are one passwd-file giving every user the bench's system
    uid and a home under homes, so that, as with Dovecot's static userdb,
    all users' sessions are served as that uid."""

    def __init__(self, base, port, build, run_user, owner, proto, homes,
                 password_hash, users, extra=()):
        self.users_file = os.path.join(base, "users")
        mine = [("passdb", "passwd-file:" + self.users_file),
                ("userdb", "passwd-file:" + self.users_file),
                ("first_valid_uid", str(owner.pw_uid)),
                ("ssl", "no"), ("disable_plaintext_auth", "no"),
                ("login_max_connections_per_ip", "0"),
                ("mail_max_userip_connections", "10000")]
        names = [k for k, _ in extra]
        super().__init__(base, port, build, "root", run_user, owner,
                         [kv for kv in mine if kv[0] not in names] +
                         list(extra), listen=proto + "_listen")
        self.proto = proto
        self.homes = homes
        self.mail_hash = password_hash
        self.mail_users = users
        self.greeting = b"+OK" if proto == "pop3" else b"* OK"

    def settings(self):
        """Settings beyond listener, paths, passdb and userdb."""
        return [kv for kv in super().settings()
                if kv[0] not in ("passdb", "userdb")]

    def setup(self, services, home=None):
        os.makedirs(self.base, exist_ok=True)
        with open(self.users_file, "w") as f:
            for u in self.mail_users:
                f.write("%s:%s:%d:%d::%s/%s::\n" % (
                    u, self.mail_hash, self.owner.pw_uid, self.owner.pw_gid,
                    self.homes, u))
        os.chmod(self.users_file, 0o600)
        super().setup(services, home)

    def start(self):
        posternd = os.path.join(self.build, "posternd")
        self.logf = open(os.path.join(self.base, "posternd.log"), "w")
        self.proc = subprocess.Popen(
            [posternd, "-c", self.conf, "--foreground"],
            stdin=subprocess.DEVNULL, stdout=self.logf,
            stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_greeting(self.port, self.greeting, 15, self.alive):
            die("Postern did not start; its output:\n" + self.log_tail())


def build_mailload(outdir):
    """Compiles bench/mailload.c into outdir; returns the program's path."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        die("no C compiler (cc) for bench/mailload.c")
    prog = os.path.join(outdir, "mailload")
    run([cc, "-O2", "-Wall", "-Wextra", "-o", prog,
         os.path.join(HERE, "mailload.c")])
    return prog


def parse_mailload(text):
    """mailload's key=value report as a dict; op_NAME lines become
    {"lat": {NAME: (count, p50 us, p99 us)}}, error lines a list."""
    out = {"lat": {}, "error": []}
    for line in text.splitlines():
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        if k.startswith("op_"):
            n, p50, p99 = v.split()
            out["lat"][k[3:]] = (int(n), float(p50), float(p99))
        elif k == "error":
            out["error"].append(v)
        else:
            try:
                out[k] = float(v) if "." in v else int(v)
            except ValueError:
                out[k] = v
    return out


def mailload_cmd(prog, mode, port, concurrency, user, nusers,
                 seconds=None, count=None, messages=None, extra=()):
    cmd = [prog, mode, "-p", str(port), "-c", str(concurrency), "-u", user,
           "-U", str(nusers), "-w", MAIL_PASSWORD]
    if seconds is not None:
        cmd += ["-t", str(int(seconds))]
    if count is not None:
        cmd += ["-n", str(count)]
    if messages is not None:
        cmd += ["-m", str(messages)]
    return cmd + list(extra)


def run_mailload(cmd, timeout):
    """Runs the load client to its end; its parsed report."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"lat": {}, "error": ["load client still running after "
                                     "%d s" % timeout], "errors": 1}
    r = parse_mailload(p.stdout)
    if p.returncode != 0:
        r["error"].append("mailload exit %d: %s" % (p.returncode,
                                                     p.stderr.strip()[:200]))
        r["errors"] = r.get("errors", 0) + 1
    return r


def server_mem(srv):
    """(RSS summed, PSS, both KiB; processes) of a server's process tree."""
    return tree_rss(srv.root_pid())


def measure_load(srv, cmd, seconds, timeout, mem_at=(0.5, 0.8)):
    """Runs the load client cmd against srv for about seconds: the
    client's report plus the server tree's CPU seconds ("server_cpu"),
    the share of all CPUs used by anything else ("other"), and the largest
    memory seen ("mem": RSS, PSS, processes) when sampled at the given
    fractions of the run (sampling walks every server process, so it
    is done a few times only)."""
    cpu0 = tree_cpu(srv.root_pid())
    busy0 = cpu_busy()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    peak = None
    try:
        for frac in mem_at:
            delay = t0 + seconds * frac - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if p.poll() is not None or not srv.alive():
                break
            m = server_mem(srv)
            if peak is None or m[1] > peak[1]:
                peak = m
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += "\nload client killed after %d s" % timeout
    elapsed = time.monotonic() - t0
    busy = cpu_busy() - busy0
    r = parse_mailload(out)
    if p.returncode != 0:
        r["error"].append("mailload exit %d: %s" % (p.returncode,
                                                     err.strip()[:200]))
        r["errors"] = r.get("errors", 0) + 1
    r["server_cpu"] = (tree_cpu(srv.root_pid()) - cpu0 if srv.alive()
                       else None)
    client = r.get("cpu", 0.0)
    r["other"] = (max(0.0, busy - (r["server_cpu"] or 0) - client) /
                  (elapsed * (os.cpu_count() or 1)))
    r["mem"] = peak
    r["elapsed"] = elapsed
    return r
