#include "shield.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static _Thread_local int depth;	     /* nested entry points */
static _Thread_local int holding;    /* locks held */
static _Thread_local int let_in;     /* inside a wait with signals open */
static _Thread_local sigset_t saved; /* the mask before the outermost entry */
static atomic_uint running;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sigset_t blocked;
/* Set while a thread is inside an entry point, so that a thread that ends
 * there (a FreeRTOS task deleted while its call waits) is accounted for. */
static pthread_key_t inside;
static int have_key;
static void (*_Atomic abandon_hook)(void);

/* Every signal a timer or another thread can send; those a fault raises
 * stay open (blocking them would kill the process on a fault), and so does
 * SIGINT, which the FreeRTOS port also keeps open for the debugger. */
static void on_thread_end(void *marker)
{
	(void)marker;
	void (*hook)(void) = atomic_load(&abandon_hook);
	if (hook)
		hook();
	atomic_fetch_sub(&running, 1);
}

static void make_set(void)
{
	sigfillset(&blocked);
	const int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE,  SIGILL,
				   SIGTRAP, SIGSYS, SIGABRT, SIGINT};
	for (unsigned i = 0; i < sizeof(synchronous) / sizeof(*synchronous);
	     i++)
		sigdelset(&blocked, synchronous[i]);
	have_key = pthread_key_create(&inside, on_thread_end) == 0;
}

/* The module may be unloaded while threads that called it live on. */
__attribute__((destructor)) static void forget_key(void)
{
	if (have_key)
		pthread_key_delete(inside);
}

rhc_entry_t rhc_entry_begin(void)
{
	rhc_entry_t e = {.outermost = depth == 0};
	if (e.outermost) {
		pthread_once(&once, make_set);
		pthread_sigmask(SIG_BLOCK, &blocked, &saved);
		atomic_fetch_add(&running, 1);
		if (have_key)
			pthread_setspecific(inside, &running);
	}
	depth++;
	return e;
}

void rhc_entry_end(rhc_entry_t *entry)
{
	depth--;
	if (!entry->outermost)
		return;
	if (have_key)
		pthread_setspecific(inside, NULL);
	atomic_fetch_sub(&running, 1);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void rhc_wait_begin(void)
{
	if (depth == 0 || holding > 0)
		return;
	let_in = 1;
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void rhc_wait_end(void)
{
	if (!let_in)
		return;
	let_in = 0;
	pthread_sigmask(SIG_BLOCK, &blocked, NULL);
}

void rhc_hold_begin(void)
{
	holding++;
}

void rhc_hold_end(void)
{
	holding--;
}

void rhc_on_abandoned(void (*hook)(void))
{
	atomic_store(&abandon_hook, hook);
}

unsigned rhc_entries_running(void)
{
	return atomic_load(&running);
}
