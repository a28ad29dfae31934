/*
 * master_tls: the certificate and key smtpd serves, read by posternd.
 *
 * smtpd runs as run_user, and the key an admin configures is often
 * readable by root only (/etc/ssl/private, mode 0600 or 0640
 * root:ssl-cert).  So posternd, which runs as root and checked the pair
 * at start (master_check_tls), reads the files and gives smtpd their
 * bytes in an anonymous memory file (memfd): smtpd gets it as an
 * inherited descriptor named by POSTERN_TLS_FD and loads
 * /proc/self/fd/N as both certificate and key file (the PEM blocks of
 * the chain come first, then the key's).  At a reload posternd reads the
 * files again and replaces the memory file's contents before it signals
 * smtpd, so a renewed certificate is served from the next connection
 * on, and a key stays out of reach of every other unprivileged process.
 * The login processes read their pair as root before they chroot
 * (login.c) and are restarted at a reload; they do not use this.
 *
 * Which pair: smtpd_tls_cert_file/key_file, else ssl_cert/ssl_key, else
 * the self-signed pair in $data_directory, as smtpd_settings_tls()
 * chooses, followed by the second pair configured with it if any
 * (tls_server_alt_pair()); nothing when TLS is off for smtpd.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "master.h"
#include "tls.h"
#include "xmalloc.h"

/* A PEM file bigger than this is not a certificate chain or a key. */
#define MASTER_TLS_MAX_FILE	(1024 * 1024)

static int master_tls_memfd = -1;

/* Append the whole file at path to b; 0, or -1 with errno. */
static int
master_tls_read(struct buf *b, const char *path)
{
	struct stat st;
	int fd, ret = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto out;
	if (!S_ISREG(st.st_mode) || st.st_size > MASTER_TLS_MAX_FILE) {
		errno = EFBIG;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (buf_reserve(b, 8192) < 0) {
			errno = ENOMEM;
			goto out;
		}
		n = read(fd, b->data + b->len, 8192);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		b->len += (size_t)n;
		if (b->len > 2 * MASTER_TLS_MAX_FILE) {
			errno = EFBIG;
			goto out;
		}
	}
	/* PEM blocks of the next file start on a line of their own. */
	if (b->len > 0 && b->data[b->len - 1] != '\n')
		buf_append_char(b, '\n');
	ret = 0;
out:
	close(fd);
	return ret;
}

/* The pair smtpd would load; false when smtpd has TLS off. */
static bool
master_tls_pair(char **cert_r, char **key_r)
{
	const char *level = cfg_get("smtpd_tls_security_level");
	const char *cert = cfg_get("smtpd_tls_cert_file");
	const char *key = cfg_get("smtpd_tls_key_file");

	if (strcmp(level, "none") == 0 ||
	    (*level == '\0' && strcmp(cfg_get("ssl"), "no") == 0))
		return false;
	if (*cert == '\0') {
		cert = cfg_get("ssl_cert");
		key = cfg_get("ssl_key");
	}
	if (*cert == '\0') {
		*cert_r = master_data_path("ssl/postern.crt");
		*key_r = master_data_path("ssl/postern.key");
		return true;
	}
	*cert_r = xstrdup(cert);
	/* Postfix: the key may be in the certificate file. */
	*key_r = xstrdup(*key != '\0' ? key : cert);
	return true;
}

void
master_tls_refresh(void)
{
	struct buf b;
	char *cert = NULL, *key = NULL;
	const char *failed = NULL, *aparam, *acert, *akey;

	if (!master_tls_pair(&cert, &key)) {
		if (master_tls_memfd >= 0 && ftruncate(master_tls_memfd, 0) < 0)
			log_warning("TLS credentials for smtpd: ftruncate: %m");
		return;
	}
	buf_init(&b, 0);
	if (master_tls_read(&b, cert) < 0)
		failed = cert;
	else if (strcmp(key, cert) != 0 && master_tls_read(&b, key) < 0)
		failed = key;
	/*
	 * A second pair of another key type (smtpd_tls_eccert_file,
	 * ssl_alt_cert) follows in the same memory file; smtpd's
	 * tls_server_ctx_new() loads every pair it finds there.
	 */
	if (failed == NULL &&
	    tls_server_alt_pair(cert, &aparam, &acert, &akey)) {
		if (master_tls_read(&b, acert) < 0)
			failed = acert;
		else if (strcmp(akey, acert) != 0 &&
		    master_tls_read(&b, akey) < 0)
			failed = akey;
	}
	if (failed != NULL) {
		/* Keep what smtpd had: a reload must not cost TLS. */
		log_warning("TLS credentials for smtpd: %s: %m; keeping the "
		    "previous ones", failed);
		goto out;
	}
	if (master_tls_memfd < 0 &&
	    (master_tls_memfd = memfd_create("postern-tls", MFD_CLOEXEC)) < 0) {
		log_warning("TLS credentials for smtpd: memfd_create: %m");
		goto out;
	}
	if (ftruncate(master_tls_memfd, 0) < 0 ||
	    pwrite(master_tls_memfd, b.data, b.len, 0) != (ssize_t)b.len)
		log_warning("TLS credentials for smtpd: write: %m");
out:
	explicit_bzero(b.data, b.cap);
	buf_free(&b);
	free(cert);
	free(key);
}

int
master_tls_fd(void)
{
	struct stat st;

	if (master_tls_memfd < 0 || fstat(master_tls_memfd, &st) < 0 ||
	    st.st_size == 0)
		return -1;
	return master_tls_memfd;
}
