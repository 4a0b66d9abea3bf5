/* ts_jwt.h - JWT material for tests: key pairs made at test time with
 * OpenSSL (EVP_PKEY_keygen), their public halves as PEM, and tokens signed
 * directly with OpenSSL (HS256 and friends by HMAC, RS256 with PKCS#1
 * v1.5, ES256 as JOSE r || s), so tests never depend on what libjwt is
 * willing to produce. Every function aborts the test process on an
 * OpenSSL failure (a broken test set-up, not a result). */
#ifndef TS_JWT_H
#define TS_JWT_H
#include <stddef.h>

#include <openssl/evp.h>

/* New key pairs; free with EVP_PKEY_free. */
EVP_PKEY *ts_jwt_rsa(int bits);
EVP_PKEY *ts_jwt_p256(void);

/* The public key as "-----BEGIN PUBLIC KEY-----" PEM: malloc'd text, or
 * written to path (mode 0644). Returns the text / 0, aborts on failure. */
char *ts_jwt_pub_pem(EVP_PKEY *k);
void ts_jwt_write_pub_pem(EVP_PKEY *k, const char *path);

/* base64url without padding of in[0..n) into out (4 * n / 3 + 4 bytes);
 * returns the length. */
size_t ts_b64url(const void *in, size_t n, char *out);

/* header.payload.signature of the two JSON texts, signed with:
 *  md != NULL: HMAC(md, hmac_key[0..hmac_len))  (HS256/384/512, confusion)
 *  else k: RS256 for an RSA key, ES256 (r || s) for an EC key
 *  else (both NULL): an empty signature (alg none).
 * Returns malloc'd text. */
char *ts_jwt_sign(const char *header, const char *payload, const EVP_MD *md, const void *hmac_key,
                  size_t hmac_len, EVP_PKEY *k);
#endif
