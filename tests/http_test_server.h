/* http_test_server.h: a tiny HTTP/1.1 server on the test's own libuv loop,
 * for the HTTP unit tests (test_http.c, test_http_transport.c): each test
 * executable includes it once. It listens on 127.0.0.1 on a free port,
 * keeps connections alive, reads requests with or without a body
 * (Content-Length, of any size) and answers by path:
 *
 *   /echo            200, the request as text: "METHOD PATH\n", its header
 *                    lines, an empty line, its body
 *   /r/CODE?to=URL   CODE with Location: URL (as written, not decoded)
 *   /loop            302 with Location: /loop
 *   /status/CODE     CODE with a small body
 *   /big/N           200 with N bytes of 'x' and a Content-Length
 *   /big-nolen/N     200 with N bytes of 'x' and no length (then it closes)
 *   /headers/N       200 with about N bytes of header lines
 *   anything else    200 with the JSON of `http_test_response`
 *
 * Knobs: `answer` false accepts and reads but never answers; `hang_up`
 * closes each connection once its response is written; `reset_reused`
 * answers a connection's first request and resets the connection 20 ms
 * after the second arrives (a server closing an idle connection just as
 * the client reuses it). Everything it allocates is freed by server_stop,
 * which waits until its handles are closed. */
#ifndef PACER_TEST_HTTP_SERVER_H
#define PACER_TEST_HTTP_SERVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include "base/util.h"

#define SERVER_CONNS_MAX 1024

struct conn {
  uv_tcp_t tcp;
  struct server *srv;
  char *buf; /* what arrived and is not answered yet (NUL-terminated) */
  size_t len, cap;
  int served;       /* requests answered on this connection */
  uv_timer_t reset; /* reset_reused: resets the connection a moment later */
  bool reset_pending;
};

struct server {
  uv_tcp_t tcp;
  int port;
  bool answer;
  bool hang_up;
  bool reset_reused;
  int accepted; /* connections */
  int requests;
  struct conn *conns[SERVER_CONNS_MAX];
  int nconns;
  bool closed;
};

static const char http_test_response[] = "HTTP/1.1 200 OK\r\n"
                                         "Content-Type: application/json\r\n"
                                         "X-Rep: 1\r\n"
                                         "x-rep: 2\r\n"
                                         "X-Fold: a\r\n"
                                         "  b\r\n"
                                         "Retry-After: 3\r\n"
                                         "Content-Length: 12\r\n"
                                         "\r\n"
                                         "{\"ok\": true}";

static void conn_forget(struct conn *c)
{
  struct server *s = c->srv;
  for (int i = 0; i < s->nconns; i++)
    if (s->conns[i] == c)
      s->conns[i] = s->conns[--s->nconns];
}

static void on_reset_timer_closed(uv_handle_t *h)
{
  struct conn *c = PC_CONTAINER_OF((uv_timer_t *)h, struct conn, reset);
  free(c->buf);
  free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
  struct conn *c = PC_CONTAINER_OF(h, struct conn, tcp);
  uv_close((uv_handle_t *)&c->reset, on_reset_timer_closed); /* frees c */
}

static void conn_close(struct conn *c)
{
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  conn_forget(c);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_reset_timer(uv_timer_t *t)
{
  struct conn *c = PC_CONTAINER_OF(t, struct conn, reset);
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  conn_forget(c);
  uv_tcp_close_reset(&c->tcp, on_conn_closed);
}

struct server_write {
  uv_write_t req;
  struct conn *close_after; /* NULL: keep the connection */
  char data[];
};

static void on_written(uv_write_t *req, int status)
{
  (void)status;
  struct server_write *w = PC_CONTAINER_OF(req, struct server_write, req);
  struct conn *c = w->close_after;
  free(w);
  if (c)
    conn_close(c);
}

/* Writes len bytes (copied) and, if close_after, closes the connection. */
static void conn_send(struct conn *c, const char *data, size_t len, bool close_after)
{
  struct server_write *w = pc_xmalloc(sizeof *w + len);
  memcpy(w->data, data, len);
  w->close_after = close_after ? c : NULL;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)suggested;
  struct conn *c = PC_CONTAINER_OF(h, struct conn, tcp);
  if (c->cap - c->len < 65536 + 1) { /* room for a read and the terminator */
    c->cap = c->cap ? c->cap * 2 : 131072;
    c->buf = pc_xrealloc(c->buf, c->cap);
  }
  buf->base = c->buf + c->len;
  buf->len = c->cap - c->len - 1;
}

/* Answers one request: head (NUL-terminated, without the blank line) and
 * body. */
static void server_answer(struct conn *c, const char *head, const char *body, size_t blen)
{
  struct server *s = c->srv;
  char method[16] = "", path[512] = "";
  sscanf(head, "%15s %511s", method, path);
  struct pc_buf out;
  pc_buf_init(&out, (size_t)16 << 20);
  bool close_after = s->hang_up;
  long n = 0;
  int code = 0;
  if (strcmp(path, "/echo") == 0) {
    const char *eol = strstr(head, "\r\n");
    struct pc_buf text;
    pc_buf_init(&text, (size_t)16 << 20);
    pc_buf_printf(&text, "%s %s\n", method, path);
    for (const char *p = eol ? eol + 2 : head + strlen(head); *p;) {
      const char *e = strstr(p, "\r\n");
      size_t l = e ? (size_t)(e - p) : strlen(p);
      pc_buf_append(&text, p, l);
      pc_buf_puts(&text, "\n");
      p += l + (e ? 2 : 0);
    }
    pc_buf_puts(&text, "\n");
    pc_buf_append(&text, body, blen);
    pc_buf_printf(&out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: %zu\r\n\r\n", text.len);
    pc_buf_append(&out, text.data, text.len);
    pc_buf_free(&text);
  } else if (strcmp(path, "/loop") == 0) {
    pc_buf_puts(&out, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
  } else if (sscanf(path, "/r/%d", &code) == 1) {
    const char *to = strstr(path, "?to=");
    pc_buf_printf(&out, "HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 5\r\n\r\nmoved",
                  code, to ? to + 4 : "/");
  } else if (sscanf(path, "/status/%d", &code) == 1) {
    pc_buf_printf(&out, "HTTP/1.1 %d Status\r\nContent-Length: 9\r\n\r\nstatus %d", code,
                  code % 10);
  } else if (sscanf(path, "/big-nolen/%ld", &n) == 1) {
    pc_buf_puts(&out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    for (long i = 0; i < n; i++)
      pc_buf_append(&out, "x", 1);
    close_after = true;
  } else if (sscanf(path, "/big/%ld", &n) == 1) {
    pc_buf_printf(&out, "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n\r\n", n);
    for (long i = 0; i < n; i++)
      pc_buf_append(&out, "x", 1);
  } else if (sscanf(path, "/headers/%ld", &n) == 1) {
    pc_buf_puts(&out, "HTTP/1.1 200 OK\r\n");
    for (long i = 0; i < n; i += 1000) {
      pc_buf_printf(&out, "X-Pad-%ld: ", i);
      for (int j = 0; j < 980; j++)
        pc_buf_append(&out, "p", 1);
      pc_buf_puts(&out, "\r\n");
    }
    pc_buf_puts(&out, "Content-Length: 2\r\n\r\nok");
  } else {
    pc_buf_append(&out, http_test_response, sizeof http_test_response - 1);
  }
  if (strcmp(method, "HEAD") == 0 && out.len) { /* the head only */
    char *end = strstr(out.data, "\r\n\r\n");
    if (end)
      out.len = (size_t)(end + 4 - out.data);
  }
  conn_send(c, out.data, out.len, close_after);
  pc_buf_free(&out);
}

/* The body length a request head announces (0 without Content-Length). */
static size_t content_length(const char *head)
{
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
    if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
      return (size_t)strtoul(p + 17, NULL, 10);
  return 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  (void)buf;
  struct conn *c = PC_CONTAINER_OF(st, struct conn, tcp);
  if (n < 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)n;
  c->buf[c->len] = '\0';
  char *end;
  while ((end = strstr(c->buf, "\r\n\r\n"))) {
    *end = '\0';
    size_t blen = content_length(c->buf);
    size_t used = (size_t)(end + 4 - c->buf) + blen;
    if (used > c->len) { /* the body is not all here yet */
      *end = '\r';
      return;
    }
    c->srv->requests++;
    if (c->srv->reset_reused && c->served > 0) {
      if (!c->reset_pending) {
        c->reset_pending = true;
        uv_read_stop(st);
        uv_timer_start(&c->reset, on_reset_timer, 20, 0);
      }
      return;
    }
    c->served++;
    if (c->srv->answer)
      server_answer(c, c->buf, end + 4, blen);
    if (uv_is_closing((uv_handle_t *)&c->tcp))
      return;
    memmove(c->buf, c->buf + used, c->len - used + 1);
    c->len -= used;
  }
}

static void on_connection(uv_stream_t *st, int status)
{
  if (status != 0)
    return;
  struct server *s = PC_CONTAINER_OF(st, struct server, tcp);
  struct conn *c = pc_xcalloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(st->loop, &c->tcp);
  uv_timer_init(st->loop, &c->reset);
  if (uv_accept(st, (uv_stream_t *)&c->tcp) != 0 || s->nconns == SERVER_CONNS_MAX) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  s->accepted++;
  s->conns[s->nconns++] = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Starts a server on loop; returns 0, or -1 if it cannot listen. */
static int server_start(uv_loop_t *loop, struct server *s, bool answer)
{
  memset(s, 0, sizeof *s);
  s->answer = answer;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(loop, &s->tcp);
  if (uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0) != 0 ||
      /* a deep queue: a test may open hundreds of connections in one go,
       * before this loop gets to accept any */
      uv_listen((uv_stream_t *)&s->tcp, 1024, on_connection) != 0)
    return -1;
  struct sockaddr_in got;
  int len = sizeof got;
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got, &len);
  s->port = ntohs(got.sin_port);
  return 0;
}

static void on_server_closed(uv_handle_t *h)
{
  PC_CONTAINER_OF(h, struct server, tcp)->closed = true;
}

/* The server lives on the test's stack: wait until its handle is closed. */
static void server_stop(struct server *s)
{
  uv_loop_t *loop = s->tcp.loop;
  while (s->nconns > 0) {
    struct conn *c = s->conns[--s->nconns];
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  }
  uv_close((uv_handle_t *)&s->tcp, on_server_closed);
  while (!s->closed)
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs the loop until nothing keeps it alive, for at most 2 s: a test that
 * failed half-way leaves a server (on its stack) listening, and a
 * teardown that waited for the loop would then hang instead of failing at
 * uv_loop_close. */
static void server_settle(uv_loop_t *loop)
{
  for (int i = 0; i < 2000 && uv_loop_alive(loop); i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    if (uv_loop_alive(loop))
      usleep(1000);
  }
}

#endif
