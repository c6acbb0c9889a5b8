/* fuzz_load.c: libFuzzer harness for the workflow loader. The input is the
 * text of a workflow file; it goes through the one door to loading
 * (pc_load_string), so through everything `pacer validate` does before a
 * run: the YAML loader (limits, positions, duplicate keys, UTF-8), the
 * workflow model and its checks (every action's own loader included), the
 * check of the names expressions refer to (refs.c), compilation of every
 * expression in a fresh Lua state, and the actions' load checks (inline
 * `lua:` code compiled; `uses` plugins looked for in plugins/ of the
 * working directory, where scripts/fuzz finds the shipped ones), in a
 * fresh Lua state. An input the model pass rejects is answered by that
 * pass alone, which spares most inputs the cost of a Lua state. The
 * diagnostics are formatted too, since that is what the user sees. Any
 * crash, sanitizer report or leak is a bug; a rejected input is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/diag.h"
#include "cli/builtins.h"
#include "fuzz_common.h"
#include "load/load.h"
#include "model/workflow.h"
#include "script/luahost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* The loader's own limit is 4 MiB; libFuzzer's -max_len keeps inputs far
   * smaller, this only guards against a huge file given on the command line. */
  if (size > ((size_t)4 << 20) + 1)
    return 0;
  if (!devnull)
    devnull = fopen("/dev/null", "w");

  struct pc_diag d;
  pc_diag_init(&d);
  /* A fresh Lua state per input keeps runs independent of each other, but
   * making one costs more than most inputs: rejected YAML or models (most
   * of what the fuzzer makes) stop before the passes that need Lua, so the
   * model pass alone runs first and its diagnostics are the answer. */
  struct pc_workflow *wf = NULL;
  if (pc_workflow_load_string("fuzz.yml", (const char *)data, size, pc_builtin_actions, &wf,
                              &d) != 0) {
    if (devnull)
      pc_diag_print(&d, devnull);
    pc_diag_free(&d);
    return 0;
  }
  pc_workflow_free(wf);
  pc_diag_free(&d);
  pc_diag_init(&d);
  struct pc_lua *h = pc_lua_new();
  if (h) {
    static const char *const extra[] = {"x"}; /* as if given by --var */
    const struct pc_load_opts opts = {
        .actions = pc_builtin_actions,
        .var_names = extra, .nvar_names = 1, .nvar_cli = 1, .warnings = true};
    fuzz_cap_memory(h);
    if (pc_load_string("fuzz.yml", (const char *)data, size, &opts, h, &wf, &d) == 0)
      pc_workflow_free(wf);
    pc_lua_free(h);
  }
  if (devnull)
    pc_diag_print(&d, devnull);
  pc_diag_free(&d);
  return 0;
}
