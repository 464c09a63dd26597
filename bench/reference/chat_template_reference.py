"""Reference renderings of chat templates, for ChatTemplateTest.

Writes pipeline/src/test/resources/chat/: tokenizer.json and fixtures.json.

How the fixture is made. transformers' apply_chat_template compiles the template with jinja2's
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]), binds messages,
bos_token, eos_token and add_generation_prompt (plus raise_exception), renders, and tokenizes the text with
add_special_tokens=False. This script does exactly that with jinja2 (Debian's python3-jinja2; transformers
itself is not installable here) on the published templates of Meta-Llama-3-8B-Instruct and Qwen2-7B-Instruct
(ChatML).

The real Llama 3 and Qwen tokenizers cannot be downloaded on these machines, so the token ids come from a
tokenizer written here that keeps the part that matters for templates: a byte-level BPE with no merges (every
byte one token, GPT-2's byte-to-unicode alphabet as ids 0..255) plus both families' special tokens as added
tokens. Its ids can be computed by hand: the text is split at special tokens (longest match), the rest is one
id per UTF-8 byte. The Java side loads the same tokenizer.json into the Hugging Face tokenizers library and must
produce the same ids, with the loss mask on exactly the assistant's part.

For each template and conversation the fixture holds: the rendered prompt (the conversation without the
assistant's turn, add_generation_prompt=True), the response (what rendering the whole conversation adds after
it), and their ids.

Usage: /usr/bin/python3 bench/reference/chat_template_reference.py [OUTPUT_DIR]
"""
import json
import os
import sys

from jinja2 import ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>'"
          " + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0"
          " == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt"
          " %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
          "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' +"
          " message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>"
          "assistant\n' }}{% endif %}")

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "<|im_start|>", "<|im_end|>", "<|endoftext|>"]

TEMPLATES = {
    "llama3": {"template": LLAMA3, "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "chatml": {"template": CHATML, "bos_token": "", "eos_token": "<|im_end|>"},
}

CONVERSATIONS = [
    {"system": "", "prompt": "What is the capital of France?", "response": "Paris."},
    {"system": "You answer in one word.", "prompt": "  Colour of the sky?\n", "response": " Blue \n"},
    {"system": "", "prompt": "Übersetze: naïve café", "response": "naive cafe — ok"},
]


def bytes_to_unicode():
    """GPT-2's byte-level alphabet: printable bytes map to themselves, the rest to code points from 256 up."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_CHARS = bytes_to_unicode()
VOCAB = {BYTE_CHARS[b]: b for b in range(256)}          # byte b has id b
SPECIAL_IDS = {tok: 256 + i for i, tok in enumerate(SPECIAL)}


def tokenizer_json():
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for t, i in SPECIAL_IDS.items()],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": VOCAB, "merges": []},
    }


def encode(text):
    """Split at special tokens (longest first), then one id per UTF-8 byte."""
    ids, i = [], 0
    specials = sorted(SPECIAL, key=len, reverse=True)
    while i < len(text):
        for s in specials:
            if text.startswith(s, i):
                ids.append(SPECIAL_IDS[s])
                i += len(s)
                break
        else:
            j = i
            while j < len(text) and not any(text.startswith(s, j) for s in specials):
                j += 1
            ids.extend(text[i:j].encode("utf-8"))
            i = j
    return ids


def raise_exception(message):
    raise TemplateError(message)


def render(template, messages, bos, eos, add_generation_prompt):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, bos_token=bos, eos_token=eos,
                                            add_generation_prompt=add_generation_prompt)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "pipeline", "src", "test", "resources", "chat")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, indent=1, ensure_ascii=False)
        f.write("\n")
    cases = []
    for name, t in TEMPLATES.items():
        for conv in CONVERSATIONS:
            messages = ([{"role": "system", "content": conv["system"]}] if conv["system"] else [])
            messages.append({"role": "user", "content": conv["prompt"]})
            head = render(t["template"], messages, t["bos_token"], t["eos_token"], True)
            whole = render(t["template"], messages + [{"role": "assistant", "content": conv["response"]}],
                           t["bos_token"], t["eos_token"], False)
            assert whole.startswith(head), (name, head, whole)
            response = whole[len(head):]
            cases.append({"template": name, **conv, "prompt_text": head, "response_text": response,
                          "prompt_ids": encode(head), "response_ids": encode(response)})
    doc = {"generator": "bench/reference/chat_template_reference.py",
           "templates": TEMPLATES, "cases": cases}
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases written to {out}")


if __name__ == "__main__":
    main()
