#!/usr/bin/env bash
# Regenerates the README's dashboard screenshots (docs/screenshots/*.png)
# with the browser tests' tooling: headless chromium through chromedriver
# (Debian: apt-get install -y chromium chromium-driver), driven by the
# ignored test tests/it/ui_screenshots.rs against a seeded server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --test it ui_screenshots::readme_screenshots -- --ignored --exact --nocapture
ls -l docs/screenshots/
