/* mod_codec.c: the encoding and hashing helpers of expressions and of the
 * `pacer` module (issue 15): base64 and base64url (RFC 4648) encode and
 * decode and SHA-256 and HMAC-SHA-256 as lowercase hex, through nettle
 * (linked already for base/digest.c); urldecode and parse_url through
 * libcurl (curl_easy_unescape and the CURLU API, loaded on first use:
 * http/curlshim.h). Nothing here is hand-written crypto or parsing.
 *
 * Secrets: a text made from a secret by an encoding (base64 of a password
 * in a Basic header, a secret URL-decoded) would otherwise print as it is;
 * when the input holds a registered secret, the output is registered too
 * (base/redact.h). Digests are not: a hash or an HMAC is what signed APIs
 * send in the clear.
 *
 * Misuse (a value that is not text, invalid base64, a string that is not
 * a URL) raises, so an expression using it fails with a message. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>

#include "http/curlshim.h"
#include "script/internal.h"
#include "base/redact.h"
#include "base/util.h"

/* Raises the message, without a position: the expression that called the
 * helper is named by whoever reports the failure. */
#define raise(L, ...) (lua_pushfstring((L), __VA_ARGS__), lua_error(L))

/* Registers `out` as a secret when `in` holds one (its redaction differs). */
static void derive_secret(const char *in, size_t inlen, const char *out, size_t outlen)
{
  size_t rlen;
  char *r = pc_redact(in, inlen, &rlen);
  bool secret = rlen != inlen || memcmp(r, in, inlen) != 0;
  free(r);
  if (secret)
    pc_secret_add(out, outlen);
}

/* The text argument at 1 (numbers as Lua writes them). */
static const char *text_arg(lua_State *L, int i, const char *who, size_t *len)
{
  if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
    raise(L, "%s expects text, got %s", who, luaL_typename(L, i));
  return lua_tolstring(L, i, len);
}

static int encode(lua_State *L, bool url)
{
  size_t n;
  const char *s = text_arg(L, 1, url ? "base64url_encode()" : "base64_encode()", &n);
  struct base64_encode_ctx ctx;
  if (url)
    base64url_encode_init(&ctx);
  else
    base64_encode_init(&ctx);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, BASE64_ENCODE_LENGTH(n) + BASE64_ENCODE_FINAL_LENGTH);
  size_t len = base64_encode_update(&ctx, out, n, (const uint8_t *)s);
  len += base64_encode_final(&ctx, out + len);
  if (url) /* base64url without padding (RFC 7515's form, JWT's) */
    while (len > 0 && out[len - 1] == '=')
      len--;
  derive_secret(s, n, out, len);
  luaL_pushresultsize(&b, len);
  return 1;
}

static int decode(lua_State *L, bool url)
{
  const char *who = url ? "base64url_decode()" : "base64_decode()";
  size_t n;
  const char *s = text_arg(L, 1, who, &n);
  /* nettle wants the padding; base64url usually comes without it */
  luaL_Buffer in;
  luaL_buffinit(L, &in);
  luaL_addlstring(&in, s, n);
  size_t real = n;
  while (real > 0 && (s[real - 1] == '\n' || s[real - 1] == '\r' || s[real - 1] == ' '))
    real--;
  size_t body = real;
  while (body > 0 && s[body - 1] == '=')
    body--;
  if (body == real)
    for (size_t k = body % 4; k && k < 4; k++)
      luaL_addchar(&in, '=');
  luaL_pushresult(&in); /* padded */
  size_t plen;
  const char *p = lua_tolstring(L, -1, &plen);
  struct base64_decode_ctx ctx;
  if (url)
    base64url_decode_init(&ctx);
  else
    base64_decode_init(&ctx);
  luaL_Buffer b;
  uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, BASE64_DECODE_LENGTH(plen) + 1);
  size_t len = BASE64_DECODE_LENGTH(plen) + 1;
  if (!base64_decode_update(&ctx, &len, out, plen, p) || !base64_decode_final(&ctx))
    return raise(L, "%s: the text is not valid %s", who, url ? "base64url" : "base64");
  derive_secret(s, n, (const char *)out, len);
  luaL_pushresultsize(&b, len);
  return 1;
}

static int l_base64_encode(lua_State *L)
{
  return encode(L, false);
}

static int l_base64url_encode(lua_State *L)
{
  return encode(L, true);
}

static int l_base64_decode(lua_State *L)
{
  return decode(L, false);
}

static int l_base64url_decode(lua_State *L)
{
  return decode(L, true);
}

static void push_hex(lua_State *L, const uint8_t *d, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  char out[2 * SHA256_DIGEST_SIZE];
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  lua_pushlstring(L, out, 2 * n);
}

static int l_sha256(lua_State *L)
{
  size_t n;
  const char *s = text_arg(L, 1, "sha256()", &n);
  struct sha256_ctx ctx;
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_init(&ctx);
  sha256_update(&ctx, n, (const uint8_t *)s);
  sha256_digest(&ctx, sizeof d, d);
  push_hex(L, d, sizeof d);
  return 1;
}

/* hmac_sha256(key, message) */
static int l_hmac_sha256(lua_State *L)
{
  size_t kn, n;
  const char *k = text_arg(L, 1, "hmac_sha256() (the key)", &kn);
  const char *s = text_arg(L, 2, "hmac_sha256() (the message)", &n);
  struct hmac_sha256_ctx ctx;
  uint8_t d[SHA256_DIGEST_SIZE];
  hmac_sha256_set_key(&ctx, kn, (const uint8_t *)k);
  hmac_sha256_update(&ctx, n, (const uint8_t *)s);
  hmac_sha256_digest(&ctx, sizeof d, d);
  push_hex(L, d, sizeof d);
  return 1;
}

/* urldecode(s): %XX sequences decoded (curl_easy_unescape; `+` stays `+`,
 * as in a URL's path). */
static int l_urldecode(lua_State *L)
{
  size_t n;
  const char *s = text_arg(L, 1, "urldecode()", &n);
  if (n > INT32_MAX)
    return raise(L, "urldecode(): the text is too long");
  int len = 0;
  char *out = curl_easy_unescape(NULL, s, (int)n, &len);
  if (!out)
    return raise(L, "urldecode(): %s", pc_curl_load_error() ? pc_curl_load_error()
                                                                 : "out of memory");
  lua_pushlstring(L, out, (size_t)len);
  derive_secret(s, n, out, (size_t)len);
  curl_free(out);
  return 1;
}

/* parse_url(url): {scheme, user, password, host, port, path, query,
 * fragment}, the parts a URL has (port as a number, the scheme's default
 * when absent), by libcurl's URL parser; not a URL raises. */
static int l_parse_url(lua_State *L)
{
  size_t n;
  const char *s = text_arg(L, 1, "parse_url()", &n);
  if (strlen(s) != n)
    return raise(L, "parse_url(): the URL contains a NUL byte");
  CURLU *u = curl_url();
  if (!u)
    return raise(L, "parse_url(): %s", pc_curl_load_error() ? pc_curl_load_error()
                                                                : "out of memory");
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, s, CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    curl_url_cleanup(u);
    return raise(L, "parse_url(): \"%s\" is not a URL (%s)", s,
                      rc == CURLUE_MALFORMED_INPUT ? "malformed" : "libcurl cannot parse it");
  }
  static const struct {
    CURLUPart part;
    const char *name;
    unsigned flags;
  } parts[] = {
      {CURLUPART_SCHEME, "scheme", 0},     {CURLUPART_USER, "user", CURLU_URLDECODE},
      {CURLUPART_PASSWORD, "password", CURLU_URLDECODE}, {CURLUPART_HOST, "host", 0},
      {CURLUPART_PORT, "port", CURLU_DEFAULT_PORT}, {CURLUPART_PATH, "path", 0},
      {CURLUPART_QUERY, "query", 0},       {CURLUPART_FRAGMENT, "fragment", 0},
  };
  lua_createtable(L, 0, 8);
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    char *v = NULL;
    if (curl_url_get(u, parts[i].part, &v, parts[i].flags) != CURLUE_OK || !v)
      continue;
    if (parts[i].part == CURLUPART_PASSWORD)
      pc_secret_add(v, strlen(v)); /* as every password in a URL is */
    if (parts[i].part == CURLUPART_PORT)
      lua_pushinteger(L, strtol(v, NULL, 10));
    else
      lua_pushstring(L, v);
    curl_free(v);
    lua_setfield(L, -2, parts[i].name);
  }
  curl_url_cleanup(u);
  return 1;
}

void pc__codec_push(lua_State *L)
{
  static const luaL_Reg funcs[] = {
      {"base64_encode", l_base64_encode},
      {"base64_decode", l_base64_decode},
      {"base64url_encode", l_base64url_encode},
      {"base64url_decode", l_base64url_decode},
      {"sha256", l_sha256},
      {"hmac_sha256", l_hmac_sha256},
      {"urldecode", l_urldecode},
      {"parse_url", l_parse_url},
      {NULL, NULL},
  };
  luaL_newlib(L, funcs);
}
