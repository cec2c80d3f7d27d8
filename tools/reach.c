#include "reach.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>

#include "rh_calls.h"
#include "rh_frame.h"
#include "rh_tls.h"
#include "rhc.h"

/* With TLS 1.3 the daemon judges the client's certificate after the
 * client's side of the handshake is done: a Hello shows whether it took
 * it. */
static void say_hello(const rhc_config_t *cfg, rhc_link_t *link, char *why,
		      size_t cap)
{
	uint32_t version = RH_PROTOCOL_VERSION;
	uint8_t app_id[16] = {0};
	Remhsm__HelloReq hello = REMHSM__HELLO_REQ__INIT;
	hello.n_versions = 1;
	hello.versions = &version;
	hello.app_id = (ProtobufCBinaryData){sizeof(app_id), app_id};
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_HELLO;
	req.hello = &hello;
	uint8_t *frame = NULL, *answer = NULL;
	size_t len = 0;
	ERR_clear_error();
	int r = rh_frame_pack(&req.base, &frame, &len);
	if (r == RH_OK)
		r = rhc_tls_transport.send(link, frame, len,
					   cfg->connect_timeout_ms);
	if (r == RH_OK)
		r = rhc_tls_transport.receive(link, RH_FRAME_DEFAULT_MAX,
					      &answer, &len,
					      cfg->connect_timeout_ms);
	free(frame);
	free(answer);
	char tls[256];
	rh_tls_last_error(tls, sizeof(tls));
	if (r < 0)
		snprintf(why, cap,
			 "remhsmd at %s refused this client after the TLS "
			 "handshake (%s): is the client certificate %s from "
			 "its CA, and on its access list?",
			 cfg->server, tls[0] ? tls : rh_strerror(r), cfg->cert);
	else
		snprintf(why, cap,
			 "remhsmd at %s answers; its log says why it refused "
			 "the call",
			 cfg->server);
	rhc_tls_transport.close(link, r == RH_OK);
}

void rh_explain_unreachable(char *why, size_t cap)
{
	rhc_config_t cfg;
	char err[512];
	if (rhc_config_load(&cfg, err, sizeof(err)) < 0) {
		snprintf(why, cap, "the client settings: %s", err);
		return;
	}
	rh_tls_files_t files = {cfg.ca, cfg.cert, cfg.key};
	SSL_CTX *tls = rh_tls_client_ctx_new(&files, err, sizeof(err));
	if (!tls) {
		snprintf(why, cap, "%s", err);
		return;
	}
	rhc_link_t *link = NULL;
	cfg.server_choice = RHC_FIRST; /* any daemon that answers will do */
	if (rhc_tls_transport.connect(&cfg, tls, NULL, &link) < 0)
		snprintf(why, cap, "cannot reach remhsmd at %s: %s", cfg.server,
			 rhc_link_last_error());
	else
		say_hello(&cfg, link, why, cap);
	SSL_CTX_free(tls);
}
