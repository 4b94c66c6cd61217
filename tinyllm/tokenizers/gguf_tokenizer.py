"""The tokenizer a GGUF file describes in its metadata: byte-level BPE plus a chat template.

A llama.cpp GGUF file carries no tokenizer.json; its `tokenizer.ggml.*` keys hold the token list
(spelled in GPT-2's byte alphabet), the ranked merges ("a b" strings), a type per token (1
normal, 3 control such as `<|im_start|>`, 4 user-defined) and the name of the pre-tokenizer
(`tokenizer.ggml.pre`), which selects the regex that cuts text into words before merging.

Parity target: transformers' tokenizer built from the same file. transformers maps a few
pre-tokenizer names to their own regex (Llama 3's, Qwen 2's ...) and uses GPT-2's regex for the
rest, "smollm" included. (llama.cpp splits digits one by one first for "smollm", as SmolLM's
original tokenizer.json does; the two differ only on whitespace right before a digit, e.g.
"a  1".) Control and user-defined tokens are matched whole in the text, as special tokens.
"""

from __future__ import annotations

from tinyllm.errors import ConfigError, TokenizerError
from tinyllm.tokenizers.bpe import GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN, ByteLevelBPE
from tinyllm.tokenizers.chat_template import render_chat_template

# tokenizer.ggml.pre -> pre-tokenizer regex (as transformers maps them); others: GPT-2's
PRE_TOKENIZER_PATTERNS = {
    "default": GPT2_PATTERN,
    "gpt2": GPT2_PATTERN,
    "smollm": GPT2_PATTERN,
    "llama3": LLAMA3_PATTERN,
    "llama-v3": LLAMA3_PATTERN,
    "llama-bpe": LLAMA3_PATTERN,
    "smaug-bpe": LLAMA3_PATTERN,
    "dbrx": LLAMA3_PATTERN,
    "qwen2": QWEN2_PATTERN,
}

_CONTROL, _USER_DEFINED = 3, 4


class GGUFTokenizer(ByteLevelBPE):
    """Byte-level BPE with the special tokens, BOS/EOS and chat template of a GGUF model."""

    type_name = "gguf_bpe"

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        pattern: str = GPT2_PATTERN,
        special_tokens: dict[str, int] | None = None,
        chat_template: str | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        unk_token: str | None = None,
        pad_token: str | None = None,
        add_bos: bool = False,
    ) -> None:
        super().__init__(vocab, merges, pattern, special_tokens)
        self.chat_template = chat_template
        self.bos_token, self.eos_token, self.unk_token, self.pad_token = bos_token, eos_token, unk_token, pad_token
        self.add_bos = add_bos

    @classmethod
    def from_gguf(cls, gguf_file) -> GGUFTokenizer:
        """Return the tokenizer of a `tinyllm.io.gguf.GGUFFile` (or a path to one)."""
        if not hasattr(gguf_file, "require"):
            from tinyllm.io.gguf import read_gguf

            gguf_file = read_gguf(gguf_file)
        model = gguf_file.require("tokenizer.ggml.model")
        if model != "gpt2":
            raise ConfigError(f"GGUF tokenizer model {model!r} is not supported; supported: 'gpt2' (byte-level BPE)")
        tokens = list(gguf_file.require("tokenizer.ggml.tokens"))
        merges = [tuple(merge.split(" ")) for merge in gguf_file.field("tokenizer.ggml.merges", [])]
        token_types = gguf_file.field("tokenizer.ggml.token_type") or [1] * len(tokens)
        pre = gguf_file.field("tokenizer.ggml.pre", "default")
        pattern = PRE_TOKENIZER_PATTERNS.get(pre, GPT2_PATTERN)
        specials = {t: i for i, (t, kind) in enumerate(zip(tokens, token_types)) if kind in (_CONTROL, _USER_DEFINED)}

        def token_of(key: str) -> str | None:
            index = gguf_file.field(f"tokenizer.ggml.{key}")
            return tokens[int(index)] if index is not None and 0 <= int(index) < len(tokens) else None

        return cls(
            {token: index for index, token in enumerate(tokens)},
            merges,
            pattern,
            specials,
            chat_template=gguf_file.field("tokenizer.chat_template"),
            bos_token=token_of("bos_token_id"),
            eos_token=token_of("eos_token_id"),
            unk_token=token_of("unknown_token_id"),
            pad_token=token_of("padding_token_id"),
            add_bos=bool(gguf_file.field("tokenizer.ggml.add_bos_token", False)),
        )

    # -- ids of the special tokens ---------------------------------------------------------------
    @property
    def eos_id(self) -> int | None:
        return None if self.eos_token is None else self.vocab[self.eos_token]

    @property
    def bos_id(self) -> int | None:
        return None if self.bos_token is None else self.vocab[self.bos_token]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Return the ids of text, BOS first if the model asks for it."""
        ids = super().encode(text)
        if add_special_tokens and self.add_bos and self.bos_token is not None:
            ids = [self.bos_id, *ids]
        return ids

    # -- chat ------------------------------------------------------------------------------------
    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Return the prompt text of a conversation [{"role": "user", "content": ...}, ...]."""
        if not self.chat_template:
            raise TokenizerError("this tokenizer has no chat template (tokenizer.chat_template)")
        return render_chat_template(
            self.chat_template,
            messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            unk_token=self.unk_token,
            pad_token=self.pad_token,
        )

    # -- serialization ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        state = super().to_dict()
        state.update(
            chat_template=self.chat_template,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            unk_token=self.unk_token,
            pad_token=self.pad_token,
            add_bos=self.add_bos,
        )
        return state

    @classmethod
    def _from_state(cls, state: dict) -> GGUFTokenizer:
        extra = {key: state.get(key) for key in ("chat_template", "bos_token", "eos_token", "unk_token", "pad_token")}
        return cls(
            state["vocab"],
            state["merges"],
            state["pattern"],
            state.get("special_tokens"),
            add_bos=bool(state.get("add_bos")),
            **extra,
        )
