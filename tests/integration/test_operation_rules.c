/*
 * When an operation ends, by the specification: a call to C_Digest,
 * C_DigestFinal, C_Sign, C_SignFinal, C_Verify or C_VerifyFinal ends the
 * active operation unless it answers CKR_BUFFER_TOO_SMALL or is a
 * successful length query. One table walks every (operation, call, error)
 * with the init held back by the module, active on the daemon, and after
 * updates; after each row the operation's next call must answer
 * CKR_OPERATION_NOT_INITIALIZED when the row ended it, and work when it
 * kept it.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;
static CK_OBJECT_HANDLE pub, priv;

typedef enum { DIGEST, SIGN, VERIFY } op_t;
static const char *const op_names[] = {"digest", "sign", "verify"};

/* Where the operation is when the row's call is made. */
typedef enum {
	HELD,	   /* just initialised: the module holds the init */
	ON_DAEMON, /* after a length query: the daemon has it */
	UPDATED	   /* after an update: multi-part, on the daemon */
} where_t;
static const char *const where_names[] = {"held", "on the daemon",
					  "after an update"};

typedef enum { SINGLE, FINAL } call_t;

/* What the row's call passes. */
typedef enum {
	GOOD,	   /* right buffers and lengths */
	NULL_LEN,  /* no output length pointer */
	NULL_DATA, /* NULL data with a length */
	SHORT_BUF, /* an output buffer too small */
	LEN_QUERY, /* NULL output: asks for the length */
	NULL_SIG,  /* NULL signature with a length */
	SHORT_SIG, /* a signature of the wrong length */
	WRONG_SIG  /* a signature of the right length that is wrong */
} args_t;

static CK_BYTE data[32] = "0123456789abcdef0123456789abcdef";
static CK_BYTE wrong_sig[64] = {1};

static CK_RV init(op_t op)
{
	CK_MECHANISM digest = {CKM_SHA256, NULL, 0};
	CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
	switch (op) {
	case DIGEST:
		return p11->C_DigestInit(session, &digest);
	case SIGN:
		return p11->C_SignInit(session, &ecdsa, priv);
	default:
		return p11->C_VerifyInit(session, &ecdsa, pub);
	}
}

static CK_RV update(op_t op)
{
	switch (op) {
	case DIGEST:
		return p11->C_DigestUpdate(session, data, 16);
	case SIGN:
		return p11->C_SignUpdate(session, data, 16);
	default:
		return p11->C_VerifyUpdate(session, data, 16);
	}
}

static CK_RV produce(op_t op, call_t call, args_t args)
{
	CK_BYTE out[128];
	CK_ULONG len = args == SHORT_BUF ? 4 : sizeof(out);
	CK_BYTE_PTR buf = args == LEN_QUERY ? NULL : out;
	CK_ULONG_PTR plen = args == NULL_LEN ? NULL : &len;
	CK_BYTE_PTR in = args == NULL_DATA ? NULL : data;
	if (op == DIGEST)
		return call == SINGLE
			       ? p11->C_Digest(session, in, 32, buf, plen)
			       : p11->C_DigestFinal(session, buf, plen);
	return call == SINGLE ? p11->C_Sign(session, in, 32, buf, plen)
			      : p11->C_SignFinal(session, buf, plen);
}

static CK_RV check_sig(call_t call, args_t args)
{
	CK_BYTE_PTR in = args == NULL_DATA ? NULL : data;
	CK_BYTE_PTR sig = args == NULL_SIG ? NULL : wrong_sig;
	CK_ULONG sig_len = args == SHORT_SIG ? 10 : sizeof(wrong_sig);
	return call == SINGLE ? p11->C_Verify(session, in, 32, sig, sig_len)
			      : p11->C_VerifyFinal(session, sig, sig_len);
}

static CK_RV run_call(op_t op, call_t call, args_t args)
{
	return op == VERIFY ? check_sig(call, args) : produce(op, call, args);
}

static void reach(op_t op, where_t where)
{
	ck_assert_uint_eq(init(op), CKR_OK);
	if (where == ON_DAEMON)
		ck_assert_uint_eq(run_call(op, SINGLE, LEN_QUERY), CKR_OK);
	if (where == UPDATED)
		ck_assert_uint_eq(update(op), CKR_OK);
}

typedef struct row {
	op_t op;
	where_t where;
	call_t call;
	args_t args;
	CK_RV rv;
	int ends;
} row_t;

#define ENDS 1
#define KEEPS 0

/* Digest and sign share their rows; verify has no output but a
 * signature. */
static const row_t produce_rows[] = {
	{0, HELD, SINGLE, NULL_LEN, CKR_ARGUMENTS_BAD, ENDS},
	{0, ON_DAEMON, SINGLE, NULL_LEN, CKR_ARGUMENTS_BAD, ENDS},
	{0, HELD, SINGLE, NULL_DATA, CKR_ARGUMENTS_BAD, ENDS},
	{0, ON_DAEMON, SINGLE, NULL_DATA, CKR_ARGUMENTS_BAD, ENDS},
	{0, HELD, SINGLE, SHORT_BUF, CKR_BUFFER_TOO_SMALL, KEEPS},
	{0, ON_DAEMON, SINGLE, SHORT_BUF, CKR_BUFFER_TOO_SMALL, KEEPS},
	{0, HELD, SINGLE, LEN_QUERY, CKR_OK, KEEPS},
	{0, ON_DAEMON, SINGLE, LEN_QUERY, CKR_OK, KEEPS},
	{0, HELD, SINGLE, GOOD, CKR_OK, ENDS},
	{0, UPDATED, SINGLE, GOOD, CKR_OPERATION_ACTIVE, ENDS},
	{0, UPDATED, FINAL, NULL_LEN, CKR_ARGUMENTS_BAD, ENDS},
	{0, HELD, FINAL, NULL_LEN, CKR_ARGUMENTS_BAD, ENDS},
	{0, UPDATED, FINAL, SHORT_BUF, CKR_BUFFER_TOO_SMALL, KEEPS},
	{0, UPDATED, FINAL, LEN_QUERY, CKR_OK, KEEPS},
	{0, UPDATED, FINAL, GOOD, CKR_OK, ENDS},
};

static const row_t verify_rows[] = {
	{VERIFY, HELD, SINGLE, NULL_DATA, CKR_ARGUMENTS_BAD, ENDS},
	{VERIFY, HELD, SINGLE, NULL_SIG, CKR_ARGUMENTS_BAD, ENDS},
	{VERIFY, HELD, SINGLE, SHORT_SIG, CKR_SIGNATURE_LEN_RANGE, ENDS},
	{VERIFY, HELD, SINGLE, WRONG_SIG, CKR_SIGNATURE_INVALID, ENDS},
	{VERIFY, UPDATED, SINGLE, WRONG_SIG, CKR_OPERATION_ACTIVE, ENDS},
	{VERIFY, UPDATED, FINAL, NULL_SIG, CKR_ARGUMENTS_BAD, ENDS},
	{VERIFY, HELD, FINAL, NULL_SIG, CKR_ARGUMENTS_BAD, ENDS},
	{VERIFY, UPDATED, FINAL, SHORT_SIG, CKR_SIGNATURE_LEN_RANGE, ENDS},
	{VERIFY, UPDATED, FINAL, WRONG_SIG, CKR_SIGNATURE_INVALID, ENDS},
};

/* The row, then the operation's next call: single-part for a row that
 * began single-part, Final for one that began with updates. */
static void walk(const row_t *r)
{
	char what[160];
	snprintf(what, sizeof(what), "%s %s %s, args %d", op_names[r->op],
		 where_names[r->where],
		 r->call == SINGLE ? "single-part" : "final", r->args);
	reach(r->op, r->where);
	CK_RV rv = run_call(r->op, r->call, r->args);
	ck_assert_msg(rv == r->rv, "%s: 0x%lx, not 0x%lx", what, rv, r->rv);
	call_t next = r->where == UPDATED ? FINAL : r->call;
	args_t good = r->op == VERIFY ? WRONG_SIG : GOOD;
	rv = run_call(r->op, next, good);
	CK_RV want =
		!r->ends ? (r->op == VERIFY ? CKR_SIGNATURE_INVALID : CKR_OK)
			 : CKR_OPERATION_NOT_INITIALIZED;
	ck_assert_msg(rv == want, "%s, then: 0x%lx, not 0x%lx", what, rv, want);
	/* Whatever it was, the operation is over now: a new init works. */
	ck_assert_msg(init(r->op) == CKR_OK, "%s: init after", what);
	CK_RV fresh = r->op == VERIFY ? CKR_SIGNATURE_INVALID : CKR_OK;
	rv = run_call(r->op, SINGLE, good);
	ck_assert_msg(rv == fresh, "%s: after a new init: 0x%lx", what, rv);
}

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	session = th_user_session(p11, 0, "0000");
	th_generate_p256(p11, session, CK_FALSE, &pub, &priv);
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

START_TEST(test_digest_and_sign_end_when_the_specification_says)
{
	static const op_t ops[] = {DIGEST, SIGN};
	for (size_t o = 0; o < 2; o++)
		for (size_t i = 0;
		     i < sizeof(produce_rows) / sizeof(produce_rows[0]); i++) {
			row_t r = produce_rows[i];
			r.op = ops[o];
			walk(&r);
		}
}
END_TEST

START_TEST(test_verify_ends_when_the_specification_says)
{
	for (size_t i = 0; i < sizeof(verify_rows) / sizeof(verify_rows[0]);
	     i++)
		walk(&verify_rows[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("operation_rules");
	TCase *tc = tcase_create("rules");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc,
		       test_digest_and_sign_end_when_the_specification_says);
	tcase_add_test(tc, test_verify_ends_when_the_specification_says);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
