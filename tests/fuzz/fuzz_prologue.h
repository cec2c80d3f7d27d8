/* What every input of fuzz_dispatch starts from (see fuzz_dispatch.c); the
 * seeds of make_seeds name the same handles. */
#ifndef FUZZ_PROLOGUE_H
#define FUZZ_PROLOGUE_H

#define FUZZ_SO_PIN "fuzz-so-pin"
#define FUZZ_PIN "0000"
#define FUZZ_SESSION 1u
#define FUZZ_PUBLIC 0x80000001u
#define FUZZ_PRIVATE 0x80000002u
/* The frame limit the fuzzer's inputs are held to (-max_len). */
#define FUZZ_MAX_FRAME (1u << 16)

#endif
