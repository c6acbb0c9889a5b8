/* resume.c: the engine's side of the journal (--journal, --resume;
 * runner/journal/ keeps the file). Each leaf instance has a key that stays
 * the same from one run of the same workflow to the next: the path of
 * steps down to it, each step by its position in the file, and for each
 * fan-out item on the way the SHA-256 of its `key:` (when the fan-out has
 * one) or of the item's value as JSON, never its position in the list (which shifts when the list changes). A leaf
 * the resumed run finished ok is not run again: its recorded result table
 * comes back (outputs, status, body: what later steps read), and the leaf
 * finishes `ok` at once. Results that cannot be written down as JSON
 * (script/json.h: pc_json_encode_exact) are recorded as such, and those
 * leaves run again. `finally` is not journaled: it runs every time. */
#include "core/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/digest.h"
#include "base/util.h"
#include "script/expr.h"
#include "script/json.h"

/* Results larger than this are not written down (the leaf runs again). */
#define RESULT_MAX ((size_t)64 << 20)

int pc__journal_item_keys(struct task *t, char **err)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  const struct pc_expr *e = t->step->item_key;
  const char *base = strrchr(e->file, '/');
  base = base ? base + 1 : e->file;
  lua_createtable(L, (int)(t->total < 1000000 ? t->total : 1000000), 0); /* list, keys */
  lua_createtable(L, 0, (int)(t->total < 1000000 ? t->total : 1000000)); /* list, keys, seen */
  int rc = 0;
  for (size_t i = 0; i < t->total && rc == 0; i++) {
    lua_geti(L, -3, (lua_Integer)(i + 1)); /* list, keys, seen, item */
    pc_lua_scope_bind(run->lua, t->scope_ref, "item"); /* ..., old item */
    lua_pushinteger(L, (lua_Integer)(i + 1));
    pc_lua_scope_bind(run->lua, t->scope_ref, "index"); /* ..., old item, old index */
    char *eerr = NULL;
    rc = pc_lua_eval(run->lua, e, t->scope_ref, &eerr);
    if (rc != 0) {
      *err = pc_asprintf("key (%s:%d:%d), item %zu: %s", base, e->line, e->col, i + 1,
                         eerr ? eerr : "cannot evaluate");
      free(eerr);
    } else {
      int ty = lua_type(L, -1); /* ..., key */
      if (ty != LUA_TSTRING && ty != LUA_TNUMBER) {
        *err = pc_asprintf("key (%s:%d:%d) must be a string or a number, got %s (item %zu)",
                           base, e->line, e->col, lua_typename(L, ty), i + 1);
        rc = -1;
      } else {
        lua_tostring(L, -1); /* a number: its text, as Lua writes it */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -5) != LUA_TNIL) { /* seen[key]: the first item with it */
          *err = pc_asprintf("key (%s:%d:%d) gives items %lld and %zu the same key \"%.200s\": "
                             "each item's key must be unique (it is the item's identity in the "
                             "journal)",
                             base, e->line, e->col, (long long)lua_tointeger(L, -1), i + 1,
                             lua_tostring(L, -2));
          rc = -1;
        }
        lua_pop(L, 1); /* ..., key */
        if (rc == 0) {
          lua_pushvalue(L, -1);
          lua_pushinteger(L, (lua_Integer)(i + 1));
          lua_rawset(L, -6); /* seen[key] = i + 1 */
          lua_pushvalue(L, -1);
          lua_rawseti(L, -6, (lua_Integer)(i + 1)); /* keys[i + 1] = key */
        }
      }
      lua_pop(L, 1); /* ..., old item, old index */
    }
    pc_lua_scope_unbind(run->lua, t->scope_ref, "index");
    pc_lua_scope_unbind(run->lua, t->scope_ref, "item"); /* list, keys, seen */
  }
  lua_pop(L, 1); /* list, keys */
  if (rc != 0) {
    lua_pop(L, 1);
    return -1;
  }
  t->keys_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* list */
  return 0;
}

/* Appends the identity of the fan-out item t is (t->instance): the digest
 * of its `key:` (prefixed "k:", so a key never names the item whose value
 * digests the same), or the digest of its value as JSON, or "#INDEX" when
 * the value cannot be written down (a value made by Lua code holding a
 * function). */
static void item_key(struct task *t, struct pc_buf *b)
{
  lua_State *L = t->run->L;
  struct task *fe = t->parent;
  bool done = false;
  if (fe && fe->kind == TK_FOREACH && fe->keys_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, fe->keys_ref); /* keys */
    lua_geti(L, -1, (lua_Integer)t->item);           /* keys, key */
    size_t len;
    const char *k = lua_tolstring(L, -1, &len);
    if (k) {
      char hex[PC_SHA256_HEX];
      pc_sha256_hex_of(k, len, hex);
      pc_buf_printf(b, "[k:%.32s]", hex);
      done = true;
    }
    lua_pop(L, 2);
  }
  if (!done && fe && fe->kind == TK_FOREACH && fe->list_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, fe->list_ref); /* list */
    lua_geti(L, -1, (lua_Integer)t->item);           /* list, item */
    struct pc_buf j;
    pc_buf_init(&j, RESULT_MAX);
    if (pc_json_encode_exact(L, -1, &j) == 0) {
      char hex[PC_SHA256_HEX];
      pc_sha256_hex_of(j.data ? j.data : "", j.len, hex);
      pc_buf_printf(b, "[%.32s]", hex);
      done = true;
    }
    pc_buf_free(&j);
    lua_pop(L, 2);
  }
  if (!done)
    pc_buf_printf(b, "[#%zu]", t->item);
}

static void task_key(struct task *t, struct pc_buf *b)
{
  if (t->parent)
    task_key(t->parent, b);
  else if (t->kind != TK_LEAF && t->root && t->root->name)
    pc_buf_puts(b, t->root->name);
  if (t->step && !(t->instance && t->parent && t->parent->step == t->step))
    pc_buf_printf(b, "/%d:%d", t->step->line, t->step->col);
  if (t->instance)
    item_key(t, b);
}

/* Whether t is under the root `finally`, which always runs: a cleanup or a
 * notification is for this run, whatever the resumed one did. */
static bool in_finally(const struct task *t)
{
  while (t->parent)
    t = t->parent;
  return t->kind != TK_LEAF && t->root && t->root->name && strcmp(t->root->name, "finally") == 0;
}

static char *leaf_key(struct task *t)
{
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 20);
  task_key(t, &b);
  return pc_buf_steal(&b);
}

/* The leaf's path as the JSON report writes it (report.c, record_path):
 * the root, then each step's id or ACTION@LINE, a fan-out item as [N]. */
static void task_path(const struct task *t, struct pc_buf *b)
{
  if (!t->parent) {
    pc_buf_puts(b, t->kind != TK_LEAF && t->root && t->root->name ? t->root->name : "steps");
    if (t->kind != TK_LEAF || !t->step)
      return;
  } else {
    task_path(t->parent, b);
  }
  if (t->instance && t->parent && t->parent->step == t->step) {
    pc_buf_printf(b, "[%zu]", t->item);
    return;
  }
  if (t->step && t->step->id)
    pc_buf_printf(b, "/%s", t->step->id);
  else if (t->step)
    pc_buf_printf(b, "/%s@%d", pc_step_key(t->step), t->step->line);
}

bool pc__journal_restore(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  if (in_finally(t))
    return false;
  char *key = leaf_key(t);
  struct pc_journal_leaf l;
  bool found = run->journal_ops->lookup(run->journal, key, &l);
  free(key);
  if (!found && run->journal_ops->rerun) {
    struct pc_buf p;
    pc_buf_init(&p, (size_t)1 << 20);
    task_path(t, &p);
    bool rerun = run->journal_ops->rerun(run->journal, p.data ? p.data : "");
    pc_buf_free(&p);
    if (!rerun) {
      pc__task_finish(t, PC_SKIPPED,
                      "not rerun: --rerun-failed runs only the steps its report lists as "
                      "failed, and the journal has no ok result of this one");
      return true;
    }
  }
  if (!found)
    return false;
  if (l.json && *l.json) {
    lua_pushcfunction(L, pc_json_decode);
    lua_pushstring(L, l.json);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TTABLE) {
      lua_pop(L, 1); /* a record that does not decode: run the leaf */
      return false;
    }
    if (t->step && t->step->ops && t->step->ops->restored)
      t->step->ops->restored(pc_run_lua(run), lua_gettop(L));
    t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  t->restored = true;
  t->attempts = l.attempts;
  /* what the reports show of it, as the journaled run reported it */
  t->att.status = l.status;
  if (l.method || l.url) {
    struct leaf_ext *x = pc__leaf_ext(t);
    x->rep_method = l.method ? pc_xstrdup(l.method) : NULL;
    x->rep_url = l.url ? pc_xstrdup(l.url) : NULL;
  }
  pc__task_finish(t, PC_OK, NULL);
  return true;
}

void pc__journal_record(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  if (in_finally(t))
    return;
  char *key = leaf_key(t);
  struct pc_buf j;
  pc_buf_init(&j, RESULT_MAX);
  bool has = t->result_ref != LUA_NOREF, ok = true;
  if (has) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
    ok = pc_json_encode_exact(L, -1, &j) == 0 && j.len + 1 < RESULT_MAX;
    lua_pop(L, 1);
  }
  struct pc_journal_leaf l = {(enum pc_outcome)t->outcome, t->attempts, t->att.status,
                              t->ext ? t->ext->rep_method : NULL,
                              t->ext ? t->ext->rep_url : NULL, has && ok ? j.data : NULL, ok};
  run->journal_ops->record(run->journal, key, &l);
  pc_buf_free(&j);
  free(key);
}
