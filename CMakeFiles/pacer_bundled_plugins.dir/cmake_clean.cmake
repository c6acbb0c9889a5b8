file(REMOVE_RECURSE
  "CMakeFiles/pacer_bundled_plugins"
  "plugins/notify_webhook.lua"
  "plugins/paginate.lua"
  "plugins/poll_until.lua"
)

# Per-language clean rules from dependency scanning.
foreach(lang )
  include(CMakeFiles/pacer_bundled_plugins.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
