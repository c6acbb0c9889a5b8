/* summary.c: the end-of-run summary (summary.h). The failures are kept as
 * text as they happen (their tasks are gone by the end), at most
 * PC_SUMMARY_FAILURES_MAX of them, so a 100 000-item fan-out that fails
 * everywhere costs ten strings. */
#include "core/summary.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

void pc__summary_note(struct pc_summary *s, enum pc_outcome o, bool counted, const char *label,
                      const char *error, bool tolerated)
{
  if (counted)
    s->counts[o]++;
  if (!pc_outcome_is_failure(o) || o == PC_CANCELLED || !error)
    return;
  if (s->nfailures < PC_SUMMARY_FAILURES_MAX) {
    const char *nl = strchr(error, '\n');
    int first = nl ? (int)(nl - error) : (int)strlen(error);
    s->failures[s->nfailures] = pc_asprintf("%-7s %s: %.*s%s", pc_outcome_name(o), label, first,
                                            error, tolerated ? " (continue_on_error)" : "");
  }
  s->nfailures++;
}

void pc__summary_log(const struct pc_summary *s, int lvl, const char *const *reports, size_t n)
{
  size_t total = 0;
  for (size_t i = 0; i <= PC_SKIPPED; i++)
    total += s->counts[i];
  if (total == 0 && s->nfailures == 0)
    return;
  if (!pc_log_enabled((enum pc_log_level)lvl))
    return;
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 20);
  pc_buf_printf(&b, "summary: %zu step%s:", total, total == 1 ? "" : "s");
  const char *sep = " ";
  for (size_t i = 0; i <= PC_SKIPPED; i++) {
    if (!s->counts[i])
      continue;
    pc_buf_printf(&b, "%s%zu %s", sep, s->counts[i], pc_outcome_name((enum pc_outcome)i));
    sep = ", ";
  }
  size_t shown = s->nfailures < PC_SUMMARY_FAILURES_MAX ? s->nfailures : PC_SUMMARY_FAILURES_MAX;
  for (size_t i = 0; i < shown; i++)
    pc_buf_printf(&b, "\n  %s", s->failures[i]);
  if (s->nfailures > shown)
    pc_buf_printf(&b, "\n  ... and %zu more failure%s", s->nfailures - shown,
                  s->nfailures - shown == 1 ? "" : "s");
  for (size_t i = 0; i < n; i++) {
    const char *colon = strchr(reports[i], ':');
    if (colon)
      pc_buf_printf(&b, "\n  report %.*s: %s", (int)(colon - reports[i]), reports[i], colon + 1);
  }
  pc_log((enum pc_log_level)lvl, NULL, "%s", b.data);
  pc_buf_free(&b);
}

void pc__summary_merge(struct pc_summary *to, struct pc_summary *from)
{
  for (size_t i = 0; i <= PC_SKIPPED; i++)
    to->counts[i] += from->counts[i];
  size_t kept = from->nfailures < PC_SUMMARY_FAILURES_MAX ? from->nfailures
                                                          : PC_SUMMARY_FAILURES_MAX;
  for (size_t i = 0; i < kept; i++) {
    if (to->nfailures < PC_SUMMARY_FAILURES_MAX) {
      to->failures[to->nfailures] = from->failures[i]; /* moved */
      from->failures[i] = NULL;
    }
    to->nfailures++;
  }
  to->nfailures += from->nfailures - kept;
  pc__summary_free(from);
}

void pc__summary_free(struct pc_summary *s)
{
  size_t kept = s->nfailures < PC_SUMMARY_FAILURES_MAX ? s->nfailures : PC_SUMMARY_FAILURES_MAX;
  for (size_t i = 0; i < kept; i++)
    free(s->failures[i]);
  memset(s, 0, sizeof *s);
}
