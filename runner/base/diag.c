/* diag.c: the list of located error messages that loading fills. Items
 * keep their own copies of the file name and message, so a diag outlives
 * the workflow or YAML tree that produced it. */
#include "base/diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "base/util.h"

void pc_diag_init(struct pc_diag *d)
{
  d->items = NULL;
  d->n = 0;
  d->cap = 0;
  d->dropped = 0;
  d->nerrors = 0;
}

/* A new item, or NULL when PC_DIAG_MAX are kept already (then it is only
 * counted). */
static struct pc_diag_item *add(struct pc_diag *d, const char *file, int line, int col,
                                bool warning)
{
  if (!warning)
    d->nerrors++;
  if (d->n >= PC_DIAG_MAX) {
    d->dropped += !warning; /* a dropped warning is not worth a line */
    return NULL;
  }
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 8;
    d->items = pc_xrealloc(d->items, d->cap * sizeof *d->items);
  }
  struct pc_diag_item *it = &d->items[d->n++];
  it->file = pc_xstrdup(file ? file : "<input>");
  it->line = line;
  it->col = col;
  it->warning = warning;
  return it;
}

static void vadd(struct pc_diag *d, const char *file, int line, int col, bool warning,
                 const char *fmt, va_list ap)
{
  struct pc_diag_item *it = add(d, file, line, col, warning);
  if (it)
    it->msg = pc_vasprintf(fmt, ap);
}

void pc_diag_add(struct pc_diag *d, const char *file, int line, int col, const char *fmt,
                 ...)
{
  va_list ap;
  va_start(ap, fmt);
  vadd(d, file, line, col, false, fmt, ap);
  va_end(ap);
}

void pc_diag_warn(struct pc_diag *d, const char *file, int line, int col, const char *fmt,
                  ...)
{
  va_list ap;
  va_start(ap, fmt);
  vadd(d, file, line, col, true, fmt, ap);
  va_end(ap);
}

/* Unknown parts of the position are left out rather than printed as 0, the
 * way compilers do for file-level problems ("file: error: ..."). */
void pc_diag_print(const struct pc_diag *d, FILE *out)
{
  for (size_t i = 0; i < d->n; i++) {
    const struct pc_diag_item *it = &d->items[i];
    const char *kind = it->warning ? "warning" : "error";
    if (it->line > 0 && it->col > 0)
      fprintf(out, "%s:%d:%d: %s: %s\n", it->file, it->line, it->col, kind, it->msg);
    else if (it->line > 0)
      fprintf(out, "%s:%d: %s: %s\n", it->file, it->line, kind, it->msg);
    else
      fprintf(out, "%s: %s: %s\n", it->file, kind, it->msg);
  }
  if (d->dropped > 0)
    fprintf(out, "%s: ... and %zu more error%s, not shown\n",
            d->n ? d->items[d->n - 1].file : "pacer", d->dropped, d->dropped == 1 ? "" : "s");
}

size_t pc_diag_count(const struct pc_diag *d)
{
  return d->nerrors;
}

bool pc_diag_full(const struct pc_diag *d)
{
  return d->n >= PC_DIAG_MAX;
}

void pc_diag_free(struct pc_diag *d)
{
  for (size_t i = 0; i < d->n; i++) {
    free(d->items[i].file);
    free(d->items[i].msg);
  }
  free(d->items);
  pc_diag_init(d);
}
