/* fuzz_jwt.c - libFuzzer driver for gw_auth_verify.
 *
 * Two modes, chosen by the first byte, so the fuzzer reaches the claims
 * checks and not only the pre-parse (it cannot forge an HMAC):
 *   even: the rest is a token, verified as is (the attacker's view);
 *   odd:  the rest is "header-JSON \n payload-JSON"; the driver encodes
 *         both in base64url and signs them with the fixed secret, as if
 *         the attacker held the key - this fuzzes the header and claims
 *         parsing behind the signature check.
 * Invariants checked: a token that passes has an account id > 0, a valid
 * username and an exp in the future (beyond skew); every rejection gives
 * a reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gw_auth.h"

static const char SECRET[] = "fuzz-secret-fuzz-secret-fuzz-sec"; /* 32 bytes */

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    return o;
}

static void check(gw_auth *a, const char *tok, size_t n)
{
    gw_claims c;
    const char *why = NULL;
    int rc = gw_auth_verify(a, tok, n, &c, &why);
    if (rc == GW_AUTH_OK) {
        size_t un = strnlen(c.username, sizeof c.username);
        if (c.account_id == 0 || un < 3 || un > 24 || c.exp < (int64_t)time(NULL) - GW_AUTH_SKEW_S)
            abort();
    } else if ((rc != GW_AUTH_E_INVALID && rc != GW_AUTH_E_EXPIRED) || why == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_auth *a;
    if (a == NULL && gw_auth_create(&a, SECRET, sizeof SECRET - 1, 3600) != 0)
        abort();
    if (size == 0)
        return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        /* A copy of exactly n bytes, so ASan sees any read past the end. */
        char *tok = malloc(n ? n : 1);
        if (tok == NULL)
            abort();
        memcpy(tok, in, n);
        check(a, tok, n);
        free(tok);
        return 0;
    }
    if (n > 4096)
        return 0;
    const uint8_t *nl = memchr(in, '\n', n);
    size_t hn = nl ? (size_t)(nl - in) : n;
    const uint8_t *pl = nl ? nl + 1 : in + n;
    size_t pn = nl ? n - hn - 1 : 0;
    char tok[8192];
    size_t o = b64url(in, hn, tok);
    tok[o++] = '.';
    o += b64url(pl, pn, tok + o);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_n = 0;
    if (HMAC(EVP_sha256(), SECRET, (int)sizeof SECRET - 1, (const unsigned char *)tok, o, mac,
             &mac_n) == NULL)
        abort();
    tok[o++] = '.';
    o += b64url(mac, mac_n, tok + o);
    check(a, tok, o);
    return 0;
}
