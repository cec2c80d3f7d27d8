/*
 * Where a calling thread may be switched out.
 *
 * The FreeRTOS POSIX port runs each task on a host thread and switches
 * tasks inside a signal handler, at whatever instruction the thread was at.
 * A task switched out while it holds a host lock (ours, OpenSSL's, malloc's,
 * stdio's) stalls every higher-priority task that then waits for that lock,
 * because the scheduler believes the waiter is running and never resumes
 * the holder. So each entry point runs with the asynchronous signals
 * blocked, as the port's own critical sections do, and opens them only
 * while it waits for the network, holding no lock: a task can then be
 * switched out only where switching it out costs nobody else anything.
 *
 * On any other system this costs two system calls per entry point and two
 * per wait, and delays the application's signals by at most the CPU time of
 * one call.
 */
#ifndef RHC_SHIELD_H
#define RHC_SHIELD_H

typedef struct rhc_entry {
	int outermost;
} rhc_entry_t;

/* Entry points call RHC_ENTRY() first; the shield lifts on every return. */
rhc_entry_t rhc_entry_begin(void);
void rhc_entry_end(rhc_entry_t *entry);
#define RHC_ENTRY()                                                            \
	rhc_entry_t rhc_entry_                                                 \
		__attribute__((unused, cleanup(rhc_entry_end))) =              \
			rhc_entry_begin()

/* Around a wait for the network or for time: signals are let in unless the
 * thread holds a lock. */
void rhc_wait_begin(void);
void rhc_wait_end(void);

/* Around every lock the module holds. */
void rhc_hold_begin(void);
void rhc_hold_end(void);

/* Entry points running now, in all threads. */
unsigned rhc_entries_running(void);

/* Runs when a thread ends inside an entry point, to let go of whatever its
 * call held (client/rpc.c sets it). */
void rhc_on_abandoned(void (*hook)(void));

#endif
