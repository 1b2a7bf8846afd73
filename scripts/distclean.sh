#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Remove the whole cache: toolchain root, base source, trees and builds.
# Refuses while anything is mounted below it.
. "$(dirname "$0")/lib.sh"

[ -e "$CS614_CACHE" ] || exit 0
if findmnt -rn -o TARGET | grep -q "^$CS614_CACHE"; then
	die "something is still mounted below $CS614_CACHE; refusing to remove it"
fi
rm -rf --one-file-system "$CS614_CACHE"
log "removed $CS614_CACHE"
