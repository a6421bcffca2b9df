"""Student turns that give the frozen LLM the transcript beside the speech tokens ({text} after <speech>):
each row's own words are spliced in training and decoding, and a missing transcript is a clear error."""
import pytest
import torch

from conftest import tiny_train_args
from espnet_ext.datadir import read_kv, write_kv
from espnet_ext.palign.prompts import student_prompts, student_turn
from espnet_ext.tasks.palign import PalignTask

TURN = "<speech> {text}"


def test_student_turn_fills_the_transcript_and_checks_its_place():
    assert student_turn(TURN, "  I lost\tmy keys ") == "<speech> I lost my keys"
    assert student_turn("<speech>", None) == "<speech>"
    with pytest.raises(ValueError, match="utt7: .*needs a transcript"):
        student_turn(TURN, " ", "utt7: ")
    conf = {"student": {"response": "<speech>", "emotion": "<speech>\nWhat emotion?"}}
    assert student_prompts(conf, ["response", "emotion"], {"response": TURN}) == {
        "response": TURN, "emotion": "<speech>\nWhat emotion?"}
    with pytest.raises(ValueError, match="put {text} after <speech>"):
        student_prompts(conf, ["response"], {"response": "{text} <speech>"})
    with pytest.raises(ValueError, match=r"no student prompt for task\(s\) \['style'\]"):
        student_prompts(conf, ["style"])


def _model(tiny_llm):
    args = PalignTask.get_parser().parse_args(tiny_train_args(tiny_llm) + ["--student_prompts", f"response={TURN}"])
    model = PalignTask.build_model(args)
    return model.eval(), args


def test_training_rows_carry_their_own_transcript(tiny_llm):
    """The preprocessor's per-row suffix is the chat template's text after the speech with this row's words,
    and the spliced forward equals the LLM's own forward over the whole uncached sequence."""
    model, args = _model(tiny_llm)
    assert model.text_tasks == {"response"} and args.prompt_conf["student"]["response"] == TURN
    pre = PalignTask.build_preprocess_fn(args, train=True)
    chat = pre.chat
    texts, replies = ["my manager called", "the results came back"], ["sorry", "that is great news"]
    rows = [pre(f"u{i}", {"transcript": t, "response": r}) for i, (t, r) in enumerate(zip(texts, replies))]
    for t, row in zip(texts, rows):
        rendered = chat.render(f"<speech> {t}")
        assert chat.encode(rendered.split("<speech>")[1]) == row["response_suffix"].tolist()
    with pytest.raises(ValueError, match="'u9': .*no 'transcript' field"):
        pre("u9", {"response": "sorry"})
    speech_ids = [chat.encode("hello there"), chat.encode("good")]  # token embeddings stand in for speech
    lengths = torch.tensor([len(x) for x in speech_ids])
    speech = torch.zeros(2, int(lengths.max()), model.llm.hidden_size)
    for i, x in enumerate(speech_ids):
        speech[i, : len(x)] = model.llm.embed(torch.tensor(x))
    reply = torch.full((2, max(len(r["response"]) for r in rows)), -32768)
    for i, r in enumerate(rows):
        reply[i, : len(r["response"])] = torch.from_numpy(r["response"])
    reply_lengths = torch.tensor([len(r["response"]) for r in rows])
    suffixes = [torch.from_numpy(r["response_suffix"]) for r in rows]
    got = model.reply_logits(*model.splice("response", speech, lengths, reply, reply_lengths, suffixes))
    prefix = chat.speech_prompt(TURN).prefix
    want = []
    for x, r in zip(speech_ids, rows):
        ids = prefix + x + r["response_suffix"].tolist() + r["response"].tolist()
        logits = model.llm.model(input_ids=torch.tensor([ids])).logits[0]
        want.append(logits[len(ids) - len(r["response"]) - 1: len(ids) - 1])
    assert torch.allclose(got, torch.cat(want), atol=1e-4)
    batch = {"speech": torch.randn(2, 8000), "speech_lengths": torch.tensor([8000, 6000]),
             "response": reply, "response_lengths": reply_lengths}
    with pytest.raises(ValueError, match="reads the transcript.*'transcript' field"):
        model(**batch)


def test_decoding_asks_with_each_utterances_words(tiny_llm):
    model, _ = _model(tiny_llm)
    speech, lengths = torch.randn(2, 12000), torch.tensor([12000, 9000])
    texts = ["I lost my keys", "we won the match"]
    got = model.answer(speech, lengths, {"r": ("response", None)}, 4, texts=texts)["r"]
    for i, t in enumerate(texts):  # one row at a time, the words written into the turn by hand
        alone = model.generate(speech[i:i + 1, : lengths[i]], lengths[i:i + 1], user=f"<speech> {t}", max_new_tokens=4)
        assert got[i] == alone[0]
    with pytest.raises(ValueError, match="reads the transcript"):
        model.answer(speech, lengths, {"r": ("response", None)}, 4)


def test_decode_dir_takes_the_text_file_or_given_transcripts(tiny_llm, small_corpus, tmp_path):
    from espnet_ext.inference import decode_dir

    model, args = _model(tiny_llm)
    data = small_corpus / "test"
    keys = sorted(read_kv(data / "wav.scp"))
    out = tmp_path / "text"
    decode_dir(model, args, data, {str(out): ("response", None)}, 3, 3, "cpu")
    assert list(read_kv(out)) == keys
    partial = tmp_path / "asr_text"
    write_kv(partial, {k: "some words" for k in keys[1:]})
    with pytest.raises(SystemExit, match=f"asr_text: no transcript for 1 utterance.*'{keys[0]}'"):
        decode_dir(model, args, data, {str(tmp_path / "other"): ("response", None)}, 3, 3, "cpu", transcripts=partial)
