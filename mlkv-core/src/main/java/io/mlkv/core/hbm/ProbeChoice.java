package io.mlkv.core.hbm;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Whether a device read may probe the mapped DRAM tier unchecked (see
 * {@code MappedDramTier.Probe.UNCHECKED}). An unchecked probe that a DRAM change overtakes is
 * repeated checked, which costs more than one checked probe; where changes keep overtaking probes
 * (other callers moving rows into DRAM meanwhile), the next {@link #CHECKED_AFTER_OVERTAKEN} probes
 * run checked, so at most one probe in {@code CHECKED_AFTER_OVERTAKEN + 1} is paid twice. Thread-safe.
 */
final class ProbeChoice {
    /** Probes that run checked after an unchecked one was overtaken. */
    static final int CHECKED_AFTER_OVERTAKEN = 16;

    private final AtomicInteger checkedLeft = new AtomicInteger();

    /** Whether this probe may run unchecked (if the tier is quiet); counts down the checked ones owed. */
    boolean mayRunUnchecked() {
        while (true) {
            int left = checkedLeft.get();
            if (left == 0) {
                return true;
            }
            if (checkedLeft.compareAndSet(left, left - 1)) {
                return false;
            }
        }
    }

    /** An unchecked probe was overtaken by a change and ran again checked. */
    void overtaken() {
        checkedLeft.set(CHECKED_AFTER_OVERTAKEN);
    }
}
