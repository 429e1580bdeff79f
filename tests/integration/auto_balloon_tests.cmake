# Automatic ballooning end to end (docs/auto-balloon.md): the vmm binary with
# --balloon ...,auto=on and a PSI file the script writes, the test guest reporting
# its own memory. Included from CMakeLists.txt; labelled `kvm`, skipped (exit 77)
# without /dev/kvm, one guest at a time (RESOURCE_LOCK kvm_guest).
if(TARGET vmm_bin AND TARGET test_guest)
  # auto_balloon_test(<name> <script>)
  function(auto_balloon_test name script)
    add_test(NAME ${name}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${script}
                     $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest>)
    set_tests_properties(${name} PROPERTIES
        LABELS kvm
        SKIP_RETURN_CODE 77
        TIMEOUT 110           # the scripts give up after 80 s themselves
        RESOURCE_LOCK kvm_guest)
  endfunction()

  # virtio-balloon: host PSI -> 64 MiB steps the guest follows; the guest's phase
  # change -> deflate at once; no inflate during the hysteresis.
  auto_balloon_test(auto_balloon_virtio auto_balloon_virtio.sh)
endif()
