/* remhsm store check: every record, index and counter of a store;
 * remhsm store copy: a store moved to another backend. */
#ifndef RH_STORECHECK_H
#define RH_STORECHECK_H

int rh_store_main(int argc, char **argv);
int rh_store_copy_main(int argc, char **argv);

#endif
