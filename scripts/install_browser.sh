#!/usr/bin/env bash
# Install the headless browser the UI tests drive: Debian's `chromium`.
#
# Idempotent: does nothing when /usr/bin/chromium (or $PROMPT_RELEASE_CHROMIUM)
# is already there. Installs only as root with apt-get available; anywhere
# else it prints why it did not, and exits 0 so `make test` carries on (the
# browser test then skips, naming the reason). Playwright's own browser
# download (`playwright install`) is never used: the project drives the
# system browser through `executable_path`.
set -u

CHROMIUM="${PROMPT_RELEASE_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "install_browser: $CHROMIUM already installed ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: $CHROMIUM missing and apt-get not available; browser tests will skip (install chromium yourself to run them)"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install_browser: $CHROMIUM missing and not root; browser tests will skip (run 'sudo apt-get install chromium' to run them)"
    exit 0
fi

echo "install_browser: installing Debian's chromium with apt-get (once) ..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/tmp/install_browser.log 2>&1; then
    echo "install_browser: apt-get update failed (see /tmp/install_browser.log); browser tests will skip"
    exit 0
fi
if ! apt-get install -y -qq --no-install-recommends chromium >>/tmp/install_browser.log 2>&1; then
    echo "install_browser: apt-get install chromium failed (see /tmp/install_browser.log); browser tests will skip"
    exit 0
fi
if [ -x "$CHROMIUM" ]; then
    echo "install_browser: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
else
    echo "install_browser: chromium installed but $CHROMIUM not found; browser tests will skip"
fi
exit 0
