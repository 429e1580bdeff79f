#include "devices/virtio/block/block_request.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace vmm::devices::virtio {

namespace {

struct RequestHeader {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};
static_assert(sizeof(RequestHeader) == kBlkHeaderSize);

// The data part of a request, split by direction (the status byte excluded).
struct DataBuffers {
    std::vector<memory::VolatileSlice> readable;
    std::vector<memory::VolatileSlice> writable;
    uint64_t readable_bytes = 0;
    uint64_t writable_bytes = 0;
};

Result<void> add_buffer(const memory::GuestMemory& mem, memory::GuestAddress addr, uint64_t len,
                        bool writable, DataBuffers& out) {
    if (len == 0) return ok();
    VMM_TRY(append_slices(mem, addr, len, writable ? out.writable : out.readable));
    (writable ? out.writable_bytes : out.readable_bytes) += len;
    return ok();
}

// Everything between the header (first 16 bytes of descriptor 0) and the status
// (last byte of the last descriptor).
Result<DataBuffers> collect_data(const memory::GuestMemory& mem,
                                 std::span<const Descriptor> descs) {
    DataBuffers data;
    for (size_t i = 0; i < descs.size(); ++i) {
        const Descriptor& d = descs[i];
        memory::GuestAddress addr = d.addr;
        uint64_t len = d.len;
        if (i == 0) {  // checked: readable and at least the header long
            addr = addr.unchecked_add(kBlkHeaderSize);
            len -= kBlkHeaderSize;
        }
        if (i + 1 == descs.size()) --len;  // checked: writable and non-empty
        VMM_TRY(add_buffer(mem, addr, len, d.device_writable, data));
    }
    return data;
}

// Checks that whole sectors [sector, sector + len/512) lie inside the disk,
// overflow-safe for any guest sector.
bool in_range(uint64_t sector, uint64_t len, uint64_t capacity) {
    uint64_t sectors = len / kSectorSize;
    return sector <= capacity && sectors <= capacity - sector;
}

class Request {
public:
    Request(const BlockRequestContext& ctx, RequestHeader header, DataBuffers data)
        : m_ctx(ctx), m_header(header), m_data(std::move(data)) {}

    // Returns the status and adds the data bytes written for the guest to `used`.
    uint8_t run(uint32_t& used) {
        switch (m_header.type) {
            case kBlkTypeIn: return read(used);
            case kBlkTypeOut: return write();
            case kBlkTypeFlush: return flush();
            case kBlkTypeGetId: return get_id(used);
            default:
                reject("unsupported request type {}", m_header.type);
                return kBlkStatusUnsupp;
        }
    }

private:
    uint8_t read(uint32_t& used) {
        uint64_t len = m_data.writable_bytes;
        if (m_data.readable_bytes != 0) return reject("read request with readable data");
        if (len % kSectorSize != 0) return reject("read of {} bytes: not whole sectors", len);
        // The used length (u32) must cover data plus status.
        if (len >= UINT32_MAX) return reject("read of {} bytes is too large", len);
        if (!in_range(m_header.sector, len, m_ctx.disk.capacity_sectors())) {
            return reject("read of {} bytes at sector {} outside the disk ({} sectors)", len,
                          m_header.sector, m_ctx.disk.capacity_sectors());
        }
        if (auto r = m_ctx.disk.read(m_header.sector * kSectorSize, m_data.writable); !r) {
            return reject("read at sector {}: {}", m_header.sector, r.error().message());
        }
        m_ctx.stats.read_ops++;
        m_ctx.stats.read_bytes += len;
        used += static_cast<uint32_t>(len);  // < UINT32_MAX, checked above
        return kBlkStatusOk;
    }

    uint8_t write() {
        uint64_t len = m_data.readable_bytes;
        if (m_ctx.disk.readonly()) return reject("write to read-only disk {}", m_ctx.id);
        if (m_data.writable_bytes != 0) return reject("write request with writable data");
        if (len % kSectorSize != 0) return reject("write of {} bytes: not whole sectors", len);
        if (!in_range(m_header.sector, len, m_ctx.disk.capacity_sectors())) {
            return reject("write of {} bytes at sector {} outside the disk ({} sectors)", len,
                          m_header.sector, m_ctx.disk.capacity_sectors());
        }
        if (auto r = m_ctx.disk.write(m_header.sector * kSectorSize, m_data.readable); !r) {
            return reject("write at sector {}: {}", m_header.sector, r.error().message());
        }
        m_ctx.stats.write_ops++;
        m_ctx.stats.write_bytes += len;
        return kBlkStatusOk;
    }

    uint8_t flush() {
        if (auto r = m_ctx.disk.flush(); !r) return reject("flush: {}", r.error().message());
        m_ctx.stats.flush_ops++;
        return kBlkStatusOk;
    }

    uint8_t get_id(uint32_t& used) {
        // Zero-padded; NUL-terminated only when shorter than 20 bytes (§5.2.6).
        std::array<std::byte, kBlkIdBytes> id{};
        size_t n = std::min(m_ctx.id.size(), id.size());
        std::copy_n(reinterpret_cast<const std::byte*>(m_ctx.id.data()), n, id.begin());
        size_t written = 0;
        for (const auto& slice : m_data.writable) {
            if (written == id.size()) break;
            auto chunk = std::span<const std::byte>(id).subspan(written);
            chunk = chunk.first(std::min<uint64_t>(chunk.size(), slice.size()));
            slice.copy_from(chunk);
            written += chunk.size();
        }
        used += static_cast<uint32_t>(written);
        return kBlkStatusOk;
    }

    // Logs (rate-limited), counts, and answers IOERR.
    template <typename... Args>
    uint8_t reject(fmt::format_string<Args...> f, Args&&... args) {
        if (m_ctx.log_limiter.allow()) {
            log::warn("virtio-blk {}: {}", m_ctx.id, fmt::format(f, std::forward<Args>(args)...));
        }
        m_ctx.stats.errors++;
        return kBlkStatusIoErr;
    }

    const BlockRequestContext& m_ctx;
    RequestHeader m_header;
    DataBuffers m_data;
};

// Header checks; nullopt when the request is malformed (answered with IOERR).
std::optional<RequestHeader> read_header(const BlockRequestContext& ctx,
                                         std::span<const Descriptor> descs) {
    const Descriptor& first = descs.front();
    if (first.device_writable || first.len < kBlkHeaderSize) return std::nullopt;
    auto header = ctx.memory.read_obj<RequestHeader>(first.addr);
    if (!header) return std::nullopt;
    return *header;
}

void warn_malformed(const BlockRequestContext& ctx, const DescriptorChain& chain,
                    std::string_view what) {
    if (ctx.log_limiter.allow()) log::warn("virtio-blk {}: request {} {}", ctx.id, chain.head(), what);
    ctx.stats.errors++;
}

}  // namespace

uint32_t execute_block_request(const BlockRequestContext& ctx, const DescriptorChain& chain) {
    auto descs = chain.descriptors();
    if (descs.empty() || !descs.back().device_writable || descs.back().len == 0) {
        warn_malformed(ctx, chain, "has no writable status byte; completed without status");
        return 0;
    }
    const Descriptor& last = descs.back();
    memory::GuestAddress status_addr = last.addr.unchecked_add(last.len - 1);

    uint8_t status = kBlkStatusIoErr;
    uint32_t used = 1;  // the status byte
    if (auto header = read_header(ctx, descs); !header) {
        warn_malformed(ctx, chain, "has no readable 16-byte header");
    } else if (auto data = collect_data(ctx.memory, descs); !data) {
        warn_malformed(ctx, chain, data.error().message());
    } else {
        Request request(ctx, *header, std::move(*data));
        status = request.run(used);
    }
    if (!ctx.memory.write_obj<uint8_t>(status_addr, status)) return 0;
    return used;
}

}  // namespace vmm::devices::virtio
