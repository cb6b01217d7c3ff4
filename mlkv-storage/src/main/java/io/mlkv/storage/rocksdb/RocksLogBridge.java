package io.mlkv.storage.rocksdb;

import org.rocksdb.InfoLogLevel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * RocksDB's own log, sent to SLF4J (logger {@code org.rocksdb}) at warning level and above
 * instead of a {@code LOG} file in the store directory: a failed open then writes nothing there,
 * and the application's logging configuration decides where RocksDB's complaints go.
 */
final class RocksLogBridge extends org.rocksdb.Logger {
    private static final Logger LOG = LoggerFactory.getLogger("org.rocksdb");

    RocksLogBridge() {
        super(InfoLogLevel.WARN_LEVEL);
    }

    @Override
    protected void log(InfoLogLevel level, String message) {
        switch (level) {
            case DEBUG_LEVEL, INFO_LEVEL, HEADER_LEVEL -> LOG.debug("{}", message);
            case WARN_LEVEL -> LOG.warn("{}", message);
            default -> LOG.error("{}", message);
        }
    }
}
