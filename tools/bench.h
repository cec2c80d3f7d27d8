#ifndef RH_BENCH_H
#define RH_BENCH_H

/* `remhsm bench`: C_GenerateRandom round trips through a PKCS#11 module. */
int rh_bench_main(int argc, char **argv);

/* `remhsm bench store`: the store's latency at several sizes. */
int rh_bench_store_main(int argc, char **argv);

#endif
