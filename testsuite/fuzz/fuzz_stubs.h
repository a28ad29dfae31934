/*
 * fuzz_stubs: helpers shared by the libFuzzer harnesses (see
 * fuzz_stubs.c and README.md).
 */
#ifndef POSTERN_FUZZ_STUBS_H
#define POSTERN_FUZZ_STUBS_H

#include <stddef.h>
#include <stdint.h>

/* Replacements of openlog()/syslog() for common/log.c (see build.sh). */
void	fuzz_openlog(const char *ident, int option, int facility);
void	fuzz_syslog(int prio, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* A path NAME in a fresh private directory under /tmp; malloc'ed. */
char	*fuzz_scratch_path(const char *name);
/* Replace the file at path with data; aborts on I/O errors. */
void	fuzz_write_file(const char *path, const uint8_t *data, size_t size);
/* data as a NUL-terminated malloc'ed string (an inner NUL ends it). */
char	*fuzz_cstring(const uint8_t *data, size_t size);

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int	LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
