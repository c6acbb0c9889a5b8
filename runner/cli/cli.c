/* cli.c: parses the command line, loads and checks workflow files through
 * the one door (pc_load, with the options the command line and the
 * environment give), and hands them to the engine. Loading errors are
 * printed as "file:line:column: error: ..." and exit 2 before anything
 * runs. */
#include "cli/cli.h"
#include "cli/merge.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
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
#include "model/workflow.h"

static void usage(FILE *f)
{
  fputs("usage: pacer run WORKFLOW.yml [options]   run a workflow\n"
        "       pacer validate WORKFLOW.yml...       check files without running anything\n"
        "       pacer plugins [WORKFLOW.yml]         list the plugins found, with their inputs\n"
        "       pacer merge SHARD.json... --report FORMAT:PATH...\n"
        "                                            merge the reports of a run's shards\n"
        "       pacer schema                         print the JSON Schema of the workflow format\n"
        "       pacer version                        print versions\n"
        "\n"
        "run options:\n"
        "  --var NAME=VALUE      override vars.NAME (VALUE is read as YAML)\n"
        "  --vars-file FILE      YAML map merged over vars (--var wins)\n"
        "  --shard K/N|auto      run shard K of N: the outermost fan-outs' items K, K+N, ...\n"
        "  --shards N            with --shard auto in a Kubernetes Indexed Job: the count\n"
        "  --timeout DURATION    deadline for the whole run\n"
        "  --report FORMAT:PATH  write a report (json, junit, trace, html, prometheus);\n"
        "                        repeatable\n"
        "  --push URL            push the run's metrics to a Prometheus Pushgateway\n"
        "  --ping URL            ping a healthchecks.io-style check at start and end\n"
        "  --lock PATH           hold an exclusive lock; exit 75 if another run holds it\n"
        "  --progress auto|always|never\n"
        "                        live progress on stderr (auto: when it is a terminal)\n"
        "  --log-format text|json\n"
        "  -q, -v                quieter / more verbose\n"
        "  --dry-run             load, validate and print the plan; run nothing\n"
        "\n"
        "validate options: --var NAME=VALUE and --vars-file FILE, as for run (the names\n"
        "  they define count as defined vars)\n"
        "\n"
        "run, validate and plugins options:\n"
        "  --plugins DIR         another plugin directory (repeatable; also PACER_PLUGIN_PATH)\n"
        "  --lua-memory MB       memory limit of the Lua state (default 512; also\n"
        "                        PACER_LUA_MEMORY)\n",
        f);
}

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

/* The --plugins directories are all known once the options are parsed:
 * the PACER_PLUGIN_PATH entries (colon-separated, empty ones skipped) go
 * after them, searched later. */
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

/* ----------------------------------------------------------- the plan */

/* The plan of shard k of n (1 of 1: not sharded); `split`: a fan-out
 * above has been partitioned already. */
struct plan_shard {
  int k, n;
};

static void print_step(const struct pc_workflow *wf, const struct pc_step *s, int depth,
                       struct plan_shard sh, bool split)
{
  printf("%*s- ", depth * 2, "");
  if (s->id)
    printf("%s: ", s->id);
  if (s->name)
    printf("\"%s\" ", s->name);
  printf("%s", pc_step_key(s));
  if (s->uses)
    printf(" %s", s->uses);
  if (s->for_each)
    printf(", for_each");
  if (s->for_each && sh.n > 1 && !split) {
    if (sh.n == 2)
      printf(" (this shard: items %d, %d, ...)", sh.k, sh.k + sh.n);
    else
      printf(" (this shard: items %d, %d, %d, ...)", sh.k, sh.k + sh.n, sh.k + 2 * sh.n);
  }
  if (s->shard_one)
    printf(sh.n > 1 && sh.k > 1 && !split ? ", shard one (not on this shard)" : ", shard one");
  if (s->if_expr)
    printf(", if %s", s->if_expr->src);
  if ((s->for_each || s->kind == PC_STEP_GATHER) && s->concurrency)
    printf(", concurrency %d", s->concurrency);
  if ((s->for_each || s->kind == PC_STEP_GATHER) && !s->fail_fast)
    printf(", fail_fast false");
  for (size_t i = 0; i < s->npools; i++)
    printf("%s%s", i ? "," : ", pool ", wf->pools[s->pools[i]].name);
  if (s->timeout_ms >= 0) {
    char d[32];
    pc_format_duration(s->timeout_ms, d, sizeof d);
    printf(", timeout %s", d);
  }
  if (s->retry.attempts > 1)
    printf(", retry %d", s->retry.attempts);
  if (s->continue_on_error)
    printf(", continue_on_error");
  printf("  (line %d)\n", s->line);
  for (size_t i = 0; i < s->nchildren; i++)
    print_step(wf, s->children[i], depth + 1, sh, split || (s->for_each && sh.n > 1));
}

static void print_plan(const struct pc_workflow *wf, struct plan_shard sh)
{
  printf("workflow %s (%s)\n", wf->name, wf->file);
  if (sh.n > 1)
    printf("shard %d of %d (striped)\n", sh.k, sh.n);
  if (wf->timeout_ms >= 0) {
    char d[32];
    pc_format_duration(wf->timeout_ms, d, sizeof d);
    printf("timeout: %s\n", d);
  }
  for (size_t i = 0; i < wf->npools; i++) {
    const struct pc_pool_def *def = &wf->pools[i];
    struct pc_pool_limits whole = {def->concurrency, def->rate, def->burst};
    struct pc_pool_limits p = sh.n > 1 ? pc_pool_limits_share(&whole, sh.k, sh.n) : whole;
    printf("pool %s:", def->name);
    if (p.concurrency)
      printf(" concurrency %d", p.concurrency);
    if (p.rate > 0)
      printf(" rate %g/s burst %d", p.rate, p.burst);
    if (sh.n > 1)
      printf(" (this shard's share)");
    if (def->shared) {
      /* The whole rate, from Redis; the URL without its password. */
      struct pc_redis_url u;
      char *err = NULL;
      if (pc_redis_url_parse(def->shared, &u, &err) == 0) {
        printf(", shared: rate %g/s from redis://%s%s%s:%d/%s%s", wf->pools[i].rate,
               strchr(u.host, ':') ? "[" : "", u.host, strchr(u.host, ':') ? "]" : "", u.port,
               u.key, u.password ? " (with a password)" : "");
        pc_redis_url_free(&u);
      }
      free(err);
    }
    printf("\n");
  }
  printf("steps:\n");
  for (size_t i = 0; i < wf->nsteps; i++)
    print_step(wf, wf->steps[i], 1, sh, false);
  if (wf->nfinally) {
    printf("finally:\n");
    for (size_t i = 0; i < wf->nfinally; i++)
      print_step(wf, wf->finally[i], 1, sh, false);
  }
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
      fprintf(stderr, "pacer plugins: usage: pacer plugins [WORKFLOW.yml] [--plugins DIR]\n");
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

/* Takes an exclusive, non-blocking flock on `path` (created if needed). The
 * lock lives as long as the descriptor, and the kernel drops it if pacer
 * dies, so a crashed run never leaves a stale lock behind (unlike a PID
 * file). Returns the descriptor, -EWOULDBLOCK if another run holds it, or
 * another negative errno. */
static int take_lock(const char *path)
{
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    fprintf(stderr, "pacer run: --lock %s: %s\n", path, strerror(err));
    return -err;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      fprintf(stderr, "pacer run: %s is locked by another run; exiting\n", path);
      return -EWOULDBLOCK;
    }
    fprintf(stderr, "pacer run: --lock %s: %s\n", path, strerror(err));
    return -err;
  }
  return fd;
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

/* The run's shard identity for its reports (core/records.h,
 * docs/shards.md): K of N (1 of 1 without --shard), the SHA-256 of the workflow
 * file's bytes (the text the run loads, read once) and of the vars
 * overrides: the bytes of --vars-file, then each --var in order, each
 * framed by its kind and length so that no two lists of overrides digest
 * alike. Returns 0, or -1 if the vars file cannot be read (the check of
 * the overrides has said so already). */
static int shard_identity(struct pc_shard_id *sh, const char *wf_text, size_t wf_len,
                          const struct pc_run_opts *o, int index, int count)
{
  memset(sh, 0, sizeof *sh);
  sh->index = index;
  sh->count = count;
  sh->rule = count > 1 ? "striped" : "none";
  pc_sha256_hex_of(wf_text, wf_len, sh->workflow_sha256);
  struct pc_sha256 v;
  pc_sha256_init(&v);
  char frame[64];
  if (o->vars_file) {
    char *buf;
    size_t len;
    if (pc_read_file(o->vars_file, pc_yaml_default_limits.max_bytes, &buf, &len) != 0)
      return -1;
    int n = snprintf(frame, sizeof frame, "vars-file %zu\n", len);
    pc_sha256_update(&v, frame, (size_t)n);
    pc_sha256_update(&v, buf, len);
    free(buf);
  }
  for (size_t i = 0; i < o->nvars; i++) {
    size_t len = strlen(o->vars[i]);
    int n = snprintf(frame, sizeof frame, "var %zu\n", len);
    pc_sha256_update(&v, frame, (size_t)n);
    pc_sha256_update(&v, o->vars[i], len);
  }
  pc_sha256_hex(&v, sh->vars_sha256);
  return 0;
}

/* A whole number from 1 to 100000, all of s; -1 if not. */
static int shard_number(const char *s, size_t len)
{
  long v = 0;
  if (len == 0 || len > 6)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 100000 ? (int)v : -1;
}

/* --shard K/N, or --shard auto: K and N from a Kubernetes Indexed Job
 * (JOB_COMPLETION_INDEX, 0-based, with the count from --shards N) or from
 * GitLab's `parallel:` (CI_NODE_INDEX, 1-based, and CI_NODE_TOTAL). A GitHub
 * Actions matrix passes K/N itself (docs/shards.md). Returns 0 with *k and
 * *n, or -1 having said what is wrong. */
static int resolve_shard(const char *spec, const char *shards, int *k, int *n)
{
  *k = *n = 1;
  if (!spec) {
    if (shards) {
      fprintf(stderr, "pacer run: --shards applies only with --shard auto\n");
      return -1;
    }
    return 0;
  }
  if (strcmp(spec, "auto") == 0) {
    const char *jci = getenv("JOB_COMPLETION_INDEX");
    const char *ci = getenv("CI_NODE_INDEX"), *ct = getenv("CI_NODE_TOTAL");
    if (jci && *jci) {
      int idx = strcmp(jci, "0") == 0 ? 0 : shard_number(jci, strlen(jci));
      if (idx < 0) {
        fprintf(stderr, "pacer run: --shard auto: JOB_COMPLETION_INDEX is \"%s\", not a number "
                        "from 0 to 99999\n", jci);
        return -1;
      }
      if (!shards || (*n = shard_number(shards, strlen(shards))) < 0) {
        fprintf(stderr, "pacer run: --shard auto in a Kubernetes Indexed Job needs --shards N "
                        "(the Job's completions, 1 to 100000)%s%s%s\n",
                shards ? ", got \"" : "", shards ? shards : "", shards ? "\"" : "");
        return -1;
      }
      *k = idx + 1;
    } else if (ci && *ci && ct && *ct) {
      if ((*k = shard_number(ci, strlen(ci))) < 0 || (*n = shard_number(ct, strlen(ct))) < 0) {
        fprintf(stderr, "pacer run: --shard auto: CI_NODE_INDEX=\"%s\" CI_NODE_TOTAL=\"%s\" "
                        "are not numbers from 1 to 100000\n", ci, ct);
        return -1;
      }
      if (shards && shard_number(shards, strlen(shards)) != *n) {
        fprintf(stderr, "pacer run: --shards %s disagrees with CI_NODE_TOTAL=%s\n", shards, ct);
        return -1;
      }
    } else {
      fprintf(stderr, "pacer run: --shard auto: set by a Kubernetes Indexed Job "
                      "(JOB_COMPLETION_INDEX) or a GitLab parallel job (CI_NODE_INDEX, "
                      "CI_NODE_TOTAL); neither is set here: give --shard K/N\n");
      return -1;
    }
  } else {
    if (shards) {
      fprintf(stderr, "pacer run: --shards applies only with --shard auto\n");
      return -1;
    }
    const char *slash = strchr(spec, '/');
    if (!slash || (*k = shard_number(spec, (size_t)(slash - spec))) < 0 ||
        (*n = shard_number(slash + 1, strlen(slash + 1))) < 0) {
      fprintf(stderr, "pacer run: --shard expects K/N (1 <= K <= N <= 100000) or auto, got \"%s\"\n",
              spec);
      return -1;
    }
  }
  if (*k > *n) {
    fprintf(stderr, "pacer run: shard %d of %d: the index must be from 1 to %d\n", *k, *n, *n);
    return -1;
  }
  return 0;
}

/* Whether a step (or one below it) has shard_key: the shard rule is then
 * "keyed" (shard_key where given, striped elsewhere). */
static bool has_shard_key(struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (steps[i]->shard_key || has_shard_key(steps[i]->children, steps[i]->nchildren))
      return true;
  return false;
}

static int cmd_run(struct cli *cli, int argc, char **argv)
{
  const char *file = NULL;
  struct pc_run_opts o;
  pc_run_opts_init(&o);
  const char **vars = pc_xcalloc((size_t)argc + 1, sizeof *vars);
  const char **reports = pc_xcalloc((size_t)argc + 1, sizeof *reports);
  struct pc_log_opts lo = {0, false, isatty(STDERR_FILENO) && !getenv("NO_COLOR")};
  bool dry = false;
  enum pc_progress_mode progress = PC_PROGRESS_AUTO;
  const char *lock_path = NULL, *shard_spec = NULL, *shards_spec = NULL;
  int lock_fd = -1, shard_k = 1, shard_n = 1;
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
      lo.verbosity = 1;
    } else if (strcmp(a, "--dry-run") == 0) {
      dry = true;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "pacer run: unknown option \"%s\"\n", a);
      usage(stderr);
      goto out;
    } else if (file) {
      fprintf(stderr, "pacer run: one workflow file at a time (got \"%s\" and \"%s\")\n", file,
              a);
      goto out;
    } else {
      file = a;
    }
  }
  if (!file) {
    fprintf(stderr, "pacer run: name a workflow file\n");
    usage(stderr);
    goto out;
  }
  if (resolve_shard(shard_spec, shards_spec, &shard_k, &shard_n) != 0)
    goto out;
  if (lo.json)
    lo.color = false;
  pc_log_init(&lo);
  o.progress = pc_progress_wanted(progress);
  o.vars = vars;
  o.reports = reports;

  if (gather_var_names("run", vars, o.nvars, o.vars_file, &vn) != 0)
    goto out;
  struct pc_load_opts lopts = load_opts(cli, &vn);
  struct pc_lua *h = new_lua(cli);
  if (!h) {
    code = PC_EXIT_ERROR;
    goto out;
  }
  /* The file is read here, once, for its digest and for the loader; if it
   * cannot be read, the loader says why. */
  char *text = NULL;
  size_t text_len = 0;
  if (pc_read_file(file, pc_yaml_default_limits.max_bytes, &text, &text_len) != 0)
    text = NULL;
  struct pc_shard_id shard;
  if (text && shard_identity(&shard, text, text_len, &o, shard_k, shard_n) == 0)
    o.shard = &shard;
  struct pc_workflow *wf = NULL;
  int loaded = load_workflow(file, text, text_len, h, &lopts, &wf);
  free(text);
  if (loaded == 0 && o.shard && shard_n > 1 &&
      (has_shard_key(wf->steps, wf->nsteps) || has_shard_key(wf->finally, wf->nfinally)))
    shard.rule = "keyed";
  if (loaded == 0) {
    if (lock_path && !dry && (lock_fd = take_lock(lock_path)) < 0) {
      code = lock_fd == -EWOULDBLOCK ? PC_EXIT_LOCKED : PC_EXIT_USAGE;
    } else if (dry) {
      print_plan(wf, (struct plan_shard){shard_k, shard_n});
      code = PC_EXIT_OK;
    } else {
      code = pc_run_workflow(wf, h, &o);
    }
    pc_workflow_free(wf);
  }
  pc_lua_free(h);
  goto out;

missing:
  fprintf(stderr, "pacer run: option \"%s\" needs a value\n", argv[argc - 1]);
out:
  if (lock_fd >= 0)
    close(lock_fd); /* releases the lock */
  var_names_free(&vn);
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
    usage(stderr);
    return PC_EXIT_USAGE;
  }
  const char *cmd = argv[1];
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
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return PC_EXIT_OK;
  }
  fprintf(stderr, "pacer: unknown command \"%s\"\n", cmd);
  usage(stderr);
  return PC_EXIT_USAGE;
}
