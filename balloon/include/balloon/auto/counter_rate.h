// The per-second rate of a cumulative guest counter (major faults, allocation
// stalls) between two samples. The guest owns these counters: they restart from
// zero when it reboots, and a value that went backwards must not read as a huge
// rate (unsigned wrap) nor as a negative one.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace vmm::balloon::auto_balloon {

class CounterRate {
public:
    // Feeds a sample taken at `at`. Returns the rate since the previous sample;
    // nullopt for the first sample and after the counter or the time went backwards
    // (both start a new baseline). A sample with the same time as the previous one
    // is the same report seen again: the previous rate is repeated.
    std::optional<double> update(uint64_t value, std::chrono::milliseconds at);
    std::optional<double> last() const { return m_rate; }
    void reset() { *this = CounterRate(); }

private:
    std::optional<uint64_t> m_value;
    std::chrono::milliseconds m_at{0};
    std::optional<double> m_rate;
};

}  // namespace vmm::balloon::auto_balloon
