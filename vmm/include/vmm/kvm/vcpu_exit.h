// Why KVM_RUN returned, as a value: callers never touch kvm_run. Spans in the
// I/O variants point into the vCPU's kvm_run page (host memory the VMM owns, not
// guest memory) and are valid until the next run() on that vCPU.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace vmm::kvm {

namespace exit {
// String I/O (rep ins/outs) carries count = data.size() / size elements.
struct IoIn { uint16_t port; uint8_t size; std::span<std::byte> data; };  // fill data
struct IoOut { uint16_t port; uint8_t size; std::span<const std::byte> data; };
struct MmioRead { uint64_t addr; std::span<std::byte> data; };     // fill data
struct MmioWrite { uint64_t addr; std::span<const std::byte> data; };
struct Hlt {};
struct Shutdown {};                     // triple fault or similar
struct Interrupted {};                  // EINTR / immediate_exit: a kick
struct Again {};                        // EAGAIN: an AP leaving wait-for-SIPI; run again
struct SystemEvent { uint32_t type; };  // KVM_SYSTEM_EVENT_{SHUTDOWN,RESET,CRASH}
struct FailEntry { uint64_t reason; uint32_t cpu; };
struct InternalError {
    uint32_t suberror;
    std::vector<uint8_t> insn_bytes;  // emulation failures, when KVM supplies them
};
struct Unknown { uint32_t reason; };
}  // namespace exit

using VcpuExit = std::variant<exit::IoIn, exit::IoOut, exit::MmioRead, exit::MmioWrite, exit::Hlt,
                              exit::Shutdown, exit::Interrupted, exit::Again, exit::SystemEvent,
                              exit::FailEntry, exit::InternalError, exit::Unknown>;

}  // namespace vmm::kvm
