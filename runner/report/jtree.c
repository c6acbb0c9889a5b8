/* jtree.c: the JSON value tree of jtree.h, built from yajl's events. The
 * builder keeps a stack of the open containers; a container is attached to
 * its parent when it opens, except an element of the streamed array, which
 * is handed to the callback when it closes (a scalar element at once). The
 * file is fed to yajl in 64 KiB pieces, so a report of any size is read
 * with the memory of its header and one record at a time. */
#include "report/jtree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "base/util.h"

#define MAX_DEPTH 64

struct builder {
  struct pc_jv *root;
  struct pc_jv *stack[MAX_DEPTH];
  size_t depth;
  char *key;                /* the key waiting for its value (owned) */
  const char *stream_key;
  struct pc_jv *stream;     /* the streamed array, once open */
  pc_jt_element_cb cb;
  void *data;
  char *err;                /* set when a callback or a limit stopped the parse */
};

static void add_child(struct pc_jv *parent, char *key, struct pc_jv *v)
{
  if (parent->n == parent->cap) {
    parent->cap = parent->cap ? parent->cap * 2 : 4;
    parent->v = pc_xrealloc(parent->v, parent->cap * sizeof *parent->v);
    if (parent->t == PC_J_OBJ)
      parent->k = pc_xrealloc(parent->k, parent->cap * sizeof *parent->k);
  }
  if (parent->t == PC_J_OBJ)
    parent->k[parent->n] = key;
  parent->v[parent->n++] = v;
}

/* Places a new value: the root, a member, an element, or a streamed
 * element (a scalar goes to the callback now; a container when it closes).
 * Returns 1 to go on, 0 to stop the parse. */
static int place(struct builder *bd, struct pc_jv *v)
{
  bool container = v->t == PC_J_ARR || v->t == PC_J_OBJ;
  if (bd->depth == 0) {
    if (bd->root) {
      pc_jv_free(v);
      return 0;
    }
    bd->root = v;
  } else {
    struct pc_jv *parent = bd->stack[bd->depth - 1];
    if (parent == bd->stream) {
      if (!container)
        return bd->cb(v, bd->data, &bd->err) == 0;
    } else {
      char *key = NULL;
      if (parent->t == PC_J_OBJ) {
        key = bd->key ? bd->key : pc_xstrdup("");
        bd->key = NULL;
      }
      add_child(parent, key, v);
      if (v->t == PC_J_ARR && bd->depth == 1 && bd->stream_key && !bd->stream && key &&
          strcmp(key, bd->stream_key) == 0 && parent == bd->root)
        bd->stream = v;
    }
  }
  if (container) {
    if (bd->depth == MAX_DEPTH) {
      bd->err = pc_xstrdup("nested too deeply");
      if (bd->depth && bd->stack[bd->depth - 1] == bd->stream)
        pc_jv_free(v); /* a streamed element, not attached anywhere */
      return 0;
    }
    bd->stack[bd->depth++] = v;
  }
  return 1;
}

static struct pc_jv *new_value(enum pc_jt t)
{
  struct pc_jv *v = pc_xcalloc(1, sizeof *v);
  v->t = t;
  return v;
}

static int on_null(void *ctx)
{
  return place(ctx, new_value(PC_J_NULL));
}

static int on_bool(void *ctx, int b)
{
  struct pc_jv *v = new_value(PC_J_BOOL);
  v->b = b != 0;
  return place(ctx, v);
}

static int on_number(void *ctx, const char *s, size_t len)
{
  struct pc_jv *v = new_value(PC_J_NUM);
  v->s = pc_xstrndup(s, len);
  v->d = strtod(v->s, NULL);
  return place(ctx, v);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
  struct pc_jv *v = new_value(PC_J_STR);
  v->s = pc_xstrndup((const char *)s, len);
  return place(ctx, v);
}

static int on_start_map(void *ctx)
{
  return place(ctx, new_value(PC_J_OBJ));
}

static int on_key(void *ctx, const unsigned char *s, size_t len)
{
  struct builder *bd = ctx;
  free(bd->key);
  bd->key = pc_xstrndup((const char *)s, len);
  return 1;
}

static int on_start_array(void *ctx)
{
  return place(ctx, new_value(PC_J_ARR));
}

/* Closes the innermost container; a streamed element goes to the
 * callback now that it is complete. */
static int on_end(void *ctx)
{
  struct builder *bd = ctx;
  struct pc_jv *v = bd->stack[--bd->depth];
  if (bd->depth > 0 && bd->stack[bd->depth - 1] == bd->stream && v != bd->stream)
    return bd->cb(v, bd->data, &bd->err) == 0;
  return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/* A streamed element still open when the parse stops is attached nowhere:
 * free it (its inner containers belong to it). */
static void builder_free(struct builder *bd)
{
  for (size_t i = 1; i < bd->depth; i++)
    if (bd->stack[i - 1] == bd->stream && bd->stack[i] != bd->stream) {
      pc_jv_free(bd->stack[i]);
      break;
    }
  pc_jv_free(bd->root);
  free(bd->key);
  free(bd->err);
}

int pc_jt_parse_file(const char *path, const char *stream_key, pc_jt_element_cb cb, void *data,
                     struct pc_jv **out, char **err)
{
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    *err = pc_asprintf("%s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  struct builder bd = {.stream_key = stream_key, .cb = cb, .data = data};
  yajl_handle y = yajl_alloc(&callbacks, NULL, &bd);
  static unsigned char chunk[1 << 16];
  size_t n;
  yajl_status st = yajl_status_ok;
  while (st == yajl_status_ok && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
    st = yajl_parse(y, chunk, n);
  bool rerr = ferror(f) != 0;
  int saved = errno;
  fclose(f);
  if (st == yajl_status_ok && !rerr)
    st = yajl_complete_parse(y);
  int rc = 0;
  if (rerr) {
    *err = pc_asprintf("%s: cannot read: %s", path, strerror(saved));
    rc = -1;
  } else if (st != yajl_status_ok || !bd.root) {
    if (bd.err) {
      *err = pc_asprintf("%s: %s", path, bd.err);
    } else {
      unsigned char *msg = yajl_get_error(y, 0, NULL, 0);
      char *m = pc_xstrdup(bd.root || st != yajl_status_ok ? (char *)msg : "empty file");
      /* yajl's message ends in a newline */
      size_t len = strlen(m);
      while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
        m[--len] = '\0';
      *err = pc_asprintf("%s: not valid JSON: %s", path, m);
      free(m);
      yajl_free_error(y, msg);
    }
    rc = -1;
  }
  yajl_free(y);
  if (rc == 0) {
    *out = bd.root;
    bd.root = NULL;
  }
  builder_free(&bd);
  return rc;
}

void pc_jv_free(struct pc_jv *v)
{
  if (!v)
    return;
  for (size_t i = 0; i < v->n; i++) {
    pc_jv_free(v->v[i]);
    if (v->k)
      free(v->k[i]);
  }
  free(v->v);
  free(v->k);
  free(v->s);
  free(v);
}

const struct pc_jv *pc_jv_get(const struct pc_jv *obj, const char *key)
{
  if (!obj || obj->t != PC_J_OBJ)
    return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (strcmp(obj->k[i], key) == 0)
      return obj->v[i];
  return NULL;
}

const char *pc_jv_str(const struct pc_jv *obj, const char *key)
{
  const struct pc_jv *v = pc_jv_get(obj, key);
  return v && v->t == PC_J_STR ? v->s : NULL;
}

bool pc_jv_num(const struct pc_jv *obj, const char *key, double *out)
{
  const struct pc_jv *v = pc_jv_get(obj, key);
  if (!v || v->t != PC_J_NUM)
    return false;
  *out = v->d;
  return true;
}

bool pc_jv_u64(const struct pc_jv *v, uint64_t *out)
{
  if (!v || v->t != PC_J_NUM || !*v->s)
    return false;
  for (const char *p = v->s; *p; p++)
    if (*p < '0' || *p > '9')
      return false;
  errno = 0;
  unsigned long long x = strtoull(v->s, NULL, 10);
  if (errno)
    return false;
  *out = x;
  return true;
}

bool pc_jv_get_u64(const struct pc_jv *obj, const char *key, uint64_t *out)
{
  return pc_jv_u64(pc_jv_get(obj, key), out);
}

bool pc_jv_int(const struct pc_jv *obj, const char *key, int *out)
{
  const struct pc_jv *v = pc_jv_get(obj, key);
  if (!v || v->t != PC_J_NUM)
    return false;
  char *end;
  errno = 0;
  long x = strtol(v->s, &end, 10);
  if (errno || *end || x < -2147483647L - 1 || x > 2147483647L)
    return false;
  *out = (int)x;
  return true;
}
