/* tclient_int.h - helpers shared by the parts of the test client
 * (tclient.c, tclient_ws.c, tclient_game.c); not for tests. */
#ifndef TCLIENT_INT_H
#define TCLIENT_INT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tclient.h"

/* Milliseconds left until deadline_ms (ts_now_ms based), never negative. */
int ts__ms_left(uint64_t deadline_ms);
/* Non-cryptographic random bytes (masks, keys), seeded from getrandom. */
void ts__rng_bytes(uint8_t *p, size_t n);
/* Appends what fd has to acc, waiting up to timeout_ms for the first
 * byte. Returns bytes read (> 0), 0 on timeout, -1 on EOF or error
 * (*is_reset, if not NULL, says whether it was ECONNRESET). */
ssize_t ts__read_some(int fd, core_buf *acc, int timeout_ms, bool *is_reset);
/* Reads one HTTP response into *out, accumulating in acc; *used gets the
 * bytes of acc it took (the rest may be the start of a WebSocket stream).
 * Returns 0, or -1 if no complete head arrived. */
int ts__http_read_acc(int fd, int timeout_ms, core_buf *acc, ts_http_resp *out, size_t *used);
/* Close code of a close frame's payload (1005 if empty); the reason is
 * copied NUL-terminated to reason (cap bytes) when not NULL. */
int ts__close_code_of(const uint8_t *p, size_t n, char *reason, size_t cap);
/* ts_tcp_connect with SO_RCVBUF set before connecting (0 = default). */
int ts__tcp_connect_rcvbuf(int port, int timeout_ms, int rcvbuf_bytes);
/* Sets a ts_ws to the closed state with defaults (no allocation). */
void ts__ws_zero(ts_ws *ws);
#endif
