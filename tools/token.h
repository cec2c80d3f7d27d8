#ifndef RH_TOKEN_CMD_H
#define RH_TOKEN_CMD_H

/* `remhsm token init|list|set-pin`, through a PKCS#11 module. */
int rh_token_main(int argc, char **argv);

#endif
