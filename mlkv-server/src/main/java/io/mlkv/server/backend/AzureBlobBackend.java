package io.mlkv.server.backend;

import com.azure.core.util.BinaryData;
import com.azure.storage.blob.BlobContainerClient;
import com.azure.storage.blob.BlobServiceClientBuilder;
import com.azure.storage.blob.models.BlobItem;
import com.azure.storage.blob.models.BlobStorageException;
import com.azure.storage.blob.models.ListBlobsOptions;
import com.azure.storage.common.policy.RequestRetryOptions;
import com.azure.storage.common.policy.RetryPolicyType;
import java.util.HexFormat;
import java.util.function.LongConsumer;
import java.util.function.Supplier;

/**
 * Blocks in Azure Blob Storage (or Azurite): one block blob per block, named
 * {@code <partition>/<hash as 16 lower-case hex digits>} in one container.
 *
 * <p>Thread-safe (the SDK's clients are). Every SDK failure is rethrown as
 * {@link BackendException} naming the operation, the blob and the service's error code.
 */
public final class AzureBlobBackend {
    private final BlobContainerClient container;

    /**
     * Connects and creates the container if it does not exist.
     *
     * @param connectionString an Azure Storage connection string (Azurite's works)
     * @param containerName    3-63 lower-case letters, digits and dashes
     */
    static {
        // The SDK sets Content-Length on uploads, a header the JDK's HttpClient drops (logging a
        // warning per request) unless it is allowed; the value the SDK sets is the body's length.
        // Read once, when the first HttpClient is built, so it is set before any.
        if (System.getProperty("jdk.httpclient.allowRestrictedHeaders") == null) {
            System.setProperty("jdk.httpclient.allowRestrictedHeaders", "content-length");
        }
    }

    public AzureBlobBackend(String connectionString, String containerName) {
        // Bounded retries: a Write in write-through mode waits for them.
        RequestRetryOptions retries = new RequestRetryOptions(RetryPolicyType.EXPONENTIAL, 3, 10, 100L, 1000L, null);
        this.container = call("connect to blob storage for container '" + containerName + "'",
                () -> new BlobServiceClientBuilder().connectionString(connectionString).retryOptions(retries)
                        .buildClient().getBlobContainerClient(containerName));
        call("create container '" + containerName + "'", () -> container.createIfNotExists());
    }

    static String blobName(String partition, long hash) {
        return partition + "/" + HexFormat.of().toHexDigits(hash);
    }

    /** Uploads a block, replacing any blob of that name. */
    public void put(String partition, long hash, byte[] blob) {
        String name = blobName(partition, hash);
        call("upload " + name, () -> container.getBlobClient(name).upload(BinaryData.fromBytes(blob), true));
    }

    /** The block's bytes, or null if no such blob exists. */
    public byte[] get(String partition, long hash) {
        String name = blobName(partition, hash);
        return call("download " + name, () -> {
            try {
                return container.getBlobClient(name).downloadContent().toBytes();
            } catch (BlobStorageException e) {
                if (e.getStatusCode() == 404) {
                    return null;
                }
                throw e;
            }
        });
    }

    /**
     * Calls {@code sink} with the hash of every block of a partition (from blob names, no
     * download); names that are not 16 hex digits are skipped.
     *
     * @return how many hashes were passed on
     */
    public long listHashes(String partition, LongConsumer sink) {
        String prefix = partition + "/";
        return call("list " + prefix, () -> {
            long n = 0;
            for (BlobItem item : container.listBlobs(new ListBlobsOptions().setPrefix(prefix), null)) {
                String suffix = item.getName().substring(prefix.length());
                if (suffix.length() == 16 && suffix.chars().allMatch(c -> Character.digit(c, 16) >= 0)) {
                    sink.accept(HexFormat.fromHexDigitsToLong(suffix));
                    n++;
                }
            }
            return n;
        });
    }

    /** Runs one SDK call, turning its failures into {@link BackendException} naming {@code operation}. */
    private static <T> T call(String operation, Supplier<T> body) {
        try {
            return body.get();
        } catch (BlobStorageException e) {
            throw new BackendException(operation, e.getErrorCode() + " (HTTP " + e.getStatusCode() + ")", e);
        } catch (RuntimeException e) {
            throw new BackendException(operation, e.getClass().getSimpleName() + ": " + e.getMessage(), e);
        }
    }

    private static void call(String operation, Runnable body) {
        call(operation, () -> {
            body.run();
            return null;
        });
    }

    @Override
    public String toString() {
        return "azure-blob " + container.getBlobContainerUrl();
    }
}
