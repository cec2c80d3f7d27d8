/* remhsm store check: every record, index and counter of a store. */
#ifndef RH_STORECHECK_H
#define RH_STORECHECK_H

int rh_store_main(int argc, char **argv);

#endif
