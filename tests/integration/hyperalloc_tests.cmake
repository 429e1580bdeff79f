# HyperAlloc end-to-end tests: the test guest's LLFree + HyperAlloc driver (tests/guest/
# hyperalloc*.c) against the VMM's HyperAlloc device, driven through the REST API
# (curl --unix-socket) with the VMM's VmRSS read from /proc. Included from
# CMakeLists.txt; labelled `kvm`, skipped (exit 77) without /dev/kvm, one guest at a
# time (RESOURCE_LOCK kvm_guest). Each takes 15-35 s on the 2-core development host.
if(TARGET vmm_bin AND TARGET test_guest)
  # hyperalloc_test(<name> <script> [extra args...])
  function(hyperalloc_test name script)
    add_test(NAME ${name}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${script}
                     $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest> ${ARGN})
    set_tests_properties(${name} PROPERTIES
        LABELS kvm
        SKIP_RETURN_CODE 77
        TIMEOUT 90            # the scripts give up after 60 s themselves
        RESOURCE_LOCK kvm_guest)
  endfunction()

  # 2 GiB guest shrunk to half through the API: VmRSS -900 MiB, no mismatch, grown back.
  hyperalloc_test(hyperalloc_shrink hyperalloc_shrink.sh)
  # auto=on,period=1s: 1 GiB freed by the guest leaves VmRSS within two periods (+2 s).
  hyperalloc_test(hyperalloc_auto hyperalloc_auto.sh)
  # 100 shrink/grow cycles (512M/0) under a verified workload.
  hyperalloc_test(hyperalloc_cycles hyperalloc_cycles.sh 100)
  # Bad records, corrupted shared state, bad installs, an install storm: the VMM survives.
  hyperalloc_test(hyperalloc_hostile hyperalloc_hostile.sh 30000)
  # A shrink that needs the guest's page cache (SHRINK_PAGECACHE round trip).
  hyperalloc_test(hyperalloc_pagecache hyperalloc_pagecache.sh)
  # Both vCPUs run the workload (testguest.smp=1), each on its own install queue, under
  # auto mode and resizes; once per install path.
  hyperalloc_test(hyperalloc_smp_vcpu hyperalloc_smp.sh vcpu)
  hyperalloc_test(hyperalloc_smp_worker hyperalloc_smp.sh worker)
  # Install throughput with install=vcpu and install=worker (reported, not compared).
  hyperalloc_test(hyperalloc_bench hyperalloc_bench.sh 256)
endif()
