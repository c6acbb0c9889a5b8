/* labels.c: how a step instance is named in log lines, the progress
 * display and the reports: a step by its `name`, else its id, else its
 * action, with its place in the file ("Fetch stories (hn.yml:12)"); an item
 * of a fan-out by the fan-out's title, its 1-based index and a short text
 * for the item ("stories[3] 40000003 (hn.yml:12)"), which is the step's
 * `label:` expression when it has one; and a step inside a fan-out body by
 * its item's label and its own ("stories[3] 40000003 / fetch (hn.yml:14)"),
 * so every line a body step logs says which item it belongs to.
 *
 * An item's text is made when something first asks for it (a log line that
 * prints, a record, a failure message) and kept by the task: a 100 000-item
 * fan-out that logs nothing and records nothing formats none. */
#include "core/task.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/log.h"
#include "base/util.h"
#include "script/luahost.h"

/* An item's text is cut to this many bytes (at a character boundary). */
#define ITEM_TEXT_MAX 48

const char *pc__step_title(const struct pc_step *st)
{
  return st->name ? st->name : st->id ? st->id : pc_step_key(st);
}

char *pc_step_label(const struct pc_step *s)
{
  const char *base = strrchr(s->file, '/');
  base = base ? base + 1 : s->file;
  return pc_asprintf("%s (%s:%d)", pc__step_title(s), base, s->line);
}

/* The text at the top of the stack as a short, one-line label: control
 * characters become spaces, and it is cut at ITEM_TEXT_MAX bytes on a
 * character boundary (with "..." when cut). Pops the value. NULL for an
 * empty text. */
static char *short_text(struct pc_lua *h)
{
  size_t len;
  char *s = pc_lua_to_text(h, -1, &len);
  lua_pop(pc_lua_state(h), 1);
  size_t keep = 0;
  const unsigned char *u = (const unsigned char *)s;
  while (keep < len) {
    uint32_t cp;
    size_t n = pc_utf8_decode(u + keep, len - keep, &cp);
    if (n == 0)
      n = 1;
    if (keep + n > ITEM_TEXT_MAX)
      break;
    keep += n;
  }
  for (size_t i = 0; i < keep; i++)
    if (u[i] < 0x20 || u[i] == 0x7f)
      s[i] = ' ';
  char *out = NULL;
  if (keep > 0)
    out = keep < len ? pc_asprintf("%.*s...", (int)keep, s) : pc_xstrndup(s, keep);
  free(s);
  return out;
}

/* What an item is called when the step has no `label:`: a scalar item
 * itself; a table item by the first of its fields id, name, key and title
 * that holds a scalar; nothing otherwise. Pops the item. */
static char *item_value_text(struct pc_lua *h)
{
  lua_State *L = pc_lua_state(h);
  int t = lua_type(L, -1);
  if (t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN)
    return short_text(h);
  if (t == LUA_TTABLE) {
    static const char *const fields[] = {"id", "name", "key", "title"};
    for (size_t i = 0; i < PC_ARRAY_SIZE(fields); i++) {
      lua_pushstring(L, fields[i]); /* item, key */
      int ft = lua_rawget(L, -2);   /* item, value */
      if (ft == LUA_TSTRING || ft == LUA_TNUMBER || ft == LUA_TBOOLEAN) {
        char *s = short_text(h); /* item */
        lua_pop(L, 1);
        return s;
      }
      lua_pop(L, 1); /* item */
    }
  }
  lua_pop(L, 1);
  return NULL;
}

const char *pc__item_text(struct task *t)
{
  if (!t->instance || t->item_text_done)
    return t->item_text;
  t->item_text_done = true;
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  const struct pc_step *st = t->step;
  if (st->label) {
    char *err = NULL;
    if (pc_lua_eval_tmpl(run->lua, st->label, t->scope_ref, &err) != 0) {
      /* A label is for people: a broken one must not fail the item. */
      pc_log(PC_LOG_DEBUG, NULL, "label of item %zu: %s", t->item, err);
      free(err);
      return NULL;
    }
    t->item_text = short_text(run->lua);
    return t->item_text;
  }
  const struct task *fan = t->parent;
  if (!fan || fan->kind != TK_FOREACH || fan->list_ref == LUA_NOREF)
    return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fan->list_ref); /* list */
  lua_geti(L, -1, (lua_Integer)t->item);            /* list, item */
  lua_remove(L, -2);                                /* item */
  if (st->nmatrix_keys && lua_istable(L, -1))
    pc__matrix_item_push(L, st); /* "linux 2" */
  t->item_text = item_value_text(run->lua);
  return t->item_text;
}

/* "stories[3] 40000003": an item's label without its place in the file. */
static void item_label(struct pc_buf *b, struct task *inst)
{
  const char *text = pc__item_text(inst);
  pc_buf_printf(b, "%s[%zu]%s%s", pc__step_title(inst->step), inst->item, text ? " " : "",
                text ? text : "");
}

/* The nearest fan-out item at or above t, or NULL. */
static struct task *item_of(struct task *t)
{
  while (t && !t->instance)
    t = t->parent;
  return t;
}

/* The label of step `st`, which is t itself (an item: `inst` is t) or a
 * step below the item `inst` (or below no item: `inst` NULL). */
static char *label_of(const struct pc_step *st, struct task *inst, bool self,
                      const struct pc_subgroup *sub)
{
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 20);
  const char *base = strrchr(st->file, '/');
  base = base ? base + 1 : st->file;
  /* A step of a sub-group (a workflow file run as a step) belongs to the
   * calling step's item, if it has one, and says where it was called
   * from: "token (main.yml:12 › login.yml:5)". */
  const char *outer_item = sub && !inst ? pc__sub_item(sub) : NULL;
  if (outer_item)
    pc_buf_printf(&b, "%s / ", outer_item);
  if (self) {
    item_label(&b, inst);
  } else {
    if (inst) {
      item_label(&b, inst);
      pc_buf_puts(&b, " / ");
    }
    pc_buf_puts(&b, pc__step_title(st));
  }
  if (sub)
    pc_buf_printf(&b, " (%s \u203a %s:%d)", pc__sub_where(sub), base, st->line);
  else
    pc_buf_printf(&b, " (%s:%d)", base, st->line);
  return pc_buf_steal(&b);
}

char *pc__task_label(struct task *t)
{
  if (!t->step)
    return pc_xstrdup(t->root->name);
  struct task *inst = item_of(t);
  return label_of(t->step, inst, inst == t, pc__sub_of(t));
}

char *pc__task_item(struct task *t)
{
  struct task *inst = t->step ? item_of(t) : NULL;
  if (!inst)
    return NULL;
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 20);
  item_label(&b, inst);
  return pc_buf_steal(&b);
}

char *pc__child_label(struct task *parent, const struct pc_step *st)
{
  return label_of(st, item_of(parent), false, pc__sub_of(parent));
}

char *pc_attempt_label(struct pc_attempt *a)
{
  return pc__task_label(PC_CONTAINER_OF(a, struct task, att));
}
