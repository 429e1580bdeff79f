#!/usr/bin/env bash
# HyperAlloc end to end: a shrink that needs the guest's page cache (SHRINK_PAGECACHE).
#
#   hyperalloc_pagecache.sh <vmm> <test_guest.elf>
#
# A 1 GiB guest (mode hyperalloc, working set 64 MiB) holds a 640 MiB "cache pool"
# that it reports through the shared file-pages counter (the test guest has no real
# page cache). vm.resize-balloon 512M cannot be met from free memory alone: the host
# must ask the guest (config shrink_pagecache + config-change interrupt), the guest
# drops pool pages, writes back the remainder and notifies, and the host then reaches
# the target. Asserts the guest's lines, the balloon at 512 MiB, the page-cache figure
# falling, and a clean end.
[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
source "$(dirname "$0")/hyperalloc_lib.sh"
ha_setup hyperalloc_pagecache 60

ha_start_vmm --cmdline "testguest.mode=hyperalloc testguest.ha_hold=64 testguest.ha_cache=640 testguest.seconds=12" \
    --cpus boot=1 --memory size=1G --balloon model=hyperalloc,shrink_pagecache=on
ha_wait "^HA: cache pool 163840 pages"
ha_wait "^HA: t=1s "
ha_stats
cache_before=$(ha_json 'd["hyperalloc"]["page_cache_bytes"]')
ha_note "page cache reported: $cache_before bytes"
[ "$cache_before" = $((640 << 20)) ] || ha_fail "page_cache_bytes is $cache_before, want $((640 << 20))"

ha_put_size 512M
ha_wait "^HA: config change, shrink_pagecache [1-9][0-9]* pages"
ha_wait "^HA: pagecache shrink requested [0-9]+ pages, dropped [0-9]+"
ha_wait_actual 512 10
ha_stats
cache_after=$(ha_json 'd["hyperalloc"]["page_cache_bytes"]')
ha_note "$(grep -E '^HA: pagecache shrink requested' "$log" | head -n 1 | cut -c5-); balloon 512 MiB, page cache $cache_after bytes"
[ "$cache_after" -lt "$cache_before" ] || ha_fail "the page cache did not shrink ($cache_after bytes)"

ha_wait "^HA: done mismatches=0"
ha_wait "^TESTGUEST: done"
ha_wait_exit
ha_assert_clean
[ "$exit_code" -eq 0 ] || ha_fail "VMM exit code $exit_code (want 0)"
ha_note "PASS"
