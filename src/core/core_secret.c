/* core_secret.c - see core_secret.h. */
#include "core_secret.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_parent(const char *path, char *err, size_t err_len)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = 0;
    if (!*dir)
        return 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int core_secret_load_or_create(const char *path, size_t n_bytes, char *out, size_t cap, char *err,
                               size_t err_len)
{
    size_t hex_len = 2 * n_bytes;
    if (cap < hex_len + 1 || n_bytes == 0 || n_bytes > 256) {
        snprintf(err, err_len, "secret buffer too small");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
            close(fd);
            snprintf(err, err_len, "%s must not be readable by group or others (chmod 600)", path);
            return -1;
        }
        char buf[520];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0) {
            snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
            return -1;
        }
        while (n > 0 && isspace((unsigned char)buf[n - 1]))
            n--;
        buf[n] = 0;
        if ((size_t)n != hex_len || strspn(buf, "0123456789abcdef") != hex_len) {
            snprintf(err, err_len, "%s does not hold a %zu-byte hex secret", path, n_bytes);
            return -1;
        }
        memcpy(out, buf, hex_len + 1);
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (mkdir_parent(path, err, err_len) != 0)
        return -1;
    unsigned char raw[256];
    if (getrandom(raw, n_bytes, 0) != (ssize_t)n_bytes) {
        snprintf(err, err_len, "getrandom failed: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < n_bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_len, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    char line[520];
    int len = snprintf(line, sizeof line, "%s\n", out);
    int ok = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
    close(fd);
    /* link() fails if another process created the secret meanwhile: then
     * everyone uses that one */
    if (!ok || link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (ok && e == EEXIST)
            return core_secret_load_or_create(path, n_bytes, out, cap, err, err_len);
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(e));
        return -1;
    }
    unlink(tmp);
    return 0;
}
