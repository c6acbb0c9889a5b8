/* luac.c: a build-time tool that compiles one embedded Lua source to
 * bytecode, so that pacer does not parse lua/prelude.lua each time it
 * starts (compiling it was half of the instructions of a one-step run).
 *
 * Usage: pacer_luac IN OUT CHUNKNAME. The chunk is compiled by the same
 * liblua pacer links (bytecode is only portable between identical builds)
 * under the chunk name the runtime gives it ("=prelude.lua"), and dumped
 * with its debug information, so error messages and tracebacks name the same
 * file and lines as when the source was compiled at run time (a binary
 * chunk carries its own name: luaL_loadbuffer ignores the one it is given).
 * A syntax error fails the build. */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

static int write_cb(lua_State *L, const void *p, size_t sz, void *ud)
{
  (void)L;
  return fwrite(p, 1, sz, ud) == sz ? 0 : 1;
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: %s IN OUT CHUNKNAME\n", argv[0]);
    return 2;
  }
  FILE *in = fopen(argv[1], "rb");
  if (!in) {
    perror(argv[1]);
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  char *src = malloc(cap);
  size_t n;
  while (src && (n = fread(src + len, 1, cap - len, in)) > 0) {
    len += n;
    if (len == cap) {
      char *p = realloc(src, cap * 2);
      if (!p)
        free(src);
      src = p;
      cap *= 2;
    }
  }
  fclose(in);
  if (!src) {
    fprintf(stderr, "%s: out of memory\n", argv[1]);
    return 1;
  }
  lua_State *L = luaL_newstate();
  int rc = 1;
  if (luaL_loadbufferx(L, src, len, argv[3], "t") != LUA_OK) {
    fprintf(stderr, "%s: %s\n", argv[1], lua_tostring(L, -1));
    goto fail_load;
  }
  FILE *out = fopen(argv[2], "wb");
  if (!out) {
    perror(argv[2]);
    goto fail_load;
  }
  int werr = lua_dump(L, write_cb, out, 0);
  if (fclose(out) != 0 || werr != 0) {
    perror(argv[2]);
    remove(argv[2]);
    goto fail_load;
  }
  rc = 0;
fail_load:
  lua_close(L);
  free(src);
  return rc;
}
