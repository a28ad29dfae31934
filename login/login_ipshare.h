/*
 * login_ipshare: the connections per remote address counted across the
 * login processes of one protocol (imap_login_process_min_avail,
 * pop3_login_process_min_avail > 1 start several that accept on the
 * same listeners), so login_max_connections_per_ip holds for the
 * service, not for each process.
 *
 * posternd makes one shared memory file per protocol (memfd) and gives
 * each login process it starts the descriptor and a slot of its own (a
 * column).  A process counts its connections in its column only, in the
 * row of the address's hash; the count of an address is the sum of its
 * row.  When a process is gone, posternd zeroes its column before the
 * slot is given again, so a crash leaks nothing.  Two addresses of the
 * same row share their count: the limit may then be met early, never
 * late.  Header only: posternd uses the layout, login.c the counting.
 */
#ifndef POSTERN_LOGIN_IPSHARE_H
#define POSTERN_LOGIN_IPSHARE_H

#include <stddef.h>
#include <stdint.h>

/* Rows (address hashes) and columns (processes at once, retired ones
 * finishing their sessions after a reload included). */
#define LOGIN_IPSHARE_ROWS	4096
#define LOGIN_IPSHARE_SLOTS	32
#define LOGIN_IPSHARE_SIZE \
	((size_t)LOGIN_IPSHARE_ROWS * LOGIN_IPSHARE_SLOTS * sizeof(uint32_t))

/* The counter of slot in row. */
static inline uint32_t *
login_ipshare_cell(uint32_t *map, unsigned row, unsigned slot)
{
	return &map[(size_t)row * LOGIN_IPSHARE_SLOTS + slot];
}

/* posternd: forget what the process of slot counted. */
static inline void
login_ipshare_clear_slot(uint32_t *map, unsigned slot)
{
	unsigned row;

	for (row = 0; row < LOGIN_IPSHARE_ROWS; row++)
		__atomic_store_n(login_ipshare_cell(map, row, slot), 0,
		    __ATOMIC_RELAXED);
}

/* The row of an address (text form). */
static inline unsigned
login_ipshare_row(const char *ip)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (*ip != '\0') {
		h ^= (unsigned char)*ip++;
		h *= 16777619u;
	}
	return h % LOGIN_IPSHARE_ROWS;
}

/* The connections of row over every process. */
static inline uint32_t
login_ipshare_total(uint32_t *map, unsigned row)
{
	uint32_t n = 0;
	unsigned s;

	for (s = 0; s < LOGIN_IPSHARE_SLOTS; s++)
		n += __atomic_load_n(login_ipshare_cell(map, row, s),
		    __ATOMIC_RELAXED);
	return n;
}

#endif
