/*
 * libFuzzer target: what the daemon decodes from its store and from
 * clients' leases, with the keys known to the target. The first byte picks
 * the decoder: 0, an object record (as rhd_object_unpack reads it once the
 * store has opened its seal); 1, a login lease presented in Restore; 2, a
 * response as the module decodes and wipes it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "engine_support.h"
#include "object.h"
#include "resume.h"
#include "rh_decode.h"

static rhd_engine_t engine;
static th_store_t store;
static rhd_app_t *app;

static void remove_store(void)
{
	rhd_engine_detach(&engine, app);
	th_store_cleanup(&store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t app_id[RHD_APP_ID_LEN] = {0x43};
	if (!app) {
		th_store_open(&store);
		if (th_engine_init(&engine, &store, 2) < 0 ||
		    !(app = rhd_engine_attach(&engine, app_id, sizeof(app_id),
					      "CN=fuzz")))
			abort();
		atexit(remove_store);
	}
	if (size < 1)
		return 0;
	rhd_object_t obj;
	int err;
	ProtobufCMessage *msg;
	switch (data[0] % 3) {
	case 0:
		if (rhd_object_unpack(data + 1, size - 1, &obj) == 0)
			rhd_object_cleanup(&obj);
		break;
	case 1:
		pthread_mutex_lock(&app->lock);
		(void)rhd_lease_redeem(&engine, app, 0, data + 1, size - 1);
		rhd_app_logout(app, 0);
		pthread_mutex_unlock(&app->lock);
		break;
	default:
		msg = rh_decode(&remhsm__response__descriptor, data + 1,
				size - 1, &err);
		rh_free_wiped(msg);
		break;
	}
	return 0;
}
