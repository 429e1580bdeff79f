// libFuzzer's start-up hook, compiled into every target (not in fuzz_support: an
// archive member that only provides this weakly referenced symbol would never be
// linked in). The VMM's log lines would drown libFuzzer's own output.
#include "support/fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    vmm::fuzz::quiet_logging();
    return 0;
}
