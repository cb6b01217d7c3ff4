package io.mlkv.storage.rocksdb;

import java.nio.file.Path;
import java.util.List;

/**
 * What {@link StoreRepair#repair} salvaged and what it could not.
 *
 * @param salvaged          entries written to the repaired store
 * @param fromUnlistedFiles of those, entries taken from SST files that the store's MANIFEST no
 *                          longer listed (a truncated MANIFEST); where such a file and the
 *                          recovered state disagree on a key, the recovered state won
 * @param estimatedLost     RocksDB's estimate of the entries of the recovered state minus those
 *                          read from it, plus entries of unlisted files that could not be read;
 *                          0 when everything readable was read
 * @param dropped           the key ranges that failed their checks and were dropped, each with
 *                          the file or state it was read from; a whole unreadable file has the
 *                          range {@code Long.MIN_VALUE .. Long.MAX_VALUE}
 * @param notes             how the damaged state was opened (which MANIFEST, WAL records skipped)
 * @param damagedCopy       where the damaged files were moved, untouched; delete it once the
 *                          repaired store is verified
 */
public record RepairReport(long salvaged, long fromUnlistedFiles, long estimatedLost, List<Dropped> dropped,
        List<String> notes, Path damagedCopy) {

    /**
     * Keys {@code firstKey..lastKey} (inclusive) of {@code source} could not be read; any key of
     * the store in that range that is not in the repaired store was lost.
     */
    public record Dropped(String source, long firstKey, long lastKey, String reason) {
        /** Whether {@code key} lies in the range. */
        public boolean covers(long key) {
            return key >= firstKey && key <= lastKey;
        }

        @Override
        public String toString() {
            return source + ": keys " + firstKey + " to " + lastKey + " (" + reason + ")";
        }
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("salvaged ").append(salvaged).append(" entries (")
                .append(fromUnlistedFiles).append(" from SST files the MANIFEST no longer listed); about ")
                .append(estimatedLost).append(" lost; damaged files kept in ").append(damagedCopy);
        for (Dropped u : dropped) {
            sb.append("\n  dropped: ").append(u);
        }
        for (String n : notes) {
            sb.append("\n  note: ").append(n);
        }
        return sb.toString();
    }
}
