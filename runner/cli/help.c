/* help.c: the command line's help texts, one per command (help.h). */
#include "cli/help.h"

#include <string.h>

#include "base/util.h"

/* One text per command: `pacer CMD --help` (or -h, or `pacer help CMD`)
 * prints it on stdout and exits 0; a usage error prints the overview on
 * stderr. */
const char pc_cli_overview_help[] =
    "usage: pacer run WORKFLOW... [options]     run workflows (files, directories, - for stdin)\n"
    "       pacer validate WORKFLOW...          check files without running anything\n"
    "       pacer plugins [WORKFLOW.yml]        list the plugins and flows found, with inputs\n"
    "       pacer merge SHARD.json... --report FORMAT:PATH...\n"
    "                                           merge the reports of a run's shards\n"
    "       pacer history [WORKFLOW]            print the last runs, flagging slow ones\n"
    "       pacer schema                        print the JSON Schema of the workflow format\n"
    "       pacer version                       print versions\n"
    "\n"
    "`pacer COMMAND --help` describes a command and its options.\n";

static const char run_help[] =
    "usage: pacer run WORKFLOW... [options]\n"
    "\n"
    "Runs workflows. A WORKFLOW is a file, a directory (its *.yml and *.yaml\n"
    "files, in name order) or - (the standard input). Every file is loaded and\n"
    "checked before anything runs; then they run in order, each a run of its\n"
    "own, --jobs N of them at once (default 1), sharing one HTTP session, with\n"
    "one summary and one set of reports at the end; the exit code is the most\n"
    "severe of them.\n"
    "\n"
    "options:\n"
    "  --var NAME=VALUE      override vars.NAME (VALUE is read as YAML); repeatable\n"
    "  --vars-file FILE      YAML map merged over vars (--var wins)\n"
    "  --timeout DURATION    deadline for each workflow (overrides its `timeout`)\n"
    "  --shard K/N|auto      run shard K of N: the outermost fan-outs' items K, K+N, ...\n"
    "  --shards N            with --shard auto in a Kubernetes Indexed Job: the count\n"
    "  --report FORMAT:PATH  write a report (json, junit, trace, html, prometheus);\n"
    "                        repeatable; with several files one covers them all\n"
    "  --jobs N, -j N        run up to N workflow files at once (default 1)\n"
    "  --push URL            push the run's metrics to a Prometheus Pushgateway\n"
    "  --ping URL            ping a healthchecks.io-style check at start and end\n"
    "  --lock PATH           hold an exclusive lock; exit 75 if another run holds it\n"
    "  --journal PATH        record finished steps in a SQLite journal (mode 0600)\n"
    "  --resume              with --journal: do not rerun the steps that finished ok\n"
    "                        there (their results come back); the workflow file and\n"
    "                        vars must be the journaled run's\n"
    "  --rerun-failed REPORT with --journal: rerun only the steps REPORT lists as failed\n"
    "  --no-history          do not append the run to the run history (pacer history)\n"
    "  --progress auto|always|never\n"
    "                        live progress on stderr (auto: when it is a terminal);\n"
    "                        off with several files and --jobs N > 1 (a warning says so)\n"
    "  --log-format text|json\n"
    "                        human log lines, or one JSON object per line\n"
    "  -q                    quiet: errors only (and the summary of a failed run)\n"
    "  -v                    verbose: every step's start and end\n"
    "  -vv                   also every HTTP request and response (redacted)\n"
    "  --dry-run             load, validate and print the plan; run nothing\n"
    "  --plugins DIR         another plugin directory (repeatable; also PACER_PLUGIN_PATH)\n"
    "  --lua-memory MB       memory limit of the Lua state (default 512; also\n"
    "                        PACER_LUA_MEMORY)\n"
    "\n"
    "exit codes: 0 ok, 1 an expectation failed, 2 invalid workflow or usage,\n"
    "3 a step errored, 4 the deadline passed, 75 --lock is held,\n"
    "129/130/143 interrupted by SIGHUP/SIGINT/SIGTERM.\n";

static const char validate_help[] =
    "usage: pacer validate WORKFLOW... [options]\n"
    "\n"
    "Loads and checks each workflow (files, directories, - for stdin) and runs\n"
    "nothing: prints FILE: ok, or every error as file:line:column, and exits 2\n"
    "if a file is invalid.\n"
    "\n"
    "options:\n"
    "  --var NAME=VALUE      the names --var and --vars-file define count as\n"
    "  --vars-file FILE        defined vars for the check of vars.NAME\n"
    "  --plugins DIR         another plugin directory (repeatable; also PACER_PLUGIN_PATH)\n"
    "  --lua-memory MB       memory limit of the Lua state (default 512)\n";

static const char plugins_help[] =
    "usage: pacer plugins [WORKFLOW.yml] [options]\n"
    "\n"
    "Lists the plugins (NAME.lua) and workflow files (NAME.yml) `uses:` can find,\n"
    "with their descriptions and inputs: those in plugins/ beside WORKFLOW.yml, in\n"
    "each --plugins directory, in each PACER_PLUGIN_PATH entry, and the plugins\n"
    "bundled with pacer.\n"
    "\n"
    "options:\n"
    "  --plugins DIR         another plugin directory (repeatable)\n"
    "  --lua-memory MB       memory limit of the Lua state (default 512)\n";

static const char history_help[] =
    "usage: pacer history [WORKFLOW] [--limit N] [--db PATH]\n"
    "\n"
    "Prints the last runs (20, or N) that `pacer run` appended to the run\n"
    "history, of WORKFLOW only when it is named (a file: by its real path),\n"
    "oldest first: start, duration, outcome, exit code, steps by outcome. A\n"
    "run that took more than twice the median of the runs of its workflow\n"
    "before it (given three or more), and 250 ms more, is flagged SLOW. The\n"
    "history is $XDG_STATE_HOME/pacer/history.db (default\n"
    "~/.local/state/pacer/), or --db.\n";

static const char merge_help[] =
    "usage: pacer merge SHARD.json... --report FORMAT:PATH...\n"
    "\n"
    "Reads the JSON reports of every shard of one run (run --shard K/N\n"
    "--report json:PATH) and writes the reports of the whole run (json, junit,\n"
    "trace, html, prometheus; at least one). Refuses, with exit 2 and nothing\n"
    "written, a missing or repeated shard and shards of another workflow or\n"
    "other vars; otherwise exits with the merged run's exit code\n"
    "(docs/shards.md).\n";

static const char schema_help[] =
    "usage: pacer schema\n"
    "\n"
    "Prints the JSON Schema (draft-07) of the workflow format, for editors:\n"
    "  pacer schema > .pacer-workflow.schema.json\n";

static const char version_help[] =
    "usage: pacer version\n"
    "\n"
    "Prints the versions of pacer and of the libraries it uses.\n";

static const struct {
  const char *cmd;
  const char *text;
} helps[] = {
    {"run", run_help},       {"validate", validate_help}, {"plugins", plugins_help},
    {"schema", schema_help}, {"version", version_help},     {"merge", merge_help},
    {"history", history_help},
};

void pc_cli_usage(FILE *f)
{
  fputs(pc_cli_overview_help, f);
}

/* The help of `cmd`, or NULL for an unknown command. */
const char *pc_cli_help_of(const char *cmd)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(helps); i++)
    if (strcmp(helps[i].cmd, cmd) == 0)
      return helps[i].text;
  return NULL;
}

/* Whether the arguments of a command ask for its help. */
bool pc_cli_wants_help(int argc, char **argv)
{
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return true;
  return false;
}
