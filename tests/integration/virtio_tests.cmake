# virtio end-to-end tests: the test guest's polled virtio-mmio driver (tests/guest/
# virtio*.c) against the VMM's virtio devices. Included from CMakeLists.txt; labelled
# `kvm` like the other guest tests, skipped (exit 77) without /dev/kvm, and, for the
# network test, without network namespaces or /dev/net/tun.
if(TARGET vmm_bin AND TARGET test_guest)
  set(VIRTIO_SCRIPTS ${CMAKE_CURRENT_SOURCE_DIR})
  set(VIRTIO_WORK_DIR ${CMAKE_CURRENT_BINARY_DIR}/virtio)

  # virtio_script_test(<name> TIMEOUT <s> COMMAND <script> <args>...)
  function(virtio_script_test name)
    cmake_parse_arguments(ARG "" "TIMEOUT" "COMMAND" ${ARGN})
    add_test(NAME ${name} COMMAND bash ${ARG_COMMAND})
    math(EXPR ctest_timeout "${ARG_TIMEOUT} + 30")
    set_tests_properties(${name} PROPERTIES
        LABELS kvm
        SKIP_RETURN_CODE 77
        TIMEOUT ${ctest_timeout}
        RESOURCE_LOCK kvm_guest)
  endfunction()

  # Write, flush, read back; IOERR past the end; GET_ID; then a second VM verifies
  # the data on the file and a third (wrong seed) must see a mismatch.
  virtio_script_test(virtio_blk TIMEOUT 180
      COMMAND ${VIRTIO_SCRIPTS}/virtio_blk.sh rw ${VIRTIO_WORK_DIR}
              $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest>)
  # readonly=on: the guest's write fails with IOERR and the file stays zero.
  virtio_script_test(virtio_blk_ro TIMEOUT 60
      COMMAND ${VIRTIO_SCRIPTS}/virtio_blk.sh ro ${VIRTIO_WORK_DIR}
              $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest>)

  testguest_test(virtio_rng TIMEOUT 60 EXIT 0
      PATTERNS "TESTGUEST: mode virtio-rng" "TESTGUEST: rng ok 8192 bytes" "TESTGUEST: done"
      VMM_ARGS --cmdline "testguest.mode=virtio-rng" --cpus boot=1 --memory size=128M --rng)

  # The hvc0 line only ever travels through the console's transmitq; the serial
  # port (also on stdout) carries the rest.
  testguest_test(virtio_console TIMEOUT 60 EXIT 0
      PATTERNS "TESTGUEST: mode virtio-console" "TESTGUEST: hello from hvc0"
               "TESTGUEST: console sent 27 bytes on hvc0" "TESTGUEST: done"
      VMM_ARGS --cmdline "testguest.mode=virtio-console" --cpus boot=1 --memory size=128M
               --console tty --serial tty)

  # ARP to the host side of a tap inside a private network namespace.
  virtio_script_test(virtio_net TIMEOUT 60
      COMMAND ${VIRTIO_SCRIPTS}/virtio_net.sh create $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest>)
  virtio_script_test(virtio_net_existing_tap TIMEOUT 60
      COMMAND ${VIRTIO_SCRIPTS}/virtio_net.sh existing $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest>)

  # A hostile guest (mode virtio-hostile) against blk, rng and the virtio-balloon: every
  # attack answered, every device working again, bounded logging, flat RSS and fds.
  add_test(NAME virtio_hostile
           COMMAND python3 ${VIRTIO_SCRIPTS}/virtio_hostile.py $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest>)
  set_tests_properties(virtio_hostile PROPERTIES
      LABELS kvm SKIP_RETURN_CODE 77 TIMEOUT 180 RESOURCE_LOCK kvm_guest)

  # The VMM's RSS falls by >= 200 MiB when the guest inflates 256 MiB, and rises again.
  virtio_script_test(virtio_balloon_rss TIMEOUT 120
      COMMAND ${VIRTIO_SCRIPTS}/balloon_rss.sh $<TARGET_FILE:vmm_bin> $<TARGET_FILE:test_guest>)
endif()
