/* Why the daemon cannot be reached, in words, for a command's message. */
#ifndef RH_REACH_H
#define RH_REACH_H

#include <stddef.h>

/*
 * Dials the daemon the client's settings name (REMHSM_SERVER, REMHSM_CA,
 * ...) and writes into why where and why it cannot be reached (refused,
 * timed out, which certificate TLS refused and why), or that it can and
 * its log says why it refused the call.
 */
void rh_explain_unreachable(char *why, size_t cap);

#endif
