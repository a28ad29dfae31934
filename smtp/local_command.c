/*
 * local_command: delivery to "|command" (aliases, :include:, .forward)
 * and to mailbox_command.  The command runs as "/bin/sh -c COMMAND" in a
 * child that has become the recipient (root mode: initgroups, setgid,
 * setuid; Postfix semantics), in its home directory, with a clean
 * environment; the addresses are only in the environment (SENDER,
 * RECIPIENT, ...), never in the command string, so no address reaches a
 * shell parser.  The message goes to its standard input with a From_
 * line and our headers.  Exit 0 is success, 75 (EX_TEMPFAIL) a deferral,
 * anything else a bounce with the first line of the command's output.
 * After command_time_limit the process group is killed and the delivery
 * deferred.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "cfg.h"
#include "local.h"
#include "log.h"
#include "str.h"
#include "xmalloc.h"

#define LOCAL_EX_TEMPFAIL	75	/* sysexits.h */

static char *
local_env(const char *name, const char *value)
{
	return xasprintf("%s=%s", name, value != NULL ? value : "");
}

/* In the child: become the user and run the command.  Never returns. */
static void __attribute__((noreturn))
local_command_child(const char *cmd, const struct local_privs *p,
    char *const envp[], int in_fd, int out_fd)
{
	sigset_t none;
	int fd;

	(void)setsid();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		_exit(LOCAL_EX_TEMPFAIL);
	for (fd = 3; fd < 1024; fd++)
		(void)close(fd);
	if (local_root_mode()) {
		/* Real and effective ids: the command cannot get root back. */
		if (initgroups(p->user, p->gid) < 0 &&
		    setgroups(1, &p->gid) < 0)
			_exit(LOCAL_EX_TEMPFAIL);
		if (setgid(p->gid) < 0 || setuid(p->uid) < 0)
			_exit(LOCAL_EX_TEMPFAIL);
		if (p->uid != 0 && (setuid(0) == 0 || geteuid() == 0))
			_exit(LOCAL_EX_TEMPFAIL);
	}
	if (p->home == NULL || chdir(p->home) < 0)
		(void)!chdir("/");
	execle("/bin/sh", "sh", "-c", cmd, (char *)NULL, envp);
	_exit(127);
}

void
local_command_deliver(const struct local_msg *m, const char *cmd,
    const char *final, const struct local_privs *p, struct local_result *r)
{
	long long tlimit = cfg_get_time("command_time_limit");
	char *local = NULL, *domain = NULL, *ext = NULL, *base;
	char **envp = xcalloc(16, sizeof(*envp));
	char *from = NULL, *hdr = NULL;
	struct buf head, output;
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
	time_t deadline;
	off_t pos = 0;
	size_t head_off = 0;
	char *chunk = NULL;
	size_t clen = 0, coff = 0;
	bool writing = true, timed_out = false;
	int status = 0, n_env = 0;
	pid_t pid;

	/* In unprivileged mode only our own uid is possible. */
	if (!local_root_mode() && p->uid != geteuid()) {
		local_result_set(r, LOCAL_DEFER, "4.3.0",
		    "cannot deliver as uid %lu: not root",
		    (unsigned long)p->uid);
		free(envp);
		return;
	}
	local_split(final, &local, &domain);
	base = addr_strip_ext(local, &ext);
	envp[n_env++] = local_env("HOME", p->home);
	envp[n_env++] = local_env("USER", p->user);
	envp[n_env++] = local_env("LOGNAME", p->user);
	envp[n_env++] = local_env("SHELL", "/bin/sh");
	envp[n_env++] = local_env("PATH", "/usr/bin:/bin");
	envp[n_env++] = local_env("SENDER", m->sender);
	envp[n_env++] = local_env("RECIPIENT", final);
	envp[n_env++] = local_env("LOCAL", local);
	envp[n_env++] = local_env("DOMAIN", domain);
	envp[n_env++] = local_env("EXTENSION", ext);
	envp[n_env++] = local_env("ORIGINAL_RECIPIENT", m->orig_rcpt);
	envp[n_env] = NULL;
	free(base);

	buf_init(&head, 0);
	buf_init(&output, LOCAL_MAX_CMD_OUTPUT);
	from = local_from_line(m);
	hdr = local_prepend_headers(m, final);
	buf_append_str(&head, from);
	buf_append_str(&head, hdr);

	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
		local_result_errno(r, errno, "pipe");
		goto out;
	}
	if ((pid = fork()) < 0) {
		local_result_errno(r, errno, "fork");
		goto out;
	}
	if (pid == 0)
		local_command_child(cmd, p, envp, in_pipe[0], out_pipe[1]);
	close(in_pipe[0]);
	close(out_pipe[1]);
	in_pipe[0] = out_pipe[1] = -1;
	(void)fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
	(void)fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
	chunk = xmalloc(LOCAL_IO_CHUNK);
	deadline = time(NULL) + (time_t)tlimit;

	/* Feed stdin and drain the output until both are done. */
	while (out_pipe[0] >= 0 || writing) {
		struct pollfd pfd[2];
		nfds_t nfds = 0;
		int wait_ms;
		time_t now = time(NULL);

		if (now >= deadline) {
			timed_out = true;
			break;
		}
		wait_ms = (int)(deadline - now) * 1000;
		if (writing) {
			pfd[nfds].fd = in_pipe[1];
			pfd[nfds].events = POLLOUT;
			nfds++;
		}
		if (out_pipe[0] >= 0) {
			pfd[nfds].fd = out_pipe[0];
			pfd[nfds].events = POLLIN;
			nfds++;
		}
		if (poll(pfd, nfds, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (writing && (pfd[0].revents & (POLLOUT | POLLERR |
		    POLLHUP))) {
			ssize_t w;

			if (coff == clen) {
				/* Refill: our headers, then the message. */
				if (head_off < head.len) {
					clen = head.len - head_off;
					if (clen > LOCAL_IO_CHUNK)
						clen = LOCAL_IO_CHUNK;
					memcpy(chunk, head.data + head_off,
					    clen);
					head_off += clen;
				} else if (pos < m->qm.msg_size) {
					size_t want = (size_t)(m->qm.msg_size -
					    pos) < LOCAL_IO_CHUNK ?
					    (size_t)(m->qm.msg_size - pos) :
					    LOCAL_IO_CHUNK;
					ssize_t rd = pread(m->fd, chunk, want,
					    m->qm.msg_offset + pos);

					if (rd <= 0) {
						writing = false;
						close(in_pipe[1]);
						in_pipe[1] = -1;
						continue;
					}
					clen = (size_t)rd;
					pos += rd;
				} else {
					writing = false;
					close(in_pipe[1]);
					in_pipe[1] = -1;
					continue;
				}
				coff = 0;
			}
			w = write(in_pipe[1], chunk + coff, clen - coff);
			if (w > 0)
				coff += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				/* EPIPE: the command does not want the rest. */
				writing = false;
				close(in_pipe[1]);
				in_pipe[1] = -1;
			}
		}
		if (out_pipe[0] >= 0) {
			struct pollfd *op = &pfd[nfds - 1];

			if (op->revents & (POLLIN | POLLERR | POLLHUP)) {
				char tmp[4096];
				ssize_t rd = read(out_pipe[0], tmp,
				    sizeof(tmp));

				if (rd > 0) {
					size_t room = LOCAL_MAX_CMD_OUTPUT -
					    output.len;

					buf_append(&output, tmp, (size_t)rd <
					    room ? (size_t)rd : room);
				} else if (rd == 0 || (errno != EAGAIN &&
				    errno != EINTR)) {
					close(out_pipe[0]);
					out_pipe[0] = -1;
				}
			}
		}
	}
	if (in_pipe[1] >= 0) {
		close(in_pipe[1]);
		in_pipe[1] = -1;
	}
	/* The command closed its output; wait for its exit, bounded. */
	while (!timed_out) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = 0;
			break;
		}
		if (time(NULL) >= deadline)
			timed_out = true;
		else
			usleep(10000);
	}
	if (timed_out) {
		(void)kill(-pid, SIGKILL);
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, &status, 0);
		local_result_set(r, LOCAL_DEFER, "4.3.0", "command time limit "
		    "exceeded: \"%.100s\"", cmd);
		goto out;
	}
	{
		char first[200];
		size_t len = strcspn(buf_cstr(&output), "\n");

		if (len >= sizeof(first))
			len = sizeof(first) - 1;
		memcpy(first, buf_cstr(&output), len);
		first[len] = '\0';
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			local_result_set(r, LOCAL_SENT, "2.0.0",
			    "delivered to command: %.200s", cmd);
		else if (WIFEXITED(status) &&
		    WEXITSTATUS(status) == LOCAL_EX_TEMPFAIL)
			local_result_set(r, LOCAL_DEFER, "4.3.0", "temporary "
			    "failure. Command output: %s", first);
		else if (WIFSIGNALED(status))
			local_result_set(r, LOCAL_DEFER, "4.3.0", "command "
			    "died with signal %d: \"%.100s\"",
			    WTERMSIG(status), cmd);
		else
			local_result_set(r, LOCAL_BOUNCE, "5.3.0", "command "
			    "failed with status %d: \"%.100s\". Command "
			    "output: %s", WEXITSTATUS(status), cmd, first);
	}
out:
	if (in_pipe[0] >= 0)
		close(in_pipe[0]);
	if (in_pipe[1] >= 0)
		close(in_pipe[1]);
	if (out_pipe[0] >= 0)
		close(out_pipe[0]);
	if (out_pipe[1] >= 0)
		close(out_pipe[1]);
	strv_free(&envp);
	buf_free(&head);
	buf_free(&output);
	free(chunk);
	free(from);
	free(hdr);
	free(local);
	free(domain);
	free(ext);
}
