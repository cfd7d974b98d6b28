#!/usr/bin/env python3
"""Renders chat templates with Jinja2 the way transformers' apply_chat_template does
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, add_generation_prompt=True) and
writes tests/golden/chat/cases.json for tests/test_chat_template.c.

Templates: SmolLM2-135M-Instruct's (as in its GGUF), Qwen3's (read from the shared
tokenizers/qwen2/tokenizer_config.json at generation and test time, not copied here), and
representative Llama-3, Gemma-3, Llama-2 and Mistral templates written below.
bos_token renders as "" because qeval leaves BOS to the tokenizer.

Usage: QEVAL_SHARED=/path/to/shared python3 tests/golden/make_chat_golden.py  (pip install jinja2)"""
import json
import os

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("QEVAL_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
QWEN_CONFIG = "tokenizers/qwen2/tokenizer_config.json"

TEMPLATES = {
    "smollm2": ("chatml", "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    "llama3": ("llama3", "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    "gemma3": ("gemma", "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n{%- set loop_messages = messages[1:] -%}\n{%- else -%}\n{%- set first_user_prefix = \"\" -%}\n{%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}\n{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}\n"),
    "llama2": ("llama2", "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
    "mistral": ("mistral", "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'user' %}{% if loop.first and system_message is defined %}{{ '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"),
}

EXCHANGES = [
    (None, "What is 2+2?"),
    ("You are terse.", "What is 2+2?"),
    (" Be brief. ", "  Hello there \n"),
    (None, "\tline one\nline two  "),
]


def raise_exception(message):
    raise TemplateError(message)


def render(template, system, user):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    messages = ([{"role": "system", "content": system}] if system is not None else []) + \
        [{"role": "user", "content": user}]
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token="", eos_token="</s>")


def main():
    with open(os.path.join(SHARED, QWEN_CONFIG)) as f:
        qwen = json.load(f)["chat_template"]
    cases = []
    sources = [(name, fam, tpl, None) for name, (fam, tpl) in TEMPLATES.items()]
    sources.append(("qwen3", "chatml", qwen, QWEN_CONFIG))
    for name, family, template, shared_path in sources:
        for system, user in EXCHANGES:
            cases.append({
                "name": name, "family": family,
                "template": None if shared_path else template, "shared_template": shared_path,
                "system": system, "user": user, "rendered": render(template, system, user),
            })
    with open(os.path.join(HERE, "chat", "cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
