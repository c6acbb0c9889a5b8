/* jtree.h: JSON read back into a small tree of values, for `pacer merge`
 * (merge.c), which reads the JSON reports of shards. Built on yajl's event
 * parser, with one twist: the elements of one array of the top-level
 * object (a report's "steps", which holds a record per step instance and
 * can be millions long) are handed to a callback one by one as each is
 * complete, and never held as a tree all at once. Numbers keep their text,
 * so 64-bit counters survive exactly. */
#ifndef PACER_JTREE_H
#define PACER_JTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pc_jt { PC_J_NULL, PC_J_BOOL, PC_J_NUM, PC_J_STR, PC_J_ARR, PC_J_OBJ };

struct pc_jv {
  enum pc_jt t;
  bool b;            /* PC_J_BOOL */
  char *s;           /* PC_J_STR: the string; PC_J_NUM: the number's text (owned) */
  double d;          /* PC_J_NUM */
  struct pc_jv **v;  /* PC_J_ARR, PC_J_OBJ: the values (owned) */
  char **k;          /* PC_J_OBJ: the keys (owned), beside v */
  size_t n, cap;
};

/* An element of the streamed array; the callback owns it (pc_jv_free).
 * Returns 0 to go on, or -1 to stop the parse with *err set (malloc'd). */
typedef int (*pc_jt_element_cb)(struct pc_jv *el, void *data, char **err);

/* Parses the file at `path`. The elements of the top-level object's array
 * member named `stream_key` (NULL: none) go to `cb` and that array stays
 * empty in the tree. Returns 0 with *out set, or -1 with *err (malloc'd,
 * naming the file) and *out NULL. */
int pc_jt_parse_file(const char *path, const char *stream_key, pc_jt_element_cb cb, void *data,
                     struct pc_jv **out, char **err);
void pc_jv_free(struct pc_jv *v);

/* Readers; each returns NULL/false when the member is missing or of
 * another type. */
const struct pc_jv *pc_jv_get(const struct pc_jv *obj, const char *key);
const char *pc_jv_str(const struct pc_jv *obj, const char *key);
bool pc_jv_num(const struct pc_jv *obj, const char *key, double *out);
/* A whole number in [0, 2^64): digits only. */
bool pc_jv_u64(const struct pc_jv *v, uint64_t *out);
bool pc_jv_get_u64(const struct pc_jv *obj, const char *key, uint64_t *out);
/* A whole number that fits an int. */
bool pc_jv_int(const struct pc_jv *obj, const char *key, int *out);

#endif
