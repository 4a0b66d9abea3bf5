/* core_secret.h - a secret kept in a file: read it, or generate it on
 * first use (random bytes from the kernel, written with mode 0600 through a
 * temporary file and rename, so a crash never leaves half a secret). */
#ifndef CORE_SECRET_H
#define CORE_SECRET_H
#include <stddef.h>

/* Fills out with a secret of n_bytes random bytes, hex-encoded
 * (2 * n_bytes chars + NUL; cap must hold them), from path, creating the
 * file (and its folder) when missing. Refuses a file readable by group or
 * others, or one whose content is not the expected hex. Returns 0, or -1
 * with a reason in err. */
int core_secret_load_or_create(const char *path, size_t n_bytes, char *out, size_t cap, char *err,
                               size_t err_len);
#endif
