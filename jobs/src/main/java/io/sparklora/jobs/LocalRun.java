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

    /** Comma-separated files or directories (every regular file inside, sorted) → token blocks. */
    static TokenBlocks blocks(String dataArg, TextTokenizer tokenizer, int seqLen) throws IOException {
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
        return LocalCorpus.read(files, tokenizer, seqLen);
    }
}
