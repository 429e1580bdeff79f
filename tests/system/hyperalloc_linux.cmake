# HyperAlloc with the Linux guest kernel (slow): included from CMakeLists.txt inside
# if(GUEST_ARTIFACTS_DIR), where G and VMM are set. Two boots, each driving the
# initramfs workload (hamem) over the console while the API resizes the balloon:
# tests/integration/hyperalloc_linux.py says what each asserts. On the 2-core
# development host (every guest kernel instruction emulated) the manual one took
# 1115 s alone; two Linux guests at once roughly double that, hence the TIMEOUT.
foreach(scenario manual auto)
  add_test(NAME linux_hyperalloc_${scenario}
           COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/integration/hyperalloc_linux.py ${scenario}
                   --vmm ${VMM} --guest-dir ${G}
                   --work ${CMAKE_CURRENT_BINARY_DIR}/hyperalloc_linux_${scenario})
  set_tests_properties(linux_hyperalloc_${scenario} PROPERTIES
      LABELS "slow;linux;hyperalloc" SKIP_RETURN_CODE 77 TIMEOUT 3300 COST 1500)
endforeach()
