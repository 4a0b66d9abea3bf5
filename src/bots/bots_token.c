/* bots_token.c - what the bots need of cryptography: HS256 access tokens
 * minted locally (so a large N needs no argon2id logins; the server must
 * run with the same --jwt-secret), base64 for the WebSocket key, and the
 * Sec-WebSocket-Accept check (RFC 6455 section 4.1).
 *
 * A minted token carries exactly the claims of the server's own login
 * (docs/protocol.md section 2; gw_auth.c's issuing): header
 * {"alg":"HS256","typ":"JWT"}, payload sub, name, iss, aud, iat, exp, jti. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "bots_int.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encodes n bytes with alphabet abc; padding only when pad. Returns the
 * length written (NUL added), or 0 if cap is too small. */
static size_t b64_encode(char *out, size_t cap, const uint8_t *in, size_t n, const char *abc,
                         bool pad)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    if (cap < need)
        return 0;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = abc[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

size_t bots_base64(char *out, size_t cap, const uint8_t *in, size_t n)
{
    return b64_encode(out, cap, in, n, b64_std, true);
}

void bots_ws_accept(char out[29], const char *key)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[128];
    int n = snprintf(cat, sizeof cat, "%s%s", key, guid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (n < 0 || (size_t)n >= sizeof cat ||
        !EVP_Digest(cat, (size_t)n, md, &md_len, EVP_sha1(), NULL)) {
        out[0] = 0;
        return;
    }
    b64_encode(out, 29, md, md_len, b64_std, true);
}

static bool name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return n >= 3 && n <= 24;
}

int bots_token_mint(char *out, size_t cap, const void *secret, size_t secret_len,
                    uint32_t account_id, const char *name, int64_t now_s, int ttl_s)
{
    if (!name_ok(name))
        return -1;
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    char jti[33];
    for (int i = 0; i < 16; i++)
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);

    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char payload[256];
    int pn = snprintf(payload, sizeof payload,
                      "{\"sub\":\"%" PRIu32 "\",\"name\":\"%s\",\"iss\":\"tessera\","
                      "\"aud\":\"tessera\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 ",\"jti\":\"%s\"}",
                      account_id, name, now_s, now_s + ttl_s, jti);
    if (pn < 0 || (size_t)pn >= sizeof payload)
        return -1;

    char buf[BOTS_TOKEN_MAX];
    size_t o =
        b64_encode(buf, sizeof buf, (const uint8_t *)header, sizeof header - 1, b64_url, false);
    buf[o++] = '.';
    o += b64_encode(buf + o, sizeof buf - o, (const uint8_t *)payload, (size_t)pn, b64_url, false);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)buf, o, mac, &mac_len))
        return -1;
    buf[o++] = '.';
    size_t sn = b64_encode(buf + o, sizeof buf - o, mac, mac_len, b64_url, false);
    if (sn == 0)
        return -1;
    o += sn;
    if (o + 1 > cap)
        return -1;
    memcpy(out, buf, o + 1);
    return (int)o;
}
