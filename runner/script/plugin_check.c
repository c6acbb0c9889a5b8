/* plugin_check.c: the load-time checks of the `uses:` and `lua:` actions
 * (pc_plugins_check, their load_check, run once by pc_load).
 *
 * Everything about a step's Lua is prepared when the file loads, so
 * `pacer validate` catches it: each `uses` step's plugin is found and
 * loaded (plugin_find.c) or its workflow file loaded (actions/flow.c), and
 * its `with` checked against the inputs the plugin or file declares; each
 * inline `lua:` block is compiled, in shared batches so that a file of
 * many blocks compiles in linear time. What the checks make lives in a
 * registry table keyed by the step (a light userdata,
 * pc__plugin_steps_key): the plugin entry {spec, name, path} for `uses`,
 * the compiled function for `lua:`; the actions (plugin.c) only look it
 * up when an attempt starts. Errors point at the `uses` value, the `with`
 * key or value, or the line of the inline code. */
#include "script/plugin.h"
#include "script/plugin_int.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "actions/flow.h"
#include "base/util.h"
#include "script/pacermod.h"

/* Bound on the host's own calls that may reach plugin code (checking and
 * preparing inputs, which may read values plugin code made). */
#define CALL_LIMIT_MS 1000.0
#define CALL_TOO_LONG "checking the plugin's inputs took more than 1000 ms"

const char pc__plugin_steps_key = 'p'; /* registry: step -> entry or function */

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
    if (pc__plugin_is_file(p))
      return p;
    pc_diag_add(c->d, file, ul, uc, "uses: no workflow file %s (looked for %s)", st->uses, p);
    free(p);
    return NULL;
  }
  size_t stem = strlen(st->uses) - (strrchr(st->uses, '.') ? strlen(strrchr(st->uses, '.')) : 0);
  if (!pc__plugin_valid_name(st->uses, stem)) {
    pc_diag_add(c->d, file, ul, uc, "uses: invalid workflow file name \"%s\": a name is "
                "letters, digits, _ and - (NAME.yml in a plugin directory), or a path with a "
                "slash (./flows/NAME.yml, relative to this file)", st->uses);
    return NULL;
  }
  char *looked = NULL;
  char *found = pc__plugin_find(file, c->opts, st->uses, &looked);
  if (!found)
    pc_diag_add(c->d, file, ul, uc, "uses: no workflow file named \"%s\" (looked in: %s; a "
                "path relative to this file starts with ./)", st->uses, looked ? looked : "");
  free(looked);
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
  if (!pc__plugin_valid_name(st->uses, ulen) || strlen(st->uses) != ulen) {
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
  char *lua_file = pc_asprintf("%s.lua", st->uses);
  path = pc__plugin_find(file, c->opts, lua_file, &looked);
  free(lua_file);
  if (!path) {
    pc_diag_add(c->d, file, ul, uc, "uses: no plugin named \"%s\" (looked for %s.lua in: %s)",
                st->uses, st->uses, looked);
    free(looked);
    c->rc = -1;
    return;
  }
  char *err = NULL;
  if (pc__plugin_load(c->h, path, &err) != 0) {
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
  lua_rawgetp(L, LUA_REGISTRYINDEX, &pc__plugin_steps_key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pc__plugin_steps_key);
  }
  c.steps = lua_gettop(L);
  walk(&c, wf->steps, wf->nsteps);
  walk(&c, wf->finally, wf->nfinally);
  compile_all_inline(&c);
  lua_settop(L, c.steps - 1);
  return c.rc;
}
