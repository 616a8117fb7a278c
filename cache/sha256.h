/*
 * SHA-256 (FIPS 180-4): content addresses and checksums of the disk cache,
 * and the digests tests compare published vectors against. Compact, not
 * fast: it hashes keys and kernel objects, never weights on a hot path.
 */
#ifndef QKC_RUNTIME_SHA256_H
#define QKC_RUNTIME_SHA256_H

#include <stddef.h>
#include <stdint.h>

void qkc_sha256(const void *data, size_t len, uint8_t out[32]);

/* The digest as 64 lowercase hex digits and a NUL. */
void qkc_sha256_hex(const void *data, size_t len, char out[65]);

#endif
