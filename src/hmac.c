/* core.hmac_sha256(key, message) -> lowercase hex: signatures for webhook
 * deliveries, by OpenSSL (libpq's own TLS library). */
#include "motomind.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>

static int l_hmac_sha256(lua_State *L) {
    static const char hex[] = "0123456789abcdef";
    size_t klen, mlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;
    char out[2 * EVP_MAX_MD_SIZE];
    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, mac, &len))
        return luaL_error(L, "hmac_sha256: OpenSSL failed");
    for (i = 0; i < len; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    lua_pushlstring(L, out, 2 * len);
    return 1;
}

int mm_open_hmac(lua_State *L) {
    lua_pushcfunction(L, l_hmac_sha256);
    lua_setfield(L, -2, "hmac_sha256");
    return 0;
}
