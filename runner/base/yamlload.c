/* yamlload.c: builds the pc_node tree from libyaml's event stream.
 *
 * Open collections live on an explicit stack of frames; a finished node is
 * attached to the frame on top (as a list item, a map key, or the value of
 * the pending key), or becomes the root. Aliases are expanded by deep copy
 * so later stages never see shared nodes. Every limit is checked before the
 * work it bounds: an alias's copy size and height are known from when its
 * anchor closed, so a "billion laughs" file is refused before anything big
 * is allocated. libyaml's marks are 0-based and count characters; nodes
 * store them 1-based. */
#include "base/yamlload.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "base/util.h"

const struct pc_yaml_limits pc_yaml_default_limits = {
  .max_bytes = 4u << 20,
  .max_depth = 64,
  .max_nodes = 200000,
};

struct anchor {
  char *name;
  const struct pc_node *node; /* borrowed: lives in the tree being built */
  size_t size;                /* nodes in the subtree */
  int height;                 /* collections nested in the subtree, 0 for a scalar */
};

struct frame {
  struct pc_node *node;
  size_t cap;              /* capacity of node->items (and keys) */
  struct pc_node *key;     /* maps: a key waiting for its value */
  char *anchor;            /* owned; registered when the collection closes */
  size_t nodes_at_start;   /* loader->nodes when the collection opened */
  int height;              /* 1 + the tallest child collection so far */
};

struct loader {
  const char *name;
  const char *buf;
  size_t len;
  const struct pc_yaml_limits *lim;
  struct pc_diag *d;
  struct frame *stack;
  int depth;
  size_t nodes;
  struct anchor *anchors; /* in definition order */
  size_t nanchors, anchors_cap;
  /* Open-addressing index from name to the latest anchor of that name
   * (SLOT_EMPTY or an index into anchors), so a file with many anchors and
   * aliases does not take quadratic time. nslots is a power of two. */
  size_t *slots;
  size_t nslots;
  struct pc_node *root;
  bool failed; /* an error was reported; keep going only to find more */
  /* Start of a line of buf (0-based line number, byte offset), moved only
   * forward: block scalars come in file order, so finding the body of every
   * one of them costs one pass over the text. */
  size_t cur_line, cur_off;
};

/* ------------------------------------------------------------ nodes */

void pc_node_free(struct pc_node *n)
{
  if (n == NULL)
    return;
  for (size_t i = 0; i < n->n; i++) {
    if (n->keys)
      pc_node_free(n->keys[i]);
    pc_node_free(n->items[i]);
  }
  free(n->keys);
  free(n->items);
  free(n->str);
  free(n);
}

const struct pc_node *pc_node_get(const struct pc_node *map, const char *key)
{
  if (map == NULL || map->kind != PC_NODE_MAP)
    return NULL;
  size_t klen = strlen(key);
  for (size_t i = 0; i < map->n; i++) {
    const struct pc_node *k = map->keys[i];
    if (k->kind == PC_NODE_SCALAR && k->len == klen && memcmp(k->str, key, klen) == 0)
      return map->items[i];
  }
  return NULL;
}

static bool is_digits(const char *s, const char *end, const char *set)
{
  if (s == end)
    return false;
  for (; s < end; s++)
    if (strchr(set, *s) == NULL || *s == '\0')
      return false;
  return true;
}

static bool is_one_of(const char *s, size_t len, const char *const *words, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strlen(words[i]) == len && memcmp(s, words[i], len) == 0)
      return true;
  return false;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_core_float(const char *s, const char *end)
{
  if (s < end && (*s == '-' || *s == '+'))
    s++;
  const char *p = s;
  size_t digits = 0;
  while (p < end && *p >= '0' && *p <= '9')
    p++, digits++;
  if (p < end && *p == '.') {
    p++;
    while (p < end && *p >= '0' && *p <= '9')
      p++, digits++;
  }
  if (digits == 0)
    return false;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '-' || *p == '+'))
      p++;
    if (!is_digits(p, end, "0123456789"))
      return false;
    p = end;
  }
  return p == end;
}

/* The YAML 1.2 core schema's resolution of plain scalars (section 10.3.2). */
enum pc_scalar_type pc_node_scalar_type(const struct pc_node *n)
{
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
  static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
  static const char *const specials[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
                                         "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};
  if (n == NULL || n->kind != PC_NODE_SCALAR || n->style != PC_STYLE_PLAIN)
    return PC_SCALAR_STR;
  const char *s = n->str, *end = n->str + n->len;
  if (is_one_of(s, n->len, nulls, PC_ARRAY_SIZE(nulls)))
    return PC_SCALAR_NULL;
  if (is_one_of(s, n->len, bools, PC_ARRAY_SIZE(bools)))
    return PC_SCALAR_BOOL;
  if (n->len > 2 && s[0] == '0' && s[1] == 'x' &&
      is_digits(s + 2, end, "0123456789abcdefABCDEF"))
    return PC_SCALAR_INT;
  if (n->len > 2 && s[0] == '0' && s[1] == 'o' && is_digits(s + 2, end, "01234567"))
    return PC_SCALAR_INT;
  const char *digits = (n->len > 0 && (s[0] == '-' || s[0] == '+')) ? s + 1 : s;
  if (is_digits(digits, end, "0123456789"))
    return PC_SCALAR_INT;
  if (is_one_of(s, n->len, specials, PC_ARRAY_SIZE(specials)) || is_core_float(s, end))
    return PC_SCALAR_FLOAT;
  return PC_SCALAR_STR;
}

const char *pc_node_kind_name(const struct pc_node *n)
{
  if (n == NULL)
    return "nothing";
  switch (n->kind) {
  case PC_NODE_MAP:
    return "map";
  case PC_NODE_SEQ:
    return "list";
  case PC_NODE_SCALAR:
    break;
  }
  switch (pc_node_scalar_type(n)) {
  case PC_SCALAR_NULL:
    return "null";
  case PC_SCALAR_BOOL:
    return "boolean";
  case PC_SCALAR_INT:
    return "integer";
  case PC_SCALAR_FLOAT:
    return "number";
  case PC_SCALAR_STR:
    break;
  }
  return "string";
}

/* -------------------------------------------------------------- errors */

/* Reports at a 0-based libyaml mark. */
static void error_at(struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void error_at(struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = pc_vasprintf(fmt, ap);
  va_end(ap);
  pc_diag_add(l->d, l->name, (int)m->line + 1, (int)m->column + 1, "%s", msg);
  free(msg);
  l->failed = true;
}

static size_t utf8_chars(const char *s, size_t len)
{
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += ((unsigned char)s[i] & 0xC0) != 0x80;
  return n;
}

/* The byte at a 0-based line/column (columns count characters), or -1.
 * Only used on error paths, so the linear scan does not matter. */
static int byte_at_mark(const struct loader *l, const yaml_mark_t *m)
{
  size_t i = 0, line = 0;
  while (i < l->len && line < m->line) {
    if (l->buf[i] == '\n' || (l->buf[i] == '\r' && (i + 1 >= l->len || l->buf[i + 1] != '\n')))
      line++;
    i++;
  }
  for (size_t col = 0; i < l->len; i++) {
    if (((unsigned char)l->buf[i] & 0xC0) == 0x80)
      continue;
    if (col++ == m->column)
      return (unsigned char)l->buf[i];
  }
  return -1;
}

/* libyaml's reader reports a byte offset; turn it into a mark. */
static yaml_mark_t mark_at_offset(const struct loader *l, size_t off)
{
  yaml_mark_t m = {0, 0, 0};
  for (size_t i = 0; i < off && i < l->len; i++) {
    if (l->buf[i] == '\n') {
      m.line++;
      m.column = 0;
    } else if (((unsigned char)l->buf[i] & 0xC0) != 0x80) {
      m.column++;
    }
  }
  m.index = off;
  return m;
}

/* Rewrites libyaml's messages where they are cryptic for the mistakes people
 * actually make (tabs, non-UTF-8 files) and keeps its text otherwise. */
static void report_parser_error(struct loader *l, const yaml_parser_t *p)
{
  if (p->error == YAML_READER_ERROR) {
    size_t off = p->problem_offset;
    if (strstr(p->problem, "UTF-8") != NULL && off <= l->len) {
      /* libyaml points at the offending byte, which may be the middle of a
       * sequence; people look for the character, so report its start. */
      while (off > 0 && ((unsigned char)l->buf[off - 1] & 0xC0) == 0x80)
        off--;
      if (off > 0 && (unsigned char)l->buf[off - 1] >= 0xC0)
        off--;
      yaml_mark_t m = mark_at_offset(l, off);
      error_at(l, &m, "invalid UTF-8 (byte 0x%02X); the file must be UTF-8 text",
               off < l->len ? (unsigned char)l->buf[off] : 0u);
      return;
    }
    yaml_mark_t m = mark_at_offset(l, off);
    if (strstr(p->problem, "control characters") != NULL)
      error_at(l, &m, "control character U+%04X is not allowed in YAML",
               (unsigned)p->problem_value);
    else
      error_at(l, &m, "cannot read the file as YAML: %s", p->problem);
    return;
  }
  if (p->error == YAML_MEMORY_ERROR) {
    yaml_mark_t m = {0, 0, 0};
    error_at(l, &m, "out of memory while parsing YAML");
    return;
  }
  const char *problem = p->problem ? p->problem : "invalid YAML";
  bool tab = strstr(problem, "tab") != NULL ||
             (strstr(problem, "cannot start any token") != NULL &&
              byte_at_mark(l, &p->problem_mark) == '\t');
  if (tab) {
    error_at(l, &p->problem_mark,
             "tab character in indentation; YAML indents with spaces only");
  } else if (strstr(problem, "mapping values are not allowed") != NULL) {
    /* The YAML trap: `log: see: here`, `run: a: b` */
    error_at(l, &p->problem_mark,
             "invalid YAML: %s (hint: an unquoted value cannot hold \": \"; quote the whole "
             "value: key: \"a: b\")", problem);
  } else if (p->context != NULL) {
    error_at(l, &p->problem_mark, "invalid YAML: %s (%s that started at line %zu, column %zu)",
             problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  } else {
    error_at(l, &p->problem_mark, "invalid YAML: %s", problem);
  }
}

/* ---------------------------------------------------------------- tree */

static struct pc_node *node_new(enum pc_node_kind kind, const yaml_mark_t *m)
{
  struct pc_node *n = pc_xcalloc(1, sizeof *n);
  n->kind = kind;
  n->line = (int)m->line + 1;
  n->col = (int)m->column + 1;
  return n;
}

static struct pc_node *node_copy(const struct pc_node *src)
{
  struct pc_node *n = pc_xmalloc(sizeof *n);
  *n = *src;
  if (src->kind == PC_NODE_SCALAR) {
    n->str = pc_xstrndup(src->str, src->len);
    return n;
  }
  n->items = pc_xcalloc(src->n, sizeof *n->items);
  n->keys = src->kind == PC_NODE_MAP ? pc_xcalloc(src->n, sizeof *n->keys) : NULL;
  for (size_t i = 0; i < src->n; i++) {
    if (n->keys)
      n->keys[i] = node_copy(src->keys[i]);
    n->items[i] = node_copy(src->items[i]);
  }
  return n;
}

static void append_item(struct frame *f, struct pc_node *key, struct pc_node *value)
{
  struct pc_node *c = f->node;
  if (c->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 4;
    c->items = pc_xrealloc(c->items, f->cap * sizeof *c->items);
    if (c->kind == PC_NODE_MAP)
      c->keys = pc_xrealloc(c->keys, f->cap * sizeof *c->keys);
  }
  if (c->kind == PC_NODE_MAP)
    c->keys[c->n] = key;
  c->items[c->n++] = value;
}

/* Hands a finished node (with its subtree height) to the open collection on
 * top of the stack, or makes it the root. */
static void attach(struct loader *l, struct pc_node *n, int height)
{
  if (l->depth == 0) {
    l->root = n;
    return;
  }
  struct frame *f = &l->stack[l->depth - 1];
  if (height + 1 > f->height)
    f->height = height + 1;
  if (f->node->kind == PC_NODE_SEQ) {
    append_item(f, NULL, n);
    return;
  }
  if (f->key == NULL) {
    if (n->kind != PC_NODE_SCALAR) {
      yaml_mark_t m = {0, (size_t)n->line - 1, (size_t)n->col - 1};
      error_at(l, &m, "a map key must be a plain value, not a %s", pc_node_kind_name(n));
    } else if (memchr(n->str, '\0', n->len) != NULL) {
      /* Keys are names (options, headers, variables), compared and passed
       * on as C strings: "log\0x" would read as `log`. */
      yaml_mark_t m = {0, (size_t)n->line - 1, (size_t)n->col - 1};
      error_at(l, &m, "a map key cannot contain a NUL byte (\\0)");
    }
    f->key = n;
    return;
  }
  append_item(f, f->key, n);
  f->key = NULL;
}

struct key_ref {
  const struct pc_node *key;
  size_t index;
};

/* Orders by key text, then by position, so equal keys end up adjacent with
 * the first occurrence leading. */
static int cmp_key_ref(const void *pa, const void *pb)
{
  const struct key_ref *a = pa, *b = pb;
  size_t n = a->key->len < b->key->len ? a->key->len : b->key->len;
  int c = memcmp(a->key->str, b->key->str, n);
  if (c == 0)
    c = (a->key->len > b->key->len) - (a->key->len < b->key->len);
  if (c == 0)
    c = (a->index > b->index) - (a->index < b->index);
  return c;
}

/* Reports each repeated key at its own position, in file order, naming the
 * line of its first occurrence. Sorting keeps this O(n log n) for a
 * hostile map with a huge number of keys. */
static void check_duplicate_keys(struct loader *l, const struct pc_node *map)
{
  if (map->n < 2)
    return;
  struct key_ref *refs = pc_xmalloc(map->n * sizeof *refs);
  size_t *first = pc_xmalloc(map->n * sizeof *first);
  size_t nscalar = 0;
  for (size_t i = 0; i < map->n; i++) {
    first[i] = i;
    if (map->keys[i]->kind == PC_NODE_SCALAR)
      refs[nscalar++] = (struct key_ref){map->keys[i], i};
  }
  qsort(refs, nscalar, sizeof *refs, cmp_key_ref);
  for (size_t i = 1; i < nscalar; i++) {
    const struct pc_node *a = refs[i - 1].key, *b = refs[i].key;
    if (a->len == b->len && memcmp(a->str, b->str, a->len) == 0)
      first[refs[i].index] = first[refs[i - 1].index];
  }
  for (size_t i = 0; i < map->n; i++) {
    if (first[i] == i)
      continue;
    const struct pc_node *k = map->keys[i];
    yaml_mark_t m = {0, (size_t)k->line - 1, (size_t)k->col - 1};
    error_at(l, &m, "duplicate key \"%s\" (first defined at line %d)", k->str,
             map->keys[first[i]]->line);
  }
  free(refs);
  free(first);
}

#define SLOT_EMPTY SIZE_MAX

static size_t *anchor_slot(const struct loader *l, const char *name)
{
  size_t h = 14695981039346656037u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = (h ^ *p) * 1099511628211u;
  for (size_t i = h & (l->nslots - 1);; i = (i + 1) & (l->nslots - 1))
    if (l->slots[i] == SLOT_EMPTY || strcmp(l->anchors[l->slots[i]].name, name) == 0)
      return &l->slots[i];
}

/* Rebuilds the index at twice the size; later anchors overwrite earlier
 * ones with the same name, as YAML wants. */
static void grow_slots(struct loader *l)
{
  free(l->slots);
  l->nslots = l->nslots ? l->nslots * 2 : 16;
  l->slots = pc_xmalloc(l->nslots * sizeof *l->slots);
  for (size_t i = 0; i < l->nslots; i++)
    l->slots[i] = SLOT_EMPTY;
  for (size_t i = 0; i < l->nanchors; i++)
    *anchor_slot(l, l->anchors[i].name) = i;
}

static void add_anchor(struct loader *l, char *name, const struct pc_node *n, size_t size,
                       int height)
{
  if (l->nanchors == l->anchors_cap) {
    l->anchors_cap = l->anchors_cap ? l->anchors_cap * 2 : 8;
    l->anchors = pc_xrealloc(l->anchors, l->anchors_cap * sizeof *l->anchors);
  }
  l->anchors[l->nanchors++] = (struct anchor){name, n, size, height};
  if (2 * l->nanchors > l->nslots)
    grow_slots(l); /* indexes the new anchor too */
  else
    *anchor_slot(l, name) = l->nanchors - 1;
}

/* YAML lets a later anchor reuse a name; aliases refer to the latest one. */
static const struct anchor *find_anchor(const struct loader *l, const char *name)
{
  if (l->nslots == 0)
    return NULL;
  size_t slot = *anchor_slot(l, name);
  return slot == SLOT_EMPTY ? NULL : &l->anchors[slot];
}

/* Counts nodes against max_nodes; reports once and returns false past it. */
static bool count_nodes(struct loader *l, size_t n, const yaml_mark_t *m)
{
  if (n > l->lim->max_nodes - l->nodes) {
    error_at(l, m, "too many nodes (alias expansion?): the limit is %zu", l->lim->max_nodes);
    return false;
  }
  l->nodes += n;
  return true;
}

/* Tags other than the standard ones would change a value's meaning in ways
 * the rest of pacer does not model, so they are refused instead of ignored. */
static bool check_tag(struct loader *l, const yaml_char_t *tag, const char *standard,
                      const yaml_mark_t *m)
{
  if (tag == NULL || strcmp((const char *)tag, "!") == 0 ||
      strcmp((const char *)tag, standard) == 0)
    return true;
  error_at(l, m, "YAML tags are not supported (found \"%s\")", (const char *)tag);
  return false;
}

/* ------------------------------------------------------------- events */

/* Byte offset of the start of 0-based line `line` (or len). */
static size_t line_start(struct loader *l, size_t line)
{
  while (l->cur_line < line && l->cur_off < l->len) {
    const char *nl = memchr(l->buf + l->cur_off, '\n', l->len - l->cur_off);
    l->cur_off = nl ? (size_t)(nl - l->buf) + 1 : l->len;
    l->cur_line++;
  }
  return l->cur_off;
}

/* A block scalar's text starts on the line after its indicator (leading
 * empty lines are part of the text); its column is the indentation of the
 * first non-blank line, searched within the scalar (which ends at
 * end_line, 0-based). */
static void find_block_body(struct loader *l, struct pc_node *n, size_t end_line)
{
  n->body_line = n->line;
  n->body_col = n->col;
  size_t line = (size_t)n->line - 1, off = line_start(l, line);
  if (end_line <= line)
    return;
  n->body_line = n->line + 1;
  while (line < end_line) {
    const char *nl = memchr(l->buf + off, '\n', l->len - off);
    if (!nl)
      return;
    off = (size_t)(nl - l->buf) + 1;
    line++;
    size_t sp = 0;
    while (off + sp < l->len && l->buf[off + sp] == ' ')
      sp++;
    if (off + sp < l->len && l->buf[off + sp] != '\n' && l->buf[off + sp] != '\r') {
      n->body_col = (int)sp + 1;
      return;
    }
  }
}

static bool on_scalar(struct loader *l, const yaml_event_t *ev)
{
  const yaml_mark_t *m = &ev->start_mark;
  if (!count_nodes(l, 1, m) ||
      !check_tag(l, ev->data.scalar.tag, "tag:yaml.org,2002:str", m))
    return false;
  struct pc_node *n = node_new(PC_NODE_SCALAR, m);
  n->str = pc_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
  n->len = ev->data.scalar.length;
  bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  /* `!!str 5` and `! 5` are strings however they are written. */
  n->style = plain && ev->data.scalar.tag == NULL ? PC_STYLE_PLAIN : PC_STYLE_QUOTED;
  /* The text maps onto the source character for character only when the
   * scalar sits on one line and is as long as its source (minus quotes):
   * every escape or '' changes the length. */
  bool quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  if ((plain || quoted) && ev->end_mark.line == m->line &&
      utf8_chars(n->str, n->len) + (quoted ? 2 : 0) == ev->end_mark.column - m->column)
    n->text_col = n->col + (quoted ? 1 : 0);
  n->body_line = n->line;
  n->body_col = n->col + (quoted ? 1 : 0);
  if (ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
      ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE)
    find_block_body(l, n, ev->end_mark.line);
  if (ev->data.scalar.anchor != NULL)
    add_anchor(l, pc_xstrdup((const char *)ev->data.scalar.anchor), n, 1, 0);
  attach(l, n, 0);
  return true;
}

static bool on_collection_start(struct loader *l, const yaml_event_t *ev, enum pc_node_kind kind)
{
  const yaml_mark_t *m = &ev->start_mark;
  const yaml_char_t *tag, *anchor;
  if (kind == PC_NODE_MAP) {
    tag = ev->data.mapping_start.tag;
    anchor = ev->data.mapping_start.anchor;
  } else {
    tag = ev->data.sequence_start.tag;
    anchor = ev->data.sequence_start.anchor;
  }
  if (!check_tag(l, tag, kind == PC_NODE_MAP ? "tag:yaml.org,2002:map" : "tag:yaml.org,2002:seq",
                 m))
    return false;
  if (l->depth >= l->lim->max_depth) {
    error_at(l, m, "nesting is deeper than %d levels", l->lim->max_depth);
    return false;
  }
  if (!count_nodes(l, 1, m))
    return false;
  struct frame *f = &l->stack[l->depth++];
  *f = (struct frame){
    .node = node_new(kind, m),
    .anchor = anchor ? pc_xstrdup((const char *)anchor) : NULL,
    .nodes_at_start = l->nodes - 1,
    .height = 1,
  };
  return true;
}

static void on_collection_end(struct loader *l)
{
  struct frame f = l->stack[--l->depth];
  if (f.node->kind == PC_NODE_MAP)
    check_duplicate_keys(l, f.node);
  if (f.anchor != NULL)
    add_anchor(l, f.anchor, f.node, l->nodes - f.nodes_at_start, f.height);
  attach(l, f.node, f.height);
}

static bool on_alias(struct loader *l, const yaml_event_t *ev)
{
  const char *name = (const char *)ev->data.alias.anchor;
  const yaml_mark_t *m = &ev->start_mark;
  const struct anchor *a = find_anchor(l, name);
  if (a == NULL) {
    for (int i = 0; i < l->depth; i++) {
      if (l->stack[i].anchor && strcmp(l->stack[i].anchor, name) == 0) {
        error_at(l, m, "alias *%s refers to a value that contains it", name);
        return false;
      }
    }
    error_at(l, m, "unknown alias *%s (no anchor &%s before it)", name, name);
    return false;
  }
  if (l->depth + a->height > l->lim->max_depth) {
    error_at(l, m, "nesting is deeper than %d levels (through alias *%s)", l->lim->max_depth,
             name);
    return false;
  }
  if (!count_nodes(l, a->size, m))
    return false;
  struct pc_node *n = node_copy(a->node);
  /* The copy reports where the alias was written, not the anchor. */
  n->line = (int)m->line + 1;
  n->col = (int)m->column + 1;
  if (n->kind == PC_NODE_SCALAR) {
    n->text_col = 0;
    n->body_line = n->line;
    n->body_col = n->col;
  }
  attach(l, n, a->height);
  return true;
}

static void loader_cleanup(struct loader *l)
{
  for (int i = 0; i < l->depth; i++) {
    pc_node_free(l->stack[i].key);
    pc_node_free(l->stack[i].node);
    free(l->stack[i].anchor);
  }
  free(l->stack);
  for (size_t i = 0; i < l->nanchors; i++)
    free(l->anchors[i].name);
  free(l->anchors);
  free(l->slots);
}

static bool only_space(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
      return false;
  return true;
}

int pc_yaml_load_string(const char *name, const char *buf, size_t len,
                        const struct pc_yaml_limits *lim, struct pc_node **out,
                        struct pc_diag *d)
{
  *out = NULL;
  if (lim == NULL)
    lim = &pc_yaml_default_limits;
  struct loader l = {.name = name, .buf = buf, .len = len, .lim = lim, .d = d};
  if (len > lim->max_bytes) {
    pc_diag_add(d, name, 0, 0, "the file is too large (%zu bytes; the limit is %zu)", len,
                lim->max_bytes);
    return -1;
  }
  l.stack = pc_xcalloc((size_t)lim->max_depth + 1, sizeof *l.stack);

  yaml_parser_t p;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
  int ndocs = 0;
  bool done = false;
  while (!done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      report_parser_error(&l, &p);
      break;
    }
    bool ok = true;
    switch (ev.type) {
    case YAML_DOCUMENT_START_EVENT:
      if (ndocs++ > 0) {
        error_at(&l, &ev.start_mark,
                 "more than one YAML document (a workflow file holds exactly one)");
        ok = false;
      }
      break;
    case YAML_SCALAR_EVENT:
      ok = on_scalar(&l, &ev);
      break;
    case YAML_SEQUENCE_START_EVENT:
      ok = on_collection_start(&l, &ev, PC_NODE_SEQ);
      break;
    case YAML_MAPPING_START_EVENT:
      ok = on_collection_start(&l, &ev, PC_NODE_MAP);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      on_collection_end(&l);
      break;
    case YAML_ALIAS_EVENT:
      ok = on_alias(&l, &ev);
      break;
    case YAML_STREAM_END_EVENT:
      done = true;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
    if (!ok)
      break;
  }
  yaml_parser_delete(&p);

  if (done && ndocs == 0) {
    pc_diag_add(d, name, 1, 1, only_space(buf, len) ? "the file is empty"
                                                    : "the file is empty (only comments)");
    l.failed = true;
  }
  loader_cleanup(&l);
  /* A stopped parse leaves no root or a partial one; semantic errors
   * (duplicate keys) leave a complete tree that is still rejected. */
  if (!done || l.failed) {
    pc_node_free(l.root);
    return -1;
  }
  *out = l.root;
  return 0;
}

int pc_yaml_load_file(const char *path, const struct pc_yaml_limits *lim,
                      struct pc_node **out, struct pc_diag *d)
{
  *out = NULL;
  if (lim == NULL)
    lim = &pc_yaml_default_limits;
  char *buf;
  size_t len;
  int err = pc_read_file(path, lim->max_bytes, &buf, &len);
  if (err == -EFBIG) {
    pc_diag_add(d, path, 0, 0, "the file is too large (the limit is %zu bytes)", lim->max_bytes);
    return -1;
  }
  if (err < 0) {
    pc_diag_add(d, path, 0, 0, "cannot read the file: %s", strerror(-err));
    return -1;
  }
  int rc = pc_yaml_load_string(path, buf, len, lim, out, d);
  free(buf);
  return rc;
}

struct pc_node_desc pc_node_describe(const struct pc_node *n)
{
  struct pc_node_desc d;
  if (n == NULL || (n->kind == PC_NODE_SCALAR && n->style == PC_STYLE_PLAIN && n->len == 0)) {
    snprintf(d.s, sizeof d.s, "nothing");
    return d;
  }
  if (n->kind != PC_NODE_SCALAR) {
    snprintf(d.s, sizeof d.s, "a %s", pc_node_kind_name(n));
    return d;
  }
  /* Cut long or multi-line text at a character boundary. */
  size_t len = 0, max = 40;
  while (len < n->len && len < max && n->str[len] != '\n' && n->str[len] != '\0')
    len++;
  while (len < n->len && len > 0 && ((unsigned char)n->str[len] & 0xC0) == 0x80)
    len--;
  const char *more = len < n->len ? "..." : "";
  if (pc_node_scalar_type(n) == PC_SCALAR_STR)
    snprintf(d.s, sizeof d.s, "\"%.*s%s\"", (int)len, n->str, more);
  else
    snprintf(d.s, sizeof d.s, "%.*s%s", (int)len, n->str, more);
  return d;
}
