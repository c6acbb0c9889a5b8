-- Raises nil while loading.
error(nil)
