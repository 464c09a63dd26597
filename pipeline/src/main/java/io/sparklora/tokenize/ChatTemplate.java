package io.sparklora.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;

import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A model's chat template (the Jinja text in {@code tokenizer_config.json}'s {@code chat_template} or in
 * {@code chat_template.jinja}), rendered with Jinjava in the settings transformers' {@code apply_chat_template}
 * uses: {@code trim_blocks} and {@code lstrip_blocks} on, {@code messages}, {@code bos_token}, {@code eos_token}
 * and {@code add_generation_prompt} bound, and a {@code raise_exception(message)} function.
 *
 * <p>A prompt/response pair becomes two texts: the prompt side is the conversation without the assistant's
 * turn, rendered with {@code add_generation_prompt = true}; the response side is what rendering the whole
 * conversation adds after it (the assistant's content and the template's end-of-turn marker). The loss mask
 * covers exactly the response side's tokens. A template that renders the earlier turns differently once the
 * assistant's turn is added cannot be split so, and is refused.
 *
 * <p>Serializable: the text travels to executors, which render locally.
 *
 * @param template  the Jinja source
 * @param bosToken  the tokenizer's bos_token string ("" if none)
 * @param eosToken  the tokenizer's eos_token string ("" if none)
 * @param source    where the template came from, for error messages
 */
public record ChatTemplate(String template, String bosToken, String eosToken, String source) implements Serializable {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A prompt/response pair rendered through the template: {@code prompt} is not trained on, {@code response} is. */
    public record Turn(String prompt, String response) {}

    /** Thrown for a template that cannot be read or rendered; the message names the template's source. */
    public static final class ChatTemplateException extends IllegalArgumentException {
        public ChatTemplateException(String message) { super(message); }
        public ChatTemplateException(String message, Throwable cause) { super(message, cause); }
    }

    public ChatTemplate {
        if (template == null || template.isBlank()) throw new ChatTemplateException(source + ": the chat template is empty");
        bosToken = bosToken == null ? "" : bosToken;
        eosToken = eosToken == null ? "" : eosToken;
    }

    /**
     * The template of a model directory's files: {@code chat_template.jinja} if given (newer transformers write it),
     * else {@code tokenizer_config.json}'s {@code chat_template} (a string, or a list of named templates, of which
     * "default" is used). {@code bos_token}/{@code eos_token} come from {@code tokenizer_config.json}.
     *
     * @param tokenizerConfig the text of tokenizer_config.json (null if absent)
     * @param jinja           the text of chat_template.jinja (null if absent)
     * @param where           the directory, for messages
     */
    public static ChatTemplate fromFiles(String tokenizerConfig, String jinja, String where) {
        JsonNode cfg = null;
        if (tokenizerConfig != null) {
            try {
                cfg = JSON.readTree(tokenizerConfig);
            } catch (IOException e) {
                throw new ChatTemplateException(where + "/tokenizer_config.json: malformed JSON: " + e.getMessage(), e);
            }
        }
        String bos = cfg == null ? "" : tokenString(cfg.get("bos_token"));
        String eos = cfg == null ? "" : tokenString(cfg.get("eos_token"));
        if (jinja != null) return new ChatTemplate(jinja, bos, eos, where + "/chat_template.jinja");
        JsonNode t = cfg == null ? null : cfg.get("chat_template");
        if (t == null || t.isNull()) {
            throw new ChatTemplateException(where + ": no chat template (neither chat_template.jinja nor a chat_template"
                    + " entry in tokenizer_config.json); base models often have none, instruct models do");
        }
        if (t.isTextual()) return new ChatTemplate(t.asText(), bos, eos, where + "/tokenizer_config.json");
        if (t.isArray()) {
            for (JsonNode named : t) {
                if ("default".equals(named.path("name").asText())) {
                    return new ChatTemplate(named.path("template").asText(), bos, eos, where + "/tokenizer_config.json (default)");
                }
            }
        }
        throw new ChatTemplateException(where + "/tokenizer_config.json: chat_template is neither a string nor a list with a \"default\" entry");
    }

    /**
     * The template a dataset manifest names: {@code "tokenizer"} for the files beside {@code tokenizerUri}
     * ({@code chat_template.jinja}, {@code tokenizer_config.json}), or the URI of a {@code .jinja} file (its special
     * tokens still come from the tokenizer's {@code tokenizer_config.json}, when there is one).
     */
    public static ChatTemplate read(org.apache.hadoop.conf.Configuration conf, String which, String tokenizerUri) throws IOException {
        String dir = new org.apache.hadoop.fs.Path(tokenizerUri).getParent().toString();
        String cfgUri = io.sparklora.storage.HadoopFiles.resolve(dir, "tokenizer_config.json");
        String cfg = io.sparklora.storage.HadoopFiles.exists(conf, cfgUri) ? io.sparklora.storage.HadoopFiles.readString(conf, cfgUri) : null;
        if (which.equals("tokenizer")) {
            String jinjaUri = io.sparklora.storage.HadoopFiles.resolve(dir, "chat_template.jinja");
            String jinja = io.sparklora.storage.HadoopFiles.exists(conf, jinjaUri) ? io.sparklora.storage.HadoopFiles.readString(conf, jinjaUri) : null;
            return fromFiles(cfg, jinja, dir);
        }
        if (!io.sparklora.storage.HadoopFiles.exists(conf, which)) {
            throw new java.io.FileNotFoundException("chat template " + which + " does not exist");
        }
        ChatTemplate t = fromFiles(cfg == null ? "{}" : cfg, io.sparklora.storage.HadoopFiles.readString(conf, which), dir);
        return new ChatTemplate(t.template(), t.bosToken(), t.eosToken(), which);
    }

    /** A special token entry: a plain string or an AddedToken object with "content". */
    private static String tokenString(JsonNode n) {
        if (n == null || n.isNull()) return "";
        if (n.isTextual()) return n.asText();
        return n.path("content").asText("");
    }

    /** Renders a conversation: each message a map with "role" and "content". */
    public String render(List<Map<String, String>> messages, boolean addGenerationPrompt) {
        Map<String, Object> bindings = new LinkedHashMap<>();
        bindings.put("messages", messages);
        bindings.put("bos_token", bosToken);
        bindings.put("eos_token", eosToken);
        bindings.put("add_generation_prompt", addGenerationPrompt);
        RenderResult r;
        RAISED.remove();
        try {
            r = engine().renderForResult(template, bindings);
        } catch (RuntimeException e) {
            throw new ChatTemplateException(source + ": the chat template cannot be rendered: " + rootMessage(e), e);
        }
        String raised = RAISED.get();
        RAISED.remove();
        if (raised != null) {
            throw new ChatTemplateException(source + ": the chat template refused the conversation: raise_exception('" + raised + "')");
        }
        List<String> fatal = new ArrayList<>();
        for (TemplateError e : r.getErrors()) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                fatal.add((e.getLineno() > 0 ? "line " + e.getLineno() + ": " : "") + e.getMessage());
            }
        }
        if (!fatal.isEmpty()) {
            throw new ChatTemplateException(source + ": the chat template cannot be rendered: " + String.join("; ", fatal));
        }
        return r.getOutput();
    }

    /**
     * A prompt/response pair as a user turn (after an optional system turn) and the assistant's answer, split
     * where the generation prompt ends.
     */
    public Turn renderPair(String system, String prompt, String response) {
        List<Map<String, String>> messages = new ArrayList<>();
        if (system != null && !system.isEmpty()) messages.add(message("system", system));
        messages.add(message("user", prompt));
        String head = render(messages, true);
        messages.add(message("assistant", response));
        String whole = render(messages, false);
        if (!whole.startsWith(head)) {
            throw new ChatTemplateException(source + ": the chat template renders the conversation before the assistant's"
                    + " turn differently once that turn is added, so the assistant's tokens cannot be told apart;"
                    + " rendered prompt: " + abbreviate(head) + ", whole conversation: " + abbreviate(whole));
        }
        return new Turn(head, whole.substring(head.length()));
    }

    /** sha256 of the template and its special tokens, for shard manifests. */
    public String fingerprint() {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (String s : List.of(template, bosToken, eosToken)) {
                md.update(s.getBytes(StandardCharsets.UTF_8));
                md.update((byte) 0);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Map<String, String> message(String role, String content) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("role", role);
        m.put("content", content);
        return m;
    }

    private static String abbreviate(String s) {
        String q = s.replace("\n", "\\n");
        return "\"" + (q.length() > 200 ? q.substring(0, 200) + "..." : q) + "\"";
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) t = t.getCause();
        return t.getMessage() != null ? t.getMessage() : t.toString();
    }

    /** The message of the last raise_exception call on this thread's render (Jinjava reports only that a call failed). */
    private static final ThreadLocal<String> RAISED = new ThreadLocal<>();

    /** Called by templates as raise_exception(message): fails the render with the template's own message. */
    public static String raiseException(String message) {
        if (RAISED.get() == null) RAISED.set(message);
        throw new ChatTemplateException("the template raised an exception: " + message);
    }

    private static final ThreadLocal<Jinjava> ENGINE = ThreadLocal.withInitial(() -> {
        Jinjava j = new Jinjava(JinjavaConfig.newBuilder().withTrimBlocks(true).withLstripBlocks(true).build());
        j.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class,
                "raiseException", String.class));
        return j;
    });

    private static Jinjava engine() { return ENGINE.get(); }
}
