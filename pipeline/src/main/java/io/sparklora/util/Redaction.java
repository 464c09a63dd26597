package io.sparklora.util;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.hadoop.conf.ConfigRedactor;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Keeps secrets out of what a run prints and writes (console lines, {@code report.json}, {@code report.html},
 * {@code metrics.jsonl}, error messages).
 *
 * <p>A setting is secret when its key matches {@link #DEFAULT_REGEX} (Spark's default {@code spark.redaction.regex}
 * plus the key names Hadoop's object stores keep credentials under that Spark's default misses, such as
 * {@code fs.azure.account.key.*}), or the {@code spark.redaction.regex} the Spark configuration sets, or Hadoop's own
 * {@code hadoop.security.sensitive-config-keys}; a Spark setting whose value matches the regex is secret too (as in
 * Spark). Two things are replaced by {@link #REDACTED} in free text: the values of the secret settings of the Spark
 * and Hadoop configurations (values of at least {@link #MIN_SECRET_LENGTH} characters that are not a number or a
 * boolean, so that a {@code true} or a port number is not blanked out of every message), and the user-info part of
 * any URI ({@code s3a://KEY:SECRET@bucket/...}).
 */
public final class Redaction {
    /** What a secret is replaced by (Spark's own marker). */
    public static final String REDACTED = "*********(redacted)";
    /** Spark's default {@code spark.redaction.regex}, plus credential key names Spark's default does not match. */
    public static final String DEFAULT_REGEX = "(?i)secret|password|token|access[.]key|account[.]key|credential|private[.]key";
    /** Shorter secret values are not searched for in free text (they are still redacted where a key names them). */
    public static final int MIN_SECRET_LENGTH = 6;

    private static final Pattern DEFAULT = Pattern.compile(DEFAULT_REGEX);
    /**
     * {@code scheme://userinfo@}: the user-info of a URI, which may hold a password or an access key. A password may
     * hold a '/' (AWS secret keys do, and are often written unescaped); a user name alone may not.
     */
    private static final Pattern USER_INFO = Pattern.compile("(?i)\\b([a-z][a-z0-9+.-]*://)([^/?#@\\s:\"'<>]*:[^@\\s\"'<>]*|[^/?#@\\s\"'<>]+)@");
    private static final Pattern NOT_SECRET_VALUE = Pattern.compile("(?i)true|false|[-+]?[0-9]+([.][0-9]+)?[a-z]{0,2}");

    private final Pattern configured;
    private final ConfigRedactor hadoopRedactor;
    private final List<String> secrets;

    private Redaction(Pattern configured, ConfigRedactor hadoopRedactor, Iterable<Map.Entry<String, String>> settings) {
        this.configured = configured;
        this.hadoopRedactor = hadoopRedactor;
        TreeSet<String> found = new TreeSet<>();
        for (Map.Entry<String, String> e : settings) {
            String v = e.getValue();
            if (v == null || v.length() < MIN_SECRET_LENGTH || NOT_SECRET_VALUE.matcher(v.strip()).matches()) continue;
            if (isSecretKey(e.getKey())) found.add(v);
        }
        // longest first, so that a secret containing another is replaced whole
        List<String> s = new ArrayList<>(found);
        s.sort(Comparator.comparingInt(String::length).reversed());
        this.secrets = List.copyOf(s);
    }

    /** Redaction of what neither configuration holds: URI user-info only, and keys by the default patterns. */
    public static Redaction none() {
        return new Redaction(null, new ConfigRedactor(new Configuration(false)), List.of());
    }

    /**
     * The secrets of a Spark context's configuration and its Hadoop configuration ({@code spark.hadoop.*} settings are
     * copied into the latter by Spark; settings made on it directly count too). Settings that come only from Hadoop's
     * {@code *-default.xml} files are not secrets.
     */
    public static Redaction of(SparkConf spark, Configuration hadoop) {
        String regex = spark == null ? null : spark.get("spark.redaction.regex", null);
        Pattern configured = regex == null ? null : Pattern.compile(regex);
        List<Map.Entry<String, String>> settings = new ArrayList<>();
        if (spark != null) {
            for (scala.Tuple2<String, String> t : spark.getAll()) {
                settings.add(Map.entry(t._1(), t._2()));
                // as Spark does: a value that itself looks like a credential (a JDBC URL with a password) is secret
                if (matches(DEFAULT, t._2()) || matches(configured, t._2())) settings.add(Map.entry("secret", t._2()));
            }
        }
        if (hadoop != null) {
            for (Map.Entry<String, String> e : hadoop) {
                String[] sources = hadoop.getPropertySources(e.getKey());
                boolean defaultOnly = sources != null && sources.length > 0
                        && java.util.Arrays.stream(sources).allMatch(s -> s.endsWith("-default.xml"));
                if (defaultOnly) continue;
                settings.add(Map.entry(e.getKey(), e.getValue()));
                String effective = hadoop.get(e.getKey());     // with ${...} substituted
                if (effective != null && !effective.equals(e.getValue())) settings.add(Map.entry(e.getKey(), effective));
            }
        }
        ConfigRedactor hadoopRedactor = new ConfigRedactor(hadoop == null ? new Configuration() : hadoop);
        return new Redaction(configured, hadoopRedactor, settings);
    }

    /** Whether a setting of this name holds a secret (see the class comment). */
    public boolean isSecretKey(String key) {
        if (matches(DEFAULT, key) || matches(configured, key)) return true;
        // Hadoop's list is anchored on the bare key; a spark.hadoop. prefix is Spark's way of passing it on
        String bare = key.startsWith("spark.hadoop.") ? key.substring("spark.hadoop.".length()) : key;
        return !"x".equals(hadoopRedactor.redact(bare, "x"));
    }

    /** How many distinct secret values this searches free text for (for tests and diagnostics). */
    public int secretValues() {
        return secrets.size();
    }

    /** {@code text} with every secret value and every URI user-info replaced by {@link #REDACTED}. */
    public String scrub(String text) {
        if (text == null || text.isEmpty()) return text;
        String out = text;
        for (String s : secrets) if (out.contains(s)) out = out.replace(s, REDACTED);
        return userInfo(out);
    }

    /**
     * {@code t} itself when no message in its cause chain holds a secret or a URI's user-info; otherwise a copy of the
     * chain whose every message is scrubbed. Each copy keeps the original's class name (in its {@code toString}, so a
     * printed stack trace reads as before) and stack trace; the originals, which still quote the secret, are dropped.
     */
    public Throwable scrub(Throwable t) {
        boolean leaks = false;
        int depth = 0;
        for (Throwable c = t; c != null && depth < 32; c = c.getCause(), depth++) {
            String m = c.getMessage();
            if (m != null && !m.equals(scrub(m))) leaks = true;
        }
        return leaks ? copy(t, 0) : t;
    }

    private Throwable copy(Throwable t, int depth) {
        if (t == null || depth >= 32) return null;
        Throwable cause = copy(t.getCause(), depth + 1);
        RedactedException r = new RedactedException(t.getClass().getName(), scrub(t.getMessage()), cause);
        r.setStackTrace(t.getStackTrace());
        return r;
    }

    /** A scrubbed stand-in for an exception whose message quoted a secret; prints as the original class. */
    public static final class RedactedException extends RuntimeException {
        private final String originalClass;

        RedactedException(String originalClass, String message, Throwable cause) {
            super(message, cause);
            this.originalClass = originalClass;
        }

        /** The class of the exception this stands in for. */
        public String originalClass() { return originalClass; }

        @Override
        public String toString() {
            return getLocalizedMessage() == null ? originalClass : originalClass + ": " + getLocalizedMessage();
        }
    }

    /** The user-info of every URI in {@code text} ({@code s3a://KEY:SECRET@bucket}) replaced by {@link #REDACTED}. */
    public static String userInfo(String text) {
        if (text == null || text.indexOf('@') < 0) return text;
        Matcher m = USER_INFO.matcher(text);
        return m.find() ? m.replaceAll(r -> Matcher.quoteReplacement(r.group(1) + REDACTED + "@")) : text;
    }

    /** A copy of {@code node} with every string value (not the keys) scrubbed; numbers and booleans are untouched. */
    public JsonNode scrub(JsonNode node) {
        if (node == null) return null;
        if (node.isTextual()) return JsonNodeFactory.instance.textNode(scrub(node.textValue()));
        if (node.isObject()) {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                o.set(e.getKey(), scrub(e.getValue()));
            }
            return o;
        }
        if (node.isArray()) {
            ArrayNode a = JsonNodeFactory.instance.arrayNode();
            for (JsonNode n : node) a.add(scrub(n));
            return a;
        }
        return node.deepCopy();
    }

    /** {@code settings} with the value of every secret setting replaced by {@link #REDACTED}, in the same order. */
    public Map<String, String> redact(Map<String, String> settings) {
        Map<String, String> out = new LinkedHashMap<>();
        settings.forEach((k, v) -> out.put(k, isSecretKey(k) || matches(DEFAULT, v) || matches(configured, v) ? REDACTED : scrub(v)));
        return out;
    }

    /**
     * A stream that writes to {@code out} line by line ({@code \n} or {@code \r} ends a line), each line scrubbed first;
     * an unfinished line is held until it ends or the stream is closed, so a secret is never split across writes.
     */
    public PrintStream wrap(PrintStream out) {
        Charset cs = Charset.defaultCharset();
        OutputStream lines = new OutputStream() {
            private final ByteArrayOutputStream line = new ByteArrayOutputStream();

            @Override
            public synchronized void write(int b) {
                line.write(b);
                if (b == '\n' || b == '\r') emit();
            }

            @Override
            public synchronized void write(byte[] b, int off, int len) {
                for (int i = off; i < off + len; i++) write(b[i]);
            }

            private void emit() {
                if (line.size() == 0) return;
                byte[] bytes = scrub(line.toString(cs)).getBytes(cs);
                line.reset();
                out.write(bytes, 0, bytes.length);
                out.flush();
            }

            @Override
            public synchronized void flush() {
                out.flush();
            }

            @Override
            public synchronized void close() throws IOException {
                emit();
                out.flush();
            }
        };
        return new PrintStream(lines, true, cs);
    }

    private static boolean matches(Pattern p, String s) {
        return p != null && s != null && p.matcher(s).find();
    }
}
