"""
Privilege separation in root mode (DESIGN §2), read from /proc: every
process of a root-mode server runs as the user the design gives it, with
its real, effective, saved and filesystem ids all equal (nothing left to
regain), services that read the network hold no groups beyond run_user's,
and login processes are chrooted to an empty directory root owns.

Root only; skipped otherwise.
"""
import grp
import os
import pwd
import stat

from conftest import (ENV, make_msg, proc_uids, requires_root, wait_for)

pytestmark = requires_root

# Services that keep root, and those that must run as run_user.
ROOT_SERVICES = ("auth", "local")
RUN_USER_SERVICES = ("smtpd", "qmgr", "imap-login", "pop3-login")
LOGIN_SERVICES = ("imap-login", "pop3-login")


def installed(name):
    """Whether the server's daemon_directory has this service."""
    return os.access(os.path.join(str(ENV.libexec), name), os.X_OK)


def status_fields(pid):
    """{field: [values]} of /proc/PID/status for Uid, Gid and Groups."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in rest.split()]
    return out


def proc_name(pid):
    """The program a process runs: base name of argv[0]."""
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        argv0 = f.read().split(b"\0")[0].decode("utf-8", "replace")
    return os.path.basename(argv0)


def process_tree(root):
    """PIDs of root and all its descendants (zombies left out)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if rest[0] != "Z":
            kids.setdefault(int(rest[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def user_groups(name):
    pw = pwd.getpwnam(name)
    return set(os.getgrouplist(name, pw.pw_gid))


def test_root_mode_process_credentials(make_server, root_users):
    logins = [n for n in LOGIN_SERVICES if installed(n)]
    srv = make_server(root_mode=True, system_users=root_users,
                      pop3="pop3-login" in logins,
                      imap="imap-login" in logins)
    alice = root_users[0]
    run = pwd.getpwnam("postern")
    allowed_groups = user_groups("postern")

    # Mail through smtpd and local, so delivery workers exist too.
    srv.send("someone@example.org", "%s@example.test" % alice,
             make_msg("privsep"))
    srv.wait_token(alice, "privsep")
    srv.wait_queue_empty()

    expect = {"smtpd", "qmgr", "local"}
    expect |= {n for n in ROOT_SERVICES + RUN_USER_SERVICES if installed(n)}
    pids = {name: srv.service_pid(name) for name in sorted(expect)}

    # posternd and the services that keep root.
    assert proc_uids(srv.proc.pid) == (0, 0, 0, 0)
    for name in ROOT_SERVICES:
        if name in pids:
            assert proc_uids(pids[name]) == (0, 0, 0, 0), name

    # The services that read the network: run_user, nothing else.
    for name in RUN_USER_SERVICES:
        if name not in pids:
            continue
        st = status_fields(pids[name])
        assert st["Uid"] == [run.pw_uid] * 4, (name, st["Uid"])
        assert st["Gid"] == [run.pw_gid] * 4, (name, st["Gid"])
        extra = set(st["Groups"]) - allowed_groups
        assert not extra, (name, "supplementary groups beyond run_user's",
                           sorted(grp.getgrgid(g).gr_name for g in extra))

    # Every process of the server, helpers and workers included: all
    # four uids and gids equal, so no process can switch back.
    tree = process_tree(srv.proc.pid)
    assert set(pids.values()) <= set(tree), (pids, tree)
    for pid in tree:
        try:
            st = status_fields(pid)
            name = proc_name(pid)
        except OSError:
            continue            # exited meanwhile
        assert len(set(st["Uid"])) == 1, (pid, name, st["Uid"])
        assert len(set(st["Gid"])) == 1, (pid, name, st["Gid"])
        if name in RUN_USER_SERVICES:
            assert st["Uid"][0] == run.pw_uid, (pid, name)

    # Login processes: chrooted to a directory root owns and nobody
    # else may write, and which holds nothing of value.
    for name in logins:
        pid = pids[name]
        root = os.readlink("/proc/%d/root" % pid)
        assert root != "/", "%s is not chrooted" % name
        assert os.path.realpath(root) == os.path.realpath(
            str(srv.data / "login")), (name, root)
        st = os.stat(root)
        assert st.st_uid == 0, (name, root, st.st_uid)
        assert stat.S_IMODE(st.st_mode) & 0o022 == 0, (name, oct(
            st.st_mode))
        # Only sockets (the auth socket): no files, no directories.
        for n in os.listdir(root):
            mode = os.lstat(os.path.join(root, n)).st_mode
            assert stat.S_ISSOCK(mode), (name, n, oct(mode))


def test_root_mode_services_stay_separated_after_restart(make_server,
                                                         root_users):
    """A service posternd restarts comes back with the same dropped
    privileges."""
    srv = make_server(root_mode=True, system_users=root_users)
    run = pwd.getpwnam("postern")
    old = srv.service_pid("smtpd")
    os.kill(old, 9)
    new = wait_for(lambda: (lambda p: p if p and p != old else None)(
        (srv.status().get("smtpd") or (None,))[0]))
    assert new, "smtpd was not restarted:\n" + srv.log_tail()
    srv.wait_ready()
    assert proc_uids(new) == (run.pw_uid,) * 4
    st = status_fields(new)
    assert st["Gid"] == [run.pw_gid] * 4
    assert not set(st["Groups"]) - user_groups("postern")
