package io.sparklora.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The generated part of a document: the text between {@code <!-- name:begin -->} and {@code <!-- name:end -->} is
 * replaced, the rest of the page left as it is. Written to a temporary file, then renamed over the document.
 */
final class DocRegion {
    private DocRegion() {}

    static void replace(Path doc, String name, String region) throws IOException {
        String begin = "<!-- " + name + ":begin -->", end = "<!-- " + name + ":end -->";
        String text = Files.readString(doc, StandardCharsets.UTF_8);
        int b = text.indexOf(begin), e = text.indexOf(end);
        if (b < 0 || e < b) throw new IllegalArgumentException(doc + " has no " + begin + " … " + end + " region");
        Path tmp = doc.resolveSibling(doc.getFileName() + ".tmp");
        Files.writeString(tmp, text.substring(0, b + begin.length()) + "\n" + region + text.substring(e), StandardCharsets.UTF_8);
        Files.move(tmp, doc, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
