/*
 * admin_control: postern start, stop, reload, status, check, config,
 * map and aliases.
 *
 * posternd is found through its pid file $data_directory/posternd.pid:
 * it is running exactly when the file is locked (posternd holds an open
 * file description lock on it for its whole life), so a stale file left
 * by a crash never passes for a running daemon.  The per-service lines
 * come from $data_directory/status ("NAME PID STARTED RESTARTS").
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "cfg.h"
#include "cfg_params.h"
#include "map.h"
#include "str.h"
#include "xmalloc.h"

/* How long "postern stop" waits for posternd (its own limit is 30 s). */
#define ADMIN_STOP_WAIT		35
/* How long "postern start" waits for the services' sockets. */
#define ADMIN_START_WAIT	10
/* How long "postern reload" waits for posternd to re-read the file. */
#define ADMIN_RELOAD_WAIT	5

static char *
admin_data_path(const char *name)
{
	return xasprintf("%s/%s", cfg_get("data_directory"), name);
}

int
admin_daemon_pid(pid_t *pid_r)
{
	char *path = admin_data_path("posternd.pid");
	struct flock fl;
	char text[32];
	long long pid = 0;
	ssize_t n;
	int fd;

	*pid_r = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT) {
			free(path);
			return 0;
		}
		admin_err("cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
		admin_err("cannot test the lock of %s: %s", path,
		    strerror(errno));
		(void)close(fd);
		free(path);
		return -1;
	}
	free(path);
	if (fl.l_type == F_UNLCK) {
		(void)close(fd);
		return 0;
	}
	n = pread(fd, text, sizeof(text) - 1, 0);
	(void)close(fd);
	if (n > 0) {
		text[n] = '\0';
		if (str_to_ll(str_trim(text), 1, INT_MAX, &pid) == 0)
			*pid_r = (pid_t)pid;
	}
	return 1;
}

/* The posternd next to this postern binary (build tree), else SBINDIR. */
static char *
admin_posternd_path(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		char *slash, *path;

		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			*slash = '\0';
			path = xasprintf("%s/posternd", self);
			if (access(path, X_OK) == 0)
				return path;
			free(path);
		}
	}
	return xstrdup(SBINDIR "/posternd");
}

static void
admin_format_uptime(char *dst, size_t size, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs >= 86400)
		snprintf(dst, size, "%lldd %lldh", secs / 86400,
		    secs % 86400 / 3600);
	else if (secs >= 3600)
		snprintf(dst, size, "%lldh %lldm", secs / 3600,
		    secs % 3600 / 60);
	else if (secs >= 60)
		snprintf(dst, size, "%lldm %llds", secs / 60, secs % 60);
	else
		snprintf(dst, size, "%llds", secs);
}

/*
 * The services start after posternd reports it is up: give smtpd a
 * moment to open public/pickup, so that "postern start && sendmail ..."
 * works.  Gives up quietly; posternd logs why a service does not run.
 */
static void
admin_wait_services(void)
{
	struct sockaddr_un sun;
	int i, fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/public/pickup", cfg_get("queue_directory")) >=
	    sizeof(sun.sun_path))
		return;
	for (i = 0; i < ADMIN_START_WAIT * 20; i++) {
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			return;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			/* Say goodbye properly: smtpd sees a client. */
			(void)shutdown(fd, SHUT_RDWR);
			(void)close(fd);
			return;
		}
		(void)close(fd);
		(void)usleep(50 * 1000);
	}
}

int
admin_cmd_start(int argc, char **argv)
{
	char *posternd, *args[5];
	const char *config = admin_config_file();
	bool foreground = false;
	char abs[PATH_MAX];
	pid_t pid, child;
	int i, status, n = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--foreground") == 0 ||
		    strcmp(argv[i], "-f") == 0)
			foreground = true;
		else {
			admin_err("usage: postern [-c FILE] start "
			    "[--foreground]");
			return 2;
		}
	}
	if (realpath(config, abs) != NULL)
		config = abs;
	posternd = admin_posternd_path();
	args[n++] = posternd;
	args[n++] = (char *)"-c";
	args[n++] = (char *)config;
	if (foreground)
		args[n++] = (char *)"--foreground";
	args[n] = NULL;
	if (foreground) {
		execv(posternd, args);
		admin_err("cannot run %s: %s", posternd, strerror(errno));
		return 1;
	}
	/* posternd returns once the daemon is up, or with the error. */
	fflush(stdout);
	if ((child = fork()) < 0) {
		admin_err("fork: %s", strerror(errno));
		return 1;
	}
	if (child == 0) {
		execv(posternd, args);
		admin_err("cannot run %s: %s", posternd, strerror(errno));
		_exit(127);
	}
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			admin_err("waitpid: %s", strerror(errno));
			return 1;
		}
	}
	free(posternd);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;	/* posternd said why */
	if (admin_load_config() < 0 || admin_daemon_pid(&pid) != 1) {
		admin_err("started, but cannot find the pid file");
		return 1;
	}
	admin_wait_services();
	printf("%s: started (pid %ld)\n", admin_progname, (long)pid);
	return 0;
}

int
admin_cmd_stop(int argc, char **argv)
{
	pid_t pid;
	int rc, i;

	(void)argv;
	if (argc != 1) {
		admin_err("usage: postern [-c FILE] stop");
		return 2;
	}
	if (admin_load_config() < 0)
		return 1;
	if ((rc = admin_daemon_pid(&pid)) < 0)
		return 1;
	if (rc == 0) {
		admin_err("not running");
		return 1;
	}
	if (pid <= 0) {
		admin_err("running, but the pid file is unreadable");
		return 1;
	}
	if (kill(pid, SIGTERM) < 0) {
		admin_err("cannot signal posternd (pid %ld): %s", (long)pid,
		    strerror(errno));
		return 1;
	}
	for (i = 0; i < ADMIN_STOP_WAIT * 10; i++) {
		pid_t now;

		if (admin_daemon_pid(&now) == 0 ||
		    (kill(pid, 0) < 0 && errno == ESRCH)) {
			printf("%s: stopped\n", admin_progname);
			return 0;
		}
		(void)usleep(100 * 1000);
	}
	admin_err("posternd (pid %ld) did not stop within %d s", (long)pid,
	    ADMIN_STOP_WAIT);
	return 1;
}

/* ---- check ---- */

/* Warn about hash: tables of maps parameters that are missing or stale. */
static int
admin_check_maps(void)
{
	char **seen = NULL;
	size_t i, j;
	int warnings = 0;

	for (i = 0; i < cfg_params_count; i++) {
		const struct cfg_param *p = &cfg_params[i];
		enum map_kind kind;
		char **elems;

		if (p->type != CFG_T_MAPS)
			continue;
		kind = strncmp(p->name, "alias_", 6) == 0 ?
		    MAP_KIND_ALIASES : MAP_KIND_PLAIN;
		elems = cfg_get_list(p->name);
		for (j = 0; elems[j] != NULL; j++) {
			const char *error;
			struct map *m;

			if (strncmp(elems[j], "hash:", 5) != 0)
				continue;
			if (seen != NULL && strv_contains_case(seen, elems[j]))
				continue;
			strv_push(&seen, elems[j]);
			if ((m = map_open(elems[j], kind, &error)) == NULL) {
				admin_err("warning: %s: %s", p->name, error);
				warnings++;
			} else
				map_close(&m);
		}
		cfg_list_free(&elems);
	}
	if (seen != NULL)
		strv_free(&seen);
	return warnings;
}

/*
 * Things posternd would refuse to start with, beyond the file itself.
 * Warnings only: the file may be checked on another machine, or before
 * make install.
 */
static void
admin_check_environment(void)
{
	static const char *const services[] = { "smtpd", "qmgr", "local" };
	const char *dir = cfg_get("daemon_directory");
	size_t i;

	for (i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		char *path = xasprintf("%s/%s", dir, services[i]);

		if (access(path, X_OK) < 0)
			admin_err("warning: daemon_directory: cannot run %s: "
			    "%s", path, strerror(errno));
		free(path);
	}
	if (geteuid() == 0 && getpwnam(cfg_get("run_user")) == NULL)
		admin_err("warning: run_user %s does not exist: create it with "
		    "useradd --system %s or make install", cfg_get("run_user"),
		    cfg_get("run_user"));
}

/*
 * postern check; also the first step of reload.  Returns the number of
 * errors (problems in the file); warnings are printed, not counted.
 */
static int
admin_check(void)
{
	if (admin_load_config() < 0)
		return 1;
	admin_check_environment();
	(void)admin_check_maps();
	return 0;
}

int
admin_cmd_check(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		admin_err("usage: postern [-c FILE] check");
		return 2;
	}
	return admin_check() == 0 ? 0 : 1;
}

/* ---- reload, status ---- */

static bool
admin_stat_changed(const struct stat *a, bool had_a, const char *path)
{
	struct stat b;

	if (stat(path, &b) < 0)
		return false;
	if (!had_a)
		return true;
	return a->st_ino != b.st_ino ||
	    a->st_mtim.tv_sec != b.st_mtim.tv_sec ||
	    a->st_mtim.tv_nsec != b.st_mtim.tv_nsec;
}

int
admin_cmd_reload(int argc, char **argv)
{
	char *status_path;
	struct stat before;
	bool had;
	pid_t pid;
	int rc, i;

	(void)argv;
	if (argc != 1) {
		admin_err("usage: postern [-c FILE] reload");
		return 2;
	}
	if (admin_check() != 0) {
		admin_err("not reloading: fix the errors above first");
		return 1;
	}
	if ((rc = admin_daemon_pid(&pid)) < 0)
		return 1;
	if (rc == 0 || pid <= 0) {
		admin_err("not running");
		return 1;
	}
	status_path = admin_data_path("status");
	had = stat(status_path, &before) == 0;
	if (kill(pid, SIGHUP) < 0) {
		admin_err("cannot signal posternd (pid %ld): %s", (long)pid,
		    strerror(errno));
		free(status_path);
		return 1;
	}
	/* posternd rewrites the status file once it has reloaded. */
	for (i = 0; i < ADMIN_RELOAD_WAIT * 20; i++) {
		if (admin_stat_changed(&before, had, status_path))
			break;
		(void)usleep(50 * 1000);
	}
	free(status_path);
	printf("%s: reloaded (pid %ld)\n", admin_progname, (long)pid);
	return 0;
}

int
admin_cmd_status(int argc, char **argv)
{
	char *path, line[256], up[32];
	struct stat st;
	time_t now = time(NULL);
	FILE *fp;
	pid_t pid;
	int rc;

	(void)argv;
	if (argc != 1) {
		admin_err("usage: postern [-c FILE] status");
		return 2;
	}
	if (admin_load_config() < 0)
		return 1;
	if ((rc = admin_daemon_pid(&pid)) < 0)
		return 1;
	if (rc == 0) {
		printf("%s: not running\n", admin_progname);
		return ADMIN_EXIT_NOT_RUNNING;
	}
	path = admin_data_path("posternd.pid");
	if (stat(path, &st) == 0) {
		admin_format_uptime(up, sizeof(up), (long long)(now -
		    st.st_mtime));
		printf("%s: running (pid %ld, up %s)\n", admin_progname,
		    (long)pid, up);
	} else
		printf("%s: running (pid %ld)\n", admin_progname, (long)pid);
	free(path);

	path = admin_data_path("status");
	if ((fp = fopen(path, "r")) == NULL) {
		free(path);
		return 0;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		char name[64];
		long spid;
		long long started;
		unsigned restarts;

		if (sscanf(line, "%63s %ld %lld %u", name, &spid, &started,
		    &restarts) != 4)
			continue;
		if (spid > 0) {
			admin_format_uptime(up, sizeof(up),
			    (long long)now - started);
			printf("  %-8s pid %-7ld up %-8s restarts %u\n", name,
			    spid, up, restarts);
		} else
			printf("  %-8s not running (restarting)   restarts "
			    "%u\n", name, restarts);
	}
	(void)fclose(fp);
	free(path);
	return 0;
}

/* ---- config ---- */

int
admin_cmd_config(int argc, char **argv)
{
	bool only_set = false, raw = false;
	int i, first = argc;

	for (i = 1; i < argc; i++) {
		if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0) {
			first = i;
			break;
		}
		if (strcmp(argv[i], "--") == 0) {
			first = i + 1;
			break;
		}
		if (strcmp(argv[i], "-n") == 0)
			only_set = true;
		else if (strcmp(argv[i], "-r") == 0)
			raw = true;
		else if (strcmp(argv[i], "-x") == 0)
			raw = false;
		else if (strcmp(argv[i], "-nx") == 0 ||
		    strcmp(argv[i], "-xn") == 0)
			only_set = true;
		else if (strcmp(argv[i], "-nr") == 0 ||
		    strcmp(argv[i], "-rn") == 0)
			only_set = raw = true;
		else {
			admin_err("usage: postern [-c FILE] config [-n] [-r] "
			    "[NAME...]");
			return 2;
		}
	}
	if (admin_load_config() < 0)
		return 1;
	/* argv is NULL-terminated, as main() gets it. */
	return cfg_dump(stdout, only_set, raw,
	    first < argc ? argv + first : NULL) == 0 ? 0 : 1;
}

/* ---- map, aliases ---- */

static int
admin_map_build(const char *spec, enum map_kind kind)
{
	const char *error;
	char *full = NULL;
	int n;

	/* Like postmap: a bare file name means hash:. */
	if (strchr(spec, ':') == NULL)
		spec = full = xasprintf("hash:%s", spec);
	n = map_build(spec, kind, &error);
	if (n < 0)
		fprintf(stderr, "%s\n", error);
	free(full);
	return n < 0 ? -1 : 0;
}

static int
admin_map_lookup(const char *spec, const char *key)
{
	const char *error;
	struct map *m;
	char *value;
	int rc;

	if ((m = map_open(spec, MAP_KIND_PLAIN, &error)) == NULL) {
		fprintf(stderr, "%s\n", error);
		return 1;
	}
	rc = map_lookup(m, key, &value);
	map_close(&m);
	if (rc < 0) {
		admin_err("%s: lookup of \"%s\" failed", spec, key);
		return 1;
	}
	if (rc == 0)
		return 1;
	printf("%s\n", value);
	free(value);
	return 0;
}

int
admin_cmd_map(int argc, char **argv)
{
	int i, rc = 0;

	if (argc >= 3 && strcmp(argv[1], "build") == 0) {
		/* The file names do not need a valid configuration. */
		(void)cfg_load(admin_config_file());
		for (i = 2; i < argc; i++)
			if (admin_map_build(argv[i], MAP_KIND_PLAIN) < 0)
				rc = 1;
		return rc;
	}
	if (argc == 4 && strcmp(argv[1], "lookup") == 0) {
		(void)cfg_load(admin_config_file());
		return admin_map_lookup(argv[2], argv[3]);
	}
	admin_err("usage: postern map build [TYPE:]FILE... | "
	    "postern map lookup TYPE:FILE KEY");
	return 2;
}

int
admin_cmd_aliases(int argc, char **argv)
{
	char **dbs;
	size_t i;
	int rc = 0;

	(void)argc;
	(void)argv;
	if (admin_load_config() < 0)
		return 1;
	dbs = cfg_get_list("alias_database");
	for (i = 0; dbs[i] != NULL; i++) {
		/* Only hash: tables have something to build (newaliases). */
		if (strncmp(dbs[i], "hash:", 5) != 0)
			continue;
		if (admin_map_build(dbs[i], MAP_KIND_ALIASES) < 0)
			rc = 1;
	}
	cfg_list_free(&dbs);
	return rc;
}
