/*
 * libFuzzer target: the PKCS#11 module facing a hostile daemon. A server
 * thread in this process, with the daemon's certificate, speaks real TLS on
 * a loopback port to the real module (linked in): it answers Hello
 * truthfully and every other request with the input's next record. The
 * input is
 *
 *   n (1 byte) | n calls (1 byte each) | records
 *
 * a call byte chooses what the application does (make_call), and a record
 * is one answer:
 *
 *   how (1 byte) | length (2 bytes, big-endian) | Response bytes
 *
 * where how 0x80 leaves the response's id as it is (else the request's id
 * is appended to it, so that the rest of the answer is what gets tested),
 * 0x40 sends a frame cut short and closes, and 0x20 closes instead of
 * answering. Calls are made with known buffers behind guard bytes; a
 * length reported past a buffer, a guard byte changed, a crash or a hang
 * is a finding. Each input is one C_Initialize ... C_Finalize.
 *
 * With FUZZ_MODULE_SEEDS=DIR set, it writes its seed corpus there and
 * exits: each call alone, and a provisioning sequence, answered with
 * well-formed responses of the kind each request asks for.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "frames.h"
#include "pki.h"
#include "remhsm.pb-c.h"
#include "rh_calls.h"
#include "rh_frame.h"
#include "rh_tls.h"

#define MAX_FRAME 65536
#define GUARD 0xA5
#define GUARD_LEN 16

#define KEEP_ID 0x80
#define CUT_SHORT 0x40
#define HANG_UP 0x20

typedef struct record {
	uint8_t how;
	const uint8_t *bytes;
	size_t len;
} record_t;

static struct {
	SSL_CTX *ctx;
	int fd;
	pthread_mutex_t lock;
	pthread_cond_t served; /* a connection ended */
	unsigned serving;      /* connections being served */
	record_t records[256];
	size_t count, next;
	/* Seed mode: the answers made, as the records of a seed. */
	int seeds;
	uint8_t seed[MAX_FRAME];
	size_t seed_len;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER,
	  .served = PTHREAD_COND_INITIALIZER};

static CK_FUNCTION_LIST *p11;

/* --- the hostile daemon -------------------------------------------------- */

/* One write, so that the answer leaves in one TLS record. */
static void send_frame(SSL *ssl, const uint8_t *payload, size_t len,
		       size_t announced)
{
	static _Thread_local uint8_t frame[RH_FRAME_HEADER + MAX_FRAME + 16];
	rh_frame_header_encode(frame, (uint32_t)announced);
	memcpy(frame + RH_FRAME_HEADER, payload, len);
	size_t n;
	SSL_write_ex(ssl, frame, RH_FRAME_HEADER + len, &n);
}

static void answer_hello(SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__HelloResp hello = REMHSM__HELLO_RESP__INIT;
	hello.version = RH_PROTOCOL_VERSION;
	hello.max_frame = MAX_FRAME;
	hello.max_inflight = 8;
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	resp.id = req->id;
	resp.result_case = REMHSM__RESPONSE__RESULT_HELLO;
	resp.hello = &hello;
	uint8_t buf[128];
	size_t len = remhsm__response__pack(&resp, buf);
	send_frame(ssl, buf, len, len);
}

/* --- seed mode: well-formed answers of the kind asked for ---------------- */

static ProtobufCMessage *empty_result(Remhsm__Response *resp, uint32_t call)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field(
			&remhsm__response__descriptor, call);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	const ProtobufCMessageDescriptor *d = f->descriptor;
	ProtobufCMessage *body = calloc(1, d->sizeof_message);
	protobuf_c_message_init(d, body);
	resp->result_case = (Remhsm__Response__ResultCase)call;
	/* Every member of the result union is a pointer to its message. */
	resp->get_info = (Remhsm__GetInfoResp *)body;
	return body;
}

/* What the calls of make_call need to go on: a session, a private EC key
 * found or made, a signature of the size asked for. */
static void fill_result(Remhsm__Response *resp, const Remhsm__Request *req)
{
	static Remhsm__ObjectInfo key = {
		PROTOBUF_C_MESSAGE_INIT(&remhsm__object_info__descriptor), 2,
		CKO_PRIVATE_KEY, CKK_EC};
	static Remhsm__ObjectInfo *keys[] = {&key};
	static uint8_t sig[64] = {7};
	static Remhsm__Output out = {
		PROTOBUF_C_MESSAGE_INIT(&remhsm__output__descriptor),
		64,
		{0, NULL}};
	switch (resp->result_case) {
	case REMHSM__RESPONSE__RESULT_OPEN_SESSION:
		resp->open_session->session = 1;
		break;
	case REMHSM__RESPONSE__RESULT_FIND_OBJECTS_INIT:
		resp->find_objects_init->n_objects = 1;
		resp->find_objects_init->objects = keys;
		resp->find_objects_init->complete = 1;
		break;
	case REMHSM__RESPONSE__RESULT_GENERATE_KEY_PAIR:
		resp->generate_key_pair->private_key = &key;
		break;
	case REMHSM__RESPONSE__RESULT_SIGN:
		if (req->sign->output && req->sign->output->has_buffer)
			out.data = (ProtobufCBinaryData){sizeof(sig), sig};
		else
			out.data = (ProtobufCBinaryData){0, NULL};
		resp->sign->output = &out;
		break;
	default:
		break;
	}
}

static int answer_for_seed(SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	ProtobufCMessage *body = empty_result(&resp, (uint32_t)req->call_case);
	if (body)
		fill_result(&resp, req);
	uint8_t *rec = fake.seed + fake.seed_len;
	size_t len = remhsm__response__pack(&resp, rec + 3);
	rec[0] = 0;
	rec[1] = (uint8_t)(len >> 8);
	rec[2] = (uint8_t)len;
	fake.seed_len += 3 + len;
	/* Answered with the request's id, as the fuzzing server does. */
	resp.id = req->id;
	uint8_t buf[1024];
	size_t n = remhsm__response__pack(&resp, buf);
	free(body);
	send_frame(ssl, buf, n, n);
	return 1;
}

/* The record's bytes, then (unless KEEP_ID) field 1 again as the request's
 * id: protobuf takes the last value of a field. 0 to hang up. */
static int answer(SSL *ssl, const Remhsm__Request *req)
{
	static _Thread_local uint8_t buf[MAX_FRAME + 16];
	if (fake.seeds)
		return answer_for_seed(ssl, req);
	pthread_mutex_lock(&fake.lock);
	record_t r = {HANG_UP, NULL, 0};
	if (fake.next < fake.count)
		r = fake.records[fake.next++];
	pthread_mutex_unlock(&fake.lock);
	if (r.how & HANG_UP)
		return 0;
	memcpy(buf, r.bytes, r.len);
	size_t len = r.len;
	if (!(r.how & KEEP_ID)) {
		uint64_t id = req->id;
		buf[len++] = 0x08;
		for (; id >= 0x80; id >>= 7)
			buf[len++] = (uint8_t)(id | 0x80);
		buf[len++] = (uint8_t)id;
	}
	if (r.how & CUT_SHORT) {
		send_frame(ssl, buf, len / 2, len);
		return 0;
	}
	send_frame(ssl, buf, len, len);
	return 1;
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct timeval tv = {2, 0};
	int on = 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	SSL *ssl = SSL_new(fake.ctx);
	SSL_set_fd(ssl, fd);
	Remhsm__Request *req;
	int keep = SSL_accept(ssl) == 1;
	while (keep && (req = th_read_request(ssl, MAX_FRAME)) != NULL) {
		if (req->call_case == REMHSM__REQUEST__CALL_HELLO)
			answer_hello(ssl, req);
		else
			keep = answer(ssl, req);
		remhsm__request__free_unpacked(req, NULL);
	}
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	/* OpenSSL's state of this thread (its error queue) goes now, not in
	 * a destructor after the input has been checked for leaks. */
	OPENSSL_thread_stop();
	pthread_mutex_lock(&fake.lock);
	fake.serving--;
	pthread_cond_broadcast(&fake.served);
	pthread_mutex_unlock(&fake.lock);
	return NULL;
}

/* Connections are taken under the lock, so that an input's end can tell
 * that none is left waiting to be accepted (see connections_left). */
static void *accept_loop(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p = {fake.fd, POLLIN, 0};
		if (poll(&p, 1, 100) != 1)
			continue;
		pthread_mutex_lock(&fake.lock);
		int c = accept(fake.fd, NULL, NULL);
		if (c >= 0)
			fake.serving++;
		pthread_mutex_unlock(&fake.lock);
		pthread_t t;
		if (c < 0)
			continue;
		if (pthread_create(&t, NULL, serve, (void *)(intptr_t)c) == 0) {
			pthread_detach(t);
			continue;
		}
		close(c);
		pthread_mutex_lock(&fake.lock);
		fake.serving--;
		pthread_mutex_unlock(&fake.lock);
	}
	return NULL;
}

/* Under the lock: a connection being served, or one the kernel holds
 * for accept. */
static int connections_left(void)
{
	struct pollfd p = {fake.fd, POLLIN, 0};
	return fake.serving > 0 || poll(&p, 1, 0) == 1;
}

/* --- set-up, once -------------------------------------------------------- */

static char pki[64];

static void remove_pki(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", pki);
}

static void set_path(const char *var, const char *file)
{
	char v[160];
	snprintf(v, sizeof(v), "%s/pki/%s", pki, file);
	setenv(var, v, 1);
}

static int listen_loopback(void)
{
	fake.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (bind(fake.fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fake.fd, 16) < 0 ||
	    fcntl(fake.fd, F_SETFL, O_NONBLOCK) < 0 ||
	    getsockname(fake.fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	return ntohs(a.sin_port);
}

static void write_seeds(const char *dir);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char err[512], dir[160], ca[160], cert[160], key[160], server[64];
	signal(SIGPIPE, SIG_IGN);
	snprintf(pki, sizeof(pki), "/tmp/remhsm-fuzz-XXXXXX");
	if (!mkdtemp(pki))
		abort();
	atexit(remove_pki);
	snprintf(dir, sizeof(dir), "%s/pki", pki);
	if (rh_pki_init(dir, 0, err, sizeof(err)) < 0)
		abort();
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(cert, sizeof(cert), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	rh_tls_files_t files = {ca, cert, key};
	if (!(fake.ctx = rh_tls_server_ctx_new(&files, 0, err, sizeof(err))))
		abort();
	snprintf(server, sizeof(server), "127.0.0.1:%d", listen_loopback());
	setenv("REMHSM_SERVER", server, 1);
	set_path("REMHSM_CA", "ca.pem");
	set_path("REMHSM_CERT", "client.pem");
	set_path("REMHSM_KEY", "client.key");
	setenv("REMHSM_TIMEOUT_MS", "3000", 1);
	setenv("REMHSM_RECONNECT_MS", "0", 1);
	unsetenv("REMHSM_CONF");
	pthread_t t;
	if (pthread_create(&t, NULL, accept_loop, NULL) != 0 ||
	    C_GetFunctionList(&p11) != CKR_OK)
		abort();
	pthread_detach(t);
	if (getenv("FUZZ_MODULE_SEEDS"))
		write_seeds(getenv("FUZZ_MODULE_SEEDS"));
	return 0;
}

/* --- the application ----------------------------------------------------- */

/* A buffer of cap bytes with guard bytes behind it. */
typedef struct guarded {
	CK_BYTE bytes[512 + GUARD_LEN];
	CK_ULONG cap;
} guarded_t;

static CK_BYTE *guard(guarded_t *g, CK_ULONG cap)
{
	g->cap = cap;
	memset(g->bytes, GUARD, sizeof(g->bytes));
	return g->bytes;
}

/* The module wrote within the buffer and reported no more than it had. */
static void check(const guarded_t *g, CK_RV rv, CK_ULONG reported)
{
	for (CK_ULONG i = g->cap; i < g->cap + GUARD_LEN; i++)
		if (g->bytes[i] != GUARD)
			abort();
	if (rv == CKR_OK && reported > g->cap)
		abort();
}

/* What earlier answers handed the application, used by later calls. */
static struct {
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE object;
} app;

static void get_lists(void)
{
	CK_SLOT_ID slots[4];
	CK_ULONG n = 0;
	p11->C_GetSlotList(CK_FALSE, NULL, &n);
	n = 4;
	if (p11->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK && n > 4)
		abort();
	CK_MECHANISM_TYPE mechs[8];
	n = 8;
	if (p11->C_GetMechanismList(0, mechs, &n) == CKR_OK && n > 8)
		abort();
}

static void get_infos(void)
{
	CK_INFO info;
	CK_SLOT_INFO slot;
	CK_TOKEN_INFO token;
	CK_MECHANISM_INFO mech;
	CK_SESSION_INFO session;
	p11->C_GetInfo(&info);
	p11->C_GetSlotInfo(0, &slot);
	p11->C_GetTokenInfo(0, &token);
	p11->C_GetMechanismInfo(0, CKM_ECDSA, &mech);
	p11->C_GetSessionInfo(app.session, &session);
}

static void open_session(void)
{
	CK_SESSION_HANDLE h;
	if (p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
			       NULL, &h) == CKR_OK)
		app.session = h;
}

static void log_in_and_out(int out)
{
	if (out)
		p11->C_Logout(app.session);
	else
		p11->C_Login(app.session, CKU_USER, (CK_UTF8CHAR_PTR) "0000",
			     4);
}

static void find(void)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE found[3];
	CK_ULONG n = 0;
	if (p11->C_FindObjectsInit(app.session, tmpl, 1) != CKR_OK)
		return;
	if (p11->C_FindObjects(app.session, found, 3, &n) == CKR_OK) {
		if (n > 3)
			abort();
		if (n > 0)
			app.object = found[0];
	}
	p11->C_FindObjectsFinal(app.session);
}

static void read_attributes(void)
{
	CK_ULONG cls = 0, key_type = 0;
	guarded_t label, point;
	CK_ATTRIBUTE tmpl[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_KEY_TYPE, &key_type, sizeof(key_type)},
		{CKA_LABEL, guard(&label, 16), 16},
		{CKA_EC_POINT, guard(&point, 80), 80},
		{CKA_ID, NULL, 0},
	};
	CK_RV rv = p11->C_GetAttributeValue(app.session, app.object, tmpl, 5);
	for (unsigned i = 2; i < 4; i++)
		if (tmpl[i].ulValueLen != CK_UNAVAILABLE_INFORMATION &&
		    tmpl[i].ulValueLen > (i == 2 ? 16u : 80u))
			abort();
	check(&label, rv, 0);
	check(&point, rv, 0);
}

static void sign(int multipart)
{
	CK_MECHANISM mech = {multipart ? CKM_ECDSA_SHA256 : CKM_ECDSA, NULL, 0};
	CK_BYTE data[32] = {1};
	guarded_t sig;
	CK_ULONG len = 0;
	if (p11->C_SignInit(app.session, &mech, app.object) != CKR_OK)
		return;
	CK_RV rv;
	if (multipart) {
		p11->C_SignUpdate(app.session, data, sizeof(data));
		len = 72;
		rv = p11->C_SignFinal(app.session, guard(&sig, 72), &len);
	} else {
		p11->C_Sign(app.session, data, sizeof(data), NULL, &len);
		len = 64;
		rv = p11->C_Sign(app.session, data, sizeof(data),
				 guard(&sig, 64), &len);
	}
	check(&sig, rv, len);
}

static void verify(void)
{
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	CK_BYTE data[32] = {2}, sig[64] = {3};
	if (p11->C_VerifyInit(app.session, &mech, app.object) == CKR_OK)
		p11->C_Verify(app.session, data, sizeof(data), sig,
			      sizeof(sig));
}

static void digest(int multipart)
{
	CK_MECHANISM mech = {CKM_SHA256, NULL, 0};
	CK_BYTE data[40] = {4};
	guarded_t out;
	CK_ULONG len = 32;
	if (p11->C_DigestInit(app.session, &mech) != CKR_OK)
		return;
	CK_RV rv;
	if (multipart) {
		p11->C_DigestUpdate(app.session, data, sizeof(data));
		rv = p11->C_DigestFinal(app.session, guard(&out, 32), &len);
	} else {
		rv = p11->C_Digest(app.session, data, sizeof(data),
				   guard(&out, 32), &len);
	}
	check(&out, rv, len);
}

static void random_bytes(void)
{
	guarded_t out;
	CK_RV rv = p11->C_GenerateRandom(app.session, guard(&out, 48), 48);
	check(&out, rv, 0);
}

static void generate_pair(void)
{
	static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				 0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, p256, sizeof(p256)}};
	CK_ATTRIBUTE priv[] = {{CKA_SIGN, &yes, sizeof(yes)}};
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE pub_h, priv_h;
	if (p11->C_GenerateKeyPair(app.session, &mech, pub, 1, priv, 1, &pub_h,
				   &priv_h) == CKR_OK)
		app.object = priv_h;
}

static void create_and_destroy(int destroy)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BYTE value[8] = {5};
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
			       {CKA_VALUE, value, sizeof(value)}};
	CK_OBJECT_HANDLE h;
	if (destroy)
		p11->C_DestroyObject(app.session, app.object);
	else if (p11->C_CreateObject(app.session, tmpl, 2, &h) == CKR_OK)
		app.object = h;
}

static void object_calls(void)
{
	CK_ULONG size;
	CK_BYTE label[] = "fuzz";
	CK_ATTRIBUTE tmpl[] = {{CKA_LABEL, label, 4}};
	CK_OBJECT_HANDLE copy;
	p11->C_GetObjectSize(app.session, app.object, &size);
	p11->C_SetAttributeValue(app.session, app.object, tmpl, 1);
	p11->C_CopyObject(app.session, app.object, tmpl, 1, &copy);
}

static void token_calls(void)
{
	CK_UTF8CHAR label[32];
	memset(label, ' ', sizeof(label));
	p11->C_InitToken(0, (CK_UTF8CHAR_PTR) "so-pin", 6, label);
	p11->C_InitPIN(app.session, (CK_UTF8CHAR_PTR) "0000", 4);
	p11->C_SetPIN(app.session, (CK_UTF8CHAR_PTR) "0000", 4,
		      (CK_UTF8CHAR_PTR) "1111", 4);
}

static void close_sessions(int all)
{
	if (all)
		p11->C_CloseAllSessions(0);
	else
		p11->C_CloseSession(app.session);
}

#define CALLS 20

static void make_call(unsigned which)
{
	switch (which % CALLS) {
	case 0:
		get_lists();
		break;
	case 1:
		get_infos();
		break;
	case 2:
		open_session();
		break;
	case 3:
		log_in_and_out(0);
		break;
	case 4:
		log_in_and_out(1);
		break;
	case 5:
		find();
		break;
	case 6:
		read_attributes();
		break;
	case 7:
		sign(0);
		break;
	case 8:
		sign(1);
		break;
	case 9:
		verify();
		break;
	case 10:
		digest(0);
		break;
	case 11:
		digest(1);
		break;
	case 12:
		random_bytes();
		break;
	case 13:
		generate_pair();
		break;
	case 14:
		create_and_destroy(0);
		break;
	case 15:
		create_and_destroy(1);
		break;
	case 16:
		object_calls();
		break;
	case 17:
		token_calls();
		break;
	case 18:
		close_sessions(0);
		break;
	default:
		close_sessions(1);
		break;
	}
}

/* The input's calls and records; the number of calls. */
static size_t read_input(const uint8_t *data, size_t size,
			 const uint8_t **calls)
{
	size_t ncalls = size ? data[0] : 0;
	if (ncalls > size - 1)
		ncalls = size - 1;
	*calls = data + 1;
	size_t off = 1 + ncalls, n = 0;
	while (off + 3 <= size &&
	       n < sizeof(fake.records) / sizeof(*fake.records)) {
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		if (len > size - off - 3)
			len = size - off - 3;
		fake.records[n++] = (record_t){data[off], data + off + 3, len};
		off += 3 + len;
	}
	fake.count = n;
	fake.next = 0;
	return ncalls;
}

static int answers_left(void)
{
	pthread_mutex_lock(&fake.lock);
	int left = fake.seeds || fake.next < fake.count;
	pthread_mutex_unlock(&fake.lock);
	return left;
}

static void run_calls(const uint8_t *calls, size_t n)
{
	app.session = 1;
	app.object = 2;
	if (p11->C_Initialize(NULL) != CKR_OK)
		abort();
	/* Once the answers have run out, every further call would only
	 * reconnect to be hung up on: nothing more to learn. */
	for (size_t i = 0; i < n && answers_left(); i++)
		make_call(calls[i]);
	p11->C_Finalize(NULL);
}

static void write_seed(const char *dir, const char *name, const uint8_t *calls,
		       size_t n)
{
	fake.seed[0] = (uint8_t)n;
	memcpy(fake.seed + 1, calls, n);
	fake.seed_len = 1 + n;
	run_calls(calls, n);
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(fake.seed, 1, fake.seed_len, f) != fake.seed_len)
		abort();
	fclose(f);
}

/* Each call after a session is opened, and the provisioning sequence of
 * a device: session, login, key pair, find, read, sign, verify. */
static void write_seeds(const char *dir)
{
	fake.seeds = 1;
	for (uint8_t c = 0; c < CALLS; c++) {
		char name[32];
		uint8_t calls[] = {2, c};
		snprintf(name, sizeof(name), "call-%02u", c);
		write_seed(dir, name, calls, sizeof(calls));
	}
	static const uint8_t provision[] = {0,	1,  2,	3,  13, 5,  6, 7,  8, 9,
					    10, 11, 12, 14, 16, 15, 4, 18, 19};
	write_seed(dir, "provision", provision, sizeof(provision));
	/* The server's threads still wait on their links: not leaks. */
	remove_pki();
	_exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The records are only read while this input runs: the server
	 * answers during the calls, and never after C_Finalize. */
	const uint8_t *calls;
	pthread_mutex_lock(&fake.lock);
	size_t n = read_input(data, size, &calls);
	pthread_mutex_unlock(&fake.lock);
	run_calls(calls, n);
	/* C_Finalize said goodbye on every link: each input starts with no
	 * connection left from the one before. */
	pthread_mutex_lock(&fake.lock);
	fake.count = 0;
	while (connections_left()) {
		struct timespec soon;
		clock_gettime(CLOCK_REALTIME, &soon);
		soon.tv_nsec += 1000000;
		if (soon.tv_nsec >= 1000000000) {
			soon.tv_sec++;
			soon.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fake.served, &fake.lock, &soon);
	}
	pthread_mutex_unlock(&fake.lock);
	return 0;
}
