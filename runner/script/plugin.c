/* plugin.c: the `uses:` and `lua:` actions, plugin discovery, the load-time
 * checks and `pacer plugins`.
 *
 * Everything about a step's Lua is prepared when the file loads, so
 * `pacer validate` catches it: each `uses` step's plugin is found, loaded
 * (its top level runs once, in its own sandbox environment, under a CPU and
 * memory guard) and its `with` checked against the plugin's `inputs`; each
 * inline `lua:` block is compiled. The results live in a registry table
 * keyed by the step (a light userdata): the plugin entry {spec, name, path}
 * for `uses`, the compiled function for `lua:`. Running an attempt then
 * only evaluates `with`, builds `ctx` and starts the function as the root
 * of a job of the coroutine runtime (coro.h), resumed from the run's
 * deferred queue. */
#include "script/plugin.h"

#include "actions/flow.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

#include "model/outcome.h"
#include "base/log.h"
#include "script/coro.h"
#include "script/pacermod.h"
#include "base/util.h"

#define PLUGIN_MAX_BYTES ((size_t)4 << 20)
#define PLUGIN_LOAD_LIMIT_MS 2000.0
/* Bound on the host's own calls that may reach plugin code (checking and
 * preparing inputs, which may read values plugin code made). */
#define CALL_LIMIT_MS 1000.0
#define CALL_TOO_LONG "checking the plugin's inputs took more than 1000 ms"
#define NAME_MAX_LEN 64

static const char STEPS_KEY = 'p'; /* registry: step -> entry or function */
static const char FILES_KEY = 'f'; /* registry: path -> loaded plugin spec */

/* ------------------------------------------------------------ discovery */

static bool valid_name(const char *s, size_t len)
{
  if (len == 0 || len > NAME_MAX_LEN)
    return false;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

/* The search path, in order: plugins/ beside the workflow, then the load
 * options' directories (--plugins, then PACER_PLUGIN_PATH, then the
 * plugins bundled with pacer, found relative to its binary: the command
 * line gathers them). Returns a malloc'd array of malloc'd strings. */
static char **search_dirs(const char *workflow_file, const struct pc_load_opts *opts, size_t *n)
{
  size_t nopt = opts ? opts->nplugin_dirs : 0, cnt = 0;
  char **v = pc_xcalloc(nopt + 1, sizeof *v);
  if (workflow_file) {
    const char *slash = strrchr(workflow_file, '/');
    v[cnt++] = slash ? pc_asprintf("%.*s/plugins", (int)(slash - workflow_file), workflow_file)
                     : pc_xstrdup("plugins");
  }
  for (size_t i = 0; i < nopt; i++)
    v[cnt++] = pc_xstrdup(opts->plugin_dirs[i]);
  *n = cnt;
  return v;
}

static void free_dirs(char **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static bool is_file(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Finds NAME.lua. Returns the malloc'd path, or NULL with *looked set to
 * the directories searched (malloc'd). */
static char *find_plugin(const char *workflow_file, const struct pc_load_opts *opts,
                         const char *name, char **looked)
{
  size_t n;
  char **dirs = search_dirs(workflow_file, opts, &n);
  char *found = NULL;
  struct pc_buf b;
  pc_buf_init(&b, 1 << 16);
  for (size_t i = 0; i < n && !found; i++) {
    char *p = pc_asprintf("%s/%s.lua", dirs[i], name);
    if (is_file(p))
      found = p;
    else
      free(p);
    pc_buf_printf(&b, "%s%s", i ? ", " : "", dirs[i]);
  }
  free_dirs(dirs, n);
  if (found)
    pc_buf_free(&b);
  else
    *looked = pc_buf_steal(&b);
  return found;
}

/* Pushes the spec of the plugin at `path`, loading it once per state.
 * Returns 0, or -1 with *err set and nothing pushed. */
static int load_plugin(struct pc_lua *h, const char *path, char **err)
{
  lua_State *L = pc_lua_state(h);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &FILES_KEY); /* files */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &FILES_KEY);
  }
  if (lua_getfield(L, -1, path) != LUA_TNIL) { /* files, spec */
    lua_remove(L, -2);
    return 0;
  }
  lua_pop(L, 1); /* files */
  char *text = NULL;
  size_t len = 0;
  int rc = pc_read_file(path, PLUGIN_MAX_BYTES, &text, &len);
  if (rc) {
    *err = pc_asprintf("cannot read %s: %s", path,
                       rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
    lua_pop(L, 1);
    return -1;
  }
  pc_pacer_push(h, "load_plugin");   /* files, load_plugin */
  lua_pushstring(L, path);           /* files, load_plugin, path */
  lua_pushlstring(L, text, len);     /* files, load_plugin, path, text */
  free(text);
  if (pc_pacer_call(h, 2, 1, PLUGIN_LOAD_LIMIT_MS, "the plugin file ran too long while loading",
                    err) != 0) { /* files */
    lua_pop(L, 1);
    return -1;
  }
  lua_pushvalue(L, -1);              /* files, spec, spec */
  lua_setfield(L, -3, path);         /* files, spec */
  lua_remove(L, -2);                 /* spec */
  return 0;
}

/* ---------------------------------------------------------- load checks */

struct check {
  struct pc_lua *h;
  lua_State *L;
  struct pc_workflow *wf;
  const struct pc_load_opts *opts; /* borrowed; may be NULL */
  struct pc_diag *d;
  int steps; /* absolute index of the registry steps table */
  int rc;
};

/* The 1-based column of the first non-blank character on file line `line`
 * of a `lua:` step's code, found from the step's node (the file is not
 * read again). In a block scalar (| or >) the text's line k is written on
 * file line body_line + k, indented to the block's column plus the blanks
 * the code line itself starts with. A line the text does not reach (Lua's
 * "<eof>" after the last one), a blank one, or a scalar that is not a
 * block (its lines are not the file's) gets the code's first column. */
static int code_col(const struct pc_step *st, int line)
{
  const struct pc_tmpl *t = st->params;
  const struct pc_node *n = st->node ? pc_node_get(st->node, "lua") : NULL;
  if (n == NULL || n->kind != PC_NODE_SCALAR || n->body_line == n->line || line < n->body_line)
    return t->col;
  const char *s = n->str, *end = n->str + n->len;
  /* The block's own column: body_col is where its first non-blank line
   * starts, after the spaces that line's text begins with. */
  const char *p = s;
  while (p < end && *p == '\n')
    p++;
  int base = n->body_col;
  while (p < end && *p == ' ') {
    p++;
    base--;
  }
  p = s;
  for (int l = n->body_line; l < line && p < end; l++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  int col = base;
  while (p < end && (*p == ' ' || *p == '\t')) {
    p++;
    col++;
  }
  return p < end && *p != '\n' ? col : base;
}

static int cmp_cstr(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The workflow file a `uses:` value names: a path (with a slash)
 * relative to the calling file's folder, or NAME.yml on the plugin path.
 * Returns the malloc'd path, or NULL after reporting. */
static char *find_flow(struct check *c, const struct pc_step *st, int ul, int uc)
{
  const char *file = c->wf->file;
  if (strchr(st->uses, '/')) {
    const char *slash = strrchr(file, '/');
    const char *rel = st->uses;
    while (rel[0] == '.' && rel[1] == '/') /* "./flows/x.yml": "dir/flows/x.yml" */
      rel += 2;
    char *p = st->uses[0] == '/' || !slash
                  ? pc_xstrdup(st->uses)
                  : pc_asprintf("%.*s/%s", (int)(slash - file), file, rel);
    if (is_file(p))
      return p;
    pc_diag_add(c->d, file, ul, uc, "uses: no workflow file %s (looked for %s)", st->uses, p);
    free(p);
    return NULL;
  }
  size_t stem = strlen(st->uses) - (strrchr(st->uses, '.') ? strlen(strrchr(st->uses, '.')) : 0);
  if (!valid_name(st->uses, stem)) {
    pc_diag_add(c->d, file, ul, uc, "uses: invalid workflow file name \"%s\": a name is "
                "letters, digits, _ and - (NAME.yml in a plugin directory), or a path with a "
                "slash (./flows/NAME.yml, relative to this file)", st->uses);
    return NULL;
  }
  size_t n;
  char **dirs = search_dirs(file, c->opts, &n);
  char *found = NULL;
  struct pc_buf b;
  pc_buf_init(&b, 1 << 16);
  for (size_t i = 0; i < n && !found; i++) {
    char *p = pc_asprintf("%s/%s", dirs[i], st->uses);
    if (is_file(p))
      found = p;
    else
      free(p);
    pc_buf_printf(&b, "%s%s", i ? ", " : "", dirs[i]);
  }
  if (!found)
    pc_diag_add(c->d, file, ul, uc, "uses: no workflow file named \"%s\" (looked in: %s; a "
                "path relative to this file starts with ./)", st->uses, b.data ? b.data : "");
  pc_buf_free(&b);
  free_dirs(dirs, n);
  return found;
}

static void check_uses(struct check *c, struct pc_step *st)
{
  lua_State *L = c->L;
  const char *file = c->wf->file;
  const struct pc_node *map = st->node;
  const struct pc_node *uses = map ? pc_node_get(map, "uses") : NULL;
  int ul = uses ? uses->line : st->line, uc = uses ? uses->col : st->col;
  bool flow = pc_flow_is_file(st->uses);
  const char *kind = flow ? "flow" : "plugin";
  char *path = NULL;
  if (flow) {
    if (!(path = find_flow(c, st, ul, uc)) ||
        pc_flow_load(c->h, c->wf, st, path, ul, uc, c->opts, c->d) != 0) {
      free(path);
      c->rc = -1;
      return;
    }
  } else {
  /* The node's length, not strlen: "a\0../x" must not pass as "a". */
  size_t ulen = uses && uses->kind == PC_NODE_SCALAR ? uses->len : strlen(st->uses);
  if (!valid_name(st->uses, ulen) || strlen(st->uses) != ulen) {
    struct pc_buf shown; /* the name, NUL bytes spelled \0 */
    pc_buf_init(&shown, 4096);
    const char *raw = uses && uses->kind == PC_NODE_SCALAR ? uses->str : st->uses;
    for (size_t i = 0; i < ulen; i++)
      pc_buf_append(&shown, raw[i] ? &raw[i] : "\\0", raw[i] ? 1 : 2);
    pc_diag_add(c->d, file, ul, uc,
                "uses: invalid plugin name \"%s\": a name is letters, digits, _ and - (the "
                "file NAME.lua in a plugin directory)", shown.data ? shown.data : "");
    pc_buf_free(&shown);
    c->rc = -1;
    return;
  }
  char *looked = NULL;
  path = find_plugin(file, c->opts, st->uses, &looked);
  if (!path) {
    pc_diag_add(c->d, file, ul, uc, "uses: no plugin named \"%s\" (looked for %s.lua in: %s)",
                st->uses, st->uses, looked);
    free(looked);
    c->rc = -1;
    return;
  }
  char *err = NULL;
  if (load_plugin(c->h, path, &err) != 0) {
    pc_diag_add(c->d, file, ul, uc, "uses: plugin \"%s\" failed to load: %s", st->uses, err);
    free(err);
    free(path);
    c->rc = -1;
    return;
  }
  }
  int spec = lua_gettop(L);                 /* spec */
  lua_getfield(L, spec, "inputs");          /* spec, inputs */
  int inputs = lua_gettop(L);

  /* Every key of `with` must be an input; static values must fit it. */
  const struct pc_node *with = map ? pc_node_get(map, "with") : NULL;
  const struct pc_tmpl *wt = st->with;
  size_t nwith = wt && wt->kind == PC_T_MAP ? wt->u.coll.n : 0;
  for (size_t i = 0; i < nwith; i++) {
    const char *key = wt->u.coll.keys[i];
    const struct pc_tmpl *val = wt->u.coll.items[i];
    const struct pc_node *knode = with && with->kind == PC_NODE_MAP && i < with->n
                                      ? with->keys[i] : NULL;
    int kl = knode ? knode->line : ul, kc = knode ? knode->col : uc;
    if (lua_getfield(L, inputs, key) == LUA_TNIL) { /* spec, inputs, def */
      /* A hint: the closest input name, and the whole list. */
      const char *names[64];
      size_t nn = 0;
      struct pc_buf all;
      pc_buf_init(&all, 4096);
      lua_pushnil(L);
      while (lua_next(L, inputs)) { /* ..., name, def */
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && nn < PC_ARRAY_SIZE(names)) {
          names[nn++] = lua_tostring(L, -1); /* a key of inputs: stays alive */
        }
      }
      qsort(names, nn, sizeof *names, cmp_cstr);
      for (size_t k = 0; k < nn; k++)
        pc_buf_printf(&all, "%s%s", k ? ", " : "", names[k]);
      const char *hint = pc_did_you_mean(key, names, nn);
      if (hint)
        pc_diag_add(c->d, file, kl, kc,
                    "with: %s \"%s\" has no input \"%s\" (did you mean \"%s\"?)", kind,
                    st->uses, key, hint);
      else
        pc_diag_add(c->d, file, kl, kc, "with: %s \"%s\" has no input \"%s\" (inputs: %s)",
                    kind, st->uses, key, nn ? all.data : "none");
      pc_buf_free(&all);
      c->rc = -1;
    } else if (!val->has_expr) {
      int def = lua_gettop(L);
      pc_pacer_push(c->h, "check_input"); /* ..., def, check */
      lua_pushstring(L, key);
      lua_pushvalue(L, def);
      char *e2 = NULL;
      if (pc_lua_eval_tmpl(c->h, val, LUA_NOREF, &e2) != 0) { /* constants only */
        free(e2);
        lua_pushnil(L);
      }
      if (pc_pacer_call(c->h, 3, 1, CALL_LIMIT_MS, CALL_TOO_LONG, &e2) != 0) {
        pc_diag_add(c->d, file, val->line, val->col, "with: %s (%s \"%s\")", e2, kind,
                    st->uses);
        free(e2);
        c->rc = -1;
      } else {
        if (lua_type(L, -1) == LUA_TSTRING) {
          pc_diag_add(c->d, file, val->line, val->col, "with: %s (%s \"%s\")",
                      lua_tostring(L, -1), kind, st->uses);
          c->rc = -1;
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1); /* spec, inputs */
  }

  /* Required inputs without a default must be given. */
  lua_pushnil(L);
  while (lua_next(L, inputs)) { /* spec, inputs, name, def */
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
      const char *name = lua_tostring(L, -2);
      lua_getfield(L, -1, "required");
      bool required = lua_toboolean(L, -1);
      lua_getfield(L, -2, "default");
      bool has_default = !lua_isnil(L, -1);
      lua_pop(L, 2);
      if (required && !has_default && !pc_tmpl_get(wt, name)) {
        pc_diag_add(c->d, file, ul, uc, "uses: %s \"%s\" needs input \"%s\" (add it under with:)",
                    kind, st->uses, name);
        c->rc = -1;
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1); /* spec */

  lua_createtable(L, 0, 3);        /* spec, entry */
  lua_insert(L, -2);               /* entry, spec */
  lua_setfield(L, -2, "spec");     /* entry */
  lua_pushstring(L, st->uses);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  lua_rawsetp(L, c->steps, st);    /* (steps[st] = entry) */
  free(path);
}

/* Compiles inline code as the body of a function whose first line declares
 * its parameters; blank lines put the code on the same line numbers as in
 * the workflow file, so Lua's messages and tracebacks point into the file. */
static void compile_inline(struct check *c, const struct pc_step *st)
{
  lua_State *L = c->L;
  const struct pc_tmpl *t = st->params;
  if (!t || t->kind != PC_T_STR)
    return;
  struct pc_buf b;
  pc_buf_init(&b, (size_t)16 << 20);
  pc_pacer_push(c->h, "inline_prologue");
  pc_buf_puts(&b, lua_tostring(L, -1));
  lua_pop(L, 1);
  for (int i = 1; i < t->line; i++)
    pc_buf_puts(&b, "\n");
  pc_buf_append(&b, t->u.str.s, t->u.str.len);
  char *chunkname = pc_asprintf("@%s", c->wf->file);
  int rc = luaL_loadbuffer(L, b.data, b.len, chunkname);
  pc_buf_free(&b);
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    int line = t->line;
    size_t plen = strlen(c->wf->file);
    /* "FILE:LINE: message" */
    if (msg && strncmp(msg, c->wf->file, plen) == 0 && msg[plen] == ':') {
      char *end;
      long l = strtol(msg + plen + 1, &end, 10);
      if (end != msg + plen + 1 && *end == ':') {
        line = (int)l;
        msg = end + 1;
        while (*msg == ' ')
          msg++;
      }
    }
    int col = line == t->line ? t->col : code_col(st, line);
    pc_diag_add(c->d, c->wf->file, line, col, "lua: syntax error: %s", msg ? msg : "?");
    lua_pop(L, 1);
    c->rc = -1;
    free(chunkname);
    return;
  }
  free(chunkname);
  /* Its globals: a sandbox environment of its own (shared by the step's
   * attempts and fan-out items). */
  pc_pacer_push(c->h, "new_env");  /* fn, new_env */
  lua_call(L, 0, 1);               /* fn, env */
  lua_setupvalue(L, -2, 1);        /* fn */
  lua_rawsetp(L, c->steps, st);
}

/* Inline code in batches. compile_inline gives each block its file line
 * numbers with newlines before the code: as many newlines as the block's
 * line number, which for a file with many `lua:` steps is quadratic (40 000
 * one-line blocks: 14 s). So the blocks that compile on their own (cheap:
 * no padding) share chunks, in file order, each block padded only up to
 * its line from where the previous one ended:
 *
 *   return { function(_ENV) return function(...) local vars, ... = ...; CODE
 *   end end,  (newlines up to the next block)
 *   function(_ENV) return function(...) local vars, ... = ...; CODE2
 *   end end, ... }
 *
 * Running the chunk runs no workflow code: it makes, per block, a maker
 * that closes the step's function over the sandbox environment it is
 * given. A block that compiles alone is a complete function body, so in a
 * shared chunk it cannot end its own function early or reach another's; a
 * block that does not compile goes through compile_inline, whose padded
 * chunk reports the error at its exact line. The rare block that cannot be
 * placed at its own line (a quoted scalar whose escaped newlines make it
 * longer than it is in the file, followed on the next line by another
 * block) starts where the previous one ended; its line numbers were not the
 * file's anyway. */
#define INLINE_BATCH 1000

struct inline_block {
  const struct pc_step *st;
  size_t order; /* in walk order: keeps the sort stable */
};

static int cmp_inline_block(const void *pa, const void *pb)
{
  const struct inline_block *a = pa, *b = pb;
  int la = a->st->params->line, lb = b->st->params->line;
  if (la != lb)
    return la < lb ? -1 : 1;
  return (a->order > b->order) - (a->order < b->order);
}

/* Lines the code spans beyond its first, counted as Lua's lexer does
 * (\n, \r, \r\n and \n\r each end one line). */
static int extra_lines(const char *s, size_t len)
{
  int n = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '\n' && s[i] != '\r')
      continue;
    if (i + 1 < len && (s[i + 1] == '\n' || s[i + 1] == '\r') && s[i + 1] != s[i])
      i++;
    n++;
  }
  return n;
}

static void compile_batch(struct check *c, const struct inline_block *blocks, size_t n,
                          const char *prologue)
{
  lua_State *L = c->L;
  struct pc_buf b;
  pc_buf_init(&b, (size_t)256 << 20);
  pc_buf_puts(&b, "return {");
  int line = 1; /* the line the chunk text has reached */
  for (size_t i = 0; i < n; i++) {
    const struct pc_tmpl *t = blocks[i].st->params;
    for (; line < t->line; line++)
      pc_buf_append(&b, "\n", 1);
    pc_buf_puts(&b, "function(_ENV) return function(...) ");
    pc_buf_puts(&b, prologue);
    pc_buf_append(&b, t->u.str.s, t->u.str.len);
    pc_buf_puts(&b, "\nend end,");
    line += extra_lines(t->u.str.s, t->u.str.len) + 1;
  }
  pc_buf_puts(&b, "}");
  char *chunkname = pc_asprintf("@%s", c->wf->file);
  int rc = luaL_loadbuffer(L, b.data ? b.data : "", b.len, chunkname); /* chunk */
  free(chunkname);
  pc_buf_free(&b);
  if (rc == LUA_OK)
    rc = lua_pcall(L, 0, 1, 0); /* makers (no workflow code runs) */
  if (rc != LUA_OK) {
    /* Cannot happen for blocks that compile alone; be exact anyway. */
    lua_pop(L, 1);
    for (size_t i = 0; i < n; i++)
      compile_inline(c, blocks[i].st);
    return;
  }
  int makers = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, makers, (lua_Integer)i + 1); /* makers, maker */
    pc_pacer_push(c->h, "new_env");             /* makers, maker, new_env */
    lua_call(L, 0, 1);                          /* makers, maker, env */
    lua_call(L, 1, 1);                          /* makers, fn */
    lua_rawsetp(L, c->steps, blocks[i].st);     /* makers */
  }
  lua_pop(L, 1);
}

static void collect_inline(struct pc_step *const *steps, size_t n, struct inline_block **out,
                           size_t *nout, size_t *cap)
{
  for (size_t i = 0; i < n; i++) {
    const struct pc_step *st = steps[i];
    if (st->ops == &pc_lua_ops && st->params && st->params->kind == PC_T_STR) {
      if (*nout == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *out = pc_xrealloc(*out, *cap * sizeof **out);
      }
      (*out)[*nout] = (struct inline_block){st, *nout};
      (*nout)++;
    }
    collect_inline(st->children, st->nchildren, out, nout, cap);
  }
}

static void compile_all_inline(struct check *c)
{
  lua_State *L = c->L;
  struct inline_block *blocks = NULL;
  size_t n = 0, cap = 0;
  collect_inline(c->wf->steps, c->wf->nsteps, &blocks, &n, &cap);
  collect_inline(c->wf->finally, c->wf->nfinally, &blocks, &n, &cap);
  if (n == 0)
    return;
  pc_pacer_push(c->h, "inline_prologue"); /* prologue */
  size_t plen;
  const char *prologue = lua_tolstring(L, -1, &plen);
  struct pc_buf b;
  pc_buf_init(&b, (size_t)16 << 20);
  size_t good = 0;
  for (size_t i = 0; i < n; i++) {
    const struct pc_tmpl *t = blocks[i].st->params;
    b.len = 0;
    pc_buf_append(&b, prologue, plen);
    pc_buf_append(&b, t->u.str.s, t->u.str.len);
    if (luaL_loadbuffer(L, b.data, b.len, "=lua") == LUA_OK) { /* prologue, fn */
      blocks[good++] = blocks[i];
    } else if (pc_diag_full(c->d)) { /* counted, without the exact position */
      pc_diag_add(c->d, c->wf->file, t->line, t->col, "lua: syntax error");
      c->rc = -1;
    } else {
      compile_inline(c, blocks[i].st);
    }
    lua_pop(L, 1); /* prologue */
  }
  pc_buf_free(&b);
  qsort(blocks, good, sizeof *blocks, cmp_inline_block);
  for (size_t i = 0; i < good; i += INLINE_BATCH)
    compile_batch(c, blocks + i, good - i < INLINE_BATCH ? good - i : INLINE_BATCH, prologue);
  lua_pop(L, 1);
  free(blocks);
}

static void walk(struct check *c, struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    struct pc_step *st = steps[i];
    if (st->ops == &pc_uses_ops && st->uses)
      check_uses(c, st);
    walk(c, st->children, st->nchildren);
  }
}

/* Whether any of the steps (or their children) is `uses:` or `lua:`. */
static bool has_lua(struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (steps[i]->ops == &pc_uses_ops || steps[i]->ops == &pc_lua_ops ||
        has_lua(steps[i]->children, steps[i]->nchildren))
      return true;
  return false;
}

int pc_plugins_check(struct pc_lua *h, struct pc_workflow *wf, const struct pc_load_opts *opts,
                     struct pc_diag *d)
{
  if (!has_lua(wf->steps, wf->nsteps) && !has_lua(wf->finally, wf->nfinally))
    return 0;
  char *err = NULL;
  if (pc_pacer_open(h, &err) != 0) {
    pc_diag_add(d, wf->file, 0, 0, "%s", err);
    free(err);
    return -1;
  }
  lua_State *L = pc_lua_state(h);
  struct check c = {.h = h, .L = L, .wf = wf, .opts = opts, .d = d};
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STEPS_KEY);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &STEPS_KEY);
  }
  c.steps = lua_gettop(L);
  walk(&c, wf->steps, wf->nsteps);
  walk(&c, wf->finally, wf->nfinally);
  compile_all_inline(&c);
  lua_settop(L, c.steps - 1);
  return c.rc;
}

/* ------------------------------------------------------------- actions */

/* Pushes steps[st] (the plugin entry or the inline function). */
static void push_step_entry(lua_State *L, const struct pc_step *st)
{
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STEPS_KEY); /* steps */
  if (lua_isnil(L, -1))
    return;
  lua_rawgetp(L, -1, st);                        /* steps, entry */
  lua_remove(L, -2);                             /* entry */
}

/* ------------------------------------------------------------ the job */

static void run_defer(void *run, struct pc_deferred *d, void (*cb)(struct pc_deferred *d))
{
  pc_run_defer(run, d, cb);
}

static void run_defer_cancel(void *run, struct pc_deferred *d)
{
  pc_run_defer_cancel(run, d);
}

/* The root returned: its value (on top of the stack) becomes the result's
 * `value`. */
static void on_job_returned(void *data)
{
  struct pc_attempt *a = data;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* v, result */
  pc_lua_push_prelude(h, "unwrap");                  /* v, result, unwrap */
  lua_pushvalue(L, -3);                              /* v, result, unwrap, v */
  lua_call(L, 1, 1);                                 /* v, result, value */
  lua_setfield(L, -2, "value");                      /* v, result */
  lua_pop(L, 1);                                     /* v */
}

static void on_job_done(void *data, enum pc_fail fail, const char *msg)
{
  struct pc_attempt *a = data;
  a->data = NULL;
  pc_attempt_done(a, fail, msg);
}

/* Starts the function below `nargs` arguments on the stack (popped) as
 * the attempt's job, with the step's deadline: its timeout, or the
 * workflow's if that comes first. */
static void start_job(struct pc_attempt *a, int nargs)
{
  struct pc_coro_job_opts o = {
      .sched = {.loop = pc_run_loop(a->run), .defer = run_defer,
                .defer_cancel = run_defer_cancel, .ctx = a->run},
      .deadline = INFINITY,
      .run = a->run,
      .scope_ref = a->scope_ref,
      .returned = on_job_returned,
      .done = on_job_done,
      .data = a,
  };
  double now = pc_mono_ms();
  if (a->step->timeout_ms >= 0) {
    o.deadline = now + a->step->timeout_ms;
    o.timeout_ms = a->step->timeout_ms;
  }
  double run_deadline = pc_run_deadline_ms(a->run);
  if (run_deadline < o.deadline) {
    o.deadline = run_deadline;
    o.timeout_ms = run_deadline - pc_run_started_ms(a->run);
  }
  o.label = pc_attempt_label(a);
  a->data = pc_coro_job_start(pc_run_lua(a->run), &o, nargs);
}

/* The attempt fails before its code starts: the stack back to `top`, and
 * `prefix: what` as the message. */
static void start_failed(struct pc_attempt *a, lua_State *L, int top, const char *prefix,
                         const char *what)
{
  lua_settop(L, top);
  char *m = pc_asprintf("%s: %s", prefix, what ? what : "?");
  pc_attempt_done(a, PC_FAIL_ERROR, m);
  free(m);
}

static void flow_start(struct pc_attempt *a);

static void uses_start(struct pc_attempt *a)
{
  if (a->step->sub) {
    flow_start(a);
    return;
  }
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  const struct pc_step *st = a->step;
  int top = lua_gettop(L);
  push_step_entry(L, st);                 /* entry */
  if (!lua_istable(L, -1)) {
    start_failed(a, L, top, "uses", "the plugin was not loaded (internal error)");
    return;
  }
  int entry = lua_gettop(L);
  pc_pacer_push(h, "prepare_run");        /* entry, prepare_run */
  lua_getfield(L, entry, "spec");         /* entry, prepare_run, spec */
  if (st->with) {
    char *werr = NULL;
    if (pc_lua_eval_tmpl(h, st->with, a->scope_ref, &werr) != 0) {
      start_failed(a, L, top, "with", werr);
      free(werr);
      return;
    }
  } else {
    lua_newtable(L);
  }                                       /* entry, prepare_run, spec, with */
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->scope_ref); /* ..., scope */
  lua_createtable(L, 0, 3);               /* ..., scope, step */
  if (st->id) {
    lua_pushstring(L, st->id);
    lua_setfield(L, -2, "id");
  }
  if (st->name) {
    lua_pushstring(L, st->name);
    lua_setfield(L, -2, "name");
  }
  lua_pushinteger(L, a->number);
  lua_setfield(L, -2, "attempt");
  lua_getfield(L, entry, "name");
  lua_getfield(L, entry, "path");         /* entry, prepare_run, spec, with, scope, step, name, path */
  char *err = NULL;                       /* plain data: see PC_LUA_HOST_CODE */
  if (pc_pacer_call(h, 6, 3, PC_LUA_HOST_CODE, NULL, &err) != 0 ||
      lua_isnil(L, -3)) {                 /* entry, run, with, ctx (or nil, msg, nil) */
    char *prefix = pc_asprintf("plugin \"%s\"", st->uses);
    char *msg = pc_xstrdup(err ? err : lua_tostring(L, -2) ? lua_tostring(L, -2) : "?");
    start_failed(a, L, top, prefix, msg);
    free(msg);
    free(prefix);
    free(err);
    return;
  }
  lua_remove(L, entry);                   /* run, with, ctx */
  start_job(a, 2);
  lua_settop(L, top);
}

static void inline_start(struct pc_attempt *a)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  int top = lua_gettop(L);
  push_step_entry(L, a->step);            /* fn */
  if (!lua_isfunction(L, -1)) {
    start_failed(a, L, top, "lua", "the code was not compiled (internal error)");
    return;
  }
  pc_pacer_push(h, "inline_args");        /* fn, inline_args */
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->scope_ref);
  char *err = NULL;               /* fn, vars, env, secrets, steps, item, index, pacer, inputs */
  if (pc_pacer_call(h, 1, 8, PC_LUA_HOST_CODE, NULL, &err) != 0) {
    start_failed(a, L, top, "lua", err);
    free(err);
    return;
  }
  start_job(a, 8);
  lua_settop(L, top);
}

static void lua_cancel(struct pc_attempt *a)
{
  pc_coro_job_cancel(a->data);
  a->data = NULL;
}

/* The parameter tables: the loader checks the value against them (the
 * plugin's name or the code), `pacer schema` writes definitions.uses and
 * .lua from them; the rest (finding the plugin, `with`, compiling the
 * code) is the load check below. */
static const struct pc_param lua_value = {
    .type = PC_PARAM_CODE, .expect = "Lua code (a string, usually a `|` block)",
    .got = PC_GOT_BARE_KIND};
static const struct pc_params lua_params = {
    .description = "Inline Lua run as a coroutine; what it returns is the step's `value`.",
    .value = &lua_value};
static const struct pc_param uses_value = {
    .type = PC_PARAM_NAME, .expect = "a plugin name or a workflow file", .got = PC_GOT_VALUE,
    .nul_kind = "a file name", .noun = "the plugin name"};
static const struct pc_params uses_params = {
    .description = "Run the Lua plugin NAME (plugins/NAME.lua beside the workflow, --plugins "
                   "dirs, PACER_PLUGIN_PATH, the installed plugins), or a workflow file as a "
                   "step (./PATH.yml relative to this file, or NAME.yml on the plugin path).",
    .value = &uses_value};

static void uses_cancel(struct pc_attempt *a)
{
  if (a->step->sub)
    pc_flow_cancel(a);
  else
    lua_cancel(a);
}

/* A workflow file run as a step: its spec (its inputs) to actions/flow.c,
 * which checks and completes `with` and starts its steps. */
static void flow_start(struct pc_attempt *a)
{
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  int top = lua_gettop(L);
  push_step_entry(L, a->step);            /* entry */
  if (!lua_istable(L, -1)) {
    start_failed(a, L, top, "uses", "the workflow file was not loaded (internal error)");
    return;
  }
  lua_getfield(L, -1, "spec");            /* entry, spec */
  lua_remove(L, -2);                      /* spec */
  pc_flow_start(a);                       /* (popped) */
  lua_settop(L, top);
}

/* `lua: CODE` keeps the code as a plain string template (no ${{ }}: the
 * code reads vars, steps, ... directly), positioned at its first line. */
static int inline_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  if (pc_load_params(c, "lua", &lua_params, v, NULL) != 0)
    return -1;
  struct pc_tmpl *t = pc_xcalloc(1, sizeof *t);
  t->kind = PC_T_STR;
  t->u.str.s = pc_xstrndup(v->str, v->len);
  t->u.str.len = v->len;
  /* A block scalar (| or >) starts on the line after its indicator. */
  t->line = v->body_line;
  t->col = v->body_col;
  st->params = t;
  return 0;
}

/* `uses: NAME`: the plugin's name (found and loaded by the load check),
 * and the step's `with`, the plugin's inputs (checked against them there). */
static int uses_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  if (pc_load_params(c, "uses", &uses_params, v, NULL) != 0)
    return -1;
  st->uses = pc_xstrndup(v->str, v->len);
  const struct pc_node *with = pc_node_get(st->node, "with");
  if (with != NULL && with->kind != PC_NODE_MAP) {
    pc_load_error(c, with, "with: expected a map of inputs, got %s", pc_node_describe(with).s);
    return -1;
  }
  if (with != NULL && !(st->with = pc_load_tmpl(c, with)))
    return -1;
  return 0;
}

static const char *const uses_step_keys[] = {"with", NULL};

/* Both share one load check (pc_plugins_check), which pc_load runs once;
 * their code sees `steps` whole. */
const struct pc_action_ops pc_uses_ops = {
    .key = "uses", .load = uses_load, .params = &uses_params, .step_keys = uses_step_keys,
    .start = uses_start,
    .cancel = uses_cancel, .load_check = pc_plugins_check,
    .default_on = PC_ON_ERROR | PC_ON_TIMEOUT, .fills_result = true, .reads_steps = true};
const struct pc_action_ops pc_lua_ops = {
    .key = "lua", .load = inline_load, .params = &lua_params, .start = inline_start,
    .cancel = lua_cancel,
    .load_check = pc_plugins_check, .default_on = PC_ON_ERROR | PC_ON_TIMEOUT,
    .fills_result = true, .reads_steps = true};

/* ------------------------------------------------------ pacer plugins */

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_plugin(lua_State *L, const char *name, const char *path, FILE *out)
{
  int spec = lua_gettop(L);
  fprintf(out, "%s  (%s)\n", name, path);
  if (lua_getfield(L, spec, "description") == LUA_TSTRING)
    fprintf(out, "  %s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_getfield(L, spec, "inputs");
  int inputs = lua_gettop(L);
  size_t n = 0, cap = 8;
  char **names = pc_xcalloc(cap, sizeof *names);
  lua_pushnil(L);
  while (lua_next(L, inputs)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      if (n == cap)
        names = pc_xrealloc(names, (cap *= 2) * sizeof *names);
      names[n++] = pc_xstrdup(lua_tostring(L, -1));
    }
  }
  qsort(names, n, sizeof *names, cmp_str);
  if (n)
    fprintf(out, "  inputs:\n");
  for (size_t i = 0; i < n; i++) {
    lua_getfield(L, inputs, names[i]); /* def */
    lua_getfield(L, -1, "type");
    fprintf(out, "    %-14s %s", names[i], lua_tostring(L, -1) ? lua_tostring(L, -1) : "any");
    lua_pop(L, 1);
    lua_getfield(L, -1, "required");
    bool req = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "default") != LUA_TNIL) {
      lua_pushvalue(L, -1);
      const char *dv = luaL_tolstring(L, -1, NULL);
      if (lua_type(L, -3) == LUA_TSTRING)
        fprintf(out, ", default \"%s\"", dv);
      else if (lua_type(L, -3) == LUA_TTABLE)
        fprintf(out, ", default (a table)");
      else
        fprintf(out, ", default %s", dv);
      lua_pop(L, 3);
    } else {
      lua_pop(L, 1);
      if (req)
        fprintf(out, ", required");
    }
    if (lua_getfield(L, -1, "description") == LUA_TSTRING)
      fprintf(out, "  %s", lua_tostring(L, -1));
    lua_pop(L, 2);
    fputc('\n', out);
    free(names[i]);
  }
  free(names);
  lua_settop(L, spec - 1);
}

int pc_plugins_list(struct pc_lua *h, const char *workflow_file,
                    const struct pc_load_opts *opts, FILE *out)
{
  char *err = NULL;
  if (pc_pacer_open(h, &err) != 0) {
    fprintf(stderr, "pacer plugins: %s\n", err);
    free(err);
    return PC_EXIT_ERROR;
  }
  lua_State *L = pc_lua_state(h);
  size_t ndirs;
  char **dirs = search_dirs(workflow_file, opts, &ndirs);
  size_t nseen = 0, cap = 16;
  char **seen = pc_xcalloc(cap, sizeof *seen);
  int code = PC_EXIT_OK;
  for (size_t i = 0; i < ndirs; i++) {
    DIR *dir = opendir(dirs[i]);
    if (!dir)
      continue;
    size_t nfiles = 0, fcap = 16;
    char **files = pc_xcalloc(fcap, sizeof *files);
    struct dirent *de;
    while ((de = readdir(dir))) {
      size_t len = strlen(de->d_name);
      bool lua = len >= 5 && strcmp(de->d_name + len - 4, ".lua") == 0 &&
                 valid_name(de->d_name, len - 4);
      /* Workflow files (NAME.yml) are listed as flows, by their file name. */
      bool yml = len >= 5 && strcmp(de->d_name + len - 4, ".yml") == 0 &&
                 valid_name(de->d_name, len - 4);
      if (!lua && !yml)
        continue;
      if (nfiles == fcap)
        files = pc_xrealloc(files, (fcap *= 2) * sizeof *files);
      files[nfiles++] = lua ? pc_xstrndup(de->d_name, len - 4) : pc_xstrdup(de->d_name);
    }
    closedir(dir);
    qsort(files, nfiles, sizeof *files, cmp_str);
    for (size_t f = 0; f < nfiles; f++) {
      bool shadowed = false;
      for (size_t k = 0; k < nseen; k++)
        shadowed = shadowed || strcmp(seen[k], files[f]) == 0;
      bool flow = pc_flow_is_file(files[f]);
      char *path = flow ? pc_asprintf("%s/%s", dirs[i], files[f])
                        : pc_asprintf("%s/%s.lua", dirs[i], files[f]);
      if (flow && !shadowed) {
        if (pc_flow_print(files[f], path, out) != 0)
          code = PC_EXIT_USAGE;
      } else if (shadowed) {
        fprintf(stderr, "pacer plugins: %s is shadowed by an earlier plugin of that name\n",
                path);
      } else if (load_plugin(h, path, &err) != 0) {
        fprintf(stderr, "pacer plugins: %s\n", err);
        free(err);
        code = PC_EXIT_USAGE;
      } else {
        print_plugin(L, files[f], path, out);
      }
      free(path);
      if (!shadowed) {
        if (nseen == cap)
          seen = pc_xrealloc(seen, (cap *= 2) * sizeof *seen);
        seen[nseen++] = files[f];
      } else {
        free(files[f]);
      }
    }
    free(files);
  }
  if (nseen == 0)
    fprintf(stderr, "pacer plugins: no plugins found\n");
  for (size_t k = 0; k < nseen; k++)
    free(seen[k]);
  free(seen);
  free_dirs(dirs, ndirs);
  return code;
}
