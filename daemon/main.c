/* remhsmd: arguments, configuration, signals, the loop. No logic here. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "server.h"

int main(int argc, char **argv)
{
	rhd_config_t cfg;
	char err[1024];
	rhd_config_defaults(&cfg);
	int r = rhd_config_from_args(&cfg, argc, argv, err, sizeof(err));
	if (r == 1) {
		rhd_config_usage(argv[0]);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "remhsmd: %s\n", err);
		rhd_config_usage(argv[0]);
		return 2;
	}
	/* A peer that vanishes mid-write must cost a connection, not the
	 * daemon. */
	signal(SIGPIPE, SIG_IGN);
	if (mkdir(cfg.state_dir, 0700) < 0 && errno != EEXIST) {
		RHD_ERROR("event=start-failed state_dir=%s reason=\"%s\"",
			  cfg.state_dir, strerror(errno));
		return 1;
	}
	rhd_engine_t engine;
	if (rhd_engine_init(&engine, cfg.slots) < 0) {
		RHD_ERROR("event=start-failed reason=\"engine init\"");
		return 1;
	}
	r = rhd_server_run(&cfg, &engine);
	rhd_engine_cleanup(&engine);
	return r < 0 ? 1 : 0;
}
