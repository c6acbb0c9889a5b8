/* cli.c: parses the command line, loads and checks workflow files through
 * the one door (pc_load, with the options the command line and the
 * environment give), and hands them to the engine. Loading errors are
 * printed as "file:line:column: error: ..." and exit 2 before anything
 * runs. */
#include "cli/cli.h"
#include "cli/files.h"
#include "cli/help.h"
#include "cli/merge.h"
#include "cli/plan.h"
#include "cli/shard.h"

#include <errno.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lua.h>
#include <uv.h>
#include <yaml.h>
#include <yajl/yajl_version.h>

#include "cli/builtins.h"
#include "http/curlshim.h"
#include "journal/journal.h"
#include "cli/rerun.h"
#include "base/diag.h"
#include "base/digest.h"
#include "core/run.h"
#include "base/log.h"
#include "base/pool.h"
#include "base/redisbucket.h"
#include "script/luahost.h"
#include "script/plugin.h"
#include "report/progress.h"
#include "load/load.h"
#include "report/report.h"
#include "load/schema.h"
#include "base/yamlload.h"
#include "core/records.h"
#include "base/util.h"
#include "base/yamlload.h"
#include "model/workflow.h"


/* What run, validate and plugins share: the options common to them, and
 * the plugin directories loading searches. Made by cli_main from the
 * environment, completed by common_option; freed by cli_free. */
struct cli {
  /* The Lua memory limit in MiB: --lua-memory, else PACER_LUA_MEMORY, else
   * the default (0 here). */
  long lua_memory_mb;
  /* --plugins directories in order, then the PACER_PLUGIN_PATH entries
   * (added by plugin_dirs_done); owned. */
  char **plugin_dirs;
  size_t nplugin_dirs;
  bool env_dirs_added;
};

/* Takes the value of an option given as "--opt VALUE" or "--opt=VALUE". */
static const char *opt_value(const char *name, int argc, char **argv, int *i);
static bool opt_is(const char *a, const char *name);

static int parse_memory(struct cli *cli, const char *v, const char *what)
{
  char *end;
  errno = 0;
  long mb = strtol(v, &end, 10);
  if (errno || end == v || *end || mb < 1 || mb > 1024L * 1024) {
    fprintf(stderr, "pacer: %s: expected a number of MiB between 1 and 1048576, got \"%s\"\n",
            what, v);
    return -1;
  }
  cli->lua_memory_mb = mb;
  return 0;
}

static void add_plugin_dir(struct cli *cli, char *dir)
{
  cli->plugin_dirs = pc_xrealloc(cli->plugin_dirs,
                                 (cli->nplugin_dirs + 1) * sizeof *cli->plugin_dirs);
  cli->plugin_dirs[cli->nplugin_dirs++] = dir;
}

static bool is_dir(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The plugins bundled with pacer, found relative to the binary itself
 * (never a path fixed when pacer was configured, which a relocated install
 * or a build tree would not match): BINDIR/../share/pacer/plugins in an
 * installed tree (`cmake --install --prefix X` puts the binary in X/bin and
 * the plugins in X/share/pacer/plugins), else BINDIR/plugins, where the
 * build copies them next to build/pacer. A malloc'd path, or NULL when
 * neither exists. */
static char *bundled_plugin_dir(void)
{
  char exe[4096];
  size_t len = sizeof exe;
  if (uv_exepath(exe, &len) != 0 || len == 0)
    return NULL;
  char *slash = strrchr(exe, '/');
  if (!slash)
    return NULL;
  *slash = '\0';
  char *installed = pc_asprintf("%s/../share/pacer/plugins", exe);
  char *real = is_dir(installed) ? realpath(installed, NULL) : NULL;
  free(installed);
  if (real)
    return real;
  char *built = pc_asprintf("%s/plugins", exe);
  real = is_dir(built) ? realpath(built, NULL) : NULL;
  free(built);
  return real;
}

/* The --plugins directories are all known once the options are parsed:
 * the PACER_PLUGIN_PATH entries (colon-separated, empty ones skipped) go
 * after them, searched later, and the bundled plugins last. */
static void plugin_dirs_done(struct cli *cli)
{
  if (cli->env_dirs_added)
    return;
  cli->env_dirs_added = true;
  const char *p = getenv("PACER_PLUGIN_PATH");
  while (p && *p) {
    size_t len = strcspn(p, ":");
    if (len)
      add_plugin_dir(cli, pc_xstrndup(p, len));
    p += len;
    if (*p == ':')
      p++;
  }
  /* Last, the bundled plugins: any directory above can shadow them. */
  char *bundled = bundled_plugin_dir();
  if (bundled)
    add_plugin_dir(cli, bundled);
}

static void cli_free(struct cli *cli)
{
  for (size_t i = 0; i < cli->nplugin_dirs; i++)
    free(cli->plugin_dirs[i]);
  free(cli->plugin_dirs);
  *cli = (struct cli){0};
}

/* Options shared by run, validate and plugins. Returns 1 if argv[*i] was
 * one (consumed), 0 if not, -1 after printing an error. */
static int common_option(struct cli *cli, int argc, char **argv, int *i)
{
  const char *a = argv[*i], *v;
  if (opt_is(a, "--plugins")) {
    if (!(v = opt_value("--plugins", argc, argv, i)) || !*v) {
      fprintf(stderr, "pacer: --plugins needs a directory\n");
      return -1;
    }
    add_plugin_dir(cli, pc_xstrdup(v));
    return 1;
  }
  if (opt_is(a, "--lua-memory")) {
    if (!(v = opt_value("--lua-memory", argc, argv, i))) {
      fprintf(stderr, "pacer: --lua-memory needs a number of MiB\n");
      return -1;
    }
    return parse_memory(cli, v, "--lua-memory") == 0 ? 1 : -1;
  }
  return 0;
}

static struct pc_lua *new_lua(const struct cli *cli)
{
  struct pc_lua *h = pc_lua_new();
  if (h && cli->lua_memory_mb > 0)
    pc_lua_set_memory_limit(h, (size_t)cli->lua_memory_mb << 20);
  return h;
}

/* What --var and --vars-file define: their names are known to the
 * reference check (vars.NAME), and --var names the file does not declare
 * get a warning. The values themselves are read by the engine when the run
 * starts (engine.c, build_vars); they are parsed here only enough to refuse
 * a malformed --var or an unreadable --vars-file before anything runs. */
struct var_names {
  char **names; /* owned */
  size_t n;
  size_t nvar; /* the first nvar came from --var, the rest from --vars-file */
};

static void var_names_free(struct var_names *vn)
{
  for (size_t i = 0; i < vn->n; i++)
    free(vn->names[i]);
  free(vn->names);
  *vn = (struct var_names){0};
}

static void var_names_add(struct var_names *vn, char *name)
{
  vn->names = pc_xrealloc(vn->names, (vn->n + 1) * sizeof *vn->names);
  vn->names[vn->n++] = name;
}

/* Prints load errors and warnings: as they are, or with --log-format json
 * as log lines (a log shipper reading stderr gets JSON only). */
static void print_diags(const struct pc_diag *d)
{
  if (!pc_log_json()) {
    pc_diag_print(d, stderr);
    return;
  }
  for (size_t i = 0; i < d->n; i++) {
    const struct pc_diag_item *it = &d->items[i];
    pc_log(it->warning ? PC_LOG_WARN : PC_LOG_ERROR, NULL, "%s:%d:%d: %s", it->file, it->line,
           it->col, it->msg);
  }
  if (d->n < pc_diag_count(d))
    pc_log(PC_LOG_ERROR, NULL, "... and %zu more errors, not shown", pc_diag_count(d) - d->n);
}

/* Returns 0, or -1 with the problem printed. */
static int gather_var_names(const char *cmd, const char *const *vars, size_t nvars,
                            const char *vars_file, struct var_names *out)
{
  for (size_t i = 0; i < nvars; i++) {
    const char *eq = strchr(vars[i], '=');
    if (!eq || eq == vars[i]) {
      fprintf(stderr, "pacer %s: --var expects NAME=VALUE, got \"%s\"\n", cmd, vars[i]);
      return -1;
    }
    var_names_add(out, pc_xstrndup(vars[i], (size_t)(eq - vars[i])));
  }
  out->nvar = out->n;
  if (!vars_file)
    return 0;
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_node *n = NULL;
  if (pc_yaml_load_file(vars_file, NULL, &n, &d) != 0) {
    print_diags(&d);
    pc_diag_free(&d);
    return -1;
  }
  pc_diag_free(&d);
  if (n->kind != PC_NODE_MAP) {
    fprintf(stderr, "%s:%d:%d: error: --vars-file must hold a map of names to values\n",
            vars_file, n->line, n->col);
    pc_node_free(n);
    return -1;
  }
  for (size_t i = 0; i < n->n; i++)
    var_names_add(out, pc_xstrndup(n->keys[i]->str, n->keys[i]->len));
  pc_node_free(n);
  return 0;
}

/* The load options of a command, borrowing from `cli` and `vn`: the
 * plugin directories, the names --var and --vars-file define, and whether
 * warnings are shown (not with -q: a cron job run with -q stays silent
 * when all is well; `validate` shows them). */
static struct pc_load_opts load_opts(struct cli *cli, const struct var_names *vn)
{
  plugin_dirs_done(cli);
  return (struct pc_load_opts){
      .actions = pc_builtin_actions,
      .plugin_dirs = (const char *const *)cli->plugin_dirs,
      .nplugin_dirs = cli->nplugin_dirs,
      .var_names = vn ? (const char *const *)vn->names : NULL,
      .nvar_names = vn ? vn->n : 0,
      .nvar_cli = vn ? vn->nvar : 0,
      .warnings = pc_log_enabled(PC_LOG_WARN),
  };
}

/* Loads, checks and compiles one file, or, when `text` is not NULL, the
 * file's text already read. Returns 0, or -1 with errors printed. */
static int load_workflow(const char *path, const char *text, size_t len, struct pc_lua *h,
                         const struct pc_load_opts *opts, struct pc_workflow **out)
{
  struct pc_diag d;
  pc_diag_init(&d);
  int rc = text ? pc_load_string(path, text, len, opts, h, out, &d)
                : pc_load(path, opts, h, out, &d);
  print_diags(&d);
  if (rc != 0) {
    size_t n = pc_diag_count(&d);
    fprintf(stderr, "%s: %zu error%s; nothing was run\n", path, n, n == 1 ? "" : "s");
  }
  pc_diag_free(&d);
  return rc;
}

/* -------------------------------------------------------- subcommands */

static int cmd_version(void)
{
  const curl_version_info_data *c = curl_version_info(CURLVERSION_NOW);
  printf("pacer %s\n", PACER_VERSION);
  printf("libuv %s\n", uv_version_string());
  if (c) /* loads libcurl (curlshim.c), which may be missing */
    printf("libcurl %s (%s)\n", c->version, c->ssl_version ? c->ssl_version : "no TLS");
  else
    printf("%s\n", pc_curl_load_error());
  printf("libyaml %s\n", yaml_get_version_string());
  int yv = yajl_version();
  printf("yajl %d.%d.%d\n", yv / 10000, yv / 100 % 100, yv % 100);
  printf("%s\n", LUA_RELEASE);
  return PC_EXIT_OK;
}

static int cmd_validate(struct cli *cli, int argc, char **argv)
{
  const char **files = pc_xcalloc((size_t)argc + 1, sizeof *files);
  const char **vars = pc_xcalloc((size_t)argc + 1, sizeof *vars);
  size_t nvars = 0;
  const char *vars_file = NULL;
  struct var_names vn = {0};
  int nfiles = 0, code = PC_EXIT_USAGE;
  for (int i = 0; i < argc; i++) {
    int r = common_option(cli, argc, argv, &i);
    if (r < 0)
      goto out;
    if (r > 0)
      continue;
    /* --var and --vars-file as for run: the names they define are known
     * to the check of vars.NAME. */
    const char *a = argv[i], *v;
    if (opt_is(a, "--var") || opt_is(a, "--vars-file")) {
      bool file = opt_is(a, "--vars-file");
      if (!(v = opt_value(file ? "--vars-file" : "--var", argc, argv, &i))) {
        fprintf(stderr, "pacer validate: option \"%s\" needs a value\n", a);
        goto out;
      }
      if (file)
        vars_file = v;
      else
        vars[nvars++] = v;
      continue;
    }
    files[nfiles++] = a;
  }
  if (nfiles < 1) {
    fprintf(stderr, "pacer validate: name at least one workflow file\n");
    goto out;
  }
  if (gather_var_names("validate", vars, nvars, vars_file, &vn) != 0)
    goto out;
  struct pc_load_opts lopts = load_opts(cli, &vn);
  code = PC_EXIT_OK;
  for (int i = 0; i < nfiles; i++) {
    struct pc_lua *h = new_lua(cli);
    if (!h) {
      code = PC_EXIT_ERROR;
      break;
    }
    struct pc_workflow *wf = NULL;
    if (load_workflow(files[i], NULL, 0, h, &lopts, &wf) != 0) {
      code = PC_EXIT_USAGE;
    } else {
      printf("%s: ok\n", files[i]);
      pc_workflow_free(wf);
    }
    pc_lua_free(h);
  }
out:
  var_names_free(&vn);
  free(vars);
  free(files);
  return code;
}

static int cmd_plugins(struct cli *cli, int argc, char **argv)
{
  const char *file = NULL;
  for (int i = 0; i < argc; i++) {
    int r = common_option(cli, argc, argv, &i);
    if (r < 0)
      return PC_EXIT_USAGE;
    if (r > 0)
      continue;
    if (argv[i][0] == '-' || file) {
      fprintf(stderr, "pacer plugins: usage: pacer plugins [WORKFLOW.yml] [--plugins DIR] "
                      "(see pacer plugins --help)\n");
      return PC_EXIT_USAGE;
    }
    file = argv[i];
  }
  struct pc_load_opts lopts = load_opts(cli, NULL);
  struct pc_lua *h = new_lua(cli);
  if (!h)
    return PC_EXIT_ERROR;
  int code = pc_plugins_list(h, file, &lopts, stdout);
  pc_lua_free(h);
  return code;
}


static const char *opt_value(const char *name, int argc, char **argv, int *i)
{
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) == 0 && a[n] == '=')
    return a + n + 1;
  if (strcmp(a, name) == 0 && *i + 1 < argc)
    return argv[++*i];
  return NULL;
}

static bool opt_is(const char *a, const char *name)
{
  size_t n = strlen(name);
  return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

/* ------------------------------------------------- several workflow files */

/* Loads `path` ("-": standard input, named "stdin" in messages). The
 * bytes it loaded are handed out in *text (malloc'd; NULL if the file
 * could not be read, and the loader has said why): the run's shard
 * identity is their digest, so the file is read once. */
static int load_run_file(const char *path, struct pc_lua *h, const struct pc_load_opts *opts,
                         struct pc_workflow **out, char **text, size_t *text_len)
{
  *text = NULL;
  *text_len = 0;
  if (strcmp(path, "-") != 0) {
    if (pc_read_file(path, pc_yaml_default_limits.max_bytes, text, text_len) != 0)
      *text = NULL;
    return load_workflow(path, *text, *text_len, h, opts, out);
  }
  struct pc_buf b;
  pc_buf_init(&b, pc_yaml_default_limits.max_bytes); /* what a file may hold */
  char chunk[65536];
  ssize_t got;
  while ((got = read(STDIN_FILENO, chunk, sizeof chunk)) != 0) {
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0 || pc_buf_append(&b, chunk, (size_t)got) != 0) {
      fprintf(stderr, "pacer run: cannot read the workflow from stdin: %s\n",
              got < 0 ? strerror(errno) : "too large");
      pc_buf_free(&b);
      return -1;
    }
  }
  int rc = load_workflow("stdin", b.data ? b.data : "", b.len, h, opts, out);
  *text_len = b.len;
  *text = b.data ? pc_buf_steal(&b) : pc_xstrdup("");
  return rc;
}

static int cmd_run(struct cli *cli, int argc, char **argv)
{
  char **files = NULL;
  size_t nfiles = 0, files_cap = 0;
  bool stdin_named = false;
  struct pc_lua **hosts = NULL;
  struct pc_workflow **wfs = NULL;
  char **texts = NULL; /* the bytes each file was loaded from (NULL: not read) */
  size_t *text_lens = NULL;
  struct pc_run_opts o;
  pc_run_opts_init(&o);
  const char **vars = pc_xcalloc((size_t)argc + 1, sizeof *vars);
  const char **reports = pc_xcalloc((size_t)argc + 1, sizeof *reports);
  struct pc_log_opts lo = {0, false, isatty(STDERR_FILENO) && !getenv("NO_COLOR")};
  bool dry = false;
  enum pc_progress_mode progress = PC_PROGRESS_AUTO;
  const char *lock_path = NULL, *shard_spec = NULL, *shards_spec = NULL, *journal_path = NULL;
  const char *rerun_report = NULL; /* --rerun-failed REPORT */
  bool resume = false, no_history = false;
  char *history = NULL;
  int lock_fd = -1, shard_k = 1, shard_n = 1, jobs = 1;
  int code = PC_EXIT_USAGE;
  struct var_names vn = {0};

  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v;
    int common = common_option(cli, argc, argv, &i);
    if (common < 0)
      goto out;
    if (common > 0)
      continue;
    if (opt_is(a, "--var")) {
      if (!(v = opt_value("--var", argc, argv, &i)))
        goto missing;
      vars[o.nvars++] = v;
    } else if (opt_is(a, "--vars-file")) {
      if (!(v = opt_value("--vars-file", argc, argv, &i)))
        goto missing;
      o.vars_file = v;
    } else if (opt_is(a, "--timeout")) {
      if (!(v = opt_value("--timeout", argc, argv, &i)))
        goto missing;
      if (pc_parse_duration(v, &o.timeout_ms) != 0) {
        fprintf(stderr, "pacer run: --timeout: invalid duration \"%s\" (try 30s, 2m)\n", v);
        goto out;
      }
    } else if (opt_is(a, "--report")) {
      if (!(v = opt_value("--report", argc, argv, &i)))
        goto missing;
      const char *colon = strchr(v, ':');
      char *format = colon ? pc_xstrndup(v, (size_t)(colon - v)) : NULL;
      bool known = format && pc_report_format_known(format);
      free(format);
      if (!known || !colon[1]) {
        fprintf(stderr, "pacer run: --report expects FORMAT:PATH with FORMAT one of json, junit, "
                        "trace, html, prometheus; got \"%s\"\n", v);
        goto out;
      }
      reports[o.nreports++] = v;
    } else if (opt_is(a, "--push") || opt_is(a, "--ping")) {
      bool push = opt_is(a, "--push");
      const char *name = push ? "--push" : "--ping";
      if (!(v = opt_value(name, argc, argv, &i)))
        goto missing;
      if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0) {
        fprintf(stderr, "pacer run: %s expects an http:// or https:// URL, got \"%s\"\n", name,
                v);
        goto out;
      }
      if (push)
        o.push_url = v;
      else
        o.ping_url = v;
    } else if (opt_is(a, "--shard")) {
      if (!(shard_spec = opt_value("--shard", argc, argv, &i)))
        goto missing;
    } else if (opt_is(a, "--shards")) {
      if (!(shards_spec = opt_value("--shards", argc, argv, &i)))
        goto missing;
    } else if (opt_is(a, "--journal")) {
      if (!(journal_path = opt_value("--journal", argc, argv, &i)))
        goto missing;
    } else if (opt_is(a, "--rerun-failed")) {
      if (!(rerun_report = opt_value("--rerun-failed", argc, argv, &i)))
        goto missing;
    } else if (strcmp(a, "--resume") == 0) {
      resume = true;
    } else if (strcmp(a, "--no-history") == 0) {
      no_history = true;
    } else if (opt_is(a, "--jobs") || strcmp(a, "-j") == 0) {
      if (!(v = opt_value(opt_is(a, "--jobs") ? "--jobs" : "-j", argc, argv, &i)))
        goto missing;
      if (pc_cli_parse_jobs(v, &jobs) != 0)
        goto out;
    } else if (opt_is(a, "--lock")) {
      if (!(lock_path = opt_value("--lock", argc, argv, &i)))
        goto missing;
    } else if (opt_is(a, "--progress")) {
      if (!(v = opt_value("--progress", argc, argv, &i)))
        goto missing;
      if (pc_progress_parse_mode(v, &progress) != 0) {
        fprintf(stderr, "pacer run: --progress must be auto, always or never, got \"%s\"\n", v);
        goto out;
      }
    } else if (opt_is(a, "--log-format")) {
      if (!(v = opt_value("--log-format", argc, argv, &i)))
        goto missing;
      if (strcmp(v, "json") == 0) {
        lo.json = true;
      } else if (strcmp(v, "text") != 0) {
        fprintf(stderr, "pacer run: --log-format must be text or json, got \"%s\"\n", v);
        goto out;
      }
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      lo.verbosity = -1;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
      lo.verbosity = lo.verbosity >= 1 ? 2 : 1; /* -v -v is -vv */
    } else if (strcmp(a, "-vv") == 0) {
      lo.verbosity = 2;
    } else if (strcmp(a, "--dry-run") == 0) {
      dry = true;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "pacer run: unknown option \"%s\" (see pacer run --help)\n", a);
      goto out;
    } else {
      if (strcmp(a, "-") == 0) {
        if (stdin_named) {
          fprintf(stderr, "pacer run: \"-\" (stdin) can be named once\n");
          goto out;
        }
        stdin_named = true;
      }
      if (pc_cli_add_run_files(a, &files, &nfiles, &files_cap) != 0)
        goto out;
    }
  }
  if (nfiles == 0) {
    fprintf(stderr, "pacer run: name a workflow file (see pacer run --help)\n");
    goto out;
  }
  if (resume && !journal_path) {
    fprintf(stderr, "pacer run: --resume needs --journal PATH (the journal to resume from)\n");
    goto out;
  }
  if (rerun_report && pc_cli_report_is_runs(rerun_report)) {
    /* Such a report comes from a run of several files, which keeps no
     * journal (--journal takes one file): the steps not rerun would have
     * no results to read. */
    fprintf(stderr, "pacer run: --rerun-failed %s: a report of several workflow files; a rerun "
                    "takes the JSON report of one file's run, written with its journal (pacer "
                    "run FILE --journal J --report json:R, then pacer run FILE --journal J "
                    "--rerun-failed R); nothing was run\n", rerun_report);
    goto out;
  }
  if (rerun_report && !journal_path) {
    /* The steps not rerun need their results for the ones that are (a
     * login's token): only the reported run's journal has them. */
    fprintf(stderr, "pacer run: --rerun-failed needs --journal PATH: the journal of the run that "
                    "wrote the report (--journal PATH --report json:REPORT), which gives the "
                    "steps not rerun their results\n");
    goto out;
  }
  if (rerun_report && resume) {
    fprintf(stderr, "pacer run: --rerun-failed and --resume cannot be combined: --resume runs "
                    "every step not finished ok, --rerun-failed only the report's failures\n");
    goto out;
  }
  if (journal_path && nfiles > 1) {
    fprintf(stderr, "pacer run: --journal takes one workflow file (%zu given)\n", nfiles);
    goto out;
  }
  if (journal_path && shard_spec) {
    /* Each shard would need a journal of its own; one path cannot be. */
    fprintf(stderr, "pacer run: --journal and --shard cannot be combined yet: run each shard "
                    "without a journal\n");
    goto out;
  }
  if (pc_cli_resolve_shard(shard_spec, shards_spec, &shard_k, &shard_n) != 0)
    goto out;
  if (lo.json)
    lo.color = false;
  pc_log_init(&lo);
  o.progress = pc_progress_wanted(progress);
  if (o.progress && nfiles > 1 && jobs > 1 && !dry) {
    /* The display draws one run's bars in the last lines of the terminal;
     * files running at once would draw over each other. Say so once
     * rather than drop a display that was asked for in silence. */
    pc_log(PC_LOG_WARN, NULL, "--progress: no live display with --jobs %d: files running at "
                              "once would draw over each other's lines (--jobs 1 shows each "
                              "file's in turn)", jobs);
    o.progress = false;
  }
  o.vars = vars;
  o.reports = reports;

  if (gather_var_names("run", vars, o.nvars, o.vars_file, &vn) != 0)
    goto out;
  struct pc_load_opts lopts = load_opts(cli, &vn);
  /* Every file is loaded (and every error in every file shown) before any
   * runs: a bad file among several runs nothing, as a bad file alone. Each
   * has its own Lua state. */
  hosts = pc_xcalloc(nfiles, sizeof *hosts);
  wfs = pc_xcalloc(nfiles, sizeof *wfs);
  texts = pc_xcalloc(nfiles, sizeof *texts);
  text_lens = pc_xcalloc(nfiles, sizeof *text_lens);
  bool loaded = true;
  for (size_t f = 0; f < nfiles; f++) {
    if (!(hosts[f] = new_lua(cli))) {
      code = PC_EXIT_ERROR;
      goto out;
    }
    if (load_run_file(files[f], hosts[f], &lopts, &wfs[f], &texts[f], &text_lens[f]) != 0)
      loaded = false;
  }
  if (!loaded)
    goto out;
  if (nfiles > 1 && pc_cli_check_runs_reports(reports, o.nreports, wfs, nfiles) != 0)
    goto out;
  if (nfiles > 1 && !dry)
    pc_cli_warn_shared_limits(wfs, nfiles);
  if (lock_path && !dry && (lock_fd = pc_cli_take_lock(lock_path)) < 0) {
    code = lock_fd == -EWOULDBLOCK ? PC_EXIT_LOCKED : PC_EXIT_USAGE;
    goto out;
  }
  if (!history && !dry && !no_history)
    history = pc_history_default_path();
  o.history = dry || no_history ? NULL : history;
  if (nfiles > 1 && !dry) {
    struct pc_cli_files cf = {files, nfiles, wfs, hosts, texts, text_lens};
    code = pc_cli_run_many(&cf, &o, jobs, shard_k, shard_n);
    goto out;
  }
  /* One file (several only with --dry-run: each one's plan). */
  code = PC_EXIT_OK;
  for (size_t f = 0; f < nfiles; f++) {
    int c = PC_EXIT_OK;
    /* The shard identity of this file for its reports: the digest of the
     * bytes it was loaded from. */
    struct pc_shard_id shard;
    o.shard = NULL;
    if (texts[f] &&
        pc_cli_shard_identity(&shard, texts[f], text_lens[f], &o, shard_k, shard_n) == 0) {
      o.shard = &shard;
      if (shard_n > 1 && (pc_cli_has_shard_key(wfs[f]->steps, wfs[f]->nsteps) ||
                          pc_cli_has_shard_key(wfs[f]->finally, wfs[f]->nfinally)))
        shard.rule = "keyed";
    }
    char real[PATH_MAX];
    o.history_workflow = strcmp(files[f], "-") != 0 && realpath(files[f], real) ? real : files[f];
    o.journal = NULL;
    if (journal_path && !dry) {
      char *jerr = NULL;
      char **rerun_paths = NULL; /* the report's failures, until the journal takes them */
      size_t nrerun = 0;
      if (!o.shard) {
        fprintf(stderr, "pacer run: --journal: the workflow's digest is not known (its "
                        "vars file cannot be read)\n");
        c = PC_EXIT_USAGE;
      } else if (rerun_report &&
                 pc_cli_rerun_read(rerun_report, o.shard->workflow_sha256, o.shard->vars_sha256,
                                   &rerun_paths, &nrerun, &jerr) != 0) {
        fprintf(stderr, "pacer run: --rerun-failed %s; nothing was run\n", jerr);
        free(jerr);
        c = PC_EXIT_USAGE;
      } else if (!(o.journal = pc_journal_open(journal_path, resume || rerun_report,
                                               o.shard->workflow_sha256, o.shard->vars_sha256,
                                               &jerr))) {
        fprintf(stderr, "pacer run: --journal %s; nothing was run\n", jerr);
        free(jerr);
        c = PC_EXIT_USAGE;
      } else if (rerun_report) {
        pc_journal_rerun_only(o.journal, rerun_paths, nrerun);
        rerun_paths = NULL;
        nrerun = 0;
      }
      for (size_t r = 0; r < nrerun; r++)
        free(rerun_paths[r]);
      free(rerun_paths);
    }
    if (c != PC_EXIT_OK)
      ;
    else if (dry)
      pc_cli_print_plan(wfs[f], shard_k, shard_n);
    else
      c = pc_run_workflow(wfs[f], hosts[f], &o);
    pc_journal_close(o.journal);
    o.journal = NULL;
    o.shard = NULL;
    if (pc_exit_rank(c) > pc_exit_rank(code))
      code = c;
  }
  goto out;

missing:
  fprintf(stderr, "pacer run: option \"%s\" needs a value\n", argv[argc - 1]);
out:
  if (lock_fd >= 0)
    close(lock_fd); /* releases the lock */
  free(history);
  var_names_free(&vn);
  for (size_t f = 0; f < nfiles; f++) {
    if (wfs && wfs[f])
      pc_workflow_free(wfs[f]);
    if (hosts && hosts[f])
      pc_lua_free(hosts[f]);
    free(files[f]);
    if (texts)
      free(texts[f]);
  }
  free(texts);
  free(text_lens);
  free(wfs);
  free(hosts);
  free(files);
  free(vars);
  free(reports);
  pc_secrets_clear();
  return code;
}

/* What validate, plugins, schema, version and --dry-run print is their
 * result: if it could not be written (a closed pipe, a full disk), say so
 * and fail, rather than exit 0 having printed nothing. (`run` output goes
 * through pc_out_line, whose errors fail the step that printed.) */
static int check_stdout(int code)
{
  errno = 0;
  if (fflush(stdout) == 0 && !ferror(stdout))
    return code;
  fprintf(stderr, "pacer: cannot write to stdout: %s\n", errno ? strerror(errno) : "I/O error");
  return code == PC_EXIT_OK ? PC_EXIT_ERROR : code;
}

static int cli_main(int argc, char **argv);

int pc_cli_main(int argc, char **argv)
{
  return check_stdout(cli_main(argc, argv));
}

static int cli_main(int argc, char **argv)
{
  if (argc < 2) {
    pc_cli_usage(stderr);
    return PC_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    const char *text = argc > 2 ? pc_cli_help_of(argv[2]) : pc_cli_overview_help;
    if (!text) {
      fprintf(stderr, "pacer help: unknown command \"%s\"\n", argv[2]);
      pc_cli_usage(stderr);
      return PC_EXIT_USAGE;
    }
    fputs(text, stdout);
    return PC_EXIT_OK;
  }
  /* `pacer CMD --help` anywhere among CMD's arguments: the help, nothing
   * else (whatever the other arguments say). */
  if (pc_cli_help_of(cmd) && pc_cli_wants_help(argc - 2, argv + 2)) {
    fputs(pc_cli_help_of(cmd), stdout);
    return PC_EXIT_OK;
  }
  struct cli cli = {0};
  const char *mem = getenv("PACER_LUA_MEMORY");
  if (mem && *mem && parse_memory(&cli, mem, "PACER_LUA_MEMORY") != 0)
    return PC_EXIT_USAGE;
  int code = -1;
  if (strcmp(cmd, "run") == 0)
    code = cmd_run(&cli, argc - 2, argv + 2);
  else if (strcmp(cmd, "validate") == 0)
    code = cmd_validate(&cli, argc - 2, argv + 2);
  else if (strcmp(cmd, "plugins") == 0)
    code = cmd_plugins(&cli, argc - 2, argv + 2);
  cli_free(&cli);
  if (code >= 0)
    return code;
  if (strcmp(cmd, "merge") == 0)
    return pc_cli_merge(argc - 2, argv + 2);
  if (strcmp(cmd, "history") == 0)
    return pc_history_main(argc - 2, argv + 2);
  if (strcmp(cmd, "schema") == 0) {
    if (argc > 2) {
      fprintf(stderr, "pacer schema: takes no arguments\n");
      return PC_EXIT_USAGE;
    }
    char *schema = pc_schema_json(pc_builtin_actions);
    if (!schema) {
      fprintf(stderr, "pacer schema: the embedded base schema does not parse\n");
      return PC_EXIT_ERROR;
    }
    fputs(schema, stdout);
    free(schema);
    return PC_EXIT_OK;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
    return cmd_version();
  fprintf(stderr, "pacer: unknown command \"%s\"\n", cmd);
  pc_cli_usage(stderr);
  return PC_EXIT_USAGE;
}
