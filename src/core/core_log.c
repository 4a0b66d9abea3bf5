/* core_log.c - JSON log lines. */
#include "core_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = CORE_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void core_log_set_level(int level)
{
    atomic_store(&g_level, level);
}

int core_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

/* Appends s to out as JSON string content (without quotes). */
static size_t json_escape(char *out, size_t cap, size_t pos, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

static void vlog(int level, const char *component, const core_log_ids *ids, const char *fmt,
                 va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);

    char line[2048];
    size_t cap = sizeof line - 2;
    size_t n =
        (size_t)snprintf(line, cap,
                         "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                         "\"component\":\"%s\",\"msg\":\"",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level], component);
    n = json_escape(line, cap, n, msg);
    n += (size_t)snprintf(line + n, cap - n, "\"");
    if (ids) {
        if (ids->conn && n < cap)
            n += (size_t)snprintf(line + n, cap - n, ",\"conn\":%u", ids->conn);
        if (ids->session && n < cap)
            n += (size_t)snprintf(line + n, cap - n, ",\"session\":%u", ids->session);
        if (ids->entity && n < cap)
            n += (size_t)snprintf(line + n, cap - n, ",\"entity\":%u", ids->entity);
        if (ids->shard >= 0 && n < cap)
            n += (size_t)snprintf(line + n, cap - n, ",\"shard\":%d", ids->shard);
    }
    if (n > cap)
        n = cap;
    line[n++] = '}';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void core_log(int level, const char *component, const core_log_ids *ids, const char *fmt, ...)
{
    if (level < atomic_load_explicit(&g_level, memory_order_relaxed))
        return;
    if (level < 0 || level > 3)
        level = CORE_LOG_ERROR;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, component, ids, fmt, ap);
    va_end(ap);
}

void core_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(CORE_LOG_ERROR, "core", NULL, fmt, ap);
    va_end(ap);
    abort();
}
