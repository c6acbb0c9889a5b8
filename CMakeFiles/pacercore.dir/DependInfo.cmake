
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/i14/embedded_lua.c" "CMakeFiles/pacercore.dir/embedded_lua.c.o" "gcc" "CMakeFiles/pacercore.dir/embedded_lua.c.o.d"
  "/work/wt/i14/embedded_schema.c" "CMakeFiles/pacercore.dir/embedded_schema.c.o" "gcc" "CMakeFiles/pacercore.dir/embedded_schema.c.o.d"
  "/work/wt/i14/runner/actions/basic.c" "CMakeFiles/pacercore.dir/runner/actions/basic.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/actions/basic.c.o.d"
  "/work/wt/i14/runner/actions/exec.c" "CMakeFiles/pacercore.dir/runner/actions/exec.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/actions/exec.c.o.d"
  "/work/wt/i14/runner/base/diag.c" "CMakeFiles/pacercore.dir/runner/base/diag.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/diag.c.o.d"
  "/work/wt/i14/runner/base/log.c" "CMakeFiles/pacercore.dir/runner/base/log.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/log.c.o.d"
  "/work/wt/i14/runner/base/outfile.c" "CMakeFiles/pacercore.dir/runner/base/outfile.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/outfile.c.o.d"
  "/work/wt/i14/runner/base/pool.c" "CMakeFiles/pacercore.dir/runner/base/pool.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/pool.c.o.d"
  "/work/wt/i14/runner/base/redact.c" "CMakeFiles/pacercore.dir/runner/base/redact.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/redact.c.o.d"
  "/work/wt/i14/runner/base/signal.c" "CMakeFiles/pacercore.dir/runner/base/signal.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/signal.c.o.d"
  "/work/wt/i14/runner/base/sleep.c" "CMakeFiles/pacercore.dir/runner/base/sleep.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/sleep.c.o.d"
  "/work/wt/i14/runner/base/util.c" "CMakeFiles/pacercore.dir/runner/base/util.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/util.c.o.d"
  "/work/wt/i14/runner/base/yamlload.c" "CMakeFiles/pacercore.dir/runner/base/yamlload.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/base/yamlload.c.o.d"
  "/work/wt/i14/runner/cli/cli.c" "CMakeFiles/pacercore.dir/runner/cli/cli.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/cli/cli.c.o.d"
  "/work/wt/i14/runner/core/actions.c" "CMakeFiles/pacercore.dir/runner/core/actions.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/actions.c.o.d"
  "/work/wt/i14/runner/core/attempt.c" "CMakeFiles/pacercore.dir/runner/core/attempt.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/attempt.c.o.d"
  "/work/wt/i14/runner/core/defer.c" "CMakeFiles/pacercore.dir/runner/core/defer.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/defer.c.o.d"
  "/work/wt/i14/runner/core/labels.c" "CMakeFiles/pacercore.dir/runner/core/labels.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/labels.c.o.d"
  "/work/wt/i14/runner/core/records.c" "CMakeFiles/pacercore.dir/runner/core/records.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/records.c.o.d"
  "/work/wt/i14/runner/core/results.c" "CMakeFiles/pacercore.dir/runner/core/results.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/results.c.o.d"
  "/work/wt/i14/runner/core/run.c" "CMakeFiles/pacercore.dir/runner/core/run.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/run.c.o.d"
  "/work/wt/i14/runner/core/summary.c" "CMakeFiles/pacercore.dir/runner/core/summary.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/summary.c.o.d"
  "/work/wt/i14/runner/core/task.c" "CMakeFiles/pacercore.dir/runner/core/task.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/task.c.o.d"
  "/work/wt/i14/runner/core/watchdog.c" "CMakeFiles/pacercore.dir/runner/core/watchdog.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/core/watchdog.c.o.d"
  "/work/wt/i14/runner/http/action.c" "CMakeFiles/pacercore.dir/runner/http/action.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/action.c.o.d"
  "/work/wt/i14/runner/http/check.c" "CMakeFiles/pacercore.dir/runner/http/check.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/check.c.o.d"
  "/work/wt/i14/runner/http/curlcmd.c" "CMakeFiles/pacercore.dir/runner/http/curlcmd.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/curlcmd.c.o.d"
  "/work/wt/i14/runner/http/curlshim.c" "CMakeFiles/pacercore.dir/runner/http/curlshim.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/curlshim.c.o.d"
  "/work/wt/i14/runner/http/failure.c" "CMakeFiles/pacercore.dir/runner/http/failure.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/failure.c.o.d"
  "/work/wt/i14/runner/http/request.c" "CMakeFiles/pacercore.dir/runner/http/request.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/request.c.o.d"
  "/work/wt/i14/runner/http/result.c" "CMakeFiles/pacercore.dir/runner/http/result.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/result.c.o.d"
  "/work/wt/i14/runner/http/rules.c" "CMakeFiles/pacercore.dir/runner/http/rules.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/rules.c.o.d"
  "/work/wt/i14/runner/http/session.c" "CMakeFiles/pacercore.dir/runner/http/session.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/session.c.o.d"
  "/work/wt/i14/runner/http/spec.c" "CMakeFiles/pacercore.dir/runner/http/spec.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/http/spec.c.o.d"
  "/work/wt/i14/runner/load/defaults.c" "CMakeFiles/pacercore.dir/runner/load/defaults.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/defaults.c.o.d"
  "/work/wt/i14/runner/load/load.c" "CMakeFiles/pacercore.dir/runner/load/load.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/load.c.o.d"
  "/work/wt/i14/runner/load/refs.c" "CMakeFiles/pacercore.dir/runner/load/refs.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/refs.c.o.d"
  "/work/wt/i14/runner/load/schema.c" "CMakeFiles/pacercore.dir/runner/load/schema.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/schema.c.o.d"
  "/work/wt/i14/runner/load/steps.c" "CMakeFiles/pacercore.dir/runner/load/steps.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/steps.c.o.d"
  "/work/wt/i14/runner/load/tmpl.c" "CMakeFiles/pacercore.dir/runner/load/tmpl.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/tmpl.c.o.d"
  "/work/wt/i14/runner/load/values.c" "CMakeFiles/pacercore.dir/runner/load/values.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/values.c.o.d"
  "/work/wt/i14/runner/load/workflow.c" "CMakeFiles/pacercore.dir/runner/load/workflow.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/load/workflow.c.o.d"
  "/work/wt/i14/runner/report/analysis.c" "CMakeFiles/pacercore.dir/runner/report/analysis.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/report/analysis.c.o.d"
  "/work/wt/i14/runner/report/html.c" "CMakeFiles/pacercore.dir/runner/report/html.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/report/html.c.o.d"
  "/work/wt/i14/runner/report/json.c" "CMakeFiles/pacercore.dir/runner/report/json.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/report/json.c.o.d"
  "/work/wt/i14/runner/report/junit.c" "CMakeFiles/pacercore.dir/runner/report/junit.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/report/junit.c.o.d"
  "/work/wt/i14/runner/report/progress.c" "CMakeFiles/pacercore.dir/runner/report/progress.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/report/progress.c.o.d"
  "/work/wt/i14/runner/report/report.c" "CMakeFiles/pacercore.dir/runner/report/report.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/report/report.c.o.d"
  "/work/wt/i14/runner/report/trace.c" "CMakeFiles/pacercore.dir/runner/report/trace.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/report/trace.c.o.d"
  "/work/wt/i14/runner/script/coro.c" "CMakeFiles/pacercore.dir/runner/script/coro.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/coro.c.o.d"
  "/work/wt/i14/runner/script/explain.c" "CMakeFiles/pacercore.dir/runner/script/explain.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/explain.c.o.d"
  "/work/wt/i14/runner/script/expr.c" "CMakeFiles/pacercore.dir/runner/script/expr.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/expr.c.o.d"
  "/work/wt/i14/runner/script/gc.c" "CMakeFiles/pacercore.dir/runner/script/gc.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/gc.c.o.d"
  "/work/wt/i14/runner/script/host.c" "CMakeFiles/pacercore.dir/runner/script/host.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/host.c.o.d"
  "/work/wt/i14/runner/script/json.c" "CMakeFiles/pacercore.dir/runner/script/json.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/json.c.o.d"
  "/work/wt/i14/runner/script/mod_exec.c" "CMakeFiles/pacercore.dir/runner/script/mod_exec.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/mod_exec.c.o.d"
  "/work/wt/i14/runner/script/mod_http.c" "CMakeFiles/pacercore.dir/runner/script/mod_http.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/mod_http.c.o.d"
  "/work/wt/i14/runner/script/mod_misc.c" "CMakeFiles/pacercore.dir/runner/script/mod_misc.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/mod_misc.c.o.d"
  "/work/wt/i14/runner/script/mod_sleep.c" "CMakeFiles/pacercore.dir/runner/script/mod_sleep.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/mod_sleep.c.o.d"
  "/work/wt/i14/runner/script/mod_sync.c" "CMakeFiles/pacercore.dir/runner/script/mod_sync.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/mod_sync.c.o.d"
  "/work/wt/i14/runner/script/mod_task.c" "CMakeFiles/pacercore.dir/runner/script/mod_task.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/mod_task.c.o.d"
  "/work/wt/i14/runner/script/pacermod.c" "CMakeFiles/pacercore.dir/runner/script/pacermod.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/pacermod.c.o.d"
  "/work/wt/i14/runner/script/plugin.c" "CMakeFiles/pacercore.dir/runner/script/plugin.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/plugin.c.o.d"
  "/work/wt/i14/runner/script/value.c" "CMakeFiles/pacercore.dir/runner/script/value.c.o" "gcc" "CMakeFiles/pacercore.dir/runner/script/value.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
