/* workflow.h: the in-memory model of a workflow file, built from the YAML
 * node tree and checked completely before anything runs.
 *
 * Values that may hold `${{ }}` expressions are kept as templates
 * (struct pc_tmpl): a tree shaped like the YAML value whose leaves are
 * constants, single expressions (which keep the value's type) or
 * interpolations (which make a string). Every expression in the file is also
 * listed in wf->exprs so the Lua host can compile them all at load time and
 * report syntax errors with their position. */
#ifndef PACER_WORKFLOW_H
#define PACER_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "base/diag.h"
#include "base/yamlload.h"

/* ---------------------------------------------------------------- templates */

struct pc_expr {
  char *src;        /* Lua expression text without the ${{ }} */
  const char *file; /* borrowed from the workflow */
  int line, col;    /* position of the `${{`, or of a bare expression scalar */
  int ref;          /* compiled chunk in the Lua registry; LUA_NOREF (-2) until compiled */
  /* How its YAML was written, for hints at a syntax error (YAML traps):
   * a plain scalar ends at " #" (a comment) and cannot hold ": "; and
   * brace_cut: the first "}}" ended its ${{ }} inside a string literal
   * while another "}}" follows (`${{ "}}" }}`). */
  bool yaml_plain;
  bool brace_cut;
};

enum pc_tmpl_kind {
  PC_T_NIL,
  PC_T_BOOL,
  PC_T_INT,
  PC_T_NUM,
  PC_T_STR,
  PC_T_EXPR,   /* the scalar is exactly one ${{ }}: keeps the value's type */
  PC_T_INTERP, /* text with ${{ }} inside: always a string */
  PC_T_SEQ,
  PC_T_MAP,
};

struct pc_tmpl_part { /* exactly one of lit / expr is set */
  char *lit;
  size_t lit_len;
  struct pc_expr *expr;
};

struct pc_tmpl {
  enum pc_tmpl_kind kind;
  int line, col;
  bool has_expr; /* true if this node or any descendant holds an expression */
  bool nil_ok;   /* as a map member, a nil value leaves the key out instead of
                    being an error (the members of `vars`) */
  union {
    bool b;
    long long i;
    double num;
    struct {
      char *s;
      size_t len;
    } str;
    struct pc_expr *expr; /* owned */
    struct {
      struct pc_tmpl_part *parts;
      size_t n;
    } interp;
    struct {
      char **keys; /* PC_T_MAP only */
      struct pc_tmpl **items;
      size_t n;
    } coll;
  } u;
};

void pc_tmpl_free(struct pc_tmpl *t);
/* Lookup in a PC_T_MAP template; NULL if absent or not a map. It scans the
 * keys: loops over every key of a map use pc_tmpl_at instead. */
const struct pc_tmpl *pc_tmpl_get(const struct pc_tmpl *map, const char *key);
/* Item i of a PC_T_MAP or PC_T_SEQ template (NULL if out of range or not a
 * collection). A template built from a node keeps the node's items in their
 * order, so item i of the template is the value of node item i. */
const struct pc_tmpl *pc_tmpl_at(const struct pc_tmpl *coll, size_t i);

/* -------------------------------------------------------------------- steps */

/* What a step is: one action (a leaf, which holds its ops), or a group of
 * steps run one after the other (`steps:`) or together (`gather:`). The
 * model knows no particular action: the loader resolves a leaf's key to
 * the ops of the table it was handed (model/action.h) once, and everything
 * after reaches the action through them. */
enum pc_step_kind {
  PC_STEP_LEAF,
  PC_STEP_SEQUENCE,
  PC_STEP_GATHER,
};

struct pc_action_ops;

/* retry.on flags */
#define PC_ON_NETWORK 0x01u
#define PC_ON_TIMEOUT 0x02u
#define PC_ON_5XX 0x04u
#define PC_ON_4XX 0x08u
#define PC_ON_EXPECT 0x10u
#define PC_ON_ERROR 0x20u /* any error that is not a timeout (pacer extension) */

struct pc_retry {
  int attempts;         /* total tries, >= 1; default 1 */
  double backoff_ms;    /* first wait; default 0 */
  double factor;        /* default 2 */
  double max_backoff_ms;/* default 30 s */
  bool jitter;          /* full jitter; default true */
  bool on_set;          /* false: use the action's default `on` */
  unsigned on;          /* PC_ON_* */
  int *codes;           /* explicit status codes in `on`, each once; borrowed
                           from wf->retry_codes: the steps that inherit
                           defaults.retry share one array */
  size_t ncodes;
  bool unsafe;          /* retry non-idempotent HTTP methods too */
};

/* Polling (`until:`): the step re-runs until `until` holds with `result`
 * bound, waiting `every` between polls, all of it within one deadline. */
struct pc_poll {
  struct pc_expr *until;   /* NULL: the step does not poll */
  struct pc_expr *fail_if; /* stop at once when true (a terminal state); or NULL */
  double every_ms;         /* the first wait between polls; default 1 s */
  double factor;           /* each wait is factor times the previous; default 1 */
  double max_ms;           /* cap on a wait; default: none (INFINITY) */
  bool jitter;             /* full jitter; default false */
  double within_ms;        /* one deadline over all polls, from the first poll's start */
};

struct pc_status_range {
  int lo, hi; /* inclusive; "2xx" is {200, 299}, 404 is {404, 404} */
};

struct pc_expect {
  struct pc_status_range *status; /* NULL/0: the action's default */
  size_t nstatus;
  int *exit_codes; /* NULL/0: the action's default (0 for exec/shell) */
  size_t nexit_codes;
  struct pc_expr **that; /* evaluated with `result` bound */
  size_t nthat;
};

struct pc_output {
  char *name;
  struct pc_tmpl *value;
};

struct pc_step {
  enum pc_step_kind kind;
  const struct pc_action_ops *ops; /* a leaf's action (borrowed from the table); NULL for groups */
  char *id;   /* NULL if none */
  char *name; /* NULL if none */
  const char *file; /* borrowed from the workflow */
  const struct pc_node *node; /* borrowed: the step's map in wf->root */
  int line, col; /* position of the step's map */
  int index;     /* position among its siblings, 1-based */

  struct pc_expr *if_expr;   /* NULL: always */
  struct pc_tmpl *for_each;  /* NULL: not a fan-out */
  struct pc_tmpl *label;     /* for_each: an item's label, evaluated with item and
                                index bound; NULL: made from the item itself */
  int concurrency;           /* 0: unlimited */
  bool fail_fast;            /* default true */
  bool shard_one;            /* `shard: one`: with --shard, only shard 1 runs it */
  struct pc_expr *shard_key; /* for_each: `shard_key:`, what an item's shard is a hash of; or NULL */
  struct pc_expr *item_key;  /* for_each: `key:`, an item's identity in the journal; or NULL */
  size_t *pools;             /* indexes into wf->pools, sorted ascending, unique */
  size_t npools;
  double timeout_ms;         /* < 0: none (after defaults were applied to leaf steps) */
  struct pc_retry retry;     /* after defaults were applied to leaf steps */
  /* Set by the action's load when the step is known to send a request
   * that is not idempotent ("POST", "PATCH"; a static string): a retry
   * without retry.unsafe then applies only to failures that sent nothing,
   * and the loader warns about retry.on conditions that never can. */
  const char *unsafe_method;
  bool continue_on_error;
  struct pc_poll poll;       /* until/every/within/fail_if; poll.until NULL: none */
  /* `background: true`: its sequence starts it and moves on; it is
   * cancelled if still running when the sequence ends. */
  bool background;
  /* The background steps (earlier in the same sequence) this step waits
   * for before it starts: those `wait:` names, and those an expression of
   * it reads (steps.ID). The array is owned, the ids borrowed from those
   * steps. A step with `wait:` and no action is an empty sequence. */
  const char **waits;
  size_t nwaits;
  /* for_each: {matrix: ...}: the matrix's dimensions in the order written
   * (first outermost), owned; for_each's template is then the matrix map,
   * whose `include`/`exclude` members are no dimension. */
  char **matrix_keys;
  size_t nmatrix_keys;
  /* Set by the loader (pc_workflow_mark_readers): something can read this
   * step's result table as steps.ID. Never for a step without an id. A
   * fan-out nothing can read keeps no per-item results. */
  bool results_read;
  struct pc_expect expect;
  struct pc_output *outputs;
  size_t noutputs;
  /* The `uses` action's: the plugin's name, and its inputs (`with`, a
   * key of the step the action declares); NULL if none. */
  struct pc_tmpl *with;
  char *uses;
  /* A workflow file the step's action runs as its steps (uses: FILE.yml),
   * loaded through pc_load at load time; owned, freed with the step. */
  struct pc_workflow *sub;

  /* The action's own value as written (sleep duration, log text, http map,
   * exec argv/map, shell text, lua code). NULL for assert/steps/gather. */
  struct pc_tmpl *params;
  /* assert: every item is an expression (bare, or wrapped in ${{ }}) */
  struct pc_expr **asserts;
  size_t nasserts;
  /* steps / gather */
  struct pc_step **children;
  size_t nchildren;
};

static inline bool pc_step_is_group(const struct pc_step *s)
{
  return s->kind != PC_STEP_LEAF;
}

struct pc_pool_def {
  char *name;
  int line, col;
  int concurrency;    /* 0: unlimited */
  double rate;        /* permits per second; 0: unlimited */
  int burst;          /* >= 1; default 1 (evenly spaced) */
  char *shared;       /* `shared:`, a redis:// URL holding the budget; NULL if none */
};

/* One of a workflow's `inputs:` (the values it takes when another file
 * runs it as a step: `with:` there). */
struct pc_input {
  char *name;
  char *type;        /* string, number, integer, boolean, list, map, table, any */
  bool required;
  struct pc_tmpl *def; /* `default:`, a constant; NULL if none */
  char *description; /* NULL if none */
  int line, col;     /* the input's key */
};

struct pc_workflow {
  char *file;        /* path as given */
  char *name;        /* `name`, or the file name without extension */
  char *description; /* NULL if none */
  struct pc_tmpl *vars; /* PC_T_MAP or NULL; values may hold expressions (env...) */
  double timeout_ms;    /* < 0: none */
  /* defaults.KEY for an action that declares KEY (its defaults_key), as
   * the action loaded it; see pc_workflow_defaults. */
  struct pc_action_defaults *defaults;
  size_t ndefaults;
  /* The table of actions the workflow was loaded with (borrowed: it lives
   * as long as the program; NULL-terminated). The run asks their hooks for
   * statistics. */
  const struct pc_action_ops *const *actions;
  struct pc_pool_def *pools;
  size_t npools;
  struct pc_step **steps;
  size_t nsteps;
  struct pc_step **finally;
  size_t nfinally;
  /* `inputs:` and `outputs:` (expressions over its steps), for a file run
   * as a step by another; empty when the file declares none. */
  struct pc_input *inputs;
  size_t ninputs;
  struct pc_output *outputs;
  size_t noutputs;
  int **retry_codes;      /* the arrays of retry.on codes (owned; see pc_retry) */
  size_t nretry_codes;
  struct pc_expr **exprs; /* every expression in the file (borrowed), for compilation */
  size_t nexprs;
  struct pc_node *root;   /* the YAML tree (owned), for actions that need it */
};

/* One defaults.KEY: the template of its value, which the action owning
 * KEY checked when the file loaded. */
struct pc_action_defaults {
  const char *key; /* borrowed from the action's ops */
  struct pc_tmpl *value;
};

/* The template of defaults.KEY, or NULL if the workflow has none. An
 * action finds its own defaults by its key; there are at most as many as
 * actions. */
static inline const struct pc_tmpl *pc_workflow_defaults(const struct pc_workflow *wf,
                                                         const char *key)
{
  for (size_t i = 0; wf && i < wf->ndefaults; i++)
    if (strcmp(wf->defaults[i].key, key) == 0)
      return wf->defaults[i].value;
  return NULL;
}

/* A workflow file being loaded because another one runs it as a step:
 * the calling file and the position of the call, and the call around that
 * one (NULL at the top). For cycles and for messages that name the path
 * through the files. */
struct pc_load_caller {
  const char *file;
  int line, col;
  const struct pc_load_caller *up;
};

struct pc_lua;
struct pc_diag;
struct pc_load_opts;
/* pc_load's shape (load/load.h), for the actions' load checks. */
typedef int (*pc_load_fn)(const char *path, const struct pc_load_opts *opts, struct pc_lua *h,
                          struct pc_workflow **out, struct pc_diag *d);

/* What loading needs beyond the file, given by whoever calls pc_load
 * (load/load.h) and handed on to the actions' load checks (model/action.h).
 * Everything is borrowed and outlives the load. */
struct pc_load_opts {
  /* The actions a step may use, NULL-terminated: the command line's table
   * (cli/builtins.c). A step's key is looked up here, and the key of
   * defaults.KEY among the actions' defaults_key. */
  const struct pc_action_ops *const *actions;
  /* Plugin directories, searched in this order after plugins/ beside the
   * workflow: the --plugins directories, then the entries of
   * PACER_PLUGIN_PATH, then the plugins bundled with pacer (found relative
   * to the binary by the command line). */
  const char *const *plugin_dirs;
  size_t nplugin_dirs;
  /* The names --var and --vars-file define: expressions may read
   * vars.NAME for them. The first nvar_cli came from --var; each of those
   * the file does not declare under `vars:` gets a warning (often a typo). */
  const char *const *var_names;
  size_t nvar_names;
  size_t nvar_cli;
  /* false: a load that succeeds leaves no warnings in the diagnostics (a
   * cron job run with -q stays silent when all is well); a load that fails
   * keeps them beside its errors. */
  bool warnings;
  /* The calls this load is inside (see struct pc_load_caller), or NULL. */
  const struct pc_load_caller *caller;
  /* Set by pc_load for the actions' load checks (whatever the caller
   * gave): the loader itself, so an action that runs another workflow
   * file loads it through the same door, with these options. */
  pc_load_fn load;
  /* Set by pc_load too: how many files the load checks have loaded
   * through `load`, under the top file's load and every load nested in
   * it (one counter, shared), so that an action can bound them: a file
   * that runs another twice, which runs another twice, ... */
  size_t *nested_loads;
};

/* The model pass of loading alone: YAML text -> node tree -> checked model.
 * Returns 0, or -1 with every error found added to `d` (and *out left
 * NULL). Expressions are parsed out of the text but not compiled, names
 * and plugins not checked: everything but unit tests of the model, the
 * engine and the Lua host loads through pc_load (load/load.h), which runs
 * this and the passes after it. */
int pc_workflow_load_string(const char *name, const char *text, size_t len,
                            const struct pc_action_ops *const *actions, struct pc_workflow **out,
                            struct pc_diag *d);
void pc_workflow_free(struct pc_workflow *wf);

/* ------------------------------------------------ helpers for action loaders */

/* Passed to an action's `load` function so it can validate its own value and
 * build templates that are registered with the workflow. */
struct pc_load_ctx {
  struct pc_workflow *wf;
  struct pc_diag *d;
  const char *file;
  bool exprs_full; /* PC_MAX_EXPRS was reached and reported */
};

/* A workflow holds at most this many ${{ }} and bare expressions. Each one
 * is compiled into its own Lua function at load time (about 500 bytes and
 * 2 us), so the bound keeps `validate` of a hostile file well under a
 * second; real workflows use a few hundred. */
#define PC_MAX_EXPRS 100000

void pc_load_error(struct pc_load_ctx *c, const struct pc_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A warning: printed with its position, but the load does not fail. */
void pc_load_warn(struct pc_load_ctx *c, const struct pc_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Builds a template from any node, parsing ${{ }} in scalars and
 * registering the expressions. Reports unclosed ${{ and empty expressions.
 * Returns NULL (with an error added) on failure. Keep what it returns (e.g.
 * in st->params): wf->exprs lists its expressions, so freeing it early is
 * only safe when the load fails anyway. */
struct pc_tmpl *pc_load_tmpl(struct pc_load_ctx *c, const struct pc_node *n);
/* A bare expression (for `if`, `assert` items, `expect.that`): the scalar is
 * either wrapped in ${{ }} or is the expression itself. */
struct pc_expr *pc_load_bare_expr(struct pc_load_ctx *c, const struct pc_node *n);
/* One bare expression or a list of them (`assert`, `expect.that`): a new
 * array of those that parsed, their count in *n. A map is refused, and an
 * empty list unless `empty_ok`; `what` names the value in messages. */
struct pc_expr **pc_load_expr_list(struct pc_load_ctx *c, const char *what,
                                   const struct pc_node *v, bool empty_ok, size_t *n);
/* Reports every key of `map` not in `allowed` (with a did-you-mean hint).
 * `what` names the map in messages ("step", "http", ...). Returns the number
 * of unknown keys. Reports an error and returns -1 if `map` is not a map. */
int pc_load_check_keys(struct pc_load_ctx *c, const struct pc_node *map,
                       const char *const *allowed, size_t nallowed, const char *what);
/* Text that becomes a C string (a program argument, an environment
 * variable, a path, a URL, a header, a plugin name) ends at its first NUL
 * byte, which a double-quoted scalar can hold ("a\0b"): refuse it here,
 * naming `what` (e.g. "exec: argument 2") and `kind` ("a program
 * argument"). Returns 0, or -1 after reporting. Any non-scalar passes
 * (the caller checks types). */
int pc_load_no_nul(struct pc_load_ctx *c, const struct pc_node *n, const char *what,
                   const char *kind);
/* Static duration: a plain scalar parsed with pc_parse_duration. Reports and
 * returns -1 on error. */
int pc_load_duration(struct pc_load_ctx *c, const struct pc_node *n, double *ms);

#endif
