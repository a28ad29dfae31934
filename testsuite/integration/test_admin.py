"""
The postern admin commands that manage users, passwords and lookup
tables, checked by their effect: a user added can receive mail, a user
deleted is refused, a password hash verifies with crypt(3), a table built
answers lookups.
"""
import os
import re
import subprocess

from conftest import PASSWORD, make_msg


def crypt_verify(password, hashed):
    """crypt(3) of password with hashed as the salt == hashed, computed
    with openssl (SHA-crypt) so the check does not trust Postern."""
    m = re.fullmatch(r"\$([56])\$(?:rounds=\d+\$)?([^$]+)\$.+", hashed)
    assert m, hashed
    salt = m.group(2)
    rounds = re.match(r"\$[56]\$rounds=(\d+)\$", hashed)
    if rounds:
        # openssl passwd has no rounds option: fall back to Python's crypt
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return crypt.crypt(password, hashed) == hashed
    r = subprocess.run(["openssl", "passwd", "-" + m.group(1), "-salt", salt,
                        password], stdout=subprocess.PIPE, check=True)
    return r.stdout.decode().strip() == hashed


def users_file(srv):
    out = {}
    for line in (srv.dir / "users").read_text().splitlines():
        f = line.split(":")
        out[f[0]] = f
    return out


def test_user_add_receive_delete(server):
    r = server.postern("user", "add", "dave", "-p", "dave-pw")
    assert r.returncode == 0, r.err
    assert "dave" in server.postern("user", "list").out.split()
    fields = users_file(server)["dave"]
    m = re.fullmatch(r"\{SHA512-CRYPT\}(\$6\$.+)", fields[1])
    assert m, fields
    assert crypt_verify("dave-pw", m.group(1))
    assert not crypt_verify("wrong", m.group(1))
    # the new user receives mail right away
    server.send("alice@example.test", "dave@example.test",
                make_msg("welcome-dave"))
    server.wait_token("dave", "welcome-dave")
    # a new password
    r = server.postern("user", "passwd", "dave", "-p", "new-pw")
    assert r.returncode == 0, r.err
    h = users_file(server)["dave"][1].split("}", 1)[1]
    assert crypt_verify("new-pw", h) and not crypt_verify("dave-pw", h)
    # deleted: refused at RCPT
    r = server.postern("user", "del", "dave")
    assert r.returncode == 0, r.err
    assert "dave" not in server.postern("user", "list").out.split()
    with server.smtp() as s:
        s.ehlo()
        s.mail("alice@example.test")
        code, text = s.rcpt("dave@example.test")
        assert code == 550 and text.startswith(b"5.1.1"), text
    # the other users are untouched
    assert sorted(users_file(server)) == ["alice", "bob", "carol", "demo"]
    fields = users_file(server)["demo"]
    assert crypt_verify(PASSWORD, fields[1].split("}", 1)[1])


def test_user_add_twice_fails(server):
    r = server.postern("user", "add", "demo", "-p", "x")
    assert r.returncode != 0
    assert "demo" in r.out + r.err


def test_pw_schemes(server):
    r = server.postern("pw", "-p", "s3cret")
    assert r.returncode == 0, r.err
    m = re.fullmatch(r"\{SHA512-CRYPT\}(\$6\$\S+)", r.out.strip())
    assert m, r.out
    assert crypt_verify("s3cret", m.group(1))
    r = server.postern("pw", "-s", "SHA256-CRYPT", "-p", "s3cret")
    m = re.fullmatch(r"\{SHA256-CRYPT\}(\$5\$\S+)", r.out.strip())
    assert m, r.out
    assert crypt_verify("s3cret", m.group(1))
    # two hashes of one password differ (random salt)
    again = server.postern("pw", "-p", "s3cret").out.strip()
    assert again != server.postern("pw", "-p", "s3cret").out.strip()
    r = server.postern("pw", "-s", "NO-SUCH-SCHEME", "-p", "x")
    assert r.returncode != 0


def test_map_build_and_lookup(server):
    src = server.write(server.dir / "table",
                       "# comment\n"
                       "key1     value one\n"
                       "Key2 value2\n"
                       "\n"
                       "example.org   relay:[10.0.0.1]\n")
    r = server.postern("map", "build", "hash:%s" % src)
    assert r.returncode == 0, r.err
    assert os.path.exists(str(src) + ".db")

    def lookup(key):
        return server.postern("map", "lookup", "hash:%s" % src, key)
    assert lookup("key1").out.strip() == "value one"
    assert lookup("KEY2").out.strip() == "value2"
    assert lookup("example.org").out.strip() == "relay:[10.0.0.1]"
    r = lookup("nosuchkey")
    assert r.returncode != 0 and r.out.strip() == ""
    # a source newer than its .db is an error, not silently old data
    st = os.stat(str(src) + ".db")
    os.utime(src, (st.st_atime + 10, st.st_mtime + 10))
    r = lookup("key1")
    assert r.returncode != 0
    assert "older than" in r.out + r.err, r.out + r.err


def test_stale_aliases_reported_by_check(server):
    st = os.stat(server.dir / "aliases.db")
    os.utime(server.dir / "aliases", (st.st_atime + 10, st.st_mtime + 10))
    r = server.postern("check")
    assert re.search(r"aliases\.db is older than .*aliases", r.out + r.err), \
        r.out + r.err
