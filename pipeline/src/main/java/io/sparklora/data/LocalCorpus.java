package io.sparklora.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.tokenize.ChatTemplate;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.TokenBlocks;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reads a corpus from local files for one-process training and evaluation:
 * {@code .jsonl} files with a {@code text} field, or {@code prompt}/{@code response} fields (the prompt
 * is left out of the loss), and plain text files, where blank lines separate documents.
 * The Spark pipeline reads the same formats through Hadoop's FileSystem.
 */
public final class LocalCorpus {
    private static final ObjectMapper JSON = new ObjectMapper();

    private LocalCorpus() {}

    public static TokenBlocks read(List<Path> files, TextTokenizer tokenizer, int seqLen) throws IOException {
        return read(files, tokenizer, seqLen, null);
    }

    /**
     * As {@link #read(List, TextTokenizer, int)}, with prompt/response records rendered through {@code chat}
     * (null: as written): an optional {@code system} field becomes the system turn, and only the assistant's
     * turn is trained on ({@link DocumentEncoder}).
     */
    public static TokenBlocks read(List<Path> files, TextTokenizer tokenizer, int seqLen, ChatTemplate chat)
            throws IOException {
        List<int[]> docs = new ArrayList<>();
        List<boolean[]> masks = new ArrayList<>();
        DocumentEncoder encoder = chat == null ? null : new DocumentEncoder(tokenizer, List.of(), null, chat);
        for (Path f : files) {
            if (f.getFileName().toString().endsWith(".jsonl")) readJsonl(f, tokenizer, encoder, docs, masks);
            else readText(f, tokenizer, docs, masks);
        }
        if (docs.isEmpty()) throw new IllegalArgumentException("corpus " + files + " holds no documents");
        int eos = tokenizer.eosTokenId();
        return TokenBlocks.pack(docs, masks, eos, seqLen, eos);
    }

    private static String readUtf8(Path f) throws IOException {
        byte[] bytes = Files.readAllBytes(f);
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IOException(f + ": not valid UTF-8 text (" + e.getMessage() + ")", e);
        }
    }

    private static void readText(Path f, TextTokenizer tok, List<int[]> docs, List<boolean[]> masks) throws IOException {
        for (String doc : readUtf8(f).split("\\R\\s*\\R")) {
            String d = doc.strip();
            if (d.isEmpty()) continue;
            docs.add(tok.encode(d));
            masks.add(null);
        }
    }

    private static void readJsonl(Path f, TextTokenizer tok, DocumentEncoder chat, List<int[]> docs, List<boolean[]> masks)
            throws IOException {
        try (BufferedReader r = new BufferedReader(new java.io.StringReader(readUtf8(f)))) {
            String line;
            int lineNo = 0;
            while ((line = r.readLine()) != null) {
                lineNo++;
                if (line.isBlank()) continue;
                JsonNode n;
                try {
                    n = JSON.readTree(line);
                } catch (IOException e) {
                    throw new IOException(f + ":" + lineNo + ": not a JSON object: " + e.getMessage(), e);
                }
                if (n.hasNonNull("text")) {
                    docs.add(tok.encode(n.get("text").asText()));
                    masks.add(null);
                } else if (n.hasNonNull("prompt") && n.hasNonNull("response") && chat != null) {
                    Document d = Document.promptResponse(n.get("prompt").asText(), n.get("response").asText(), f + ":" + lineNo)
                            .withSystem(n.hasNonNull("system") ? n.get("system").asText() : null);
                    EncodedDocument e = chat.encode(List.of(d)).get(0);
                    boolean[] m = new boolean[e.tokens().length];
                    Arrays.fill(m, e.maskedPrefix(), m.length, true);
                    docs.add(e.tokens());
                    masks.add(m);
                } else if (n.hasNonNull("prompt") && n.hasNonNull("response")) {
                    int[] p = tok.encode(n.get("prompt").asText());
                    int[] a = tok.encode(n.get("response").asText());
                    int[] all = Arrays.copyOf(p, p.length + a.length);
                    System.arraycopy(a, 0, all, p.length, a.length);
                    boolean[] m = new boolean[all.length];
                    Arrays.fill(m, p.length, all.length, true);
                    docs.add(all);
                    masks.add(m);
                } else {
                    throw new IOException(f + ":" + lineNo + ": expected a \"text\" field or \"prompt\" and \"response\" fields");
                }
            }
        }
    }
}
