/* yamlload.h: YAML text -> a plain node tree that remembers where every node
 * came from. Built on libyaml's event parser. Hostile input is bounded: file
 * size, nesting depth, total node count (aliases are expanded by copying, and
 * the copies count, which stops "billion laughs"), exactly one document. */
#ifndef PACER_YAMLLOAD_H
#define PACER_YAMLLOAD_H

#include <stddef.h>

#include "base/diag.h"

enum pc_node_kind { PC_NODE_SCALAR, PC_NODE_SEQ, PC_NODE_MAP };

enum pc_scalar_style {
  PC_STYLE_PLAIN,  /* typed by the YAML 1.2 core schema */
  PC_STYLE_QUOTED, /* single, double, literal or folded: always a string */
};

/* The type a scalar resolves to (plain scalars by the YAML 1.2 core schema:
 * null/Null/NULL/~/empty, true/false (any case form of the schema), ints
 * (decimal, 0x, 0o), floats (incl. .inf/.nan); everything else is a string). */
enum pc_scalar_type { PC_SCALAR_NULL, PC_SCALAR_BOOL, PC_SCALAR_INT, PC_SCALAR_FLOAT,
                      PC_SCALAR_STR };

struct pc_node {
  enum pc_node_kind kind;
  int line; /* 1-based line of the node's first character */
  int col;  /* 1-based column */
  /* PC_NODE_SCALAR */
  char *str; /* NUL-terminated; may contain NULs, `len` is authoritative */
  size_t len;
  enum pc_scalar_style style;
  /* PC_NODE_SEQ: items[0..n). PC_NODE_MAP: keys[i] -> items[i], in file
   * order. Map keys are always scalars (a non-scalar key is a load error);
   * duplicate keys are a load error. */
  struct pc_node **keys;
  struct pc_node **items;
  size_t n;
  /* PC_NODE_SCALAR: the 1-based column of str[0] when the text maps onto
   * one source line character for character (plain, or quoted without
   * escapes), so positions inside the text can be reported exactly; 0
   * otherwise (block scalars, escapes, alias copies). */
  int text_col;
  /* PC_NODE_SCALAR: where the text's first line is written: the scalar's
   * own position for plain and quoted scalars (inside the quote), the first
   * non-blank line of the body for block scalars (| and >), whose position
   * is that of the indicator. For code blocks (`lua: |`) whose line numbers
   * must match the file. */
  int body_line, body_col;
};

struct pc_yaml_limits {
  size_t max_bytes; /* default 4 MiB */
  int max_depth;    /* default 64 */
  size_t max_nodes; /* default 200,000, alias copies included */
};
extern const struct pc_yaml_limits pc_yaml_default_limits;

/* Loads one YAML document. On error returns -1 and adds located messages to
 * `d` ("file:line:col: ..."): YAML syntax errors (libyaml's problem text),
 * invalid UTF-8, tabs used for indentation, more than one document, limits
 * exceeded, non-scalar or duplicate map keys. An empty file is an error
 * ("the file is empty"). `name` is the file name used in messages. */
int pc_yaml_load_file(const char *path, const struct pc_yaml_limits *lim,
                      struct pc_node **out, struct pc_diag *d);
int pc_yaml_load_string(const char *name, const char *buf, size_t len,
                        const struct pc_yaml_limits *lim, struct pc_node **out,
                        struct pc_diag *d);
void pc_node_free(struct pc_node *n);

/* Map lookup by key; NULL when `map` is not a map or has no such key. */
const struct pc_node *pc_node_get(const struct pc_node *map, const char *key);
enum pc_scalar_type pc_node_scalar_type(const struct pc_node *n);
const char *pc_node_kind_name(const struct pc_node *n); /* "map", "list", "string", "number", ... */
/* How a value is named in "expected X, got Y" messages: the text of a short
 * scalar (quoted if it is a string), "a map" or "a list", "nothing" for
 * an empty plain scalar or NULL. Returned by value so it can be used
 * inline as a printf argument. */
struct pc_node_desc {
  char s[72];
};
struct pc_node_desc pc_node_describe(const struct pc_node *n);

#endif
