package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.mlkv.client.TokenCacheException;
import io.mlkv.client.TokenCacheClient;
import java.io.File;
import java.io.FileInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Key;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.time.Duration;
import java.util.Base64;
import java.util.SplittableRandom;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SecurityTest {
    @TempDir
    Path dir;

    private static Status.Code codeOf(Runnable call) {
        CompletionException e = assertThrows(CompletionException.class, call::run);
        return ((TokenCacheException) e.getCause()).code();
    }

    @Test
    void callsWithoutTheBearerTokenAreUnauthenticated() throws Exception {
        int[] prompt = Fixture.prompt(new SplittableRandom(3), 256);
        try (TokenCacheServer server = Fixture.server(dir).bearerToken("s3cret-token").start();
             TokenCacheClient none = Fixture.client(server, "default");
             TokenCacheClient wrong = TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port())
                     .bearerToken("guess").build();
             TokenCacheClient right = TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port())
                     .bearerToken("s3cret-token").build()) {
            assertEquals(Status.Code.UNAUTHENTICATED, codeOf(() -> none.lookupAsync("default", "x", prompt).join()));
            assertEquals(Status.Code.UNAUTHENTICATED,
                    codeOf(() -> wrong.writeAsync(wrong.chunksOf(prompt).get(0)).join()));
            assertEquals(0, right.lookup("x", prompt).getCachedBlocks(), "nothing was written by refused calls");
            right.writeBatchAsync(right.chunksOf(prompt)).join();
            assertEquals(2, right.lookup("x", prompt).getCachedBlocks());
        }
    }

    /** A self-signed certificate for 127.0.0.1, made with the JDK's keytool, written as PEM files. */
    private static File[] selfSigned(Path dir) throws Exception {
        Path store = dir.resolve("server.p12");
        String keytool = Path.of(System.getProperty("java.home"), "bin", "keytool").toString();
        Process p = new ProcessBuilder(keytool, "-genkeypair", "-alias", "mlkv", "-keyalg", "EC", "-groupname", "secp256r1",
                "-dname", "CN=127.0.0.1", "-ext", "san=ip:127.0.0.1", "-validity", "2", "-storetype", "PKCS12",
                "-keystore", store.toString(), "-storepass", "changeit").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, "keytool failed: " + out);
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(store.toFile())) {
            ks.load(in, "changeit".toCharArray());
        }
        Key key = ks.getKey("mlkv", "changeit".toCharArray());
        Certificate cert = ks.getCertificate("mlkv");
        Base64.Encoder b64 = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII));
        File certPem = dir.resolve("cert.pem").toFile();
        File keyPem = dir.resolve("key.pem").toFile();
        Files.writeString(certPem.toPath(), "-----BEGIN CERTIFICATE-----\n" + b64.encodeToString(cert.getEncoded())
                + "\n-----END CERTIFICATE-----\n");
        Files.writeString(keyPem.toPath(), "-----BEGIN PRIVATE KEY-----\n" + b64.encodeToString(key.getEncoded())
                + "\n-----END PRIVATE KEY-----\n");
        return new File[] {certPem, keyPem};
    }

    @Test
    void tlsClientsTalkToATlsServerAndPlaintextOnesCannot() throws Exception {
        File[] pem = selfSigned(dir);
        int[] prompt = Fixture.prompt(new SplittableRandom(4), 128);
        try (TokenCacheServer server = Fixture.server(dir.resolve("data")).tls(pem[0], pem[1]).start();
             TokenCacheClient tls = TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port())
                     .trustCertificate(pem[0]).build();
             TokenCacheClient plain = TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port())
                     .deadline(Duration.ofSeconds(2)).maxAttempts(1).build()) {
            tls.writeAsync(tls.chunksOf(prompt).get(0)).join();
            assertEquals(1, tls.lookup("x", prompt).getCachedBlocks());
            Status.Code code = codeOf(() -> plain.lookupAsync("default", "x", prompt).join());
            assertTrue(code == Status.Code.UNAVAILABLE || code == Status.Code.INTERNAL, "plaintext to TLS gave " + code);
        }
    }

    @Test
    void aClientTrustingAnotherCertificateIsToldTheTlsHandshakeFailed() throws Exception {
        File[] pem = selfSigned(Files.createDirectories(dir.resolve("server-cert")));
        File[] other = selfSigned(Files.createDirectories(dir.resolve("other-cert")));
        int[] prompt = Fixture.prompt(new SplittableRandom(6), 128);
        try (TokenCacheServer server = Fixture.server(dir.resolve("data")).tls(pem[0], pem[1]).start();
             TokenCacheClient mistrusting = TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port())
                     .trustCertificate(other[0]).deadline(Duration.ofSeconds(5)).maxAttempts(1).build()) {
            TokenCacheException e = org.junit.jupiter.api.Assertions.assertThrows(TokenCacheException.class,
                    () -> mistrusting.lookup("x", prompt));
            assertTrue(e.isTlsFailure(), e.getMessage());
            assertTrue(e.getMessage().contains("TLS handshake failed") && e.getMessage().contains("127.0.0.1:" + server.port())
                    && e.getMessage().contains("Lookup"), e.getMessage());
        }
    }
}
