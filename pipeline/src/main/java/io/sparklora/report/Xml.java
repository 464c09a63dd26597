package io.sparklora.report;

/**
 * Escaping of text for HTML and SVG. The same escaping serves element content and attribute values
 * (in double or single quotes), so callers never have to choose. Characters that XML forbids (C0
 * controls other than tab, newline and carriage return; U+FFFE and U+FFFF; unpaired surrogates) become
 * U+FFFD, so text from a language model can never break the document's well-formedness.
 */
public final class Xml {

    private Xml() {
    }

    /** {@code null} becomes the empty string. */
    public static String escape(String text) {
        if (text == null) return "";
        StringBuilder out = null;
        int n = text.length();
        for (int i = 0; i < n; i++) {
            char c = text.charAt(i);
            String replacement;
            switch (c) {
                case '&' -> replacement = "&amp;";
                case '<' -> replacement = "&lt;";
                case '>' -> replacement = "&gt;";
                case '"' -> replacement = "&quot;";
                case '\'' -> replacement = "&#39;";
                default -> {
                    if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(text.charAt(i + 1))) {
                        if (out != null) out.append(c).append(text.charAt(i + 1));
                        i++;
                        continue;
                    }
                    replacement = allowed(c) ? null : "\uFFFD";
                }
            }
            if (replacement == null) {
                if (out != null) out.append(c);
            } else {
                if (out == null) {
                    out = new StringBuilder(n + 16);
                    out.append(text, 0, i);
                }
                out.append(replacement);
            }
        }
        return out == null ? text : out.toString();
    }

    private static boolean allowed(char c) {
        if (c < 0x20) return c == '\t' || c == '\n' || c == '\r';
        if (Character.isSurrogate(c)) return false; // a paired one was handled by the caller
        return c != '\uFFFE' && c != '\uFFFF';
    }
}
