"""Replies of the frozen LLM to speech, through a trained ParaAlign encoder.

  One file:   python -m espnet_ext.bin.palign_inference --model_dir exp/palign_x --wav a.wav \\
                  [--prompt "What emotion do you hear?"]
  A data dir: python -m espnet_ext.bin.palign_inference --model_dir exp/palign_x --data_dir dump/raw/test \\
                  --output exp/palign_x/decode/test/text
Any sample rate, mono or stereo (down-mixed). The data-dir mode appends after every batch and skips
utterances already in --output, so a killed job resumes without loss or duplicates.
"""
import logging
import sys
from pathlib import Path

from espnet_ext import cli
from espnet_ext.audio import load_mono
from espnet_ext.inference import (FS, MAX_SECONDS, batch_tensor, check_device, decode_dir, duration_problem,
                                  load_model, min_speech_samples, question, read_model_config, reads_transcript,
                                  user_turn)


def check_inputs(parser, args) -> None:
    """Every path the command names exists and has what it needs (errors name the path)."""
    if not args.model_dir.is_dir():
        parser.error(f"--model_dir {args.model_dir}: no such directory")
    if not (args.model_dir / "config.yaml").is_file():
        parser.error(f"--model_dir {args.model_dir}: no config.yaml (is this a training output dir?)")
    if args.model_file is not None and not args.model_file.is_file():
        parser.error(f"--model_file {args.model_file}: no such file")
    if args.data_dir is not None:
        if args.output is None:
            parser.error("--output is required with --data_dir")
        if not (args.data_dir / "wav.scp").is_file():
            parser.error(f"--data_dir {args.data_dir}: no wav.scp")
    else:
        for opt in ("output", "emotion_output", "emotion_alone_output", "asr_output", "spk_mean_scp", "transcripts"):
            if getattr(args, opt) is not None:
                parser.error(f"--{opt} works with --data_dir only (with --wav the replies go to stdout)")
    for wav in args.wav or []:
        if not wav.is_file():
            parser.error(f"--wav {wav}: no such file")
        try:
            load_mono(str(wav), FS)
        except Exception as e:
            parser.error(f"--wav {wav}: cannot read audio: {e}")
    if args.spk_mean_scp is not None and not args.spk_mean_scp.is_file():
        parser.error(f"--spk_mean_scp {args.spk_mean_scp}: no such file")
    if args.max_seconds <= 0:
        parser.error(f"--max_seconds {args.max_seconds}: must be more than 0")
    try:
        user_turn(args.prompt)  # one <speech> at most
        check_device(args.device)
        read_model_config(args.model_dir)  # its YAML and its paths (the LLM folder) are there before the LLM loads
    except SystemExit as e:
        parser.error(str(e))


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--model_dir", type=Path, required=True, help="training dir with config.yaml")
    p.add_argument("--model_file", type=Path, default=None, help="default: *.ave.pth, *.best.pth or last epoch")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--wav", type=Path, nargs="+", help="audio file(s)")
    g.add_argument("--data_dir", type=Path, help="data dir whose wav.scp is decoded")
    p.add_argument("--output", type=Path, help="Kaldi text file of replies (with --data_dir)")
    p.add_argument("--emotion_output", type=Path, default=None,
                   help="with --data_dir: also ask the 'emotion' task's question of the same encoding, into this file")
    p.add_argument("--emotion_alone_output", type=Path, default=None,
                   help="with --data_dir: also ask the 'emotion' question of each file alone, without --spk_mean_scp "
                        "(what the demo and --wav hear), into this file")
    p.add_argument("--asr_output", type=Path, default=None,
                   help="with --data_dir: also ask the 'asr' task's question (\"Write down exactly what I said.\"; "
                        "zero-shot for a model not trained on it) of the same encoding, into this file")
    p.add_argument("--spk_mean_scp", type=Path, default=None,
                   help="with --data_dir: each utterance's speaker mean (stage 5), for a speaker_norm model")
    p.add_argument("--transcripts", type=Path, default=None,
                   help="with --data_dir: a Kaldi text file of transcripts (e.g. an ASR system's) for a model whose "
                        "prompt reads the transcript ({text}); default the data dir's own text file")
    p.add_argument("--transcript", default=None,
                   help="with --wav: the transcript, for a model whose prompt reads it ({text})")
    p.add_argument("--prompt", default=None, help='ask something else, e.g. "What emotion do you hear?"')
    p.add_argument("--task", default="response", help="whose student prompt is used when --prompt is not given")
    p.add_argument("--batch_size", type=cli.positive_int, default=8)
    p.add_argument("--max_new_tokens", type=cli.positive_int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--max_seconds", type=float, default=MAX_SECONDS,
                   help="the longest recording answered (memory grows with length); longer ones are an error")
    args = cli.parse(p, argv)
    check_inputs(p, args)  # before the model loads: a typo costs no LLM start-up
    model, train_args = load_model(args.model_dir, args.model_file, args.device)
    task, user = question(model, train_args, args.task, args.prompt)
    if args.wav and args.transcript is None and reads_transcript(model, {"reply": (task, user)}):
        p.error("this model's prompt reads the transcript ({text}) beside the speech: give it with --transcript")
    if model.speaker_norm and args.spk_mean_scp is None:
        logging.warning("a speaker_norm model without speaker means (--spk_mean_scp): " + (
            "each utterance is normalised by the training voices' average (speaker_norm_dropout)"
            if model.speaker_norm_dropout > 0 else
            "each utterance is normalised by itself, which removes the cues this model learnt from"))
    if args.data_dir:
        outputs, alone = {str(args.output): (task, user)}, {}
        if args.emotion_output is not None:
            outputs[str(args.emotion_output)] = question(model, train_args, "emotion", None)
        if args.asr_output is not None:
            if "asr" in model.tasks or "asr" in train_args.prompt_conf.get("student", {}):
                outputs[str(args.asr_output)] = question(model, train_args, "asr", None)
            else:  # the stage asks it of every model; a prompt config without it is not an error
                logging.warning(f"--asr_output {args.asr_output}: the model's prompt config has no student 'asr' "
                                f"turn; the words are not asked for")
                args.asr_output.write_text("")
        if args.emotion_alone_output is not None:
            alone[str(args.emotion_alone_output)] = question(model, train_args, "emotion", None)
        decode_dir(model, train_args, args.data_dir, outputs, args.batch_size, args.max_new_tokens, args.device,
                   args.spk_mean_scp, alone, args.transcripts, args.max_seconds)
        return 0
    waves = [load_mono(str(wav), FS) for wav in args.wav]  # readable: check_inputs
    for wav, x in zip(args.wav, waves):  # every file before the first reply
        problem = duration_problem(len(x), min_speech_samples(model), args.max_seconds)
        if problem:
            p.error(f"--wav {wav}: {problem}")
    for wav, x in zip(args.wav, waves):
        speech, lengths = batch_tensor([x], args.device)
        reply = model.generate(speech, lengths, task=task, user=user, max_new_tokens=args.max_new_tokens,
                               texts=None if args.transcript is None else [args.transcript])[0]
        print(reply if len(args.wav) == 1 else f"{wav}\t{reply}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
