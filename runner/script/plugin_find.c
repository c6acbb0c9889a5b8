/* plugin_find.c: finding and loading Lua plugins for the `uses:` action,
 * and `pacer plugins`, which lists what the search finds.
 *
 * A plugin is NAME.lua, looked for in plugins/ beside the workflow file,
 * then in the load options' directories (--plugins, PACER_PLUGIN_PATH, the
 * bundled plugins). Loading one runs its top level once per Lua state, in
 * a sandbox of its own under a CPU and memory guard, through the pacer
 * module's `load_plugin`; the spec it returns is kept in a registry table
 * keyed by the file's path, so a plugin that many steps use loads once.
 * The load checks (plugin_check.c) and the listing share this search, so
 * `pacer plugins` shows exactly what `uses: NAME` would find. */
#include "script/plugin.h"
#include "script/plugin_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

#include "actions/flow.h"
#include "base/util.h"
#include "model/outcome.h"
#include "script/pacermod.h"

#define PLUGIN_MAX_BYTES ((size_t)4 << 20)
#define PLUGIN_LOAD_LIMIT_MS 2000.0
#define NAME_MAX_LEN 64

static const char FILES_KEY = 'f'; /* registry: path -> loaded plugin spec */

/* ------------------------------------------------------------ discovery */

bool pc__plugin_valid_name(const char *s, size_t len)
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
static char **search_dirs(const char *workflow_file, const struct pc_load_opts *opts,
                          size_t *n)
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

bool pc__plugin_is_file(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

char *pc__plugin_find(const char *workflow_file, const struct pc_load_opts *opts, const char *file,
                      char **looked)
{
  size_t n;
  char **dirs = search_dirs(workflow_file, opts, &n);
  char *found = NULL;
  struct pc_buf b;
  pc_buf_init(&b, 1 << 16);
  for (size_t i = 0; i < n && !found; i++) {
    char *p = pc_asprintf("%s/%s", dirs[i], file);
    if (pc__plugin_is_file(p))
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
int pc__plugin_load(struct pc_lua *h, const char *path, char **err)
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
                 pc__plugin_valid_name(de->d_name, len - 4);
      /* Workflow files (NAME.yml) are listed as flows, by their file name. */
      bool yml = len >= 5 && strcmp(de->d_name + len - 4, ".yml") == 0 &&
                 pc__plugin_valid_name(de->d_name, len - 4);
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
      } else if (pc__plugin_load(h, path, &err) != 0) {
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
