package io.sparklora.tokenize;

import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Learns byte-level BPE merges from a corpus and writes them as a GPT-2-style {@code tokenizer.json}.
 *
 * <p>This exists for small demo models where no pretrained tokenizer can be downloaded. It only learns merges;
 * encoding is always done by the Hugging Face tokenizers library loading the written file ({@link TextTokenizer}).
 *
 * <p>Vocabulary layout: ids 0-255 are GPT-2's 256 byte symbols (in GPT-2's order), then one token per learned
 * merge in the order learned, then {@code <|endoftext|>} as the last id. Training is deterministic: the most
 * frequent adjacent pair is merged first, ties going to the pair with the smaller left id, then smaller right id.
 */
public final class ByteLevelBpeTrainer {

    public static final String END_OF_TEXT = "<|endoftext|>";

    /** Bytes GPT-2 maps to themselves as characters: the printable Latin-1 range minus space and soft hyphen. */
    private static final int[][] PRINTABLE_BYTE_RANGES = {{'!', '~'}, {0xA1, 0xAC}, {0xAE, 0xFF}};

    /**
     * GPT-2's pre-tokenization pattern. Unicode classes make {@code \s} match Unicode whitespace, as the tokenizers
     * library's regex does, so words split here (nearly always) as they will when that library encodes.
     */
    private static final Pattern GPT2_SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    private ByteLevelBpeTrainer() {
    }

    /**
     * Learns merges from {@code texts} until the vocabulary, {@code <|endoftext|>} included, has {@code vocabSize}
     * tokens (fewer if the corpus runs out of pairs), and writes the tokenizer atomically to {@code outTokenizerJson}.
     */
    public static void train(Iterable<String> texts, int vocabSize, Path outTokenizerJson) throws IOException {
        Objects.requireNonNull(texts, "texts");
        Objects.requireNonNull(outTokenizerJson, "outTokenizerJson");
        if (vocabSize < 257) {
            throw new IllegalArgumentException("vocabSize must be at least 257 (256 byte symbols + "
                    + END_OF_TEXT + "), got " + vocabSize);
        }
        MergeLearner learner = new MergeLearner(gpt2VocabularyByteSymbols(), countWords(texts));
        List<String[]> merges = learner.learn(vocabSize - 1);
        writeAtomically(outTokenizerJson, tokenizerJson(learner.tokens(), merges));
    }

    /** Command line: {@code ByteLevelBpeTrainer CORPUS.txt VOCAB_SIZE OUT/tokenizer.json}; the corpus is one text. */
    public static void main(String[] args) throws IOException {
        if (args.length != 3) {
            System.err.println("usage: ByteLevelBpeTrainer CORPUS.txt VOCAB_SIZE OUT/tokenizer.json");
            System.exit(2);
        }
        String corpus = Files.readString(Path.of(args[0]), StandardCharsets.UTF_8);
        train(List.of(corpus), Integer.parseInt(args[1]), Path.of(args[2]));
    }

    /**
     * GPT-2's bytes_to_unicode, indexed by unsigned byte value: printable bytes stand for themselves; the other 68
     * bytes, in increasing order, get the code points 256, 257, ... so that every byte is a visible, non-space
     * character (space, byte 32, becomes {@code Ġ}).
     */
    static String[] gpt2SymbolOfByte() {
        boolean[] printable = new boolean[256];
        for (int[] range : PRINTABLE_BYTE_RANGES) {
            for (int b = range[0]; b <= range[1]; b++) {
                printable[b] = true;
            }
        }
        String[] symbolOfByte = new String[256];
        int next = 256;
        for (int b = 0; b < 256; b++) {
            symbolOfByte[b] = String.valueOf((char) (printable[b] ? b : next++));
        }
        return symbolOfByte;
    }

    /** The byte symbols in GPT-2's vocabulary order (printable bytes, then the remapped ones): by code point. */
    static String[] gpt2VocabularyByteSymbols() {
        String[] symbols = gpt2SymbolOfByte();
        Arrays.sort(symbols);
        return symbols;
    }

    /** Pre-tokenizes like GPT-2 and counts each word, spelled in byte symbols. */
    private static Map<String, Long> countWords(Iterable<String> texts) {
        String[] symbolOfByte = gpt2SymbolOfByte();
        Map<String, Long> counts = new HashMap<>();
        StringBuilder spelled = new StringBuilder();
        for (String text : texts) {
            Matcher matcher = GPT2_SPLIT.matcher(text);
            while (matcher.find()) {
                spelled.setLength(0);
                for (byte b : matcher.group().getBytes(StandardCharsets.UTF_8)) {
                    spelled.append(symbolOfByte[b & 0xFF]);
                }
                counts.merge(spelled.toString(), 1L, Long::sum);
            }
        }
        return counts;
    }

    /** The BPE merge loop, with pair counts updated incrementally for the words each merge touches. */
    private static final class MergeLearner {
        private final List<String> tokens = new ArrayList<>();
        private final Map<String, Integer> idsByToken = new HashMap<>();
        private final int[][] words;
        private final long[] wordCounts;
        private final Map<Long, Long> pairCounts = new HashMap<>();
        private final Map<Long, Set<Integer>> wordsByPair = new HashMap<>();
        /** Candidates as {count, pair}; stale entries are skipped when popped (their count no longer matches). */
        private final PriorityQueue<long[]> queue = new PriorityQueue<>(
                Comparator.<long[]>comparingLong(c -> -c[0]).thenComparingLong(c -> c[1]));

        MergeLearner(String[] byteSymbols, Map<String, Long> counts) {
            for (String symbol : byteSymbols) {
                idsByToken.put(symbol, tokens.size());
                tokens.add(symbol);
            }
            // Sorted so that word indices, and hence everything derived from them, do not depend on hashing.
            TreeMap<String, Long> sorted = new TreeMap<>(counts);
            words = new int[sorted.size()][];
            wordCounts = new long[sorted.size()];
            int w = 0;
            for (Map.Entry<String, Long> entry : sorted.entrySet()) {
                String word = entry.getKey();
                int[] symbols = new int[word.length()];
                for (int i = 0; i < symbols.length; i++) {
                    symbols[i] = idsByToken.get(String.valueOf(word.charAt(i)));
                }
                words[w] = symbols;
                wordCounts[w] = entry.getValue();
                addPairs(w, +1, null);
                w++;
            }
            for (Map.Entry<Long, Long> entry : pairCounts.entrySet()) {
                queue.add(new long[] {entry.getValue(), entry.getKey()});
            }
        }

        /** Byte symbols, then merged tokens in the order learned; the index is the id. */
        List<String> tokens() {
            return tokens;
        }

        /** Merges until there are {@code targetTokens} distinct tokens or no pair is left; returns the merges. */
        List<String[]> learn(int targetTokens) {
            List<String[]> merges = new ArrayList<>();
            while (tokens.size() < targetTokens && !queue.isEmpty()) {
                long[] candidate = queue.poll();
                long pair = candidate[1];
                Long current = pairCounts.get(pair);
                if (current == null || current != candidate[0]) {
                    continue;
                }
                int left = leftOf(pair);
                int right = rightOf(pair);
                String merged = tokens.get(left) + tokens.get(right);
                // Different merge paths can spell the same string (a+bc, ab+c); they share one id, as in HF's trainer.
                Integer mergedId = idsByToken.get(merged);
                if (mergedId == null) {
                    mergedId = tokens.size();
                    idsByToken.put(merged, mergedId);
                    tokens.add(merged);
                }
                merges.add(new String[] {tokens.get(left), tokens.get(right)});
                applyMerge(pair, left, right, mergedId);
            }
            return merges;
        }

        private void applyMerge(long pair, int left, int right, int mergedId) {
            Set<Long> changed = new HashSet<>();
            Set<Integer> affected = wordsByPair.remove(pair);
            for (int w : affected) {
                int[] before = words[w];
                int[] after = replacePair(before, left, right, mergedId);
                if (after == before) {
                    continue; // stale index entry: an earlier merge already consumed this word's occurrences
                }
                addPairs(w, -1, changed);
                words[w] = after;
                addPairs(w, +1, changed);
            }
            for (long key : changed) {
                Long count = pairCounts.get(key);
                if (count != null) {
                    queue.add(new long[] {count, key});
                }
            }
        }

        /** Adds (sign +1) or removes (sign -1) the pair occurrences of word {@code w}, weighted by its count. */
        private void addPairs(int w, int sign, Set<Long> changed) {
            int[] symbols = words[w];
            long delta = sign * wordCounts[w];
            for (int i = 0; i + 1 < symbols.length; i++) {
                long key = pairKey(symbols[i], symbols[i + 1]);
                long updated = pairCounts.getOrDefault(key, 0L) + delta;
                if (updated == 0) {
                    pairCounts.remove(key);
                } else {
                    pairCounts.put(key, updated);
                }
                if (sign > 0) {
                    wordsByPair.computeIfAbsent(key, k -> new HashSet<>()).add(w);
                }
                if (changed != null) {
                    changed.add(key);
                }
            }
        }

        /** Replaces left-to-right, non-overlapping occurrences of (left, right); returns the input if none. */
        private static int[] replacePair(int[] symbols, int left, int right, int mergedId) {
            int[] out = null;
            int n = 0;
            for (int i = 0; i < symbols.length; i++) {
                if (i + 1 < symbols.length && symbols[i] == left && symbols[i + 1] == right) {
                    if (out == null) {
                        out = Arrays.copyOf(symbols, symbols.length);
                        n = i;
                    }
                    out[n++] = mergedId;
                    i++;
                } else if (out != null) {
                    out[n++] = symbols[i];
                }
            }
            return out == null ? symbols : Arrays.copyOf(out, n);
        }

        /** Packs a pair so that ordering keys by value orders pairs by left id, then right id. */
        private static long pairKey(int left, int right) {
            return ((long) left << 32) | right;
        }

        private static int leftOf(long key) {
            return (int) (key >>> 32);
        }

        private static int rightOf(long key) {
            return (int) key;
        }
    }

    /** The tokenizer.json document, in the layout the tokenizers library writes for GPT-2. */
    private static Map<String, Object> tokenizerJson(List<String> tokens, List<String[]> merges) {
        Map<String, Integer> vocab = new LinkedHashMap<>();
        for (String token : tokens) {
            vocab.put(token, vocab.size());
        }
        List<String> mergeLines = new ArrayList<>(merges.size());
        for (String[] merge : merges) {
            // Byte-level symbols never contain a space, so the classic "left right" form is unambiguous.
            mergeLines.add(merge[0] + " " + merge[1]);
        }
        int endOfTextId = vocab.size();
        vocab.put(END_OF_TEXT, endOfTextId);

        Map<String, Object> endOfText = new LinkedHashMap<>();
        endOfText.put("id", endOfTextId);
        endOfText.put("content", END_OF_TEXT);
        endOfText.put("single_word", false);
        endOfText.put("lstrip", false);
        endOfText.put("rstrip", false);
        endOfText.put("normalized", false);
        endOfText.put("special", true);

        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", null);
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("vocab", vocab);
        model.put("merges", mergeLines);

        Map<String, Object> root = new LinkedHashMap<>();
        root.put("version", "1.0");
        root.put("truncation", null);
        root.put("padding", null);
        root.put("added_tokens", List.of(endOfText));
        root.put("normalizer", null);
        root.put("pre_tokenizer", byteLevel(true));
        root.put("post_processor", byteLevel(true));
        root.put("decoder", byteLevel(true));
        root.put("model", model);
        return root;
    }

    private static Map<String, Object> byteLevel(boolean trimOffsets) {
        Map<String, Object> component = new LinkedHashMap<>();
        component.put("type", "ByteLevel");
        component.put("add_prefix_space", false);
        component.put("trim_offsets", trimOffsets);
        component.put("use_regex", true);
        return component;
    }

    /** Writes to a temporary file beside the target, then renames it, so readers never see a half-written file. */
    private static void writeAtomically(Path target, Map<String, Object> document) throws IOException {
        Path absolute = target.toAbsolutePath();
        Path dir = absolute.getParent();
        Files.createDirectories(dir);
        // A fixed line feed keeps the file byte-identical across platforms (its hash is recorded in token shards).
        DefaultIndenter indenter = new DefaultIndenter("  ", "\n");
        DefaultPrettyPrinter printer = new DefaultPrettyPrinter()
                .withObjectIndenter(indenter).withArrayIndenter(indenter);
        byte[] bytes = new ObjectMapper().writer(printer).writeValueAsBytes(document);
        // Not Files.createTempFile: its owner-only permissions would carry over to the published file.
        Path temp = dir.resolve("." + absolute.getFileName() + "." + ProcessHandle.current().pid()
                + "-" + System.nanoTime() + ".tmp");
        try {
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                ByteBuffer buffer = ByteBuffer.wrap(bytes);
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
                channel.force(true);
            }
            try {
                Files.move(temp, absolute, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, absolute, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(temp);
        }
    }
}
