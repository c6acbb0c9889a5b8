/* redact.c: the secret registry and the redactor (see redact.h and
 * docs/redaction.md).
 *
 * Registering a secret registers a set of patterns: the value, the forms
 * pacer or a server derives from it (URL-encoded, JSON-escaped), and its
 * lines. Redaction finds every pattern in a text in one pass: patterns are
 * indexed by their first two bytes (every pattern has at least three), so
 * the scan tests one bit of a 64 Kibit map per byte and compares bytes only
 * where a pattern can start. Each bucket lists its patterns longest first,
 * so the first full match is the longest one at that position.
 *
 * The registry is process-wide and grows only (a run never unregisters a
 * secret); pc_secrets_clear empties it at the end of a run. Everything runs
 * on the loop thread. */
#include "base/redact.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>

#define REDACT_BUF_MAX ((size_t)1 << 40) /* effectively unbounded, see log.c */
#define NBUCKETS 4096                    /* a power of two */
#define MASK "***"

struct pattern {
  char *s;     /* owned */
  size_t len;  /* >= 2 (in practice >= PC_SECRET_MIN) */
  uint32_t next; /* the next pattern of the bucket, as index + 1; 0 ends the list */
  bool origin; /* registered as a value (its forms are registered too) */
};

static struct pattern *pats;
static size_t npats, pats_cap;
static size_t longest;                  /* the longest pattern's length */
/* In .bss: pages never touched cost nothing while no secret exists. */
static uint64_t bigram_bits[65536 / 64]; /* first two bytes of some pattern */
static uint64_t first_bits[256 / 64];    /* first byte of some pattern */
static uint32_t bucket_head[NBUCKETS];   /* index + 1; 0: empty */

static unsigned bigram(const unsigned char *u)
{
  return (unsigned)u[0] << 8 | u[1];
}

static unsigned bucket_of(unsigned bg)
{
  return (unsigned)((bg * 0x9E3779B1u) >> 20) & (NBUCKETS - 1);
}

static bool bit_test(const uint64_t *bits, unsigned i)
{
  return (bits[i >> 6] >> (i & 63)) & 1;
}

/* ============================================================ registry */

/* The index of the pattern equal to s, or -1. */
static long find(const char *s, size_t len)
{
  if (len < 2 || npats == 0)
    return -1;
  const unsigned char *u = (const unsigned char *)s;
  unsigned bg = bigram(u);
  if (!bit_test(bigram_bits, bg))
    return -1;
  for (uint32_t k = bucket_head[bucket_of(bg)]; k; k = pats[k - 1].next)
    if (pats[k - 1].len == len && memcmp(pats[k - 1].s, s, len) == 0)
      return (long)k - 1;
  return -1;
}

/* Adds a pattern unless it exists. */
static void insert(const char *s, size_t len, bool origin)
{
  if (len < 2)
    return;
  long have = find(s, len);
  if (have >= 0) {
    pats[have].origin |= origin;
    return;
  }
  if (npats == pats_cap) {
    pats_cap = pats_cap ? pats_cap * 2 : 16;
    pats = pc_xrealloc(pats, pats_cap * sizeof *pats);
  }
  struct pattern *p = &pats[npats];
  p->s = pc_xstrndup(s, len);
  p->len = len;
  p->origin = origin;
  const unsigned char *u = (const unsigned char *)s;
  unsigned bg = bigram(u);
  bigram_bits[bg >> 6] |= (uint64_t)1 << (bg & 63);
  first_bits[u[0] >> 6] |= (uint64_t)1 << (u[0] & 63);
  /* Keep the bucket sorted longest first. */
  uint32_t *link = &bucket_head[bucket_of(bg)];
  while (*link && pats[*link - 1].len >= len)
    link = &pats[*link - 1].next;
  p->next = *link;
  *link = (uint32_t)(npats + 1);
  npats++;
  if (len > longest)
    longest = len;
}

/* -------------------------------------------------------- derived forms */

/* URL encoding as libcurl's curl_easy_escape and pacer's urlencode() do it
 * (everything but ALPHA DIGIT - . _ ~ as %XX, upper case); with `plus`, a
 * space is a `+` instead (form encoding, CURLU_URLENCODE). */
static void pct_form(struct pc_buf *b, const char *s, size_t len, bool plus)
{
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '.' || c == '_' || c == '~') {
      pc_buf_append(b, &c, 1);
    } else if (c == ' ' && plus) {
      pc_buf_puts(b, "+");
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      pc_buf_append(b, e, 3);
    }
  }
}

/* JSON string escaping differs between encoders in a few choices; each
 * style is one combination of them. */
enum {
  J_SHORT_BF = 1, /* \b and \f rather than \u0008, \u000c */
  J_DEL = 2,      /* DEL as \u007f */
  J_SLASH = 4,    /* / as \/ */
  J_ASCII = 8,    /* everything past U+007F as \uXXXX (surrogate pairs) */
  J_HTML = 16,    /* < > & and U+2028/U+2029 as \uXXXX */
};

static const unsigned json_styles[] = {
    0,                              /* pc_json_quote: pacer's JSON logs and reports */
    J_SHORT_BF,                     /* JavaScript, Rust's serde_json, Python ensure_ascii=False */
    J_SHORT_BF | J_DEL,             /* pacer's json() and pacer.json (lua/prelude.lua) */
    J_SHORT_BF | J_DEL | J_SLASH,   /* lua-cjson (OpenResty) */
    J_SHORT_BF | J_DEL | J_ASCII,   /* Python's json.dumps */
    J_HTML,                         /* Go's encoding/json before 1.22 */
    J_HTML | J_SHORT_BF,            /* Go's encoding/json */
};

static void json_u(struct pc_buf *b, uint32_t cp)
{
  pc_buf_printf(b, "\\u%04x", (unsigned)cp);
}

static void json_form(struct pc_buf *b, const char *s, size_t len, unsigned style)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned char c = u[i];
    if (c < 0x80) {
      i++;
      if (c == '"')
        pc_buf_puts(b, "\\\"");
      else if (c == '\\')
        pc_buf_puts(b, "\\\\");
      else if (c == '/' && (style & J_SLASH))
        pc_buf_puts(b, "\\/");
      else if (c == '\n')
        pc_buf_puts(b, "\\n");
      else if (c == '\r')
        pc_buf_puts(b, "\\r");
      else if (c == '\t')
        pc_buf_puts(b, "\\t");
      else if (c == '\b' && (style & J_SHORT_BF))
        pc_buf_puts(b, "\\b");
      else if (c == '\f' && (style & J_SHORT_BF))
        pc_buf_puts(b, "\\f");
      else if (c < 0x20 || (c == 0x7f && (style & J_DEL)) ||
               ((style & J_HTML) && (c == '<' || c == '>' || c == '&')))
        json_u(b, c);
      else
        pc_buf_append(b, &c, 1);
      continue;
    }
    if (!(style & (J_ASCII | J_HTML))) {
      pc_buf_append(b, &c, 1);
      i++;
      continue;
    }
    uint32_t cp;
    size_t n = pc_utf8_decode(u + i, len - i, &cp);
    if (n == 0) { /* these encoders work on text: a stray byte became U+FFFD */
      json_u(b, 0xFFFD);
      i++;
      continue;
    }
    if (style & J_ASCII) {
      if (cp >= 0x10000) {
        json_u(b, 0xD800 + ((cp - 0x10000) >> 10));
        json_u(b, 0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        json_u(b, cp);
      }
    } else if (cp == 0x2028 || cp == 0x2029) {
      json_u(b, cp);
    } else {
      pc_buf_append(b, u + i, n);
    }
    i += n;
  }
}

/* Registers s and every form derived from it: URL-encoded, JSON-escaped,
 * and the JSON text pacer sends for it (json: bodies) JSON-escaped once
 * more, as an echo server quotes a request body in a JSON string. */
static void add_forms(const char *s, size_t len)
{
  insert(s, len, true);
  struct pc_buf b, sent;
  pc_buf_init(&b, REDACT_BUF_MAX);
  pc_buf_init(&sent, REDACT_BUF_MAX);
  for (int plus = 0; plus < 2; plus++) {
    pc_buf_reset(&b);
    pct_form(&b, s, len, plus);
    insert(b.data, b.len, false);
  }
  json_form(&sent, s, len, J_SHORT_BF | J_DEL); /* lua/prelude.lua's to_json */
  bool twice = sent.len != len || memcmp(sent.data, s, len) != 0;
  for (size_t i = 0; i < PC_ARRAY_SIZE(json_styles); i++) {
    pc_buf_reset(&b);
    json_form(&b, s, len, json_styles[i]);
    insert(b.data, b.len, false);
    if (twice) {
      pc_buf_reset(&b);
      json_form(&b, sent.data, sent.len, json_styles[i]);
      insert(b.data, b.len, false);
    }
  }
  pc_buf_free(&sent);
  pc_buf_free(&b);
}

void pc_secret_add(const char *s, size_t len)
{
  if (len < PC_SECRET_MIN)
    return;
  long have = find(s, len);
  if (have >= 0 && pats[have].origin)
    return; /* the common case: secrets.NAME read again */
  add_forms(s, len);
  /* A multi-line value (a PEM key) may be printed a line at a time. */
  if (!memchr(s, '\n', len))
    return;
  const char *p = s, *end = s + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    size_t n = (size_t)(stop - p);
    if (n > 0 && p[n - 1] == '\r')
      n--;
    if (n >= PC_SECRET_PART_MIN && n < len)
      add_forms(p, n);
    p = nl ? nl + 1 : end;
  }
}

void pc_secret_add_userinfo(const char *user, const char *password)
{
  pc_secret_add(password, strlen(password));
  /* The Basic credential as sent, base64 by nettle (as pacer's base64
   * helpers, script/mod_codec.c). */
  char *cred = pc_asprintf("%s:%s", user, password);
  size_t n = strlen(cred);
  char *b64 = pc_xmalloc(BASE64_ENCODE_LENGTH(n) + BASE64_ENCODE_FINAL_LENGTH);
  struct base64_encode_ctx ctx;
  base64_encode_init(&ctx);
  size_t len = base64_encode_update(&ctx, b64, n, (const uint8_t *)cred);
  len += base64_encode_final(&ctx, b64 + len);
  pc_secret_add(b64, len);
  free(b64);
  free(cred);
}

/* Whether a pattern longer than `rest` begins with the `rest` bytes at u
 * (rest >= 2). */
static bool starts_pattern(const unsigned char *u, size_t rest)
{
  unsigned bg = bigram(u);
  if (!bit_test(bigram_bits, bg))
    return false;
  for (uint32_t k = bucket_head[bucket_of(bg)]; k; k = pats[k - 1].next) {
    const struct pattern *p = &pats[k - 1];
    if (p->len <= rest)
      break; /* longest first: no longer one follows */
    if (memcmp(p->s, u, rest) == 0)
      return true;
  }
  return false;
}

void pc_secret_cut(const char *kept, size_t len)
{
  if (npats == 0 || len < PC_SECRET_PART_MIN)
    return;
  const unsigned char *u = (const unsigned char *)kept;
  /* The longest suffix that begins a pattern: scan from the left. */
  size_t from = len - (len < longest - 1 ? len : longest - 1);
  for (size_t i = from; i + PC_SECRET_PART_MIN <= len; i++) {
    if (starts_pattern(u + i, len - i)) {
      pc_secret_add(kept + i, len - i);
      return;
    }
  }
}

/* Secrets by name (secrets.NAME), for text meant to be run again: a
 * `curl` command line refers to them as $NAME. Few and small: a list. */
struct named {
  char *name, *value; /* owned */
  size_t len;
};
static struct named *named;
static size_t nnamed;

void pc_secret_name(const char *name, const char *value, size_t len)
{
  if (len < PC_SECRET_MIN)
    return;
  for (size_t i = 0; i < nnamed; i++)
    if (strcmp(named[i].name, name) == 0)
      return;
  named = pc_xrealloc(named, (nnamed + 1) * sizeof *named);
  named[nnamed].name = pc_xstrdup(name);
  named[nnamed].value = pc_xstrndup(value, len);
  named[nnamed].len = len;
  nnamed++;
}

/* The offset of the first occurrence of v in s, or len (memmem is GNU's). */
static size_t find_in(const char *s, size_t len, const char *v, size_t vlen)
{
  for (size_t i = 0; vlen <= len && i <= len - vlen; i++)
    if (s[i] == v[0] && memcmp(s + i, v, vlen) == 0)
      return i;
  return len;
}

const char *pc_secret_named_at(const char *s, size_t len, size_t *at, size_t *n)
{
  const char *best = NULL;
  for (size_t i = 0; i < nnamed; i++) {
    size_t off = find_in(s, len, named[i].value, named[i].len);
    if (off == len)
      continue;
    if (!best || off < *at || (off == *at && named[i].len > *n)) {
      best = named[i].name;
      *at = off;
      *n = named[i].len;
    }
  }
  return best;
}

void pc_secrets_clear(void)
{
  for (size_t i = 0; i < nnamed; i++) {
    free(named[i].name);
    free(named[i].value);
  }
  free(named);
  named = NULL;
  nnamed = 0;
  if (npats == 0 && pats == NULL)
    return;
  for (size_t i = 0; i < npats; i++)
    free(pats[i].s);
  free(pats);
  pats = NULL;
  npats = pats_cap = 0;
  longest = 0;
  memset(bigram_bits, 0, sizeof bigram_bits);
  memset(first_bits, 0, sizeof first_bits);
  memset(bucket_head, 0, sizeof bucket_head);
}

/* ============================================================ scanning */

enum {
  SCAN_MORE = 1, /* the text continues: stop where a pattern may begin */
  SCAN_CUT = 2,  /* the text was cut after its end: a long enough start of a
                  * pattern there is the pattern */
};

/* Writes s to dst with every pattern replaced by MASK (leftmost, longest
 * first); *written is the length written, never more than len since every
 * pattern is at least as long as MASK (dst needs len bytes). Returns the
 * number of bytes of s consumed: all of them unless SCAN_MORE stopped at a
 * byte where a pattern may begin. */
static size_t scan(char *dst, size_t *written, const char *s, size_t len, unsigned flags)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0, w = 0; /* run: start of the bytes not copied yet */
  while (i + 1 < len) {
    /* The hot loop: one bit test per byte while no pattern can start. */
    unsigned bg = u[i];
    for (i++; i < len; i++) {
      bg = (bg << 8 | u[i]) & 0xFFFF;
      if ((bigram_bits[bg >> 6] >> (bg & 63)) & 1)
        break;
    }
    i--; /* the bigram starts one byte back */
    if (i + 1 == len)
      break; /* no candidate; the last byte is checked below */
    size_t rest = len - i, full = 0;
    bool partial = false;
    for (uint32_t k = bucket_head[bucket_of(bg)]; k; k = pats[k - 1].next) {
      const struct pattern *p = &pats[k - 1];
      if ((unsigned char)p->s[0] != u[i] || (unsigned char)p->s[1] != u[i + 1])
        continue; /* another bigram of the same bucket */
      if (p->len > rest) {
        if (flags && !partial && memcmp(p->s, s + i, rest) == 0)
          partial = true;
      } else if (memcmp(p->s, s + i, p->len) == 0) {
        full = p->len;
        break;
      }
    }
    if (partial && (flags & SCAN_MORE)) {
      memcpy(dst + w, s + run, i - run);
      *written = w + (i - run);
      return i;
    }
    if (partial && (flags & SCAN_CUT) && rest >= PC_SECRET_PART_MIN)
      full = rest;
    if (full) {
      memcpy(dst + w, s + run, i - run);
      w += i - run;
      memcpy(dst + w, MASK, 3);
      w += 3;
      i += full;
      run = i;
      continue;
    }
    i++;
  }
  size_t end = len;
  if (i + 1 == len && (flags & SCAN_MORE) && bit_test(first_bits, u[i]))
    end = i; /* the last byte may begin a pattern */
  memcpy(dst + w, s + run, end - run);
  *written = w + (end - run);
  return end;
}

/* scan() appending to a pc_buf. */
static size_t scan_buf(struct pc_buf *out, const char *s, size_t len, unsigned flags)
{
  if (pc_buf_reserve(out, len) != 0)
    abort(); /* the buffers here have no practical maximum */
  size_t w;
  size_t used = scan(out->data + out->len, &w, s, len, flags);
  out->len += w;
  out->data[out->len] = '\0';
  return used;
}

/* ------------------------------------------------------------ userinfo */

/* The first "://" in s, or NULL. */
static const char *find_sep(const char *s, size_t len)
{
  const char *p = s, *end = s + len;
  while (p < end && (p = memchr(p, ':', (size_t)(end - p))) != NULL) {
    if (end - p >= 3 && p[1] == '/' && p[2] == '/')
      return p;
    p++;
  }
  return NULL;
}

/* Bytes that end a URL's authority (or are not part of a URL at all). */
static bool ends_authority(unsigned char c)
{
  static bool table[256];
  static bool ready;
  if (!ready) {
    for (int i = 0; i <= ' '; i++)
      table[i] = true;
    table[0x7f] = true;
    for (const char *p = "/?#\"'<>`\\{}|^"; *p; p++)
      table[(unsigned char)*p] = true;
    ready = true;
  }
  return table[c];
}

/* Finds the next password of a `scheme://user:password@host` in s from
 * `pos` on: returns true and its span [*pw, *at), or false. */
static bool next_password(const char *s, size_t len, size_t pos, size_t *pw, size_t *at)
{
  const char *hit;
  while (pos < len && (hit = find_sep(s + pos, len - pos)) != NULL) {
    size_t a = (size_t)(hit - s) + 3, e = a;
    while (e < len && !ends_authority((unsigned char)s[e]))
      e++;
    pos = e;
    const char *atp = NULL;
    for (size_t k = e; k > a && !atp; k--)
      if (s[k - 1] == '@')
        atp = s + k - 1;
    if (!atp)
      continue;
    const char *colon = memchr(s + a, ':', (size_t)(atp - (s + a)));
    if (!colon || colon + 1 == atp)
      continue;
    size_t p = (size_t)(colon + 1 - s), t = (size_t)(atp - s);
    if (t - p == 3 && memcmp(s + p, MASK, 3) == 0)
      continue; /* already redacted */
    *pw = p;
    *at = t;
    return true;
  }
  return false;
}

/* Returns a malloc'd copy of s (len bytes) with the password of every URL
 * userinfo replaced by MASK, or NULL when there is none. */
static char *userinfo(const char *s, size_t len, size_t *outlen)
{
  size_t pw, at;
  if (!next_password(s, len, 0, &pw, &at))
    return NULL;
  struct pc_buf b;
  pc_buf_init(&b, REDACT_BUF_MAX);
  size_t run = 0;
  do {
    pc_buf_append(&b, s + run, pw - run);
    pc_buf_append(&b, MASK, 3);
    run = at;
  } while (next_password(s, len, at, &pw, &at));
  pc_buf_append(&b, s + run, len - run);
  *outlen = b.len;
  return pc_buf_steal(&b);
}

/* ================================================================ API */

char *pc_redact(const char *s, size_t len, size_t *outlen)
{
  size_t n = len;
  char *out = pc_xmalloc(len + 1);
  if (npats)
    scan(out, &n, s, len, 0);
  else
    memcpy(out, s, len);
  out[n] = '\0';
  size_t un;
  char *u = find_sep(out, n) ? userinfo(out, n, &un) : NULL;
  if (u) {
    free(out);
    out = u;
    n = un;
  }
  if (outlen)
    *outlen = n;
  return out;
}

char *pc_redact_head(const char *s, size_t len, size_t want, size_t *outlen, bool *more)
{
  struct pc_buf b;
  pc_buf_init(&b, REDACT_BUF_MAX);
  /* Redact a window and grow it until enough redacted text comes out: the
   * window's end may be inside a secret, so it stops before one. */
  size_t win = want + longest + 64;
  for (;;) {
    pc_buf_reset(&b);
    if (win >= len) {
      scan_buf(&b, s, len, 0);
      *more = false;
      break;
    }
    scan_buf(&b, s, win, SCAN_MORE);
    if (b.len >= want) {
      *more = true;
      break;
    }
    win = win > len / 2 ? len : win * 2;
  }
  *outlen = b.len;
  return pc_buf_steal(&b);
}

void pc_redact_stream_init(struct pc_redact_stream *rs)
{
  pc_buf_init(&rs->held, REDACT_BUF_MAX);
}

void pc_redact_stream_feed(struct pc_redact_stream *rs, const char *d, size_t n,
                           struct pc_buf *out)
{
  if (rs->held.len == 0) {
    if (npats == 0) {
      pc_buf_append(out, d, n);
      return;
    }
    size_t used = scan_buf(out, d, n, SCAN_MORE);
    pc_buf_append(&rs->held, d + used, n - used);
    return;
  }
  pc_buf_append(&rs->held, d, n);
  size_t used = scan_buf(out, rs->held.data, rs->held.len, SCAN_MORE);
  size_t left = rs->held.len - used;
  memmove(rs->held.data, rs->held.data + used, left);
  rs->held.len = left;
  rs->held.data[left] = '\0';
}

void pc_redact_stream_end(struct pc_redact_stream *rs, struct pc_buf *out)
{
  if (rs->held.len)
    scan_buf(out, rs->held.data, rs->held.len, SCAN_CUT);
  pc_buf_reset(&rs->held);
}

void pc_redact_stream_free(struct pc_redact_stream *rs)
{
  pc_buf_free(&rs->held);
}
