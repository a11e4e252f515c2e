#!/bin/sh
# Makes sure Debian's Chromium is at /usr/bin/chromium for tests/browser_test.ts.
# Installs it with apt-get when missing (needs root). Exits non-zero with a clear message when
# it cannot, so the browser test fails loudly instead of skipping.
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

echo "ensure_chromium: $CHROMIUM is missing; installing Debian's chromium package" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_chromium: FAILED: not root, cannot run apt-get; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: FAILED: no apt-get on this machine; install Chromium at $CHROMIUM by hand" >&2
  exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive apt-get update >&2; then
  echo "ensure_chromium: FAILED: apt-get update did not succeed" >&2
  exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >&2; then
  echo "ensure_chromium: FAILED: apt-get install chromium did not succeed" >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "ensure_chromium: FAILED: chromium installed but $CHROMIUM is not there" >&2
  exit 1
fi
echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)" >&2
