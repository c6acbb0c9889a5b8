/* scratch_dir.h: a fresh temporary directory per cmocka test, for the unit
 * tests that write files (test_outfile.c, test_history.c): `dir` names it
 * between scratch_setup and scratch_teardown, which removes it with all it
 * holds. Include it once, after cmocka.h. */
#ifndef PACER_TESTS_SCRATCH_DIR_H
#define PACER_TESTS_SCRATCH_DIR_H

#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"

static char dir[64];

static int scratch_setup(void **state)
{
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/pacer-test-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int scratch_teardown(void **state)
{
  (void)state;
  char *cmd = pc_asprintf("rm -rf '%s'", dir);
  int rc = system(cmd);
  free(cmd);
  return rc == 0 ? 0 : -1;
}

#endif
