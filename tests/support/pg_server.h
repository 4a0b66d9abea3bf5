/* pg_server.h - a private PostgreSQL server for tests: initdb into a
 * temporary folder, a postgres child on a free loopback port (unix socket
 * in the same folder), trust authentication for the superuser "tessera".
 *
 * PostgreSQL refuses to run as root: when the test runs as root, initdb and
 * postgres run as the system user "postgres" and the folder is given to it.
 * The server is the test's own child, so nothing outlives the test: the
 * child gets SIGQUIT (immediate shutdown) if the test dies
 * (PR_SET_PDEATHSIG), an atexit handler stops every server and deletes its
 * folder, and ts_pg_watchdog arms an alarm that does the same on a hang.
 *
 * Binaries: $TS_PG_BIN if set, else /usr/lib/postgresql/<15..>/bin, else
 * PATH. One caller thread; functions return 0 / non-NULL on success and
 * print the reason (and the server log's tail) on failure. */
#ifndef PG_SERVER_H
#define PG_SERVER_H
#include <stddef.h>

typedef struct ts_pg ts_pg;

/* True if initdb and postgres can be found. */
int ts_pg_available(void);
/* initdb + start; NULL on failure. */
ts_pg *ts_pg_start(void);
/* Stops the server (fast shutdown: sessions are terminated) and keeps the
 * data, for "database down" tests. */
int ts_pg_stop(ts_pg *pg);
/* Starts it again on the same port and data. */
int ts_pg_restart(ts_pg *pg);
/* Creates database name and writes its libpq url into url. */
int ts_pg_createdb(ts_pg *pg, const char *name, char *url, size_t cap);
/* Stops the server and deletes the folder. NULL is a no-op. */
void ts_pg_destroy(ts_pg *pg);
/* alarm(seconds): on expiry stop all servers, delete their folders, print
 * a message and _exit(3). */
void ts_pg_watchdog(unsigned seconds);
#endif
