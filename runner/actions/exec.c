/* exec.c: the `exec` and `shell` actions: a step's value (an argv list, a
 * command line, or the map form with command, env, cwd and stdin) checked
 * at load time, evaluated and checked again at run time, and run by the
 * run's process set (proc/proc.h), which pacer.exec shares. The result
 * table has the shape pacer.exec returns (script/mod_exec.h). */
#include "actions/exec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "base/log.h"
#include "base/redact.h"
#include "base/util.h"
#include "model/action.h"
#include "proc/proc.h"
#include "script/luahost.h"
#include "script/mod_exec.h"
#include "script/params.h"

/* ============================================================= actions */

/* `output:`: what becomes of the program's output lines in the log. */
enum output_mode { OUTPUT_LOG, OUTPUT_QUIET, OUTPUT_ON_FAILURE };
static const char *const output_modes[] = {"log", "quiet", "on_failure", NULL};

static int output_mode_of(const char *s)
{
  for (size_t i = 0; output_modes[i]; i++)
    if (strcmp(s, output_modes[i]) == 0)
      return (int)i;
  return -1;
}

/* The parameter tables: the loader checks a step's value against them
 * (the short form or the map form, with positions: load/params.c) and
 * `pacer schema` writes definitions.exec and .shell from them; at run
 * time the map form's keys are checked against them, and the rest is read
 * below (into the argv, the environment, ...). */
#define ARGV_EXPECT "a list of arguments like [\"ls\", \"-l\"]"
#define ARGV_HINT "to run a command line, use shell:"
#define PROCESS_KEYS(stdin_what)                                                                \
  {.name = "env", .type = PC_PARAM_ENV, .label = "env", .got = PC_GOT_KIND,                     \
   .description = "Environment variables added for the program."},                             \
  {.name = "cwd", .type = PC_PARAM_TEXT, .label = "cwd", .got = PC_GOT_KIND,                    \
   .nul_kind = "a path", .description = "Working directory."},                                  \
  {.name = "stdin", .type = PC_PARAM_TEXT, .nullable = true, .label = "stdin",                  \
   .got = PC_GOT_KIND, .description = "Text written to the " stdin_what "'s standard input."}, \
  {.name = "output", .type = PC_PARAM_ENUM, .allowed = output_modes, .static_only = true,      \
   .description = "What becomes of the program's output lines in the log: log (each line as "   \
                  "it comes, the default), quiet (none; the result keeps them), on_failure "    \
                  "(none, unless the step fails its exit code or expect: then the last 20 "     \
                  "lines of each stream under the failure message)."}

static const struct pc_param exec_value = {
    .type = PC_PARAM_ARGV, .expect = ARGV_EXPECT, .hint = ARGV_HINT, .got = PC_GOT_KIND};
static const struct pc_param exec_keys[] = {
    {.name = "command", .type = PC_PARAM_ARGV, .required = true, .expect = ARGV_EXPECT,
     .hint = ARGV_HINT, .got = PC_GOT_KIND,
     .description = "The program and its arguments, as a list."},
    PROCESS_KEYS("program"),
};
static const struct pc_params exec_params = {
    .description = "Run a program without a shell: an argv list, or a map with `command`, "
                   "`env`, `cwd`, `stdin`, `output`.",
    .value = &exec_value, .keys = exec_keys, .nkeys = PC_ARRAY_SIZE(exec_keys)};

static const struct pc_param shell_value = {
    .type = PC_PARAM_TEXT, .expect = "a command line (a string)",
    .hint = "to run a program with arguments and no shell, use exec:", .got = PC_GOT_KIND,
    .nul_kind = "a command line", .noun = "the command line"};
static const struct pc_param shell_keys[] = {
    {.name = "command", .type = PC_PARAM_TEXT, .required = true, .got = PC_GOT_KIND,
     .nul_kind = "a command line", .description = "The command line."},
    PROCESS_KEYS("command"),
};
static const struct pc_params shell_params = {
    .description = "Run a command line with `/bin/sh -c`: the text, or a map with `command`, "
                   "`env`, `cwd`, `stdin`, `output`.",
    .value = &shell_value, .keys = shell_keys, .nkeys = PC_ARRAY_SIZE(shell_keys)};

/* ------------------------------------------------- evaluated parameters */

struct exec_spec {
  char **argv; /* NULL-terminated */
  size_t argc;
  char **env; /* NULL-terminated "NAME=VALUE", or NULL */
  size_t nenv;
  char *cwd;
  char *stdin_data; /* NULL: none */
  size_t stdin_len;
  enum output_mode output;
};

static void spec_free(struct exec_spec *sp)
{
  for (size_t i = 0; i < sp->argc; i++)
    free(sp->argv[i]);
  free(sp->argv);
  for (size_t i = 0; i < sp->nenv; i++)
    free(sp->env[i]);
  free(sp->env);
  free(sp->cwd);
  free(sp->stdin_data);
}

static bool is_text_type(int type)
{
  return type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN;
}

/* The message for a value text_arg refused, named `what`: it refuses a
 * string only for a NUL byte; anything else is not text. */
static char *refused(lua_State *L, int idx, const char *what, const char *kind,
                     const char *not_text)
{
  if (lua_type(L, idx) == LUA_TSTRING)
    return pc_asprintf("%s contains a NUL byte (\\0), which %s cannot hold", what, kind);
  return pc_asprintf("%s, got %s", not_text, luaL_typename(L, idx));
}

/* refused() for a value that had to be text: "WHAT must be a string, got
 * TYPE", or the NUL byte it holds. */
static char *not_a_string(lua_State *L, int idx, const char *what, const char *kind)
{
  char *must = pc_asprintf("%s must be a string", what);
  char *m = refused(L, idx, what, kind, must);
  free(must);
  return m;
}

/* Text of a string, number or boolean with no NUL byte; NULL otherwise. */
static char *text_arg(struct pc_lua *h, int idx)
{
  lua_State *L = pc_lua_state(h);
  if (!is_text_type(lua_type(L, idx)))
    return NULL;
  size_t len;
  char *s = pc_lua_to_text(h, idx, &len);
  if (strlen(s) != len) {
    free(s);
    return NULL;
  }
  return s;
}

static char *parse_argv(struct pc_lua *h, int idx, const struct pc_tmpl *t, struct exec_spec *sp,
                        const char *what)
{
  lua_State *L = pc_lua_state(h);
  if (!lua_istable(L, idx))
    return pc_asprintf("%s: expected a list of arguments, got %s", what, luaL_typename(L, idx));
  /* A list written in the file has a known length, which also catches an
   * item whose expression gave nil (a hole, or a shorter table). */
  size_t n = t && t->kind == PC_T_SEQ ? t->u.coll.n : (size_t)lua_rawlen(L, idx);
  if (n == 0)
    return pc_asprintf("%s: the argument list is empty", what);
  sp->argv = pc_xcalloc(n + 1, sizeof *sp->argv);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)(i + 1)); /* item */
    char *s = text_arg(h, -1);
    if (!s) {
      char *arg = pc_asprintf("%s: argument %zu", what, i + 1);
      char *m = not_a_string(L, -1, arg, "a program argument");
      free(arg);
      lua_pop(L, 1);
      return m;
    }
    lua_pop(L, 1);
    sp->argv[sp->argc++] = s;
  }
  if (!sp->argv[0][0])
    return pc_asprintf("%s: the program name is empty", what);
  return NULL;
}

static char *parse_env(struct pc_lua *h, int idx, struct exec_spec *sp)
{
  lua_State *L = pc_lua_state(h);
  if (!lua_istable(L, idx))
    return pc_asprintf("env: expected a map of NAME: VALUE, got %s", luaL_typename(L, idx));
  size_t cap = 8;
  sp->env = pc_xcalloc(cap + 1, sizeof *sp->env);
  lua_pushnil(L); /* nil */
  while (lua_next(L, idx) != 0) { /* key, value */
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      return pc_xstrdup("env: variable names must be strings");
    }
    const char *name = lua_tostring(L, -2);
    if (!*name || strchr(name, '=') || strlen(name) != lua_rawlen(L, -2)) {
      char *m = pc_asprintf("env: \"%s\" is not a valid variable name", name);
      lua_pop(L, 2);
      return m;
    }
    char *v = text_arg(h, -1);
    if (!v) {
      char *what = pc_asprintf("env: the value of %s", name);
      char *m = not_a_string(L, -1, what, "an environment variable");
      free(what);
      lua_pop(L, 2);
      return m;
    }
    if (sp->nenv == cap) {
      cap *= 2;
      sp->env = pc_xrealloc(sp->env, (cap + 1) * sizeof *sp->env);
    }
    sp->env[sp->nenv++] = pc_asprintf("%s=%s", name, v);
    sp->env[sp->nenv] = NULL;
    free(v);
    lua_pop(L, 1); /* key */
  }
  return NULL;
}

/* Reads the evaluated params at `idx` into `sp`. Returns NULL or a message. */
static char *parse_params(struct pc_lua *h, int idx, const struct pc_tmpl *t, bool shell,
                          struct exec_spec *sp)
{
  lua_State *L = pc_lua_state(h);
  const char *what = shell ? "shell" : "exec";
  bool is_map = false;
  if (lua_istable(L, idx)) {
    is_map = lua_getfield(L, idx, "command") != LUA_TNIL; /* command */
    lua_pop(L, 1);
  }
  if (!is_map) {
    if (shell) {
      char *cmd = text_arg(h, idx);
      if (!cmd)
        return refused(L, idx, "shell: the command line", "a command line",
                       "shell: expected a command line");
      sp->argv = pc_xcalloc(4, sizeof *sp->argv);
      sp->argv[0] = pc_xstrdup("/bin/sh");
      sp->argv[1] = pc_xstrdup("-c");
      sp->argv[2] = cmd;
      sp->argc = 3;
      return NULL;
    }
    return parse_argv(h, idx, t, sp, what);
  }
  /* The map form; its keys are checked again because an expression made it. */
  char *bad = pc_params_check_keys(L, idx, what, shell ? &shell_params : &exec_params);
  if (bad)
    return bad;
  char *err = NULL;
  lua_getfield(L, idx, "command"); /* command */
  int top = lua_gettop(L);
  if (shell) {
    char *cmd = text_arg(h, top);
    if (!cmd) {
      err = refused(L, top, "shell.command", "a command line",
                    "shell: command must be a command line");
    } else {
      sp->argv = pc_xcalloc(4, sizeof *sp->argv);
      sp->argv[0] = pc_xstrdup("/bin/sh");
      sp->argv[1] = pc_xstrdup("-c");
      sp->argv[2] = cmd;
      sp->argc = 3;
    }
  } else {
    err = parse_argv(h, top, pc_tmpl_get(t, "command"), sp, "exec.command");
  }
  lua_pop(L, 1);
  if (err)
    return err;
  if (lua_getfield(L, idx, "env") != LUA_TNIL) /* env */
    err = parse_env(h, lua_gettop(L), sp);
  lua_pop(L, 1);
  if (err)
    return err;
  if (lua_getfield(L, idx, "cwd") != LUA_TNIL) { /* cwd */
    sp->cwd = text_arg(h, -1);
    if (!sp->cwd)
      err = refused(L, -1, "cwd", "a path", "cwd: expected a directory");
    else if (!*sp->cwd)
      err = pc_xstrdup("cwd: expected a directory, got an empty string");
  }
  lua_pop(L, 1);
  if (err)
    return err;
  if (lua_getfield(L, idx, "stdin") != LUA_TNIL) /* stdin */
    sp->stdin_data = pc_lua_to_text(h, -1, &sp->stdin_len);
  lua_pop(L, 1);
  sp->output = OUTPUT_LOG;
  if (lua_getfield(L, idx, "output") == LUA_TSTRING) { /* output (a constant, checked at load) */
    int m = output_mode_of(lua_tostring(L, -1));
    if (m >= 0)
      sp->output = (enum output_mode)m;
  }
  lua_pop(L, 1);
  return NULL;
}

/* ------------------------------------------------------------ results */

/* The result's fields, in the shape pacer.exec returns too. */
static void set_result(lua_State *L, int ref, const struct pc_proc_result *r, bool finished)
{
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref); /* result */
  pc_exec_result_fill(L, -1, r, finished);
  lua_pop(L, 1);
}

static void on_exec_done(void *data, const struct pc_proc_result *r)
{
  struct pc_attempt *a = data;
  a->data = NULL;
  set_result(pc_lua_state(pc_run_lua(a->run)), a->result_ref, r, true);
  a->exit_code = r->exit_code;
  pc_attempt_done(a, PC_FAIL_NONE, NULL);
}

/* argv as one line for the debug log, quoting what a shell would split.
 * Each argument is redacted before it is quoted: quoting first would split
 * a secret holding a ' into pieces ('\'') that the redaction of the whole
 * log line no longer recognises. */
static void describe_argv(struct pc_buf *b, char *const *argv)
{
  for (size_t i = 0; argv[i]; i++) {
    char *red = pc_redact(argv[i], strlen(argv[i]), NULL);
    const char *s = red;
    bool plain = *s != '\0';
    for (const char *q = s; *q && plain; q++)
      plain = strchr(" \t\n'\"\\$`*?[]{}()<>|&;#~", *q) == NULL;
    if (i)
      pc_buf_puts(b, " ");
    if (plain) {
      pc_buf_puts(b, s);
      free(red);
      continue;
    }
    pc_buf_puts(b, "'");
    for (const char *q = s; *q; q++) {
      if (*q == '\'')
        pc_buf_puts(b, "'\\''");
      else
        pc_buf_append(b, q, 1);
    }
    pc_buf_puts(b, "'");
    free(red);
  }
}

/* A traced run (it joined a CI job's trace, or exports its spans) hands
 * the program TRACEPARENT, naming the attempt's span as the parent of
 * whatever the program traces; the step's own env: TRACEPARENT wins. */
static void add_traceparent(struct pc_attempt *a, struct exec_spec *sp)
{
  char tp[PC_TRACEPARENT_SIZE];
  for (size_t i = 0; i < sp->nenv; i++)
    if (strncmp(sp->env[i], "TRACEPARENT=", 12) == 0)
      return;
  if (!pc_run_traced(a->run) || !pc_attempt_traceparent(a, tp))
    return;
  sp->env = pc_xrealloc(sp->env, (sp->nenv + 2) * sizeof *sp->env);
  sp->env[sp->nenv++] = pc_asprintf("TRACEPARENT=%s", tp);
  sp->env[sp->nenv] = NULL;
}

static void start(struct pc_attempt *a, bool shell)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  struct exec_spec sp;
  memset(&sp, 0, sizeof sp);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
  char *err = parse_params(h, lua_gettop(L), a->step->params, shell, &sp);
  lua_pop(L, 1);
  if (!err && sp.cwd) {
    struct stat sb;
    if (stat(sp.cwd, &sb) != 0)
      err = pc_asprintf("cwd \"%s\": %s", sp.cwd, uv_strerror(-errno));
    else if (!S_ISDIR(sb.st_mode))
      err = pc_asprintf("cwd \"%s\": not a directory", sp.cwd);
  }
  if (err) {
    spec_free(&sp);
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  add_traceparent(a, &sp);
  char *label = pc_attempt_label(a);
  struct pc_proc_opts o = {
      .argv = (const char *const *)sp.argv,
      .env = (const char *const *)sp.env,
      .cwd = sp.cwd,
      .stdin_data = sp.stdin_data,
      .stdin_len = sp.stdin_len,
      .label = label,
      .quiet = sp.output != OUTPUT_LOG,
  };
  struct pc_proc *p = NULL;
  int rc = pc_proc_spawn(pc_proc_set_of(a->run), &o, on_exec_done, a, &p);
  if (rc) {
    char *m = pc_asprintf("cannot start \"%s\": %s", sp.argv[0], uv_strerror(rc));
    pc_attempt_done(a, PC_FAIL_ERROR, m);
    free(m);
  } else {
    a->data = p;
    if (pc_log_enabled(PC_LOG_DEBUG)) {
      struct pc_buf b;
      pc_buf_init(&b, 8192);
      describe_argv(&b, sp.argv);
      pc_log(PC_LOG_DEBUG, label, "pid %d: %s", pc_proc_pid(p), b.data);
      pc_buf_free(&b);
    }
  }
  free(label);
  spec_free(&sp);
}

static void exec_start(struct pc_attempt *a)
{
  start(a, false);
}

static void shell_start(struct pc_attempt *a)
{
  start(a, true);
}

static void exec_cancel(struct pc_attempt *a)
{
  struct pc_proc *p = a->data;
  if (!p)
    return;
  a->data = NULL;
  /* Keep what it printed so far: steps.ID.stdout after a timeout. */
  if (a->result_ref != LUA_NOREF) {
    struct pc_proc_result r;
    pc_proc_peek(p, &r);
    set_result(pc_lua_state(pc_run_lua(a->run)), a->result_ref, &r, false);
  }
  pc_proc_cancel(p);
}

/* Appends the last ~200 bytes of `text` on one line. The whole text is
 * redacted first: cutting or joining lines first would leave a secret split
 * at the cut, or split over lines now joined, that no longer matches. */
static void append_tail(struct pc_buf *b, const char *text, size_t text_len)
{
  size_t len;
  char *red = pc_redact(text, text_len, &len);
  const char *s = red;
  while (len > 0 && strchr(" \t\r\n", s[len - 1]))
    len--;
  size_t from = len > 200 ? len - 200 : 0;
  while (from > 0 && from < len && ((unsigned char)s[from] & 0xC0) == 0x80)
    from++; /* start on a UTF-8 boundary */
  if (from > 0)
    pc_buf_puts(b, "...");
  bool sep = false;
  for (size_t i = from; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\n') {
      sep = true;
      continue;
    }
    if (sep) {
      pc_buf_puts(b, " | ");
      sep = false;
    }
    if (ch == '\r')
      continue;
    char c = ch == '\t' ? ' ' : (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    pc_buf_append(b, &c, 1);
  }
  free(red);
}

/* output: on_failure -- the last ON_FAILURE_LINES lines of each stream,
 * redacted, one per line under the message ("  stdout | ..."). */
#define ON_FAILURE_LINES 20
static void append_lines(struct pc_buf *b, const char *name, const char *text, size_t text_len)
{
  size_t len;
  char *red = pc_redact(text, text_len, &len);
  while (len > 0 && strchr(" \t\r\n", red[len - 1]))
    len--;
  size_t from = len, lines = 0;
  while (from > 0 && lines < ON_FAILURE_LINES) {
    from--;
    if (red[from] == '\n' && ++lines == ON_FAILURE_LINES) {
      from++;
      break;
    }
  }
  if (from > 0)
    pc_buf_printf(b, "\n  %s | ...", name);
  for (size_t i = from; i < len;) {
    const char *nl = memchr(red + i, '\n', len - i);
    size_t n = nl ? (size_t)(nl - (red + i)) : len - i;
    if (n > 0 && red[i + n - 1] == '\r')
      n--;
    pc_buf_printf(b, "\n  %s | %.*s", name, (int)(n > PC_PROC_LINE_MAX ? PC_PROC_LINE_MAX : n),
                  red + i);
    i += (nl ? (size_t)(nl - (red + i)) + 1 : len - i);
  }
  free(red);
}

static void exec_describe(struct pc_attempt *a, struct pc_buf *out)
{
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  if (a->result_ref == LUA_NOREF)
    return;
  bool on_failure = false;
  if (a->params_ref != LUA_NOREF) { /* still held while the engine describes */
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
    if (lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, "output") == LUA_TSTRING)
      on_failure = strcmp(lua_tostring(L, -1), "on_failure") == 0;
    lua_settop(L, top);
  }
  if (on_failure) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
    if (lua_getfield(L, -1, "signal") == LUA_TSTRING)
      pc_buf_printf(out, "; killed by %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    static const char *const both[] = {"stdout", "stderr"};
    for (size_t i = 0; i < 2; i++) {
      size_t len = 0;
      if (lua_getfield(L, -1, both[i]) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, -1, &len);
        append_lines(out, both[i], s, len);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  if (lua_getfield(L, -1, "signal") == LUA_TSTRING) /* result, signal */
    pc_buf_printf(out, "; killed by %s", lua_tostring(L, -1));
  lua_pop(L, 1);
  static const char *const fields[] = {"stderr", "stdout"};
  for (size_t i = 0; i < 2; i++) {
    size_t len = 0;
    const char *s = NULL;
    if (lua_getfield(L, -1, fields[i]) == LUA_TSTRING) /* result, text */
      s = lua_tolstring(L, -1, &len);
    size_t n = len;
    while (s && n > 0 && strchr(" \t\r\n", s[n - 1]))
      n--;
    if (n > 0) {
      pc_buf_printf(out, "; %s: ", fields[i]);
      append_tail(out, s, len);
      lua_pop(L, 1);
      break;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

#define PC_ON_DEFAULT_LOCAL (PC_ON_ERROR | PC_ON_TIMEOUT)

const struct pc_action_ops pc_exec_ops = {
    .key = "exec",
    .params = &exec_params,
    .start = exec_start,
    .cancel = exec_cancel,
    .describe = exec_describe,
    .hooks = &pc_proc_run_hooks, /* the run's process set, shared with shell and pacer.exec */
    .default_on = PC_ON_DEFAULT_LOCAL,
    .has_exit_code = true,
    .fills_result = true,
    .params_only = true,
};

const struct pc_action_ops pc_shell_ops = {
    .key = "shell",
    .params = &shell_params,
    .start = shell_start,
    .cancel = exec_cancel,
    .describe = exec_describe,
    .hooks = &pc_proc_run_hooks,
    .default_on = PC_ON_DEFAULT_LOCAL,
    .has_exit_code = true,
    .fills_result = true,
    .params_only = true,
};
