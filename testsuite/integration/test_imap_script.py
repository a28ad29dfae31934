"""
The scripted IMAP conformance suite: every testsuite/imap/*.imap file
is a conversation of client lines and the exact server lines expected
(format: testsuite/imap/imapscript.py), run against a real posternd,
each script as a user of its own with a fresh Maildir.
"""
import sys
from pathlib import Path

import pytest

from conftest import PASSWORD, SRCDIR, make_msg

sys.path.insert(0, str(SRCDIR / "testsuite" / "imap"))
import imapscript  # noqa: E402

SCRIPTS = sorted((SRCDIR / "testsuite" / "imap").glob("*.imap"))
USERS = tuple("s%02d" % i for i in range(len(SCRIPTS)))
SERVER_OPTIONS = {"imap": True, "users": USERS}


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(mserver, path):
    user = USERS[SCRIPTS.index(path)]

    def deliver(subject):
        mserver.send("sender@example.test", user + "@example.test",
                     make_msg(subject, sender="sender@example.test",
                              to=user + "@example.test"))

    checked = imapscript.run_script(path.read_text(), mserver.imap_port,
                                    user, PASSWORD, deliver=deliver,
                                    name=path.name)
    assert checked > 0
