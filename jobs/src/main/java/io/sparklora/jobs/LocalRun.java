package io.sparklora.jobs;

import io.sparklora.data.LocalCorpus;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.TokenBlocks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Helpers shared by the one-process commands. */
final class LocalRun {
    private LocalRun() {}

    /** The {@code --chat-template} option the local commands share. */
    static final Args.Option CHAT_TEMPLATE = Args.Option.value("chat-template", "WHICH", "none",
            "render prompt/response records through a chat template: tokenizer (the model directory's), a .jinja file, or none");

    /** The template {@code --chat-template} names, or null for none. */
    static io.sparklora.tokenize.ChatTemplate chatTemplate(Args a, Path modelDir) throws IOException {
        return chatTemplate(a, modelDir.resolve("tokenizer.json").toAbsolutePath().toString());
    }

    /** As {@link #chatTemplate(Args, Path)}, with the model's tokenizer.json at any Hadoop URI. */
    static io.sparklora.tokenize.ChatTemplate chatTemplate(Args a, String tokenizerUri) throws IOException {
        String which = a.get("chat-template");
        if (which.equals("none")) return null;
        return io.sparklora.tokenize.ChatTemplate.read(new org.apache.hadoop.conf.Configuration(),
                which.equals("tokenizer") ? which : Path.of(which).toAbsolutePath().toString(), tokenizerUri);
    }

    /** Comma-separated files or directories (every regular file inside, sorted) → token blocks. */
    static TokenBlocks blocks(String dataArg, TextTokenizer tokenizer, int seqLen) throws IOException {
        return blocks(dataArg, tokenizer, seqLen, null);
    }

    static TokenBlocks blocks(String dataArg, TextTokenizer tokenizer, int seqLen, io.sparklora.tokenize.ChatTemplate chat) throws IOException {
        List<Path> files = new ArrayList<>();
        for (String part : dataArg.split(",")) {
            Path p = Path.of(part.trim());
            if (Files.isDirectory(p)) {
                try (var s = Files.walk(p)) {
                    s.filter(Files::isRegularFile).sorted().forEach(files::add);
                }
            } else if (Files.isRegularFile(p)) {
                files.add(p);
            } else {
                throw new Args.UsageException("--data: " + p + " does not exist");
            }
        }
        return LocalCorpus.read(files, tokenizer, seqLen, chat);
    }
}
