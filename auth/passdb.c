/*
 * passdb: password verification against PAM, the shadow file or a
 * Dovecot-format passwd-file, chosen by the passdb parameter.  For an
 * unknown user the same kind of hash is still computed (a dummy
 * SHA512-CRYPT check, or crypt(3) of a dummy salt) and the same result
 * returned as for a wrong password.
 */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <shadow.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <security/pam_appl.h>

#include "base64.h"
#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "password.h"
#include "str.h"
#include "userdb.h"
#include "xmalloc.h"

#include "passdb.h"

#define PASSDB_PAM_SERVICE	"postern"

enum passdb_kind {
	PASSDB_PAM,
	PASSDB_SHADOW,
	PASSDB_FILE,
	PASSDB_UNKNOWN,
};

static enum passdb_kind
passdb_kind(const char **path_r)
{
	const char *spec = cfg_get("passdb");

	*path_r = NULL;
	if (strcmp(spec, "pam") == 0)
		return PASSDB_PAM;
	if (strcmp(spec, "shadow") == 0)
		return PASSDB_SHADOW;
	if (strncmp(spec, "passwd-file:", 12) == 0 && spec[12] != '\0') {
		*path_r = spec + 12;
		return PASSDB_FILE;
	}
	return PASSDB_UNKNOWN;
}

bool
passdb_has_secrets(void)
{
	const char *path;

	return passdb_kind(&path) == PASSDB_FILE;
}

/*
 * passwd-file
 */

struct passdb_find {
	const char		*name;
	struct userdb_user	 u;
	bool			 found;
};

static void
passdb_find_cb(const struct userdb_user *u, void *ctx)
{
	struct passdb_find *f = ctx;

	if (f->found || strcmp(u->name, f->name) != 0)
		return;
	f->found = true;
	f->u.name = xstrdup(u->name);
	f->u.password = u->password != NULL ? xstrdup(u->password) : NULL;
	f->u.uid = u->uid;
	f->u.gid = u->gid;
	f->u.home = u->home != NULL ? xstrdup(u->home) : NULL;
	f->u.gecos = u->gecos != NULL ? xstrdup(u->gecos) : NULL;
}

/* 1 found (*u filled), 0 not found, -1 file unreadable. */
static int
passdb_file_find(const char *path, const char *user, struct userdb_user *u,
    const char **error_r)
{
	struct passdb_find f;

	memset(&f, 0, sizeof(f));
	f.name = user;
	if (userdb_file_list(path, passdb_find_cb, &f) < 0) {
		*error_r = "passwd-file unreadable";
		return -1;
	}
	if (!f.found)
		return 0;
	*u = f.u;
	return 1;
}

static char *passdb_dummy;

static void
passdb_dummy_init(void)
{
	passdb_dummy = password_hash(PASSWORD_DEFAULT_SCHEME,
	    "postern-dummy-password");
}

/*
 * A stored hash to check against when the user does not exist; made
 * once, also when several auth worker threads ask at the same time.
 */
static const char *
passdb_dummy_hash(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, passdb_dummy_init);
	return passdb_dummy;
}

static int
passdb_file_verify(const char *path, const char *user, const char *pw,
    struct userdb_user *u_r, const char **error_r)
{
	struct userdb_user u;
	const char *dummy;
	int ret;

	memset(&u, 0, sizeof(u));
	ret = passdb_file_find(path, user, &u, error_r);
	if (ret < 0)
		return -1;
	if (ret == 0 || u.password == NULL || u.password[0] == '\0') {
		if ((dummy = passdb_dummy_hash()) != NULL)
			(void)password_verify(dummy, pw);
		userdb_user_free(&u);
		return 0;
	}
	ret = password_verify(u.password, pw);
	if (ret < 0) {
		log_warning("%s: user %s: unsupported or malformed password "
		    "hash", path, user);
		ret = 0;
	}
	if (ret == 1 && u_r != NULL) {
		*u_r = u;
		return 1;
	}
	userdb_user_free(&u);
	return ret;
}

/*
 * shadow
 */

static int
passdb_shadow_verify(const char *user, const char *pw, const char **error_r)
{
	static const char dummy_salt[] = "$6$postern.dummy$";
	struct crypt_data *cd;
	struct spwd spbuf, *sp = NULL;
	const char *hash, *res;
	bool exists, expired = false;
	size_t size = 1024;
	char *strbuf;
	int ret = 0, err;

	/* getspnam_r: the auth service checks in several threads. */
	for (;;) {
		strbuf = xmalloc(size);
		err = getspnam_r(user, &spbuf, strbuf, size, &sp);
		if (err != ERANGE || size >= 1024 * 1024)
			break;
		free(strbuf);
		size *= 2;
	}
	if (sp == NULL && err != 0 && err != ENOENT) {
		*error_r = err == EACCES ?
		    "getspnam: permission denied (not root?)" :
		    "getspnam failed";
		free(strbuf);
		return -1;
	}
	exists = sp != NULL && sp->sp_pwdp != NULL && sp->sp_pwdp[0] != '\0';
	hash = exists ? sp->sp_pwdp : dummy_salt;
	if (exists && sp->sp_expire > 0 &&
	    time(NULL) / (24 * 60 * 60) >= sp->sp_expire)
		expired = true;
	cd = xcalloc(1, sizeof(*cd));
	res = crypt_r(pw, hash, cd);
	/* Locked ("!...") or "*" entries make crypt_r fail: no match. */
	if (exists && !expired && res != NULL && res[0] != '*' &&
	    strlen(res) == strlen(hash) &&
	    CRYPTO_memcmp(res, hash, strlen(hash)) == 0)
		ret = 1;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	explicit_bzero(strbuf, size);
	free(strbuf);
	return ret;
}

/*
 * PAM
 */

struct passdb_pam_ctx {
	const char	*user;
	const char	*password;
};

static int
passdb_pam_conv(int n, const struct pam_message **msg,
    struct pam_response **resp_r, void *appdata)
{
	struct passdb_pam_ctx *ctx = appdata;
	struct pam_response *resp;
	int i;

	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	resp = xcalloc(n, sizeof(*resp));
	for (i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			resp[i].resp = xstrdup(ctx->password);
			break;
		case PAM_PROMPT_ECHO_ON:
			resp[i].resp = xstrdup(ctx->user);
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			break;
		default:
			while (--i >= 0)
				if (resp[i].resp != NULL) {
					explicit_bzero(resp[i].resp,
					    strlen(resp[i].resp));
					free(resp[i].resp);
				}
			free(resp);
			return PAM_CONV_ERR;
		}
	}
	*resp_r = resp;
	return PAM_SUCCESS;
}

/*
 * Not every PAM module is thread-safe: the auth service's worker threads
 * take turns.
 */
static pthread_mutex_t passdb_pam_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * pam_unix sleeps about two seconds after a failure (pam_fail_delay);
 * the auth service holds its own failure delay without a thread
 * sleeping, so PAM's is replaced by nothing.
 */
static void
passdb_pam_no_delay(int retval, unsigned usec, void *appdata)
{
	(void)retval;
	(void)usec;
	(void)appdata;
}

static int
passdb_pam_verify(const char *user, const char *pw, const char **error_r)
{
	struct passdb_pam_ctx ctx = { user, pw };
	struct pam_conv conv = { passdb_pam_conv, &ctx };
	pam_handle_t *pamh = NULL;
	int rc, ret;

	pthread_mutex_lock(&passdb_pam_lock);
	rc = pam_start(PASSDB_PAM_SERVICE, user, &conv, &pamh);
	if (rc != PAM_SUCCESS) {
		pthread_mutex_unlock(&passdb_pam_lock);
		*error_r = "pam_start failed";
		return -1;
	}
	(void)pam_set_item(pamh, PAM_FAIL_DELAY,
	    (const void *)passdb_pam_no_delay);
	rc = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (rc == PAM_SUCCESS)
		rc = pam_acct_mgmt(pamh, PAM_SILENT);
	switch (rc) {
	case PAM_SUCCESS:
		ret = 1;
		break;
	case PAM_AUTH_ERR:
	case PAM_USER_UNKNOWN:
	case PAM_MAXTRIES:
	case PAM_CRED_INSUFFICIENT:
	case PAM_ACCT_EXPIRED:
	case PAM_PERM_DENIED:
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_AUTHTOK_EXPIRED:
		ret = 0;
		break;
	default:
		/* pam_strerror's strings are static. */
		*error_r = pam_strerror(pamh, rc);
		ret = -1;
		break;
	}
	pam_end(pamh, rc);
	pthread_mutex_unlock(&passdb_pam_lock);
	return ret;
}

int
passdb_verify(const char *user, const char *password,
    struct userdb_user *u_r, const char **error_r)
{
	const char *path;
	int ret;

	*error_r = NULL;
	if (u_r != NULL)
		memset(u_r, 0, sizeof(*u_r));
	switch (passdb_kind(&path)) {
	case PASSDB_FILE:
		return passdb_file_verify(path, user, password, u_r, error_r);
	case PASSDB_SHADOW:
		ret = passdb_shadow_verify(user, password, error_r);
		break;
	case PASSDB_PAM:
		ret = passdb_pam_verify(user, password, error_r);
		break;
	default:
		*error_r = "unknown passdb type";
		return -1;
	}
	if (ret == 1 && u_r != NULL) {
		ret = userdb_lookup(user, u_r, error_r);
		if (ret == 0)
			log_warning("user %s: authenticated but not in userdb",
			    user);
	}
	return ret;
}

int
passdb_lookup_secret(const char *user, char **secret_r, const char **error_r)
{
	struct userdb_user u;
	const char *path;
	int ret;

	*secret_r = NULL;
	*error_r = NULL;
	if (passdb_kind(&path) != PASSDB_FILE)
		return 0;
	memset(&u, 0, sizeof(u));
	ret = passdb_file_find(path, user, &u, error_r);
	if (ret == 1 && u.password != NULL && u.password[0] != '\0') {
		*secret_r = u.password;
		u.password = NULL;
	} else if (ret == 1)
		ret = 0;
	userdb_user_free(&u);
	return ret;
}

int
passdb_sasl_lookup(enum sasl_lookup_op op, const char *user,
    const char *password, char **secret_r, void *ctx, const char **error_r)
{
	(void)ctx;
	if (op == SASL_LOOKUP_VERIFY)
		return passdb_verify(user, password, NULL, error_r);
	return passdb_lookup_secret(user, secret_r, error_r);
}
