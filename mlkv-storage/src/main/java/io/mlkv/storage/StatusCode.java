package io.mlkv.storage;

/** What kind of failure an {@link MlkvException} reports. */
public enum StatusCode {
    /** A read or write of the SSD tier failed (disk full, unwritable directory, I/O error). */
    IO_ERROR,
    /** Stored bytes do not decode as what this store wrote (torn file, foreign data). */
    CORRUPTION,
    /** The storage directory holds a store with another format, dimension or element type. */
    INCOMPATIBLE_FORMAT,
    /** The storage directory is already opened by another store, in this or another process. */
    LOCKED,
    /** A CUDA or cuFile call failed. */
    DEVICE_ERROR,
    /** Memory for a tier could not be allocated. */
    OUT_OF_MEMORY,
    /** A user-supplied callback (for example a vector initializer) threw. */
    CALLBACK_FAILED
}
