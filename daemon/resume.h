/*
 * What lets an application outlive a daemon restart or a dropped
 * connection: a resume key derived from the store key (so a restarted
 * daemon honours what the last one issued), token-object handles that are
 * a fixed function of the application and the object, and login leases.
 *
 * A lease is the user's login sealed (AES-256-GCM) under the resume key:
 * application id, slot, expiry, a digest of the token's wrapped user key
 * (a PIN change or re-initialisation voids it) and the token key itself,
 * authenticated with the certificate identity. The client holds it in
 * place of the PIN and cannot read it; the daemon keeps nothing.
 */
#ifndef RHD_RESUME_H
#define RHD_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define RHD_LEASE_PLAIN_LEN (1 + RHD_APP_ID_LEN + 4 + 8 + 32 + RHS_KEY_LEN)
#define RHD_LEASE_LEN (RHD_LEASE_PLAIN_LEN + RHS_SEAL_OVERHEAD)

/* HKDF-SHA256 of the store key, for this purpose only. */
int rhd_resume_key_derive(const uint8_t store_key[RHS_KEY_LEN],
			  uint8_t out[RHS_KEY_LEN]);

/* The 31-bit mask an application's token-object handles are XORed with. */
uint32_t rhd_resume_handle_mask(const uint8_t key[RHS_KEY_LEN],
				const uint8_t app_id[RHD_APP_ID_LEN]);

/* The token serial number, the same across restarts ("%016x"). */
void rhd_resume_serial(const uint8_t key[RHS_KEY_LEN], char serial[17]);

/* A lease for app's user login on slot; out holds RHD_LEASE_LEN bytes. */
CK_RV rhd_lease_issue(rhd_engine_t *engine, const rhd_app_t *app,
		      CK_SLOT_ID slot, const uint8_t token_key[RHS_KEY_LEN],
		      uint8_t out[RHD_LEASE_LEN]);

/* Logs app in on slot from a lease (the app's lock held). CKR_OK, or
 * CKR_USER_NOT_LOGGED_IN when the lease is not good for it any more. */
CK_RV rhd_lease_redeem(rhd_engine_t *engine, rhd_app_t *app, CK_SLOT_ID slot,
		       const uint8_t *lease, size_t len);

#endif
