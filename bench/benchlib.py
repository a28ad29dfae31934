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

    SERVICES = ("smtpd", "qmgr", "local")

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


