/* ts_jwt.c - see ts_jwt.h. */
#include "ts_jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

static void die(const char *what)
{
    fprintf(stderr, "ts_jwt: %s failed\n", what);
    abort();
}

EVP_PKEY *ts_jwt_rsa(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
    if (k == NULL)
        die("RSA keygen");
    return k;
}

EVP_PKEY *ts_jwt_p256(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (k == NULL)
        die("EC keygen");
    return k;
}

char *ts_jwt_pub_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL || PEM_write_bio_PUBKEY(b, k) != 1)
        die("PEM_write_bio_PUBKEY");
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);
    if (out == NULL)
        die("malloc");
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

void ts_jwt_write_pub_pem(EVP_PKEY *k, const char *path)
{
    char *pem = ts_jwt_pub_pem(k);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(pem, f) < 0 || fclose(f) != 0)
        die(path);
    free(pem);
}

size_t ts_b64url(const void *in_, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *in = in_;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* DER ECDSA-Sig-Value -> JOSE r || s (32 bytes each). */
static void der_to_jose(const unsigned char *der, size_t n, unsigned char out[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);
    if (s == NULL)
        die("d2i_ECDSA_SIG");
    const BIGNUM *r = NULL, *ss = NULL;
    ECDSA_SIG_get0(s, &r, &ss);
    if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(ss, out + 32, 32) != 32)
        die("BN_bn2binpad");
    ECDSA_SIG_free(s);
}

char *ts_jwt_sign(const char *header, const char *payload, const EVP_MD *md, const void *hmac_key,
                  size_t hmac_len, EVP_PKEY *k)
{
    size_t hn = strlen(header), pn = strlen(payload);
    size_t cap = (hn + pn) * 4 / 3 + 8 + 2048;
    char *tok = malloc(cap);
    if (tok == NULL)
        die("malloc");
    size_t n = ts_b64url(header, hn, tok);
    tok[n++] = '.';
    n += ts_b64url(payload, pn, tok + n);
    size_t signing_n = n;
    tok[n++] = '.';
    tok[n] = '\0';
    unsigned char sig[1024];
    size_t sig_n = 0;
    if (md != NULL) {
        unsigned int mn = 0;
        if (HMAC(md, hmac_key, (int)hmac_len, (const unsigned char *)tok, signing_n, sig, &mn) ==
            NULL)
            die("HMAC");
        sig_n = mn;
    } else if (k != NULL) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        unsigned char der[1024];
        size_t dn = sizeof der;
        if (ctx == NULL || EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, k) != 1 ||
            (EVP_PKEY_is_a(k, "RSA") &&
             EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) ||
            EVP_DigestSign(ctx, der, &dn, (const unsigned char *)tok, signing_n) != 1)
            die("EVP_DigestSign");
        EVP_MD_CTX_free(ctx);
        if (EVP_PKEY_is_a(k, "EC")) {
            der_to_jose(der, dn, sig);
            sig_n = 64;
        } else {
            memcpy(sig, der, dn);
            sig_n = dn;
        }
    }
    ts_b64url(sig, sig_n, tok + n);
    return tok;
}
