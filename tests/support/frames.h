/* Framed requests for the tests and the seed writer. */
#ifndef TH_FRAMES_H
#define TH_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "remhsm.pb-c.h"

/* Packs req behind its frame header at dst (room enough: the caller's);
 * the frame's length. Exits on failure. */
size_t th_frame_into(uint8_t *dst, const Remhsm__Request *req);

/* A Hello offering version, for the application id {app, 0, ...}. */
size_t th_hello_into(uint8_t *dst, uint32_t version, uint8_t app);

/* A probe Hello (the least-busy question) offering version. */
size_t th_probe_into(uint8_t *dst, uint32_t version);

/* A fake daemon's read: the next framed request on ssl, payload at most
 * max bytes; NULL when the link ends or the frame does not decode. */
Remhsm__Request *th_read_request(SSL *ssl, uint32_t max);

#endif
