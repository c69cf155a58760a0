#!/usr/bin/env bash
# Rewrites the walkthrough's transcripts (these pages and docs/watching-the-loop.md's LT/ET
# comparison) from real runs of the server: the --trace side always, the strace side when
# strace is installed.
# tests/walkthrough.rs then checks that the pages still match what the server prints.
set -euo pipefail
cd "$(dirname "$0")/../../.."
command -v strace >/dev/null || echo "strace not found: only the --trace side is rewritten" >&2
EPOLLO_WALKTHROUGH=write cargo test --test tests walkthrough -- --test-threads=1
git --no-pager diff --stat -- www/docs/walkthrough docs/watching-the-loop.md
