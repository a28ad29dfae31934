/*
 * Unit tests of the queue file format: write, read back, incomplete files,
 * appended status records, a truncated tail.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue_file.h"
#include "test.h"
#include "xmalloc.h"

static char qdir[] = "/tmp/test_queue_file.XXXXXX";

static char *
write_msg(const char *body, char *id_r)
{
	const char *err = NULL;
	struct queue_writer *w = queue_writer_new(qdir, &err);
	static const char rcpt2[] = "bob@example.test\tNOTIFY=SUCCESS,FAILURE"
	    "\tORCPT=rfc822;bob+2Bx@example.test";

	test_assert(w != NULL);
	if (w == NULL)
		return NULL;
	snprintf(id_r, QUEUE_ID_MAX, "%s", queue_writer_id(w));
	test_assert(queue_writer_record(w, 'A', "1700000000.5", 12) == 0);
	test_assert(queue_writer_record(w, 'F', "alice@example.test", 18) == 0);
	test_assert(queue_writer_record(w, 'f', "RET=HDRS ENVID=ab+2Bc", 21)
	    == 0);
	test_assert(queue_writer_record(w, 'C', "name=localhost\taddr=127.0.0.1",
	    29) == 0);
	test_assert(queue_writer_record(w, 'R', "carol@example.test", 18) == 0);
	test_assert(queue_writer_record(w, 'R', rcpt2, strlen(rcpt2)) == 0);
	test_assert(queue_writer_begin_msg(w) == 0);
	test_assert(queue_writer_write(w, body, strlen(body)) == 0);
	test_assert(queue_writer_msg_size(w) == (off_t)strlen(body));
	test_assert(queue_writer_commit(&w, &err) == 0);
	test_assert(w == NULL);
	return xasprintf("%s/incoming/%s", qdir, id_r);
}

static void
test_roundtrip(void)
{
	char id[QUEUE_ID_MAX], buf[64];
	const char *body = "Subject: x\n\nhello\n";
	char *path, *addr;
	struct queue_msg msg;
	const char *err = NULL;
	int fd;

	test_begin("queue file round trip");
	path = write_msg(body, id);
	fd = open(path, O_RDWR);
	test_assert(fd >= 0);
	test_assert(queue_file_read(fd, &msg, &err) == 1);
	test_assert(msg.arrival == 1700000000 && msg.arrival_usec == 5);
	test_assert_streq(msg.sender, "alice@example.test");
	test_assert(msg.ret == QUEUE_RET_HDRS);
	test_assert_streq(msg.envid, "ab+c");
	test_assert(msg.rcpt_count == 2);
	test_assert_streq(msg.rcpts[0].addr, "carol@example.test");
	test_assert(msg.rcpts[0].notify == 0);
	test_assert_streq(msg.rcpts[1].addr, "bob@example.test");
	test_assert(msg.rcpts[1].notify ==
	    (QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE));
	test_assert_streq(msg.rcpts[1].orcpt, "rfc822;bob+2Bx@example.test");
	test_assert(msg.msg_size == (off_t)strlen(body));
	test_assert(pread(fd, buf, strlen(body), msg.msg_offset) ==
	    (ssize_t)strlen(body));
	test_assert(memcmp(buf, body, strlen(body)) == 0);
	addr = queue_client_get(msg.client, "addr");
	test_assert_streq(addr, "127.0.0.1");
	free(addr);
	queue_msg_free(&msg);

	/* status records after the end */
	test_assert(queue_file_append(fd, 'D', "0", 1, false) == 0);
	test_assert(queue_file_append(fd, 'r',
	    "dave@example.test\tparent=1", 26, false) == 0);
	test_assert(queue_file_append(fd, 'W', "2\t4.4.1\tno route", 16,
	    true) == 0);
	test_assert(queue_file_read(fd, &msg, &err) == 1);
	test_assert(msg.rcpt_count == 3);
	test_assert(msg.rcpts[0].state == QUEUE_RCPT_DONE);
	test_assert(msg.rcpts[1].state == QUEUE_RCPT_PENDING);
	test_assert(msg.rcpts[2].parent == 1);
	test_assert_streq(msg.rcpts[2].defer_dsn, "4.4.1");
	test_assert_streq(msg.rcpts[2].defer_text, "no route");
	queue_msg_free(&msg);

	/* a crash in the middle of an append leaves a truncated tail */
	test_assert(write(fd, "D\0\0\0\x05" "1", 6) == 6);
	test_assert(queue_file_read(fd, &msg, &err) == 1);
	test_assert(msg.rcpts[1].state == QUEUE_RCPT_PENDING);
	queue_msg_free(&msg);
	close(fd);
	free(path);
	test_end();
}

static void
test_incomplete(void)
{
	char id[QUEUE_ID_MAX];
	char *path;
	struct stat st;
	struct queue_msg msg;
	const char *err = NULL;
	int fd;
	off_t cut;

	test_begin("queue file without end record is incomplete");
	path = write_msg("Subject: y\n\nbody\n", id);
	test_assert(stat(path, &st) == 0);
	/* every proper prefix must read as incomplete, never as complete */
	for (cut = 0; cut < st.st_size; cut++) {
		fd = open(path, O_RDWR);
		test_assert(ftruncate(fd, cut) == 0);
		test_assert(queue_file_read(fd, &msg, &err) != 1);
		close(fd);
		/* rewrite the original for the next cut */
		free(path);
		path = write_msg("Subject: y\n\nbody\n", id);
		test_assert(stat(path, &st) == 0);
	}
	free(path);
	test_end();
}

static void
test_unique_ids(void)
{
	char ids[200][QUEUE_ID_MAX];
	const char *err;
	int i, j;
	bool dup = false, sorted = true;

	test_begin("queue ids are unique and sortable");
	for (i = 0; i < 200; i++) {
		struct queue_writer *w = queue_writer_new(qdir, &err);

		snprintf(ids[i], QUEUE_ID_MAX, "%s", queue_writer_id(w));
		queue_writer_abort(&w);
	}
	for (i = 0; i < 200; i++)
		for (j = i + 1; j < 200; j++)
			if (strcmp(ids[i], ids[j]) == 0)
				dup = true;
	for (i = 1; i < 200; i++)
		if (strncmp(ids[i - 1], ids[i], 14) > 0)
			sorted = false;
	test_assert(!dup);
	test_assert(sorted);
	test_end();
}

int
main(void)
{
	const char *err;
	char cmd[128];
	int ret;

	if (mkdtemp(qdir) == NULL)
		return 1;
	if (queue_dirs_create(qdir, (uid_t)-1, (gid_t)-1, &err) < 0) {
		printf("# %s\n", err);
		return 1;
	}
	test_roundtrip();
	test_incomplete();
	test_unique_ids();
	ret = test_done();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", qdir);
	(void)!system(cmd);
	return ret;
}
