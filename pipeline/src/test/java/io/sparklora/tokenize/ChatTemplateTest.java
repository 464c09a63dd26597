package io.sparklora.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.data.Document;
import io.sparklora.data.DocumentEncoder;
import io.sparklora.data.EncodedDocument;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Chat templates against the reference renderings of {@code bench/reference/chat_template_reference.py}
 * (jinja2 in transformers' settings, on the published Llama 3 and ChatML templates; ids from a byte-level
 * tokenizer whose ids it computes by hand): the rendered texts, the token ids through the Hugging Face
 * tokenizers library, and the loss mask on exactly the assistant's tokens.
 */
class ChatTemplateTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static TextTokenizer tokenizer;
    private static JsonNode fixtures;

    @BeforeAll
    static void load() throws Exception {
        Path dir = Path.of(ChatTemplateTest.class.getResource("/chat/fixtures.json").toURI()).getParent();
        tokenizer = TextTokenizer.fromFile(dir.resolve("tokenizer.json"));
        fixtures = JSON.readTree(Files.readString(dir.resolve("fixtures.json")));
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static ChatTemplate template(String name) {
        JsonNode t = fixtures.get("templates").get(name);
        return new ChatTemplate(t.get("template").asText(), t.get("bos_token").asText(), t.get("eos_token").asText(), name);
    }

    private static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) r[i] = a.get(i).asInt();
        return r;
    }

    @Test
    void llama3AndChatmlRenderAsTheReferenceDoes() {
        int checked = 0;
        for (JsonNode c : fixtures.get("cases")) {
            ChatTemplate t = template(c.get("template").asText());
            ChatTemplate.Turn turn = t.renderPair(c.get("system").asText(), c.get("prompt").asText(), c.get("response").asText());
            String what = c.get("template").asText() + " / " + c.get("prompt").asText();
            assertEquals(c.get("prompt_text").asText(), turn.prompt(), what + ": prompt");
            assertEquals(c.get("response_text").asText(), turn.response(), what + ": response");
            checked++;
        }
        assertEquals(6, checked);
    }

    @Test
    void tokenIdsAndLossMaskEqualTheReference() {
        for (String name : List.of("llama3", "chatml")) {
            List<Document> docs = new ArrayList<>();
            List<JsonNode> cases = new ArrayList<>();
            for (JsonNode c : fixtures.get("cases")) {
                if (!c.get("template").asText().equals(name)) continue;
                docs.add(Document.promptResponse(c.get("prompt").asText(), c.get("response").asText(), "case " + docs.size())
                        .withSystem(c.get("system").asText()));
                cases.add(c);
            }
            DocumentEncoder enc = new DocumentEncoder(tokenizer, List.of(), null, template(name));
            List<EncodedDocument> out = enc.encode(docs);
            for (int i = 0; i < cases.size(); i++) {
                int[] p = ints(cases.get(i).get("prompt_ids")), r = ints(cases.get(i).get("response_ids"));
                int[] all = java.util.Arrays.copyOf(p, p.length + r.length);
                System.arraycopy(r, 0, all, p.length, r.length);
                assertArrayEquals(all, out.get(i).tokens(), name + " case " + i + ": token ids");
                assertEquals(p.length, out.get(i).maskedPrefix(), name + " case " + i + ": the loss covers exactly the assistant's tokens");
            }
        }
    }

    /** {@code train --local --chat-template}: JSON Lines pairs (with an optional system field) rendered, loss on the answer only. */
    @Test
    void localCorpusRendersPairsThroughTheTemplate(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        ChatTemplate t = template("chatml");
        Path f = tmp.resolve("pairs.jsonl");
        Files.writeString(f, "{\"prompt\": \"hi\", \"response\": \"yo\"}\n{\"system\": \"S\", \"prompt\": \"a\", \"response\": \"b\"}\n");
        io.sparklora.train.TokenBlocks blocks = io.sparklora.data.LocalCorpus.read(List.of(f), tokenizer, 256, t);
        long targets = 0;
        for (int i = 0; i < blocks.size(); i++) for (boolean m : blocks.mask(i)) if (m) targets++;
        long expected = tokenizer.encode(t.renderPair(null, "hi", "yo").response()).length
                + tokenizer.encode(t.renderPair("S", "a", "b").response()).length + 2;   // + one end of text each
        assertEquals(expected, targets);
        assertTrue(t.renderPair("S", "a", "b").prompt().startsWith("<|im_start|>system\nS<|im_end|>"));
    }

    @Test
    void specialTokensInTheRenderedTextBecomeSingleIds() {
        ChatTemplate.Turn turn = template("llama3").renderPair("", "hi", "yo");
        int[] ids = tokenizer.encode(turn.prompt());
        assertEquals(256, ids[0], "<|begin_of_text|> is one added token");
        assertEquals(258, ids[1], "<|start_header_id|> is one added token");
    }

    @Test
    void aTemplateTheEngineCannotRenderIsAClearError() {
        ChatTemplate broken = new ChatTemplate("{% for message in messages %}{{ message['content'] }", "", "", "bad/tokenizer_config.json");
        ChatTemplate.ChatTemplateException e = assertThrows(ChatTemplate.ChatTemplateException.class,
                () -> broken.renderPair("", "a", "b"));
        assertTrue(e.getMessage().contains("bad/tokenizer_config.json") && e.getMessage().contains("cannot be rendered"), e.getMessage());

        ChatTemplate raising = new ChatTemplate("{% if messages[0]['role'] != 'system' %}{{ raise_exception('System message required') }}{% endif %}",
                "", "", "strict.jinja");
        e = assertThrows(ChatTemplate.ChatTemplateException.class, () -> raising.renderPair("", "a", "b"));
        assertTrue(e.getMessage().contains("strict.jinja") && e.getMessage().contains("System message required"), e.getMessage());
    }

    @Test
    void aTemplateThatRewritesEarlierTurnsCannotBeMasked() {
        // renders the user turn differently once an assistant answer follows: no prefix to mask
        ChatTemplate odd = new ChatTemplate("{% for m in messages %}{{ m['role'] }}{% if messages|length > 1 %}!{% endif %}:{{ m['content'] }}\n{% endfor %}",
                "", "", "odd.jinja");
        ChatTemplate.ChatTemplateException e = assertThrows(ChatTemplate.ChatTemplateException.class, () -> odd.renderPair("", "a", "b"));
        assertTrue(e.getMessage().contains("odd.jinja") && e.getMessage().contains("cannot be told apart"), e.getMessage());
    }

    @Test
    void templateIsFoundInTokenizerConfigOrChatTemplateJinja() {
        String cfg = "{\"bos_token\": {\"content\": \"<s>\", \"special\": true}, \"eos_token\": \"</s>\", \"chat_template\": \"{{ bos_token }}x\"}";
        ChatTemplate fromConfig = ChatTemplate.fromFiles(cfg, null, "m");
        assertEquals("<s>", fromConfig.bosToken());
        assertEquals("</s>", fromConfig.eosToken());
        assertEquals("<s>x", fromConfig.render(List.of(), false));
        assertEquals("y", ChatTemplate.fromFiles(cfg, "y", "m").render(List.of(), false), "chat_template.jinja wins");
        String named = "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"t\"}, {\"name\": \"default\", \"template\": \"d\"}]}";
        assertEquals("d", ChatTemplate.fromFiles(named, null, "m").render(List.of(), false));
        ChatTemplate.ChatTemplateException e = assertThrows(ChatTemplate.ChatTemplateException.class,
                () -> ChatTemplate.fromFiles("{\"bos_token\": \"<s>\"}", null, "models/base"));
        assertTrue(e.getMessage().contains("models/base") && e.getMessage().contains("no chat template"), e.getMessage());
    }
}
