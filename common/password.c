/*
 * password: {SCHEME} password hashes (see password.h).
 *
 * Every crypt scheme is a crypt(3) setting prefix; hashing asks libcrypt
 * for a salt with that prefix, checking re-runs crypt_r() with the stored
 * string as the setting and compares the result in constant time.  The
 * scratch area of crypt_r() holds the password, so it is wiped after use.
 */
#include "config.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "password.h"
#include "xmalloc.h"

struct password_scheme {
	const char	*name;
	const char	*prefix;	/* crypt_gensalt prefix; NULL = PLAIN */
	unsigned long	 count;		/* cost; 0 = libcrypt's default */
};

static const struct password_scheme password_schemes[] = {
	{ "SHA512-CRYPT",	"$6$",	0 },
	{ "SHA256-CRYPT",	"$5$",	0 },
	{ "BLF-CRYPT",		"$2y$",	10 },
	{ "MD5-CRYPT",		"$1$",	0 },
	{ "CRYPT",		"",	0 },	/* traditional DES */
	{ "PLAIN",		NULL,	0 },
	{ "CLEAR",		NULL,	0 },
	{ "CLEARTEXT",		NULL,	0 },
};

#define PASSWORD_SCHEME_COUNT \
	(sizeof(password_schemes) / sizeof(password_schemes[0]))

static const struct password_scheme *
password_scheme_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < PASSWORD_SCHEME_COUNT; i++) {
		const char *n = password_schemes[i].name;

		if (strlen(n) == len && strncasecmp(n, name, len) == 0)
			return &password_schemes[i];
	}
	return NULL;
}

bool
password_scheme_known(const char *scheme)
{
	return password_scheme_find(scheme, strlen(scheme)) != NULL;
}

/*
 * Compare two byte strings without an early exit: the time depends only
 * on the longer length, never on where they differ.
 */
static bool
password_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i, n = alen > blen ? alen : blen;
	unsigned char diff = alen != blen;

	for (i = 0; i < n; i++) {
		unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
		unsigned char cb = i < blen ? (unsigned char)b[i] : 0;

		diff |= ca ^ cb;
	}
	return diff == 0;
}

/* crypt_r() into a wiped scratch area; returns malloc'ed result or NULL. */
static char *
password_crypt(const char *pw, const char *setting)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	char *out, *res = NULL;

	out = crypt_r(pw, setting, cd);
	/* libcrypt reports failure as NULL or a string starting with '*'. */
	if (out != NULL && out[0] != '*' && out[0] != '\0')
		res = xstrdup(out);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return res;
}

char *
password_hash(const char *scheme, const char *pw)
{
	const struct password_scheme *s;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	char *hash, *res;

	if (scheme == NULL)
		scheme = PASSWORD_DEFAULT_SCHEME;
	if ((s = password_scheme_find(scheme, strlen(scheme))) == NULL)
		return NULL;
	if (s->prefix == NULL)
		return xasprintf("{%s}%s", s->name, pw);
	/* rbytes NULL: libcrypt reads the salt from the OS random source. */
	if (crypt_gensalt_rn(s->prefix, s->count, NULL, 0, salt,
	    sizeof(salt)) == NULL)
		return NULL;
	if ((hash = password_crypt(pw, salt)) == NULL)
		return NULL;
	res = xasprintf("{%s}%s", s->name, hash);
	free(hash);
	return res;
}

int
password_verify(const char *stored, const char *pw)
{
	const struct password_scheme *s;
	const char *data = stored;
	char *hash;
	int ret;

	if (stored[0] == '{') {
		const char *end = strchr(stored, '}');

		if (end == NULL)
			return -1;
		s = password_scheme_find(stored + 1,
		    (size_t)(end - stored - 1));
		if (s == NULL)
			return -1;
		data = end + 1;
	} else
		s = password_scheme_find("CRYPT", 5);

	if (s->prefix == NULL)
		return password_ct_equal(data, strlen(data), pw, strlen(pw)) ?
		    1 : 0;
	/* An empty or locked ("*", "!") crypt string never matches. */
	if (data[0] == '\0' || data[0] == '*' || data[0] == '!')
		return 0;
	if ((hash = password_crypt(pw, data)) == NULL)
		return -1;
	ret = password_ct_equal(hash, strlen(hash), data, strlen(data)) ?
	    1 : 0;
	explicit_bzero(hash, strlen(hash));
	free(hash);
	return ret;
}
