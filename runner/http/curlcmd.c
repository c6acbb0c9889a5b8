/* curlcmd.c: a request as a `curl` command line (curlcmd.h), the
 * reproduction Hurl's and k6's users ask for: a failing step's message ends
 * with a line they can paste to send the same request again by hand. */
#include "http/curlcmd.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "base/redact.h"

/* Appends " " and s single-quoted, with each named secret's value as
 * "$NAME" (outside the quotes, so the shell expands it). */
static void put_arg(struct pc_buf *out, const char *s, size_t len)
{
  pc_buf_puts(out, " ");
  size_t start = out->len;
  bool open = false; /* inside a '...' */
  for (;;) {
    size_t at = 0, n = 0;
    const char *name = pc_secret_named_at(s, len, &at, &n);
    size_t lit = name ? at : len;
    if (lit > 0 && !open) {
      pc_buf_puts(out, "'");
      open = true;
    }
    for (size_t i = 0; i < lit; i++) {
      if (s[i] == '\'')
        pc_buf_puts(out, "'\\''");
      else
        pc_buf_append(out, s + i, 1);
    }
    if (!name)
      break;
    if (open)
      pc_buf_puts(out, "'");
    open = false;
    pc_buf_printf(out, "\"$%s\"", name);
    s += at + n;
    len -= at + n;
  }
  if (open)
    pc_buf_puts(out, "'");
  if (out->len == start)
    pc_buf_puts(out, "''"); /* an empty argument */
}

static void put_opt(struct pc_buf *out, const char *opt, const char *s, size_t len)
{
  pc_buf_printf(out, " %s", opt);
  put_arg(out, s, len);
}

/* Whether a body can be written into the command line: text (UTF-8
 * without control characters other than tab, CR and LF), not too long. */
static bool body_is_text(const char *b, size_t len)
{
  if (len > PC_HTTP_CURL_BODY_MAX)
    return false;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = pc_utf8_decode((const unsigned char *)b + i, len - i, &cp);
    if (n == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f)
      return false;
    i += n;
  }
  return true;
}

static bool has_header(const struct pc_http_spec *sp, const char *name)
{
  for (size_t i = 0; i < sp->nheaders; i++)
    if (sp->headers[i].name_len == strlen(name) &&
        strncasecmp(sp->headers[i].name, name, sp->headers[i].name_len) == 0)
      return true;
  return false;
}

void pc_http_curl_command(const struct pc_http_spec *sp, struct pc_buf *out)
{
  pc_buf_puts(out, "curl -i");
  if (sp->method == PC_HTTP_HEAD)
    pc_buf_puts(out, " --head");
  else if (sp->method != PC_HTTP_GET || sp->has_body)
    pc_buf_printf(out, " -X %s", pc_http_method_name(sp->method));
  if (sp->follow_redirects)
    pc_buf_puts(out, " -L");
  switch (sp->version) {
  case PC_HTTP_VERSION_AUTO:
    break;
  case PC_HTTP_VERSION_1_0:
    pc_buf_puts(out, " --http1.0");
    break;
  case PC_HTTP_VERSION_1_1:
    pc_buf_puts(out, " --http1.1");
    break;
  case PC_HTTP_VERSION_2:
    pc_buf_puts(out, " --http2");
    break;
  }
  if (sp->insecure)
    pc_buf_puts(out, " -k");
  if (sp->ca_file)
    put_opt(out, "--cacert", sp->ca_file, strlen(sp->ca_file));
  if (sp->cert)
    put_opt(out, "--cert", sp->cert, strlen(sp->cert));
  if (sp->key)
    put_opt(out, "--key", sp->key, strlen(sp->key));
  if (sp->key_password)
    put_opt(out, "--pass", sp->key_password, strlen(sp->key_password));
  static const struct { long v; const char *opt; } tls[] = {
      {CURL_SSLVERSION_TLSv1_0, " --tlsv1.0"}, {CURL_SSLVERSION_TLSv1_1, " --tlsv1.1"},
      {CURL_SSLVERSION_TLSv1_2, " --tlsv1.2"}, {CURL_SSLVERSION_TLSv1_3, " --tlsv1.3"}};
  for (size_t i = 0; i < 4; i++)
    if (sp->tls_version == tls[i].v)
      pc_buf_puts(out, tls[i].opt);
  if (sp->proxy)
    put_opt(out, "-x", sp->proxy, strlen(sp->proxy));
  for (size_t i = 0; i < sp->nconnect_to; i++)
    put_opt(out, "--connect-to", sp->connect_to[i], strlen(sp->connect_to[i]));
  if (sp->unix_socket)
    put_opt(out, "--unix-socket", sp->unix_socket, strlen(sp->unix_socket));
  if (sp->follow_redirects && sp->max_redirects != PC_HTTP_MAX_REDIRECTS)
    pc_buf_printf(out, " --max-redirs %d", sp->max_redirects);
  if (sp->connect_timeout_ms >= 0)
    pc_buf_printf(out, " --connect-timeout %g", sp->connect_timeout_ms / 1000.0);
  if (sp->timeout_ms > 0)
    pc_buf_printf(out, " --max-time %g", sp->timeout_ms / 1000.0);
  if (sp->cookie)
    put_opt(out, "-b", sp->cookie, strlen(sp->cookie));
  if (sp->auth == PC_HTTP_AUTH_BEARER) {
    put_opt(out, "--oauth2-bearer", sp->auth_token, strlen(sp->auth_token));
  } else if (sp->auth != PC_HTTP_AUTH_NONE) {
    if (sp->auth == PC_HTTP_AUTH_DIGEST)
      pc_buf_puts(out, " --digest");
    char *up = pc_asprintf("%s:%s", sp->auth_user, sp->auth_password);
    put_opt(out, "-u", up, strlen(up));
    free(up);
  }
  for (size_t i = 0; i < sp->nheaders; i++) {
    const struct pc_http_header *hd = &sp->headers[i];
    struct pc_buf h;
    pc_buf_init(&h, (size_t)1 << 20);
    pc_buf_append(&h, hd->name, hd->name_len);
    pc_buf_puts(&h, hd->value_len ? ": " : ";"); /* curl's way to send an empty header */
    pc_buf_append(&h, hd->value, hd->value_len);
    put_opt(out, "-H", h.data, h.len);
    pc_buf_free(&h);
  }
  if (sp->multipart) {
    for (size_t i = 0; i < sp->nparts; i++) {
      const struct pc_http_part *p = &sp->parts[i];
      struct pc_buf f;
      pc_buf_init(&f, (size_t)1 << 20);
      pc_buf_printf(&f, "%s=", p->name);
      if (p->file)
        pc_buf_printf(&f, "@%s", p->file);
      else
        pc_buf_append(&f, p->data, p->data_len);
      if (p->filename)
        pc_buf_printf(&f, ";filename=%s", p->filename);
      if (p->type)
        pc_buf_printf(&f, ";type=%s", p->type);
      put_opt(out, p->file || p->type || p->filename ? "-F" : "--form-string", f.data, f.len);
      pc_buf_free(&f);
    }
  } else if (sp->body_file) {
    if (sp->body_type && !has_header(sp, "content-type")) {
      char *h = pc_asprintf("Content-Type: %s", sp->body_type);
      put_opt(out, "-H", h, strlen(h));
      free(h);
    }
    char *at = pc_asprintf("@%s", sp->body_file);
    put_opt(out, "--data-binary", at, strlen(at));
    free(at);
  } else if (sp->has_body && sp->method != PC_HTTP_HEAD) {
    if (sp->body_type && !has_header(sp, "content-type")) {
      char *h = pc_asprintf("Content-Type: %s", sp->body_type);
      put_opt(out, "-H", h, strlen(h));
      free(h);
    }
    if (body_is_text(sp->body ? sp->body : "", sp->body_len))
      put_opt(out, "--data-binary", sp->body ? sp->body : "", sp->body_len);
    else
      pc_buf_printf(out, " --data-binary @BODY_FILE");
  }
  put_arg(out, sp->url, strlen(sp->url));
  if (sp->has_body && sp->method != PC_HTTP_HEAD && !sp->body_file && !sp->multipart &&
      !body_is_text(sp->body ? sp->body : "", sp->body_len))
    pc_buf_printf(out, "  # BODY_FILE: the %zu-byte body, not shown", sp->body_len);
}
