# Linux boot (slow) with every virtio device: included from CMakeLists.txt inside
# if(GUEST_ARTIFACTS_DIR), where G and VMM are set. One boot covers virtio-blk
# (ext4 root, read-only), virtio-net (ping in a private netns, when available),
# virtio-rng (/dev/hwrng), virtio-console (hvc0) and virtio-balloon (target set
# before boot). The rootfs image is made under the build dir when the test runs.
# Measured on a loaded 2-core kvm_pvm dev host: ~510 s to /sbin/init (the balloon
# inflates its target at emulated speed meanwhile), ~860 s in all with 1 GiB and a
# 256 MiB balloon; now 512 MiB and 64 MiB: 427 s on an otherwise idle host.
set(VIRTIO_LINUX_WORK_DIR ${CMAKE_CURRENT_BINARY_DIR}/virtio_linux)
add_test(NAME linux_virtio_devices
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/virtio_linux_boot.sh
                 ${VMM} ${G} ${VIRTIO_LINUX_WORK_DIR} 2000)
set_tests_properties(linux_virtio_devices PROPERTIES
    LABELS "slow;linux"
    SKIP_RETURN_CODE 77
    TIMEOUT 2100
    COST 2000)  # the longest boot: ctest starts it first
