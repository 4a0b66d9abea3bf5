/* bots.h - `tessera bots`, the load generator: thousands of WebSocket
 * clients per process that speak only the public protocol
 * (docs/protocol.md) and measure what shared/bench/WORKLOADS.md asks for
 * (W1 moving crowd, W2 idle connections, W3 hotspot, W6 login storm).
 *
 * `tessera bots --help` lists the flags. Loopback targets only. */
#ifndef BOTS_H
#define BOTS_H

/* Runs the load generator with argv[0..argc) being the flags after
 * `bots` (argv[0] is the first flag, not a program name). Blocks until
 * the run ends (bounded by --ramp + --duration plus a few seconds of
 * connect and close grace). Returns a process exit status: 0 when the
 * run completed (whatever it measured), 1 when it could not run (no
 * connection at all, a worker failed, the JSON could not be written),
 * 2 on a usage error. Prints progress and a summary on stderr (the
 * summary on stdout), and with --print-server-args only the serve flags
 * on stdout. Main thread; forks worker processes when --procs > 1 and
 * reaps them before returning. */
int bots_main(int argc, char **argv);
#endif
