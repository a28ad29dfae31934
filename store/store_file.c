/*
 * store_file: what the store's binary files (the modseq index,
 * store_index.c, and the cache, store_cache.c) share: CRC-32C checksums,
 * little-endian integers (the files do not depend on the machine's byte
 * order), replacing a file by write-fsync-rename, and an fcntl lock on a
 * file that others may replace by rename meanwhile.
 *
 * It deliberately knows nothing of the formats themselves.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "store_private.h"
#include "xmalloc.h"

/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78): with the SSE 4.2
 * instruction where the CPU has it, else eight bytes at a time with eight
 * tables ("slicing by 8"), so checking a cache record costs less than
 * reading it.
 */
static uint32_t store_crc_tab[8][256];
static bool store_crc_ready;

static void
store_crc_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c & 1) != 0 ? (c >> 1) ^ 0x82f63b78U : c >> 1;
		store_crc_tab[0][i] = c;
	}
	for (i = 0; i < 256; i++) {
		c = store_crc_tab[0][i];
		for (j = 1; j < 8; j++) {
			c = store_crc_tab[0][c & 0xff] ^ (c >> 8);
			store_crc_tab[j][i] = c;
		}
	}
	store_crc_ready = true;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The SSE 4.2 instruction computes exactly this CRC, 8 bytes a cycle. */
#define STORE_CRC_HW 1
static int store_crc_hw = -1;	/* unknown yet */

__attribute__((target("sse4.2")))
static uint32_t
store_crc32c_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = ~crc;
	uint32_t c32;

	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, sizeof(v));
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	c32 = (uint32_t)c;
	while (len-- > 0)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return ~c32;
}
#endif

uint32_t
store_crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

#ifdef STORE_CRC_HW
	if (store_crc_hw < 0) {
		__builtin_cpu_init();
		store_crc_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	}
	if (store_crc_hw > 0)
		return store_crc32c_hw(crc, p, len);
#endif
	return store_crc32c_sw(crc, p, len);
}

uint32_t
store_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (!store_crc_ready)
		store_crc_init();
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
		    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);

		crc = store_crc_tab[7][lo & 0xff] ^
		    store_crc_tab[6][(lo >> 8) & 0xff] ^
		    store_crc_tab[5][(lo >> 16) & 0xff] ^
		    store_crc_tab[4][lo >> 24] ^
		    store_crc_tab[3][p[4]] ^ store_crc_tab[2][p[5]] ^
		    store_crc_tab[1][p[6]] ^ store_crc_tab[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = store_crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

void
store_le32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

void
store_le64_put(unsigned char *p, uint64_t v)
{
	store_le32_put(p, (uint32_t)v);
	store_le32_put(p + 4, (uint32_t)(v >> 32));
}

uint32_t
store_le32_get(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

uint64_t
store_le64_get(const unsigned char *p)
{
	return (uint64_t)store_le32_get(p) |
	    (uint64_t)store_le32_get(p + 4) << 32;
}

/* ---- replacing a file ---- */

int
store_file_tmp_open(const char *path)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd;

	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	free(tmp);
	return fd;
}

int
store_file_tmp_commit(const char *path, int fd)
{
	char *tmp = xasprintf("%s.tmp", path);
	char *dir, *slash;
	int e, ret = 0;

	if (fsync(fd) < 0) {
		e = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		e = errno;
		goto fail;
	}
	free(tmp);
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash != NULL) {
		*slash = '\0';
		if (fdio_fsync_dir(dir[0] != '\0' ? dir : "/") < 0)
			ret = -1;
	}
	free(dir);
	return ret;
fail:
	(void)unlink(tmp);
	free(tmp);
	errno = e;
	return -1;
}

void
store_file_tmp_abort(const char *path, int fd)
{
	char *tmp = xasprintf("%s.tmp", path);

	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	free(tmp);
}

/* ---- locking a replaceable file ---- */

int
store_file_lock(const char *path, int *fdp, unsigned int wait)
{
	for (;;) {
		struct stat fst, pst;

		if (*fdp < 0) {
			*fdp = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
			    O_NOFOLLOW, 0600);
			if (*fdp < 0)
				return -1;
		}
		if (store_fcntl_lock(*fdp, F_WRLCK, wait) < 0)
			return -1;
		/* Replaced (or removed) while we waited: the lock is on a
		 * file nobody else will look at.  Take the new one. */
		if (fstat(*fdp, &fst) == 0 && stat(path, &pst) == 0 &&
		    fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino)
			return 0;
		close(*fdp);
		*fdp = -1;
	}
}

void
store_file_unlock(int fd)
{
	struct flock fl;

	if (fd < 0)
		return;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	(void)fcntl(fd, F_SETLK, &fl);
}

ssize_t
store_file_pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t pos = 0;

	while (pos < len) {
		ssize_t n = pread(fd, (char *)buf + pos, len - pos,
		    off + (off_t)pos);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		pos += (size_t)n;
	}
	return (ssize_t)pos;
}
