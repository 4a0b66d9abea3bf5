/* gw_auth_keys.c - external token providers' public keys: loading PEM
 * files into an immutable, reference-counted key set selected by kid, and
 * the RS256 / ES256 signature checks with OpenSSL EVP.
 *
 * Divisions: key sets (create, share, release); loading one key (the type
 * pins the algorithm); loading a folder; the signatures.
 *
 * Rotation: a provider publishes a new key under a new kid; while both
 * files are in the folder, tokens of either verify; removing the old file
 * (and reloading) retires its tokens. A reload builds a whole new set and
 * swaps the pointer under keys_mu; verifications in flight keep the set
 * they took a reference to. */
#include "gw_auth_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core_log.h"

#define GW_KEYS_MAX 64              /* keys in one set */
#define GW_KEY_FILE_MAX (64 * 1024) /* bytes of one PEM file */
#define GW_RSA_MIN_BITS 2048
#define GW_RSA_MAX_BITS 8192 /* bounds the verify cost an attacker can ask for */
#define GW_ES256_SIG_LEN 64  /* JOSE: r || s, 32 bytes each */

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t len, const char *fmt, ...)
{
    if (err == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* ---- key sets ---- */

static gw_keyset *keyset_new(size_t n_keys)
{
    gw_keyset *ks = calloc(1, sizeof *ks + n_keys * sizeof ks->keys[0]);
    if (ks == NULL)
        core_die("gw_auth: out of memory");
    ks->refs = 1;
    return ks;
}

gw_keyset *gw_keyset_empty(void)
{
    return keyset_new(0);
}

static void keyset_free(gw_keyset *ks)
{
    for (size_t i = 0; i < ks->n_keys; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    free(ks);
}

void gw_keyset_unref_locked(gw_keyset *ks)
{
    if (ks != NULL && --ks->refs == 0)
        keyset_free(ks);
}

gw_keyset *gw_keys_acquire(gw_auth *a)
{
    pthread_mutex_lock(&a->keys_mu);
    gw_keyset *ks = a->keys;
    ks->refs++;
    pthread_mutex_unlock(&a->keys_mu);
    return ks;
}

void gw_keys_release(gw_auth *a, gw_keyset *ks)
{
    pthread_mutex_lock(&a->keys_mu);
    gw_keyset_unref_locked(ks);
    pthread_mutex_unlock(&a->keys_mu);
}

const gw_key *gw_keyset_find(const gw_keyset *ks, const char *kid)
{
    for (size_t i = 0; i < ks->n_keys; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* Installs ks as the current set (takes ownership of its reference). */
static void keyset_swap(gw_auth *a, gw_keyset *ks)
{
    pthread_mutex_lock(&a->keys_mu);
    gw_keyset *old = a->keys;
    a->keys = ks;
    gw_keyset_unref_locked(old);
    pthread_mutex_unlock(&a->keys_mu);
}

size_t gw_auth_key_count(gw_auth *a)
{
    gw_keyset *ks = gw_keys_acquire(a);
    size_t n = ks->n_keys;
    gw_keys_release(a, ks);
    return n;
}

/* ---- one key ---- */

static bool kid_ok(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > GW_AUTH_KID_MAX || kid[0] == '.' || strcmp(kid, GW_AUTH_KID_LOCAL) == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = kid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Parses a PEM public key into *k; the key's type decides its algorithm.
 * Returns 0 or -1 with err. */
static int key_parse(gw_key *k, const char *kid, const void *pem, size_t pem_len, char *err,
                     size_t err_len)
{
    memset(k, 0, sizeof *k);
    if (!kid_ok(kid)) {
        errf(err, err_len, "kid '%s': 1..%d of [A-Za-z0-9._-], not starting with '.', not '%s'",
             kid, GW_AUTH_KID_MAX, GW_AUTH_KID_LOCAL);
        return -1;
    }
    if (pem_len == 0 || pem_len > GW_KEY_FILE_MAX) {
        errf(err, err_len, "kid '%s': empty or oversized PEM", kid);
        return -1;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (bio == NULL)
        core_die("gw_auth: out of memory");
    EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (pk == NULL) {
        ERR_clear_error();
        errf(err, err_len, "kid '%s': not a PEM public key (-----BEGIN PUBLIC KEY-----)", kid);
        return -1;
    }
    int bits = EVP_PKEY_get_bits(pk);
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (bits < GW_RSA_MIN_BITS || bits > GW_RSA_MAX_BITS) {
            errf(err, err_len, "kid '%s': RSA key of %d bits (want %d..%d)", kid, bits,
                 GW_RSA_MIN_BITS, GW_RSA_MAX_BITS);
            goto fail;
        }
        k->alg = GW_ALG_RS256;
        k->sig_len = (size_t)EVP_PKEY_get_size(pk);
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64] = "";
        size_t glen = 0;
        if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                            &glen) ||
            strcmp(group, SN_X9_62_prime256v1) != 0) {
            errf(err, err_len, "kid '%s': EC key on curve '%s' (only P-256 / ES256)", kid, group);
            goto fail;
        }
        k->alg = GW_ALG_ES256;
        k->sig_len = GW_ES256_SIG_LEN;
    } else {
        errf(err, err_len, "kid '%s': key type not RSA or EC P-256", kid);
        goto fail;
    }
    snprintf(k->kid, sizeof k->kid, "%s", kid);
    k->pkey = pk;
    return 0;
fail:
    EVP_PKEY_free(pk);
    return -1;
}

int gw_auth_key_add_pem(gw_auth *a, const char *kid, const void *pem, size_t pem_len, char *err,
                        size_t err_len)
{
    gw_key k;
    if (key_parse(&k, kid, pem, pem_len, err, err_len) != 0)
        return -1;
    gw_keyset *cur = gw_keys_acquire(a);
    if (cur->n_keys >= GW_KEYS_MAX && gw_keyset_find(cur, kid) == NULL) {
        gw_keys_release(a, cur);
        EVP_PKEY_free(k.pkey);
        errf(err, err_len, "more than %d keys", GW_KEYS_MAX);
        return -1;
    }
    gw_keyset *ks = keyset_new(cur->n_keys + 1);
    for (size_t i = 0; i < cur->n_keys; i++) {
        if (strcmp(cur->keys[i].kid, kid) == 0)
            continue; /* replaced */
        ks->keys[ks->n_keys] = cur->keys[i];
        EVP_PKEY_up_ref(ks->keys[ks->n_keys].pkey);
        ks->n_keys++;
    }
    ks->keys[ks->n_keys++] = k;
    gw_keys_release(a, cur);
    keyset_swap(a, ks);
    return 0;
}

/* ---- a folder of <kid>.pem ---- */

/* Reads path (at most GW_KEY_FILE_MAX bytes) into a malloc'd buffer. */
static char *read_file(const char *path, size_t *out_len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        errf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(GW_KEY_FILE_MAX + 1);
    if (buf == NULL)
        core_die("gw_auth: out of memory");
    size_t n = fread(buf, 1, GW_KEY_FILE_MAX + 1, f);
    bool bad = ferror(f) || n > GW_KEY_FILE_MAX;
    fclose(f);
    if (bad) {
        errf(err, err_len, "%s: unreadable or over %d bytes", path, GW_KEY_FILE_MAX);
        free(buf);
        return NULL;
    }
    *out_len = n;
    return buf;
}

int gw_auth_keys_load_dir(gw_auth *a, const char *dir, char *err, size_t err_len)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        errf(err, err_len, "jwt_keys_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    gw_keyset *ks = keyset_new(GW_KEYS_MAX);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n <= 4 || strcmp(e->d_name + n - 4, ".pem") != 0)
            continue; /* README, editor backups, hidden files */
        char kid[GW_AUTH_KID_MAX + 8], path[4096];
        snprintf(kid, sizeof kid, "%.*s", (int)(n - 4 < sizeof kid - 1 ? n - 4 : sizeof kid - 1),
                 e->d_name);
        int pn = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (pn < 0 || (size_t)pn >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (ks->n_keys >= GW_KEYS_MAX) {
            errf(err, err_len, "jwt_keys_dir %s: more than %d keys", dir, GW_KEYS_MAX);
            rc = -1;
            break;
        }
        size_t len = 0;
        char *pem = read_file(path, &len, err, err_len);
        if (pem == NULL) {
            rc = -1;
            break;
        }
        char why[256];
        if (n - 4 > GW_AUTH_KID_MAX ||
            key_parse(&ks->keys[ks->n_keys], kid, pem, len, why, sizeof why) != 0) {
            errf(err, err_len, "%s: %s", path,
                 n - 4 > GW_AUTH_KID_MAX ? "file name (the kid) too long" : why);
            rc = -1;
        } else {
            ks->n_keys++;
        }
        free(pem);
    }
    closedir(d);
    if (rc != 0) {
        keyset_free(ks);
        return -1;
    }
    int n_keys = (int)ks->n_keys;
    keyset_swap(a, ks);
    return n_keys;
}

/* ---- signatures ---- */

/* JOSE ES256 signatures are r || s (32 bytes each, big-endian); EVP wants
 * the DER ECDSA-Sig-Value. Returns the DER length in *der (malloc'd by
 * OpenSSL) or -1. */
static int es256_to_der(const unsigned char raw[GW_ES256_SIG_LEN], unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    if (es == NULL || r == NULL || s == NULL)
        core_die("gw_auth: out of memory");
    if (ECDSA_SIG_set0(es, r, s) != 1) /* takes r and s */
        core_die("gw_auth: ECDSA_SIG_set0 failed");
    *der = NULL;
    int n = i2d_ECDSA_SIG(es, der);
    ECDSA_SIG_free(es);
    return n;
}

int gw_key_verify(const gw_key *k, const char *signing_input, size_t n, const char *sig_b64,
                  size_t sig_n, const char **reason)
{
    unsigned char sig[GW_RSA_MAX_BITS / 8];
    /* The exact unpadded length first: a signature of the wrong size is
     * refused before any big-number work. */
    size_t want_b64 = (k->sig_len * 4 + 2) / 3;
    if (sig_n != want_b64 ||
        gw_auth_b64url_decode(sig_b64, sig_n, sig, sizeof sig) != (long)k->sig_len) {
        *reason = "bad signature";
        return GW_AUTH_E_INVALID;
    }
    unsigned char *der = NULL;
    const unsigned char *check = sig;
    size_t check_len = k->sig_len;
    if (k->alg == GW_ALG_ES256) {
        int dn = es256_to_der(sig, &der);
        if (dn <= 0) {
            *reason = "bad signature";
            return GW_AUTH_E_INVALID;
        }
        check = der;
        check_len = (size_t)dn;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        core_die("gw_auth: out of memory");
    EVP_PKEY_CTX *pctx = NULL;
    int ok = EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, k->pkey) == 1;
    /* RS256 is RSASSA-PKCS1-v1_5 (RFC 7518 3.3), never PSS. */
    if (ok && k->alg == GW_ALG_RS256)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    ok =
        ok && EVP_DigestVerify(ctx, check, check_len, (const unsigned char *)signing_input, n) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    if (!ok) {
        ERR_clear_error(); /* the queue is per thread and would only grow */
        *reason = "bad signature";
        return GW_AUTH_E_INVALID;
    }
    return GW_AUTH_OK;
}
