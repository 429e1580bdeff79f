#include "balloon/auto/counter_rate.h"

namespace vmm::balloon::auto_balloon {

std::optional<double> CounterRate::update(uint64_t value, std::chrono::milliseconds at) {
    if (m_value && at == m_at) return m_rate;
    bool baseline = !m_value || value < *m_value || at < m_at;
    if (baseline) {
        m_rate.reset();
    } else {
        double seconds = std::chrono::duration<double>(at - m_at).count();
        m_rate = static_cast<double>(value - *m_value) / seconds;
    }
    m_value = value;
    m_at = at;
    return m_rate;
}

}  // namespace vmm::balloon::auto_balloon
