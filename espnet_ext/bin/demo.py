"""A web demo (Gradio): speak to the frozen LLM and see what it heard, beside a transcript-only system.

    python -m espnet_ext.bin.demo --model_dir exp/palign_train_smollm2 [--examples_dir dump/raw/test]
        [--host 127.0.0.1 --port 7860]

For a recording (microphone or upload, any rate, mono or stereo, up to 30 s) the page shows the frozen
LLM's reply from the speech tokens, its answer to the trained emotion question, the Whisper transcript and
the same LLM's reply to that transcript alone, and a pitch/loudness picture. The model loads once; bad
input gets a message in the page and the server keeps running. It binds to 127.0.0.1 unless told otherwise.

What it serves: only what a visitor uploaded to this server and the example files. Uploads go to a cache dir
of this server's own (``--cache_dir``, default a new temporary dir removed at exit, so nothing uploaded to an
earlier run can be fetched after a restart); a request naming any other path on the server is refused with
the same message whether that path exists or not.
"""
import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from espnet_ext import cli

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline machines: no calls home


def is_inside(path, roots) -> bool:
    """Is ``path`` (symlinks resolved) inside one of the directories ``roots``?"""
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, os.path.realpath(r)]) == os.path.realpath(r) for r in roots)


def build_page(backend, examples, input_roots=None):
    """The page; ``input_roots``: the only directories a submitted recording may come from (the upload
    cache and the examples' dirs; None: no check, for a page that is not served)."""
    import gradio as gr

    from espnet_ext.demo import DemoInputError, prosody_figure, read_recording

    def submit(path, prompt):
        """A generator: Gradio shows each yield, so the reply appears before the slower columns."""
        try:
            if path and input_roots is not None and not is_inside(path, input_roots):
                # Gradio accepts only uploads already; this holds whatever path a future version lets through.
                logging.warning("demo: refused a recording that was not uploaded")
                raise DemoInputError("Only a recording uploaded to this page (or an example) can be answered.")
            x = read_recording(path, backend.min_samples)
            figure = prosody_figure(x)
            for r in backend.stream(x, prompt):
                if r.done:
                    status = (f"Answered a {len(x) / 16000:.1f} s recording: the reply after {r.reply_seconds:.1f} s, "
                              f"everything after {r.seconds:.1f} s.")
                else:
                    status = (f"Replied after {r.reply_seconds:.1f} s; now asking the emotion question and the "
                              f"transcript-only system ...")
                yield status, r.reply, r.emotion, r.transcript, r.text_reply, figure
        except DemoInputError as e:
            logging.info(f"demo: refused a recording: {e}")
            yield f"**Cannot answer:** {e}", "", "", "", "", None
        except Exception as e:  # noqa: BLE001 - one bad request must not take the page down
            logging.exception("demo: a request failed")
            yield f"**Error:** {type(e).__name__}: {e}", "", "", "", "", None

    info = backend.info()
    with gr.Blocks(title="ParaAlign demo", analytics_enabled=False) as page:
        gr.Markdown("## ParaAlign: does the frozen LLM hear how you said it?\n"
                    "Record or upload speech. The same frozen LLM answers twice: from the speech tokens of the "
                    "ParaAlign encoder, and from a Whisper transcript alone (words only).")
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Your voice",
                             elem_id="audio")
            prompt = gr.Textbox(label="Ask something else about the speech (optional; empty: just reply)",
                                elem_id="prompt", lines=2)
        send = gr.Button("Send", variant="primary", elem_id="send")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            reply = gr.Textbox(label="ParaAlign: the frozen LLM's reply to your speech", elem_id="reply",
                               interactive=False)
            emotion = gr.Textbox(label=f'ParaAlign: "{info["emotion question"]}"', elem_id="emotion",
                                 interactive=False)
        with gr.Row():
            transcript = gr.Textbox(label="Whisper transcript", elem_id="transcript", interactive=False)
            text_reply = gr.Textbox(label="Transcript-only system: the same LLM's reply to the words alone",
                                    elem_id="text_reply", interactive=False)
        plot = gr.Plot(label="Pitch and loudness of the input", elem_id="prosody")
        if examples:
            gr.Examples(examples=[[p] for p, _ in examples], inputs=[audio],
                        example_labels=[f"the same sentence, {e}" for _, e in examples],
                        label="One sentence in each emotion (a held-out test voice)")
        gr.Markdown("\n".join(f"- **{k}**: {v}" for k, v in info.items()), elem_id="info")
        send.click(submit, inputs=[audio, prompt], outputs=[status, reply, emotion, transcript, text_reply, plot])
    return page


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--model_dir", type=Path, required=True, help="training dir with config.yaml")
    p.add_argument("--model_file", type=Path, default=None, help="default: *.ave.pth, *.best.pth or last epoch")
    p.add_argument("--examples_dir", type=Path, default=None,
                   help="data dir (wav.scp, utt2emo, utt2sentid) whose minimal pair becomes the example buttons")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max_new_tokens", type=cli.positive_int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--asr_model", default=None, help="faster-whisper model (default: the offline tiny.en)")
    p.add_argument("--cache_dir", type=Path, default=None,
                   help="where uploads are kept (must be empty or new); default a temporary dir removed at exit")
    args = cli.parse(p, argv)
    if not (args.model_dir / "config.yaml").is_file():
        p.error(f"--model_dir {args.model_dir}: no config.yaml (is this a training output dir?)")
    from espnet_ext.demo import DemoBackend, minimal_pair_examples

    if args.cache_dir is None:
        cache = Path(tempfile.mkdtemp(prefix="paraalign_demo_"))
        atexit.register(shutil.rmtree, cache, True)
    else:
        cache = args.cache_dir.resolve()
        if cache.exists() and any(cache.iterdir()):
            p.error(f"--cache_dir {cache} is not empty: its files would be served; give an empty or new dir")
        cache.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # Gradio's upload folder: read when the server starts
    backend = DemoBackend(args.model_dir, args.model_file, args.device, args.max_new_tokens, args.asr_model)
    examples = minimal_pair_examples(args.examples_dir)
    allowed = sorted({str(Path(e[0]).resolve().parent) for e in examples})
    page = build_page(backend, examples, input_roots=[str(cache), *allowed])
    logging.info(f"demo: http://{args.host}:{args.port} ({backend.info()['LLM']}); uploads in {cache}")
    # blocked_paths wins over everything Gradio would otherwise serve (its cwd and temp-dir defaults)
    blocked = [str(Path(d).resolve()) for d in (Path.home(), Path.cwd(), args.model_dir)
               if not any(is_inside(a, [d]) for a in [str(cache), *allowed])]
    page.launch(server_name=args.host, server_port=args.port, allowed_paths=allowed, blocked_paths=blocked,
                show_error=True, inbrowser=False, share=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
