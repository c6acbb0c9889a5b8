/* signal.c: see signal.h. One atomic counter for the process: there is
 * one run, and one set of handlers, at a time. */
#include "base/signal.h"

#include <stdatomic.h>

static atomic_uint count;

unsigned pc_signal_note(void)
{
  return atomic_fetch_add(&count, 1);
}

unsigned pc_signal_count(void)
{
  return atomic_load_explicit(&count, memory_order_relaxed);
}

void pc_signal_reset(void)
{
  atomic_store(&count, 0);
}
