file(REMOVE_RECURSE
  "libpacercore.a"
)
