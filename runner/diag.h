/* diag.h: a list of located error messages ("file:line:column: message").
 * Loading collects every error it finds instead of stopping at the first,
 * so `pacer validate` can report them all at once. Warnings go in the same
 * list (so they are sorted with the errors) but fail nothing. */
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

struct pc_diag {
  struct pc_diag_item *items;
  size_t n;
  size_t cap;
};

void pc_diag_init(struct pc_diag *d);
void pc_diag_add(struct pc_diag *d, const char *file, int line, int col,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void pc_diag_warn(struct pc_diag *d, const char *file, int line, int col,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The number of items from index `from` on that are errors. */
size_t pc_diag_errors(const struct pc_diag *d, size_t from);
/* Prints "file:line:col: error: msg" (or "warning: msg") lines, in the
 * order they were added. */
void pc_diag_print(const struct pc_diag *d, FILE *out);
void pc_diag_free(struct pc_diag *d);

#endif
