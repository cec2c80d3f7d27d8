#include "resume.h"

#include <openssl/crypto.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

#define LEASE_VERSION 1
static const char lease_label[] = "remhsm lease v1 ";

int rhd_resume_key_derive(const uint8_t store_key[RHS_KEY_LEN],
			  uint8_t out[RHS_KEY_LEN])
{
	static const char info[] = "remhsm resume key v1";
	return rhd_crypto_hkdf_sha256(store_key, RHS_KEY_LEN, info,
				      sizeof(info) - 1, out, RHS_KEY_LEN);
}

static void mac(const uint8_t key[RHS_KEY_LEN], const void *data, size_t len,
		uint8_t out[32])
{
	rhd_crypto_hmac_sha256(key, RHS_KEY_LEN, data, len, out);
}

uint32_t rhd_resume_handle_mask(const uint8_t key[RHS_KEY_LEN],
				const uint8_t app_id[RHD_APP_ID_LEN])
{
	uint8_t m[32];
	mac(key, app_id, RHD_APP_ID_LEN, m);
	return ((uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 |
		(uint32_t)m[2] << 8 | m[3]) &
	       0x7fffffffu;
}

void rhd_resume_serial(const uint8_t key[RHS_KEY_LEN], char serial[17])
{
	uint8_t m[32];
	mac(key, "token serial", 12, m);
	for (int i = 0; i < 8; i++)
		snprintf(serial + 2 * i, 3, "%02x", m[i]);
}

/* What binds a lease to the token's current user PIN. */
static int user_wrap_digest(rhd_engine_t *engine, CK_SLOT_ID slot,
			    uint8_t out[32])
{
	rhd_token_t *t = rhd_engine_token(engine, slot);
	pthread_mutex_lock(&t->lock);
	int ok = t->state == RHD_TOKEN_READY && t->user.set;
	if (ok)
		rhd_crypto_sha256(t->user.wrapped, sizeof(t->user.wrapped),
				  out);
	pthread_mutex_unlock(&t->lock);
	return ok ? 0 : -1;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

/* The identity the lease is authenticated with, behind a fixed label. */
static size_t lease_aad(const rhd_app_t *app, uint8_t *aad, size_t cap)
{
	size_t n = strlen(app->identity);
	if (sizeof(lease_label) - 1 + n > cap)
		n = cap - (sizeof(lease_label) - 1);
	memcpy(aad, lease_label, sizeof(lease_label) - 1);
	memcpy(aad + sizeof(lease_label) - 1, app->identity, n);
	return sizeof(lease_label) - 1 + n;
}

CK_RV rhd_lease_issue(rhd_engine_t *engine, const rhd_app_t *app,
		      CK_SLOT_ID slot, const uint8_t token_key[RHS_KEY_LEN],
		      uint8_t out[RHD_LEASE_LEN])
{
	uint8_t plain[RHD_LEASE_PLAIN_LEN], *p = plain;
	uint8_t aad[sizeof(lease_label) + RHD_IDENTITY_MAX];
	*p++ = LEASE_VERSION;
	memcpy(p, app->id, RHD_APP_ID_LEN);
	p += RHD_APP_ID_LEN;
	put_be(p, slot, 4);
	p += 4;
	put_be(p, (uint64_t)time(NULL) + engine->lease_seconds, 8);
	p += 8;
	if (user_wrap_digest(engine, slot, p) < 0)
		return CKR_GENERAL_ERROR;
	p += 32;
	memcpy(p, token_key, RHS_KEY_LEN);
	int rc = rhs_seal(engine->resume_key, aad,
			  lease_aad(app, aad, sizeof(aad)), plain,
			  sizeof(plain), out);
	OPENSSL_cleanse(plain, sizeof(plain));
	return rc == RHS_OK ? CKR_OK : CKR_GENERAL_ERROR;
}

/* Whether an opened lease is good now for app on slot. */
static int lease_valid(rhd_engine_t *engine, const rhd_app_t *app,
		       CK_SLOT_ID slot, const uint8_t *plain)
{
	uint8_t digest[32];
	const uint8_t *p = plain + 1;
	return plain[0] == LEASE_VERSION &&
	       CRYPTO_memcmp(p, app->id, RHD_APP_ID_LEN) == 0 &&
	       get_be(p + RHD_APP_ID_LEN, 4) == slot &&
	       get_be(p + RHD_APP_ID_LEN + 4, 8) >= (uint64_t)time(NULL) &&
	       user_wrap_digest(engine, slot, digest) == 0 &&
	       CRYPTO_memcmp(p + RHD_APP_ID_LEN + 12, digest, 32) == 0;
}

CK_RV rhd_lease_redeem(rhd_engine_t *engine, rhd_app_t *app, CK_SLOT_ID slot,
		       const uint8_t *lease, size_t len)
{
	if (!engine->lease_seconds || len != RHD_LEASE_LEN ||
	    !rhd_engine_slot_valid(engine, slot))
		return CKR_USER_NOT_LOGGED_IN;
	rhd_login_t *login = &app->login[slot];
	if (login->user == CKU_USER)
		return CKR_OK; /* the application never lost it */
	if (login->user != RHD_NOBODY)
		return CKR_USER_NOT_LOGGED_IN;
	uint8_t plain[RHD_LEASE_PLAIN_LEN];
	uint8_t aad[sizeof(lease_label) + RHD_IDENTITY_MAX];
	CK_RV rv = CKR_USER_NOT_LOGGED_IN;
	if (rhs_unseal(engine->resume_key, aad,
		       lease_aad(app, aad, sizeof(aad)), lease, len,
		       plain) == RHS_OK &&
	    lease_valid(engine, app, slot, plain)) {
		login->user = CKU_USER;
		memcpy(login->token_key,
		       plain + RHD_LEASE_PLAIN_LEN - RHS_KEY_LEN, RHS_KEY_LEN);
		rv = CKR_OK;
	}
	OPENSSL_cleanse(plain, sizeof(plain));
	return rv;
}
