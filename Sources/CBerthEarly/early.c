#include "berth_sys.h"

// Runs before Swift's main and before any thread can exist, so no signal can
// slip past the signalfd loop and the inherited mask is recorded untouched.
__attribute__((constructor(101)))
static void berth_early_block_signals(void) {
    berth_capture_and_block_signals();
}
