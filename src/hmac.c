/* Digests by OpenSSL (libpq's own TLS library):
 * core.hmac_sha256(key, message) -> lowercase hex: signatures for webhook
 * deliveries;
 * core.sha256_file(path) -> lowercase hex | nil, "path: strerror": an
 * imported file's checksum (its import batch), read in 64 KiB blocks. */
#include "motomind.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static void push_hex(lua_State *L, const unsigned char *bytes, unsigned int len) {
    static const char hex[] = "0123456789abcdef";
    char out[2 * EVP_MAX_MD_SIZE];
    unsigned int i;
    for (i = 0; i < len; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    lua_pushlstring(L, out, 2 * (size_t)len);
}

static int l_hmac_sha256(lua_State *L) {
    size_t klen, mlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, mac, &len))
        return luaL_error(L, "hmac_sha256: OpenSSL failed");
    push_hex(L, mac, len);
    return 1;
}

/* The file and the digest context are released before any Lua call that
 * may raise (the strings pushed at the end cannot leak them). */
static int l_sha256_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    unsigned char block[65536], md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    size_t n;
    int ok, err = 0;
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *ctx;
    if (!f) {
        err = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(err));
        return 2;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while (ok && (n = fread(block, 1, sizeof block, f)) > 0) ok = EVP_DigestUpdate(ctx, block, n);
    if (ok && ferror(f)) { err = errno ? errno : EIO; ok = 0; }
    if (ok) ok = EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (err) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(err));
        return 2;
    }
    if (!ok) return luaL_error(L, "sha256_file: OpenSSL failed");
    push_hex(L, md, len);
    return 1;
}

int mm_open_hmac(lua_State *L) {
    lua_pushcfunction(L, l_hmac_sha256);
    lua_setfield(L, -2, "hmac_sha256");
    lua_pushcfunction(L, l_sha256_file);
    lua_setfield(L, -2, "sha256_file");
    return 0;
}
