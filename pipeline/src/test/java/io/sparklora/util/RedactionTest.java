package io.sparklora.util;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.Charset;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** Which settings are secrets, and that their values and URI user-info are replaced wherever text leaves a run. */
class RedactionTest {
    private static final String S3_SECRET = "s3-SECRET-4f9c2a";
    private static final String AZURE_KEY = "azure-KEY-81d0e3";
    private static final String TOKEN = "session-TOKEN-77ab1c";

    private static Redaction sample() {
        SparkConf spark = new SparkConf(false).set("spark.master", "local[2]")
                .set("spark.hadoop.fs.s3a.secret.key", S3_SECRET)
                .set("spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net", AZURE_KEY)
                .set("spark.executor.memory", "2g");
        Configuration hadoop = new Configuration(false);
        hadoop.set("fs.s3a.session.token", TOKEN);
        hadoop.set("fs.s3a.endpoint", "s3.eu-west-1.amazonaws.com");
        hadoop.set("fs.s3a.access.key", "true");     // too plain to search free text for
        return Redaction.of(spark, hadoop);
    }

    @Test
    void credentialKeysAreSecretAndOrdinarySettingsAreNot() {
        Redaction r = Redaction.none();
        for (String k : new String[]{"fs.s3a.secret.key", "fs.s3a.access.key", "fs.s3a.session.token", "spark.hadoop.fs.s3a.secret.key",
                "fs.azure.account.key.acct.blob.core.windows.net", "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net",
                "fs.azure.account.oauth2.client.secret", "spark.authenticate.secret", "javax.jdo.option.ConnectionPassword",
                "fs.s3a.bucket.logs.secret.key", "hadoop.security.credential.provider.path", "fs.gs.auth.service.account.private.key"}) {
            assertTrue(r.isSecretKey(k), k);
        }
        for (String k : new String[]{"spark.master", "spark.executor.memory", "fs.s3a.endpoint", "fs.defaultFS", "spark.redaction.regex"}) {
            assertFalse(r.isSecretKey(k), k);
        }
    }

    @Test
    void sparksRedactionRegexIsHonouredBesidesTheDefaults() {
        SparkConf spark = new SparkConf(false).set("spark.redaction.regex", "(?i)vault").set("spark.acme.vault.handle", "vault-handle-0x99");
        Redaction r = Redaction.of(spark, new Configuration(false));
        assertTrue(r.isSecretKey("spark.acme.vault.handle"));
        assertTrue(r.isSecretKey("fs.s3a.secret.key"), "the defaults still hold");
        assertEquals("handle=" + Redaction.REDACTED, r.scrub("handle=vault-handle-0x99"));
        assertFalse(Redaction.of(new SparkConf(false), new Configuration(false)).isSecretKey("spark.acme.vault.handle"));
    }

    @Test
    void secretValuesAndUserInfoAreScrubbedFromText() {
        Redaction r = sample();
        assertEquals(3, r.secretValues(), "the s3a secret, the Azure key and the session token");
        String text = "failed with key " + S3_SECRET + " and " + AZURE_KEY + "; token=" + TOKEN + " at s3a://AKIAXX:wJalr/K7@bucket/x"
                + " and hdfs://etl@nn:8020/y; endpoint s3.eu-west-1.amazonaws.com, flag true";
        String out = r.scrub(text);
        for (String s : new String[]{S3_SECRET, AZURE_KEY, TOKEN, "AKIAXX", "wJalr/K7", "etl@"}) assertFalse(out.contains(s), s + " in " + out);
        assertTrue(out.contains("s3a://" + Redaction.REDACTED + "@bucket/x"), out);
        assertTrue(out.contains("endpoint s3.eu-west-1.amazonaws.com, flag true"), "ordinary values stay: " + out);
        assertEquals("no secrets here", r.scrub("no secrets here"));
        assertEquals("s3a://bucket/img@2x.png and mailto:a@b", r.scrub("s3a://bucket/img@2x.png and mailto:a@b"), "an '@' in a path is not user-info");
    }

    @Test
    void anExceptionChainQuotingASecretIsReplacedByAScrubbedCopyAndACleanOneIsKept() {
        Redaction r = sample();
        IllegalStateException clean = new IllegalStateException("bad shard", new java.io.IOException("disk full"));
        assertSame(clean, r.scrub(clean), "nothing to hide: the original, with its types, is kept");

        java.io.IOException inner = new java.io.IOException("denied with key " + S3_SECRET);
        RuntimeException outer = new RuntimeException("stage failed", inner);
        Throwable safe = r.scrub(outer);
        assertNotSame(outer, safe);
        assertEquals("stage failed", safe.getMessage());
        assertEquals("denied with key " + Redaction.REDACTED, safe.getCause().getMessage());
        assertEquals("java.io.IOException: denied with key " + Redaction.REDACTED, safe.getCause().toString(), "prints as the original class");
        assertArrayEquals(inner.getStackTrace(), safe.getCause().getStackTrace());
        java.io.StringWriter trace = new java.io.StringWriter();
        safe.printStackTrace(new java.io.PrintWriter(trace));
        assertFalse(trace.toString().contains(S3_SECRET), trace.toString());
    }

    @Test
    void hadoopsDefaultsAreNotTakenForSecrets() {
        // core-default.xml sets credential-named keys (providers, token lifetimes); blanking them out of text helps no one
        assertEquals(0, Redaction.of(new SparkConf(false), new Configuration()).secretValues());
    }

    @Test
    void jsonIsScrubbedInItsStringsOnly() throws Exception {
        Redaction r = sample();
        JsonNode report = new ObjectMapper().readTree("{\"output\": \"s3a://k:" + S3_SECRET + "@b/run\", \"error\": \"bad " + TOKEN
                + "\", \"n\": 604800000, \"ok\": true, \"list\": [\"" + AZURE_KEY + "\", 1.5]}");
        JsonNode safe = r.scrub(report);
        String s = safe.toString();
        for (String secret : new String[]{S3_SECRET, TOKEN, AZURE_KEY}) assertFalse(s.contains(secret), s);
        assertEquals(604800000L, safe.get("n").asLong());
        assertTrue(safe.get("ok").asBoolean());
        assertEquals(1.5, safe.get("list").get(1).asDouble());
        assertTrue(report.toString().contains(S3_SECRET), "the original is left as it was");
    }

    @Test
    void redactedSettingsKeepTheirKeys() {
        Map<String, String> in = new LinkedHashMap<>();
        in.put("spark.hadoop.fs.s3a.secret.key", S3_SECRET);
        in.put("spark.executor.memory", "2g");
        in.put("spark.jdbc.url", "jdbc:mysql://db/x?password=hunter22");
        Map<String, String> out = sample().redact(in);
        assertEquals(Map.of("spark.hadoop.fs.s3a.secret.key", Redaction.REDACTED, "spark.executor.memory", "2g",
                "spark.jdbc.url", Redaction.REDACTED), out);
    }

    @Test
    void aWrappedStreamScrubsWholeLines() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = sample().wrap(new PrintStream(bytes, true, Charset.defaultCharset()));
        out.print("reading s3a://u:p@b/x with ");
        // a secret written in two pieces is still caught: the line is held until it ends
        out.print(S3_SECRET.substring(0, 5));
        out.flush();
        assertEquals("", bytes.toString(Charset.defaultCharset()), "nothing before the line ends");
        out.println(S3_SECRET.substring(5));
        out.printf("round %d/%d%n", 1, 2);
        assertEquals("reading s3a://" + Redaction.REDACTED + "@b/x with " + Redaction.REDACTED + System.lineSeparator()
                + "round 1/2" + System.lineSeparator(), bytes.toString(Charset.defaultCharset()));
    }
}
