/* stats.h: statistics of a run's shared services (the HTTP session's
 * requests, connections and bytes), handed to the reports as plain data.
 * A section is a name, named counters, and optionally a table: rows, each
 * a string key and counters of its own (one row per host). The reports
 * render every section the same way (in the JSON report, an object under
 * "stats" named after the section), without knowing what it counts; the
 * strings pass through their escaping and redaction like every other
 * string of the run. Whoever fills a section allocates its arrays and row
 * keys with malloc; pc_stats_section_free frees them. */
#ifndef PACER_STATS_H
#define PACER_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct pc_stat {
  const char *name; /* a static string: "requests" */
  uint64_t value;
};

struct pc_stats_row {
  char *key; /* owned: "http://127.0.0.1:8080" */
  struct pc_stat *counters;
  size_t ncounters;
};

struct pc_stats_section {
  const char *name;      /* static: "http" */
  struct pc_stat *counters;
  size_t ncounters;
  const char *rows_name; /* static: "hosts"; NULL: no table */
  const char *row_key;   /* static: the name of each row's key, "host" */
  struct pc_stats_row *rows;
  size_t nrows;
};

static inline void pc_stats_section_free(struct pc_stats_section *s)
{
  for (size_t i = 0; i < s->nrows; i++) {
    free(s->rows[i].key);
    free(s->rows[i].counters);
  }
  free(s->rows);
  free(s->counters);
  s->rows = NULL;
  s->counters = NULL;
  s->nrows = s->ncounters = 0;
}

#endif
