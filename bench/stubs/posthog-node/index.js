// No-op stand-in for posthog-node (see package.json): the benchmark peers
// (Artillery, Step CI) construct a PostHog client and call capture() and
// shutdown(); here every method does nothing and sends nothing.
'use strict';

class PostHog {
  constructor() {}
  capture() {}
  identify() {}
  alias() {}
  groupIdentify() {}
  flush() { return Promise.resolve(); }
  shutdown() {}
  shutdownAsync() { return Promise.resolve(); }
  on() { return () => {}; }
}

module.exports = { PostHog, default: PostHog };
