// One virtio-blk request (virtio 1.2 §5.2.6): parse a descriptor chain, check it,
// run it against the disk and write the status byte. Pure request logic, kept apart
// from the VirtioDevice plumbing so it can be tested and read on its own.
//
// A request is a byte stream split by the descriptor flags: the device-readable
// part starts with the 16-byte header {le32 type, le32 reserved, le64 sector}
// (which must sit in the first descriptor) followed by OUT data; the
// device-writable part holds IN data and ends with the 1-byte status (the last
// byte of the last descriptor). x86 is little-endian, so le fields are read as is.
#pragma once

#include <cstdint>
#include <string>

#include "common/log.h"
#include "devices/virtio/block/disk_file.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace vmm::devices::virtio {

inline constexpr uint32_t kBlkTypeIn = 0;
inline constexpr uint32_t kBlkTypeOut = 1;
inline constexpr uint32_t kBlkTypeFlush = 4;
inline constexpr uint32_t kBlkTypeGetId = 8;

inline constexpr uint8_t kBlkStatusOk = 0;
inline constexpr uint8_t kBlkStatusIoErr = 1;
inline constexpr uint8_t kBlkStatusUnsupp = 2;

inline constexpr uint64_t kBlkHeaderSize = 16;
inline constexpr size_t kBlkIdBytes = 20;  // VIRTIO_BLK_ID_BYTES

struct BlockStats {
    uint64_t read_bytes = 0;
    uint64_t write_bytes = 0;
    uint64_t read_ops = 0;
    uint64_t write_ops = 0;
    uint64_t flush_ops = 0;
    uint64_t errors = 0;
};

// What a request needs besides the chain; the caller holds the device lock.
struct BlockRequestContext {
    const memory::GuestMemory& memory;
    DiskFile& disk;
    const std::string& id;
    BlockStats& stats;
    log::RateLimiter& log_limiter;
};

// Runs the request in `chain` and returns the used length to report (bytes written
// into device-writable buffers, status included). Never fails: a malformed request
// is answered with IOERR/UNSUPP, and a chain without a writable status byte is
// completed with used length 0 so that the guest never waits on it forever.
uint32_t execute_block_request(const BlockRequestContext& ctx, const DescriptorChain& chain);

}  // namespace vmm::devices::virtio
