/* diag.h: a list of located error messages ("file:line:column: message").
 * Loading collects every error it finds instead of stopping at the first,
 * so `pacer validate` can report them all at once. Warnings go in the same
 * list (so they are sorted with the errors) but fail nothing. The list
 * keeps at most PC_DIAG_MAX messages and only counts the rest, the way
 * compilers stop after a screenful: a hostile file with a million mistakes
 * must not cost a million formatted messages. */
#ifndef PACER_DIAG_H
#define PACER_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct pc_diag_item {
  char *file;
  int line; /* 1-based; 0 when unknown */
  int col;  /* 1-based; 0 when unknown */
  char *msg;
  bool warning; /* printed, but the load does not fail because of it */
};

#define PC_DIAG_MAX 100

struct pc_diag {
  struct pc_diag_item *items;
  size_t n;       /* messages kept, at most PC_DIAG_MAX */
  size_t cap;
  size_t dropped; /* further errors, counted but not kept (warnings are not) */
  size_t nerrors; /* errors added, kept or not (warnings are not counted) */
};

void pc_diag_init(struct pc_diag *d);
void pc_diag_add(struct pc_diag *d, const char *file, int line, int col,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void pc_diag_warn(struct pc_diag *d, const char *file, int line, int col,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Prints "file:line:col: error: msg" (or "warning: msg") lines, in the
 * order they were added, and a last line counting those not kept. */
void pc_diag_print(const struct pc_diag *d, FILE *out);
/* Every error reported: kept and dropped (warnings not included). */
size_t pc_diag_count(const struct pc_diag *d);
/* No more messages are kept: callers may skip work that only makes a
 * message better (a did-you-mean search). */
bool pc_diag_full(const struct pc_diag *d);
void pc_diag_free(struct pc_diag *d);

#endif
