/*
 * fuzz_store_snap: the reader of the view snapshot of a Maildir folder
 * (store/store_snap.c, "postern-view").  Byte 0 bit 0 set: the harness
 * makes the header right (magic, a count the file can hold, the name
 * block's length, the file size, a UIDVALIDITY and the CRC) so that
 * the records and names are what is fuzzed; clear: the bytes are the
 * file as they are.  The rest is the file, read with the stamps its
 * header holds (as if nothing changed since it was written).
 *
 * Checked beyond "no crash", when the reader accepts the file:
 *   - UIDs ascend and stay below the next UID, every name is 1..255
 *     bytes inside the name block, without '/';
 *   - written again with store_snap_write() and read back, the view is
 *     the same;
 *   - the file with its last byte changed is refused.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_stubs.h"
#include "store_private.h"

#define MAX_FUZZ_SNAP_INPUT	(64 * 1024)
#define FUZZ_SNAP_HDR		160
#define FUZZ_SNAP_REC		48

static char *fuzz_path, *fuzz_path2;

static void __attribute__((noreturn))
fuzz_snap_fail(const char *what)
{
	fprintf(stderr, "store_snap: %s\n", what);
	abort();
}

/* Make the header of the file f (len bytes, len >= header) consistent. */
static void
fuzz_snap_fix(unsigned char *f, size_t len)
{
	uint32_t count = store_le32_get(f + 12);
	size_t room = (len - FUZZ_SNAP_HDR) / FUZZ_SNAP_REC;

	if (count > room)
		count = (uint32_t)(count % (room + 1));
	memcpy(f, "PSTVIEW1", 8);
	store_le32_put(f + 12, count);
	if (store_le32_get(f + 16) == 0)
		store_le32_put(f + 16, 1);
	store_le64_put(f + 24, len - FUZZ_SNAP_HDR -
	    (uint64_t)count * FUZZ_SNAP_REC);
	store_le64_put(f + 152, len);
	store_le32_put(f + 8, store_crc32c(0, f + 16, len - 16));
}

static void
fuzz_snap_same(const struct store_snap_view *a,
    const struct store_snap_view *b)
{
	uint32_t i;

	if (a->count != b->count || a->uidvalidity != b->uidvalidity ||
	    a->next_uid != b->next_uid)
		fuzz_snap_fail("written again, header differs");
	for (i = 0; i < a->count; i++) {
		const struct store_msg *x = &a->msgs[i], *y = &b->msgs[i];

		if (x->uid != y->uid || x->flags != y->flags ||
		    x->keywords != y->keywords || x->vsize != y->vsize ||
		    x->internal_date != y->internal_date ||
		    x->save_date != y->save_date ||
		    a->priv[i].in_new != b->priv[i].in_new ||
		    strcmp(a->priv[i].name, b->priv[i].name) != 0)
			fuzz_snap_fail("written again, a record differs");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_stamp stamps[STORE_SNAP_STAMPS];
	struct store_snap_view v, v2;
	struct store_snap_hdr h;
	unsigned char *f;
	size_t len, n;
	uint32_t i;

	if (size < 1 || size > MAX_FUZZ_SNAP_INPUT)
		return 0;
	if (fuzz_path == NULL) {
		fuzz_path = fuzz_scratch_path("postern-view");
		fuzz_path2 = fuzz_scratch_path("postern-view");
	}
	len = size - 1;
	if ((data[0] & 1) && len < FUZZ_SNAP_HDR)
		len = FUZZ_SNAP_HDR;
	f = calloc(1, len + 1);
	if (f == NULL)
		abort();
	memcpy(f, data + 1, size - 1);
	if (data[0] & 1)
		fuzz_snap_fix(f, len);
	memset(stamps, 0, sizeof(stamps));
	if (len >= FUZZ_SNAP_HDR && store_snap_parse_header(f, &h) == 0)
		memcpy(stamps, h.stamps, sizeof(stamps));
	fuzz_write_file(fuzz_path, f, len);

	if (store_snap_read(fuzz_path, stamps, &v) < 0) {
		if (v.msgs != NULL || v.names != NULL || v.count != 0)
			fuzz_snap_fail("refused, view left");
		free(f);
		return 0;
	}
	for (i = 0; i < v.count; i++) {
		const char *name = v.priv[i].name;

		if (v.msgs[i].uid == 0 || v.msgs[i].uid >= v.next_uid ||
		    (i > 0 && v.msgs[i].uid <= v.msgs[i - 1].uid))
			fuzz_snap_fail("UIDs do not ascend below the next");
		if (name < v.names || name >= v.names + v.names_len)
			fuzz_snap_fail("a name outside the name block");
		n = strnlen(name, (size_t)(v.names + v.names_len - name));
		if (n == 0 || n > 255 || name + n >= v.names + v.names_len ||
		    memchr(name, '/', n) != NULL)
			fuzz_snap_fail("a bad name");
	}
	if (store_snap_write(fuzz_path2, stamps, v.uidvalidity, v.next_uid,
	    v.msgs, v.priv, v.count) < 0)
		fuzz_snap_fail("cannot write an accepted view");
	if (store_snap_read(fuzz_path2, stamps, &v2) < 0)
		fuzz_snap_fail("written again, refused");
	fuzz_snap_same(&v, &v2);
	store_snap_view_free(&v2);
	store_snap_view_free(&v);

	/* Any damage to the records or names fails the checksum. */
	if (len > FUZZ_SNAP_HDR) {
		f[len - 1] ^= 0x20;
		fuzz_write_file(fuzz_path, f, len);
		if (store_snap_read(fuzz_path, stamps, &v) == 0)
			fuzz_snap_fail("a damaged file accepted");
	}
	free(f);
	return 0;
}
