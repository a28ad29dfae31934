"""
Root mode (run when the suite runs as root, as in CI): posternd as root,
network-facing services as run_user "postern", local delivery to system
users (useradd'ed "pst*" users) into their own Maildir or mbox, owned by
them; commands run as the recipient or, from aliases, as default_privs.
"""
import os
import pwd
import stat

from conftest import (HOSTNAME, REMOTE_DEFERRED, make_msg, proc_uids,
                      requires_root, wait_for)
from test_local import setup_command, command_runs

pytestmark = requires_root


def root_server(make_server, users, **kw):
    return make_server(root_mode=True, system_users=users, **kw)


def test_privilege_separation(make_server, root_users):
    srv = root_server(make_server, root_users)
    run = pwd.getpwnam("postern")
    assert proc_uids(srv.proc.pid) == (0, 0, 0, 0)
    for name in ("smtpd", "qmgr"):
        pid = srv.service_pid(name)
        assert proc_uids(pid) == (run.pw_uid,) * 4, name
        with open("/proc/%d/status" % pid) as f:
            gids = [l for l in f if l.startswith("Gid:")][0].split()[1:5]
        assert all(int(g) == run.pw_gid for g in gids), (name, gids)
    assert proc_uids(srv.service_pid("local"))[0] == 0
    # the queue belongs to run_user
    for sub in ("incoming", "deferred", "tmp"):
        assert os.stat(srv.spool / sub).st_uid == run.pw_uid, sub


def test_maildir_delivery_to_system_user(make_server, root_users):
    alice, bob = root_users
    srv = root_server(make_server, root_users)
    pw = pwd.getpwnam(alice)
    srv.send("someone@example.org", "%s@example.test" % alice,
             make_msg("root-maildir"))
    raw = srv.wait_token(alice, "root-maildir")[0]
    assert raw.startswith(b"Return-Path: <someone@example.org>\n")
    md = srv.maildir(alice)
    for d in (md, md / "new", md / "cur", md / "tmp"):
        st = os.stat(d)
        assert st.st_uid == pw.pw_uid, d
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, (d, oct(st.st_mode))
    for f in srv.maildir_files(alice):
        st = os.stat(f)
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), f
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, oct(st.st_mode)
    # postmaster reaches the first user through the alias
    srv.send("someone@example.org", "postmaster", make_msg("root-pm"))
    srv.wait_token(alice, "root-pm")
    # unknown system users are refused
    with srv.smtp() as s:
        s.ehlo()
        s.mail("someone@example.org")
        code, text = s.rcpt("pstnosuchuser@example.test")
        assert code == 550 and text.startswith(b"5.1.1"), text


def test_mbox_delivery_to_system_user(make_server, root_users):
    alice, bob = root_users
    srv = root_server(make_server, root_users, mail="mbox")
    pw = pwd.getpwnam(bob)
    srv.send("someone@example.org", "%s@example.test" % bob,
             make_msg("root-mbox", "From here on\n"))
    raw = srv.wait_token(bob, "root-mbox")[0]
    srv.wait_queue_empty()
    path = srv.mbox_path(bob)
    st = os.stat(path)
    assert st.st_uid == pw.pw_uid
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    data = path.read_bytes()
    assert data.startswith(b"From someone@example.org ")
    assert b"\n>From here on\n" in data
    assert b"root-mbox" in raw
    assert not os.path.exists(str(path) + ".lock")


def test_sendmail_as_system_user(make_server, root_users):
    alice, bob = root_users
    srv = root_server(make_server, root_users)
    pw = pwd.getpwnam(bob)
    r = srv.sendmail(alice, input="Subject: from-bob\n\nhi\n", as_user=bob,
                     env={"HOME": pw.pw_dir, "USER": bob, "LOGNAME": bob})
    assert r.returncode == 0, r.err
    raw = srv.wait_token(alice, "from-bob")[0]
    assert raw.startswith(("Return-Path: <%s@%s>\n" %
                           (bob, HOSTNAME)).encode()), raw[:100]
    assert ("from userid %d" % pw.pw_uid).encode() in raw


def test_forward_command_runs_as_recipient(make_server, root_users):
    alice, bob = root_users
    srv = root_server(make_server, root_users)
    pw = pwd.getpwnam(bob)
    script, out = setup_command(srv)
    fwd = os.path.join(pw.pw_dir, ".forward")
    srv.write(fwd, '"|%s"\n' % script, owner=(pw.pw_uid, pw.pw_gid))
    try:
        srv.send("someone@example.org", "%s@example.test" % bob,
                 make_msg("root-command"))
        (env, stdin), = command_runs(out)
    finally:
        os.unlink(fwd)
    assert env["UID"] == str(pw.pw_uid)
    assert env["HOME"] == pw.pw_dir
    assert env["RECIPIENT"] == "%s@example.test" % bob
    assert b"Subject: root-command" in stdin


def test_alias_command_runs_as_default_privs(make_server, root_users):
    srv = root_server(make_server, root_users, start=False)
    script, out = setup_command(srv)
    srv.set_aliases('rootcmd: "|%s"\n' % script)
    srv.start()
    srv.send("someone@example.org", "rootcmd@example.test",
             make_msg("alias-command-privs"))
    (env, _), = command_runs(out)
    assert env["UID"] == str(pwd.getpwnam("nobody").pw_uid)


def test_queue_admin_rights(make_server, root_users):
    alice, bob = root_users
    srv = root_server(make_server, root_users, conf=REMOTE_DEFERRED)
    qid = srv.send("someone@example.org", "far@remote.example",
                   make_msg("root-queue"))
    srv.wait_deferred(qid)
    # anyone may list the queue, like mailq
    r = srv.mailq(as_user=bob)
    assert r.returncode == 0 and qid in r.out, r.out + r.err
    # but only root or the queue owner may change it
    r = srv.postern("queue", "delete", qid, as_user=bob)
    assert r.returncode != 0
    assert qid in srv.mailq().out
    r = srv.postern("queue", "delete", qid)
    assert r.returncode == 0, r.err
    assert wait_for(lambda: qid not in srv.mailq().out)
