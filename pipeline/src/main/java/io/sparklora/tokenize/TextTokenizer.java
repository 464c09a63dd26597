package io.sparklora.tokenize;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayInputStream;
import java.io.Closeable;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * A Hugging Face {@code tokenizer.json} loaded into the Hugging Face tokenizers library (Rust) through DJL's binding.
 *
 * <p>Encoding never truncates or pads, so a long document comes back whole; the packer cuts it into blocks.
 * Special tokens (BOS and the like) are only added when the caller asks for them.
 *
 * <p>Encoding calls DJL's JNI layer ({@link TokenizersLibrary}) for the ids alone: DJL's {@code Encoding} also fetches
 * token strings, word ids, masks and character spans, which halved batch throughput in measurements and runs on one
 * Java thread while the native batch encode is parallel. Truncation and padding are switched off on the native
 * tokenizer itself, so both paths see the same settings.
 *
 * <p>DJL's binding has no vocabulary look-up, so token ids and the vocabulary size are read from the same
 * {@code tokenizer.json} bytes that the native tokenizer was built from.
 *
 * <p>Encoding and decoding are thread-safe (the native tokenizer is immutable); {@link #close()} frees the native
 * tokenizer and must not race with them.
 */
public final class TextTokenizer implements Closeable {

    /** End-of-text markers of the common model families, in the order they are tried. */
    private static final List<String> EOS_CANDIDATES = List.of("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>");

    static {
        pinBundledNativeLibrary();
    }

    private final HuggingFaceTokenizer tokenizer;
    private final Path source;
    private final String fingerprint;
    private final Map<String, Integer> idsByToken;
    private final int vocabSize;

    private TextTokenizer(HuggingFaceTokenizer tokenizer, Path source, String fingerprint,
                          Map<String, Integer> idsByToken, int vocabSize) {
        this.tokenizer = tokenizer;
        this.source = source;
        this.fingerprint = fingerprint;
        this.idsByToken = idsByToken;
        this.vocabSize = vocabSize;
    }

    /** Loads a {@code tokenizer.json} file. */
    public static TextTokenizer fromFile(Path tokenizerJson) throws IOException {
        Objects.requireNonNull(tokenizerJson, "tokenizerJson");
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new FileNotFoundException("tokenizer file not found: " + tokenizerJson.toAbsolutePath());
        }
        byte[] bytes = Files.readAllBytes(tokenizerJson);
        JsonNode root = parseJson(bytes, tokenizerJson);
        Map<String, Integer> idsByToken = readTokenIds(root, tokenizerJson);
        int vocabSize = idsByToken.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
        HuggingFaceTokenizer hfTokenizer = loadNative(bytes, tokenizerJson);
        return new TextTokenizer(hfTokenizer, tokenizerJson, sha256Hex(bytes), idsByToken, vocabSize);
    }

    /** Loads {@code tokenizer.json} from a Hugging Face model directory. */
    public static TextTokenizer fromModelDir(Path dir) throws IOException {
        Objects.requireNonNull(dir, "dir");
        if (!Files.isDirectory(dir)) {
            throw new FileNotFoundException("model directory not found: " + dir.toAbsolutePath());
        }
        Path tokenizerJson = dir.resolve("tokenizer.json");
        if (Files.isRegularFile(tokenizerJson)) {
            return fromFile(tokenizerJson);
        }
        if (Files.isRegularFile(dir.resolve("vocab.json")) && Files.isRegularFile(dir.resolve("merges.txt"))) {
            throw new FileNotFoundException("model directory " + dir.toAbsolutePath() + " has vocab.json and merges.txt"
                    + " but no tokenizer.json; tokenizer.json is required (write it with transformers:"
                    + " AutoTokenizer.from_pretrained(dir).save_pretrained(dir) using a fast tokenizer)");
        }
        throw new FileNotFoundException("no tokenizer.json in model directory " + dir.toAbsolutePath());
    }

    /** Token ids of {@code text}, with no special tokens added. */
    public int[] encode(String text) {
        return encode(text, false);
    }

    /** Token ids of {@code text}; {@code addSpecialTokens} applies the tokenizer's post-processor (e.g. BOS). */
    public int[] encode(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text");
        long encoding = TokenizersLibrary.LIB.encode(tokenizer.getHandle(), text, addSpecialTokens);
        try {
            return toIntIds(TokenizersLibrary.LIB.getTokenIds(encoding));
        } finally {
            TokenizersLibrary.LIB.deleteEncoding(encoding);
        }
    }

    /** Encodes many texts in one native call, which the tokenizers library spreads over its thread pool. */
    public int[][] encodeBatch(List<String> texts) {
        return encodeBatch(texts, false);
    }

    public int[][] encodeBatch(List<String> texts, boolean addSpecialTokens) {
        Objects.requireNonNull(texts, "texts");
        if (texts.isEmpty()) {
            return new int[0][];
        }
        String[] array = texts.toArray(new String[0]);
        for (int i = 0; i < array.length; i++) {
            if (array[i] == null) {
                throw new NullPointerException("texts[" + i + "] is null");
            }
        }
        long[] encodings = TokenizersLibrary.LIB.batchEncode(tokenizer.getHandle(), array, addSpecialTokens);
        try {
            int[][] ids = new int[encodings.length][];
            for (int i = 0; i < encodings.length; i++) {
                ids[i] = toIntIds(TokenizersLibrary.LIB.getTokenIds(encodings[i]));
            }
            return ids;
        } finally {
            for (long encoding : encodings) {
                TokenizersLibrary.LIB.deleteEncoding(encoding);
            }
        }
    }

    /** Text of {@code ids}; special tokens are kept so that an end-of-text marker stays visible. */
    public String decode(int[] ids) {
        Objects.requireNonNull(ids, "ids");
        long[] longIds = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new IllegalArgumentException("token id " + ids[i] + " at position " + i
                        + " is outside the vocabulary [0, " + vocabSize + ") of " + source);
            }
            longIds[i] = ids[i];
        }
        return tokenizer.decode(longIds, false);
    }

    /** One more than the largest id of the model vocabulary and the added tokens. */
    public int vocabSize() {
        return vocabSize;
    }

    /** Id of a token as spelled in the vocabulary (byte-level tokenizers spell a leading space as {@code Ġ}). */
    public OptionalInt tokenId(String token) {
        Integer id = idsByToken.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** Id of the end-of-text token, which separates documents when they are packed into blocks. */
    public int eosTokenId() {
        for (String candidate : EOS_CANDIDATES) {
            OptionalInt id = tokenId(candidate);
            if (id.isPresent()) {
                return id.getAsInt();
            }
        }
        throw new IllegalStateException("tokenizer " + source + " has none of the end-of-text tokens "
                + EOS_CANDIDATES + "; add one of them to its added_tokens");
    }

    /** SHA-256 (lower-case hex) of the tokenizer.json bytes, so that token shards can name the tokenizer they need. */
    public String fingerprint() {
        return fingerprint;
    }

    public Path source() {
        return source;
    }

    @Override
    public void close() {
        tokenizer.close();
    }

    @Override
    public String toString() {
        return "TextTokenizer[" + source + ", vocabSize=" + vocabSize + ", sha256=" + fingerprint.substring(0, 12) + "]";
    }

    private static int[] toIntIds(long[] longIds) {
        int[] ids = new int[longIds.length];
        for (int i = 0; i < longIds.length; i++) {
            ids[i] = Math.toIntExact(longIds[i]);
        }
        return ids;
    }

    private static JsonNode parseJson(byte[] bytes, Path file) throws IOException {
        try {
            JsonNode root = new ObjectMapper().readTree(bytes);
            if (root == null || !root.isObject()) {
                throw new IOException("tokenizer file " + file + " is not a JSON object");
            }
            return root;
        } catch (JsonProcessingException e) {
            String where = e.getLocation() == null ? ""
                    : " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")";
            throw new IOException("malformed JSON in tokenizer file " + file + where + ": " + e.getOriginalMessage(), e);
        }
    }

    /**
     * Token-to-id map of the model vocabulary plus the added tokens. BPE, WordPiece and WordLevel store the
     * vocabulary as an object (token to id); Unigram stores a list of [token, score] pairs whose index is the id.
     */
    private static Map<String, Integer> readTokenIds(JsonNode root, Path file) throws IOException {
        JsonNode vocab = root.path("model").path("vocab");
        Map<String, Integer> ids = new HashMap<>();
        if (vocab.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> entry = it.next();
                ids.put(entry.getKey(), entry.getValue().asInt());
            }
        } else if (vocab.isArray()) {
            for (int i = 0; i < vocab.size(); i++) {
                ids.putIfAbsent(vocab.get(i).path(0).asText(), i);
            }
        } else {
            throw new IOException("tokenizer file " + file + " has no model.vocab; is it a Hugging Face tokenizer.json?");
        }
        for (JsonNode added : root.path("added_tokens")) {
            ids.put(added.path("content").asText(), added.path("id").asInt());
        }
        return ids;
    }

    private static HuggingFaceTokenizer loadNative(byte[] bytes, Path file) throws IOException {
        // Truncation and padding may be configured inside tokenizer.json; turn both off explicitly.
        Map<String, String> options = Map.of("truncation", "false", "padding", "false", "addSpecialTokens", "false");
        try {
            return HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(bytes), options);
        } catch (RuntimeException e) {
            throw new IOException("the Hugging Face tokenizers library rejected " + file + ": " + e.getMessage(), e);
        }
    }

    /** The fingerprint a tokenizer loaded from these tokenizer.json bytes has (without loading it). */
    public static String fingerprintOf(byte[] tokenizerJson) {
        return sha256Hex(tokenizerJson);
    }

    private static String sha256Hex(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /**
     * DJL would otherwise reach for the network on first use: on a host where it detects CUDA it picks a GPU build of
     * the tokenizers library, which is not in its jar, and tries to download it instead of using the bundled CPU
     * build; and it sends a telemetry ping (after probing the EC2 metadata endpoint). Training hosts are often offline, so pin the bundled CPU build and opt out.
     * A value set by the user, as a system property or environment variable, wins.
     */
    private static void pinBundledNativeLibrary() {
        setUnlessConfigured("ai.djl.offline", "DJL_OFFLINE", "true");
        setUnlessConfigured("RUST_FLAVOR", "RUST_FLAVOR", "cpu");
        setUnlessConfigured("OPT_OUT_TRACKING", "OPT_OUT_TRACKING", "true");
    }

    private static void setUnlessConfigured(String property, String envVariable, String value) {
        if (System.getProperty(property) == null && System.getenv(envVariable) == null) {
            System.setProperty(property, value);
        }
    }
}
