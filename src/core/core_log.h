/* core_log.h - structured JSON log lines on stderr, one write(2) each, so
 * lines from different threads never interleave:
 *   {"ts":"2026-11-24T05:55:00.123Z","level":"info","component":"gw",
 *    "msg":"...","conn":3,"session":1048577,"entity":513,"shard":0}
 * Any thread may call these. */
#ifndef CORE_LOG_H
#define CORE_LOG_H
#include <stdint.h>

enum { CORE_LOG_DEBUG = 0, CORE_LOG_INFO = 1, CORE_LOG_WARN = 2, CORE_LOG_ERROR = 3 };

/* Identifiers attached to a line. 0 means absent for conn, session and
 * entity (valid ids are never 0); shard < 0 means absent. */
typedef struct core_log_ids {
    uint32_t conn;
    uint32_t session;
    uint32_t entity;
    int shard;
} core_log_ids;

/* Lines below level are dropped. Default CORE_LOG_INFO. */
void core_log_set_level(int level);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int core_log_level_parse(const char *name);
static inline int core_log_level_ok(const char *name)
{
    return core_log_level_parse(name) >= 0;
}

void core_log(int level, const char *component, const core_log_ids *ids, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs at error level and aborts. For broken invariants and OOM. */
void core_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#define CORE_INFO(comp, ...) core_log(CORE_LOG_INFO, comp, NULL, __VA_ARGS__)
#define CORE_WARN(comp, ...) core_log(CORE_LOG_WARN, comp, NULL, __VA_ARGS__)
#define CORE_ERROR(comp, ...) core_log(CORE_LOG_ERROR, comp, NULL, __VA_ARGS__)
#define CORE_DEBUG(comp, ...) core_log(CORE_LOG_DEBUG, comp, NULL, __VA_ARGS__)
#endif
