"""`tinyllm chat` and `tinyllm sample --model smollm2`: the chat template is applied, replies
stream and are kept in the conversation, tokens/s is reported, stdin is read line by line."""

import io

import pytest

from tinyllm.cli import chat as chat_cli
from tinyllm.cli.chat import ChatSession, load_pretrained
from tinyllm.cli.main import main
from tinyllm.errors import ConfigError, ShapeError


@pytest.fixture(scope="module")
def smollm2():
    return load_pretrained("smollm2")


@pytest.fixture
def use_loaded_model(monkeypatch, smollm2):
    """Make the CLI take the module's already loaded model instead of loading it again."""
    monkeypatch.setattr(chat_cli, "load_pretrained", lambda name, device=None: smollm2)


def test_the_cli_decodes_smollm2_on_the_cpu_from_its_quantized_blocks(smollm2):
    from tinyllm.nn.quantized import QuantizedLinear

    model, _ = smollm2
    assert model.head_blocks is not None
    assert sum(isinstance(m, QuantizedLinear) for m in model.modules()) == 4 * model.config.n_layer


def test_session_keeps_the_conversation_and_answers_from_it(smollm2):
    model, tokenizer = smollm2
    session = ChatSession(model, tokenizer, max_new_tokens=12, temperature=0.0)
    first = "".join(session.reply("What is the capital of France?"))
    assert "Paris" in first
    second = "".join(session.reply("And what is the capital of Italy?"))
    assert "Rome" in second
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[1]["content"] == first
    rendered = tokenizer.decode(session.prompt_ids())
    assert first in rendered and rendered.endswith("<|im_start|>assistant\n")
    assert session.last_tokens > 0 and session.last_seconds > 0


def test_reply_stops_at_the_end_of_turn_token(smollm2):
    model, tokenizer = smollm2
    session = ChatSession(model, tokenizer, max_new_tokens=40, temperature=0.0)
    answer = "".join(session.reply("Say only the word yes."))
    assert "<|im_end|>" not in answer and session.last_tokens < 40


def test_cli_reads_stdin_line_by_line_and_prints_tokens_per_second(monkeypatch, capsys, use_loaded_model):
    monkeypatch.setattr("sys.stdin", io.StringIO("What is the capital of France?\n/reset\n\nAnd of Italy?\n"))
    assert main(["chat", "--model", "smollm2", "--temperature", "0", "--max-new-tokens", "8"]) == 0
    captured = capsys.readouterr()
    replies = captured.out.strip().split("\n")
    assert len(replies) == 2 and "Paris" in replies[0]
    assert captured.err.count(" tokens/s; prompt of ") == 2


def test_sample_cli_with_smollm2_continues_the_prompt(capsys, use_loaded_model):
    args = ["sample", "--model", "smollm2", "--prompt", "The capital of France is", "--temperature", "0"]
    assert main([*args, "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr().out.startswith("The capital of France is Paris")


def test_a_message_that_cannot_fit_the_context_is_a_shape_error(smollm2):
    model, tokenizer = smollm2
    session = ChatSession(model, tokenizer, max_new_tokens=model.config.block_size - 10, temperature=0.0)
    with pytest.raises(ShapeError, match="context length 8192"):
        list(session.reply("tell me a long story " * 4))
    assert session.messages == []


def test_unknown_pretrained_model_is_a_config_error():
    with pytest.raises(ConfigError, match="gpt-5"):
        load_pretrained("gpt-5")


def test_input_that_is_not_utf8_is_replaced_not_a_crash(monkeypatch, capsys, use_loaded_model):
    stdin = io.TextIOWrapper(io.BytesIO(b"Say \xff\xfe only yes.\n"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["chat", "--temperature", "0", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().err.count(" tokens/s; prompt of ") == 1


def test_a_message_continues_after_a_backslash_and_inside_a_block_of_triple_quotes():
    lines = iter(["first \\", "second", '"""', "a", "b", '"""', "single"])
    read = lambda prompt: next(lines, None)  # noqa: E731
    assert chat_cli.read_message(read) == "first \nsecond"
    assert chat_cli.read_message(read) == "a\nb"
    assert chat_cli.read_message(read) == "single"
    assert chat_cli.read_message(read) is None


def test_sample_hides_special_tokens_and_stops_at_the_end_of_turn(capsys, use_loaded_model):
    prompt = "<|im_start|>user\nSay only the word yes.<|im_end|>\n<|im_start|>assistant\n"
    assert (
        main(["sample", "--model", "smollm2", "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "40"]) == 0
    )
    continuation = capsys.readouterr().out[len(prompt) :]
    assert "yes" in continuation.lower() and "<|im" not in continuation
    assert len(continuation) < 40  # ended at <|im_end|>, long before 40 tokens
