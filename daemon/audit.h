/*
 * The security audit log: logins (success and failure), token
 * initialisation, PIN changes, key generation, import and destruction, and
 * signature counts per key, appended to STATE/audit.log as a hash chain.
 *
 * A record is one line:
 *   seq=N ts=TIME event=... fields... prev=HEX hash=HEX
 * where hash is SHA-256 of the line up to " hash=", and prev is the hash
 * of the record before (64 zeros for the first). Editing a byte breaks
 * that record's hash; deleting or reordering records breaks seq and prev.
 * `remhsm audit verify FILE` checks all of it.
 *
 * Records are buffered and written by a thread of the log's own, with one
 * fdatasync per batch (group commit): a signature only bumps a counter,
 * and the counts are written as records once a second.
 */
#ifndef RHD_AUDIT_H
#define RHD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

/* Opens (creating, 0600) the log and continues its chain; 0, or -1 with
 * the reason in err. Without it every call below does nothing. */
int rhd_audit_open(const char *path, char *err, size_t err_len);

/* Writes what is buffered, the counts included, and closes the log. */
void rhd_audit_close(void);

/* Appends "event=... fields" (printf-style) as the next record. */
void rhd_audit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One signature by the key stored as (slot, store_id); 0 for a session
 * object. Counted in memory, written once a second. */
void rhd_audit_signature(uint64_t slot, uint64_t store_id);

#endif
