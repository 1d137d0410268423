#!/usr/bin/env bash
# train/setup.sh — the opt-in set-up of the training tools (never needed to run diffu): the
# project's packages plus Debian's python3-torch (1.13) and python3-matplotlib, then the build.
# The same as `bash deploy/setup.sh train`.
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/setup.sh" train
