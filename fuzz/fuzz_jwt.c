/* fuzz_jwt.c - libFuzzer driver for gw_auth_verify.
 *
 * Four modes, chosen by the first byte (mod 4), so the fuzzer reaches the
 * claims checks and not only the pre-parse (it cannot forge a signature):
 *   0: the rest is a token, verified as is (the attacker's view);
 *   1: the rest is "header-JSON \n payload-JSON"; the driver encodes both
 *      in base64url and signs them with the fixed HS256 secret, as if the
 *      attacker held the key - this fuzzes the header and claims parsing
 *      behind the HMAC check;
 *   2: the same, signed RS256 with the driver's RSA key (kid "fz-rsa");
 *   3: the same, signed ES256 (JOSE r || s) with its P-256 key (kid
 *      "fz-ec"): the provider path, kid lookup and algorithm pinning.
 * The key set is made once per process (EVP_PKEY_keygen) and loaded
 * through gw_auth_key_add_pem; a crash reproduces whatever the keys are,
 * since only which header/payload gets signed comes from the input.
 * Invariants checked: a token that passes has an account id > 0, a valid
 * username and an exp in the future (beyond skew); a provider token
 * passes only under a kid of the matching key type; every rejection
 * gives a reason; once revoked, a token that passed is refused. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "gw_auth.h"

static const char SECRET[] = "fuzz-secret-fuzz-secret-fuzz-sec"; /* 32 bytes */

static EVP_PKEY *g_rsa, *g_ec;

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

static void add_key(gw_auth *a, const char *kid, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL, err[256];
    if (b == NULL || PEM_write_bio_PUBKEY(b, k) != 1)
        abort();
    long n = BIO_get_mem_data(b, &pem);
    if (gw_auth_key_add_pem(a, kid, pem, (size_t)n, err, sizeof err) != 0)
        abort();
    BIO_free(b);
}

static gw_auth *auth_get(void)
{
    static gw_auth *a;
    if (a != NULL)
        return a;
    if (gw_auth_create(&a, SECRET, sizeof SECRET - 1, 3600) != 0)
        abort();
    g_rsa = EVP_RSA_gen(2048);
    g_ec = EVP_EC_gen("P-256");
    if (g_rsa == NULL || g_ec == NULL)
        abort();
    add_key(a, "fz-rsa", g_rsa);
    add_key(a, "fz-ec", g_ec);
    return a;
}

/* Signs tok[0..n) by mode into sig; returns the signature length. */
static size_t sign(int mode, const char *tok, size_t n, unsigned char *sig)
{
    if (mode == 1) {
        unsigned int mac_n = 0;
        if (HMAC(EVP_sha256(), SECRET, (int)sizeof SECRET - 1, (const unsigned char *)tok, n, sig,
                 &mac_n) == NULL)
            abort();
        return mac_n;
    }
    EVP_PKEY *k = mode == 2 ? g_rsa : g_ec;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[512];
    size_t dn = sizeof der;
    if (ctx == NULL || EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, k) != 1 ||
        (mode == 2 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) ||
        EVP_DigestSign(ctx, der, &dn, (const unsigned char *)tok, n) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    if (mode == 2) {
        memcpy(sig, der, dn);
        return dn;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dn);
    const BIGNUM *r = NULL, *s = NULL;
    if (es == NULL)
        abort();
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
        abort();
    ECDSA_SIG_free(es);
    return 64;
}

static void check(gw_auth *a, const char *tok, size_t n, int mode)
{
    gw_claims c;
    const char *why = NULL;
    int rc = gw_auth_verify(a, tok, n, &c, &why);
    if (rc == GW_AUTH_OK) {
        size_t un = strnlen(c.username, sizeof c.username);
        if (c.account_id == 0 || un < 3 || un > 24 || c.exp < (int64_t)time(NULL) - GW_AUTH_SKEW_S)
            abort();
        /* Only the provider keys make provider tokens, and only ours
         * make ours. */
        if ((mode == 1 && c.is_external) || (mode >= 2 && !c.is_external))
            abort();
        if (c.account_id % 7 == 0) { /* sometimes: revoke, then it must fail */
            gw_auth_revoke(a, &c);
            if (gw_auth_verify(a, tok, n, &c, &why) == GW_AUTH_OK || strcmp(why, "token revoked"))
                abort();
        }
    } else if ((rc != GW_AUTH_E_INVALID && rc != GW_AUTH_E_EXPIRED) || why == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_auth *a = auth_get();
    if (size == 0)
        return 0;
    int mode = data[0] & 3;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    if (mode == 0) {
        /* A copy of exactly n bytes, so ASan sees any read past the end. */
        char *tok = malloc(n ? n : 1);
        if (tok == NULL)
            abort();
        memcpy(tok, in, n);
        check(a, tok, n, mode);
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
    unsigned char sig[512];
    size_t sig_n = sign(mode, tok, o, sig);
    tok[o++] = '.';
    o += b64url(sig, sig_n, tok + o);
    check(a, tok, o, mode);
    return 0;
}
