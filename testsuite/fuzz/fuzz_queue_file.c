/*
 * fuzz_queue_file: the queue file reader (smtp/queue_file.c), which
 * qmgr, local, bounce and `postern queue` run on every file in the
 * spool.  A file may be torn by a crash, truncated by a full disk or
 * damaged by hand; the reader must sort it into ok / incomplete /
 * corrupt without ever reading past what it was given.
 *
 * Byte 0 selects the input form:
 *   even  the rest is the file, as is;
 *   odd   the rest is a list of records "TYPE LEN(1 byte) DATA", which
 *         the harness frames with correct 4-byte lengths, so that the
 *         fuzzer reaches the record semantics (V first, M once, E, the
 *         D/r/W/w status records after it) instead of the framing only.
 *
 * Checked beyond "no crash":
 *   - a file read as ok has a sender, every recipient has an address
 *     without NUL or line ends, a parent index (r records) below its own
 *     index, and the message lies inside the file;
 *   - after cutting a torn tail and appending a 'D' record for
 *     recipient 0 (what qmgr does when it loads and delivers) the file
 *     still reads as ok, with that recipient done and the same
 *     recipient count; a torn tail (half a record) after it is ignored.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fuzz_stubs.h"
#include "queue_file.h"

#define MAX_FUZZ_QF_INPUT	(256 * 1024)

static void __attribute__((noreturn))
fuzz_qf_fail(const char *what)
{
	fprintf(stderr, "queue_file: %s\n", what);
	abort();
}

static void
fuzz_qf_frame(struct buf *b, const uint8_t *data, size_t size)
{
	size_t i = 0;

	while (i + 2 <= size) {
		uint8_t type = data[i], len = data[i + 1];
		uint8_t hdr[5];
		size_t n = len;

		i += 2;
		if (n > size - i)
			n = size - i;
		hdr[0] = type;
		hdr[1] = 0;
		hdr[2] = 0;
		hdr[3] = (uint8_t)(n >> 8);
		hdr[4] = (uint8_t)n;
		buf_append(b, hdr, sizeof(hdr));
		buf_append(b, data + i, n);
		i += n;
	}
}

static void
fuzz_qf_check(const struct queue_msg *m, off_t file_size)
{
	size_t i;

	if (m->sender == NULL)
		fuzz_qf_fail("no sender");
	if (m->msg_offset < 0 || m->msg_size < 0 ||
	    m->msg_offset + m->msg_size > file_size)
		fuzz_qf_fail("message outside the file");
	for (i = 0; i < m->rcpt_count; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];

		if (r->addr == NULL || strpbrk(r->addr, "\r\n") != NULL)
			fuzz_qf_fail("bad recipient address");
		if (r->parent >= (int)i || r->parent < -1)
			fuzz_qf_fail("parent index not before the recipient");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_msg m, m2;
	struct buf b;
	const char *error;
	struct stat st;
	int fd, r;

	if (size < 1 || size > MAX_FUZZ_QF_INPUT)
		return 0;
	buf_init(&b, 0);
	if (data[0] & 1)
		fuzz_qf_frame(&b, data + 1, size - 1);
	else
		buf_append(&b, data + 1, size - 1);
	fd = memfd_create("qf", MFD_CLOEXEC);
	if (fd < 0)
		fuzz_qf_fail("memfd_create");
	if (b.len > 0 && write(fd, b.data, b.len) != (ssize_t)b.len)
		fuzz_qf_fail("write");
	memset(&m, 0, sizeof(m));
	r = queue_file_read(fd, &m, &error);
	if (r == 1) {
		if (fstat(fd, &st) < 0)
			fuzz_qf_fail("fstat");
		fuzz_qf_check(&m, st.st_size);
		/* What qmgr does when it loads the file: cut a torn
		 * tail, then append. */
		if (queue_file_trim_tail(fd) < 0)
			fuzz_qf_fail("trim");
		if (m.rcpt_count > 0 &&
		    queue_file_append(fd, 'D', "0", 1, false) == 0) {
			/* And a torn half record after it. */
			if (write(fd, "W\0\0\0\x40" "0\t4.0.0", 12) != 12)
				fuzz_qf_fail("write torn tail");
			memset(&m2, 0, sizeof(m2));
			if (queue_file_read(fd, &m2, &error) != 1)
				fuzz_qf_fail("D record made the file unreadable");
			if (m2.rcpt_count != m.rcpt_count)
				fuzz_qf_fail("recipient count changed");
			if (m2.rcpts[0].state != QUEUE_RCPT_DONE)
				fuzz_qf_fail("D record not applied");
			queue_msg_free(&m2);
		}
		queue_msg_free(&m);
	} else if (r != 0 && r != -1)
		fuzz_qf_fail("bad return value");
	queue_msg_free(&m);
	close(fd);
	buf_free(&b);
	return 0;
}
