"""ESPnet task ``palign``: align a speech encoder to a frozen LLM's behaviour.

Data: ``speech`` (sound) and one text field per alignment task (``response`` by default) holding the
teacher's reply, tokenized here by the LLM's own tokenizer. The LLM, the prompts and the tasks are set in
the training YAML (``llm_conf``, ``prompt_conf``); the prompt YAML file is inlined into the saved config so
an experiment directory is self-contained.
"""
from __future__ import annotations

import argparse
import difflib
import inspect
import logging
from pathlib import Path
from typing import Callable, Collection, Dict, List, Optional, Tuple

import humanfriendly
import numpy as np
import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
from espnet2.asr.encoder.e_branchformer_encoder import EBranchformerEncoder
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.frontend.default import DefaultFrontend
from espnet2.asr.frontend.s3prl import S3prlFrontend
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from espnet2.asr.preencoder.linear import LinearProjection
from espnet2.asr.preencoder.sinc import LightweightSincConvs
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.asr.specaug.specaug import SpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.layers.global_mvn import GlobalMVN
from espnet2.layers.utterance_mvn import UtteranceMVN
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.class_choices import ClassChoices
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.train.preprocessor import AbsPreprocessor
from espnet2.train.trainer import Trainer
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import float_or_none, int_or_none, str2bool, str_or_none

from espnet_ext import cli, yaml_file
from espnet_ext.datadir import read_kv
from espnet_ext.palign.frontend import MelPitchFrontend, WhisperPitchFrontend
from espnet_ext.palign.llm import ChatTokenizer, FrozenLLM
from espnet_ext.palign.model import IGNORE, ParaAlignModel, SpeechAdapter
from espnet_ext.palign.prompts import load_prompt_conf, reads_text, student_prompts
from espnet_ext.teacher import check_meta

frontend_choices = ClassChoices(
    "frontend", classes=dict(default=DefaultFrontend, s3prl=S3prlFrontend, mel_pitch=MelPitchFrontend,
                                     whisper_pitch=WhisperPitchFrontend),
    type_check=AbsFrontend, default="s3prl", optional=True)
specaug_choices = ClassChoices(
    "specaug", classes=dict(specaug=SpecAug), type_check=AbsSpecAug, default=None, optional=True)
normalize_choices = ClassChoices(
    "normalize", classes=dict(global_mvn=GlobalMVN, utterance_mvn=UtteranceMVN),
    type_check=AbsNormalize, default="utterance_mvn", optional=True)
preencoder_choices = ClassChoices(  # ESPnet's: a projection of wide SSL features before the encoder
    "preencoder", classes=dict(linear=LinearProjection, sinc=LightweightSincConvs), type_check=AbsPreEncoder,
    default=None, optional=True)
encoder_choices = ClassChoices(
    "encoder", classes=dict(conformer=ConformerEncoder, transformer=TransformerEncoder,
                            e_branchformer=EBranchformerEncoder),
    type_check=AbsEncoder, default="conformer")

def build_frontend(config: Path):
    """The frontend of a training YAML (its ``frontend`` and ``frontend_conf``), in eval mode: what stage 3
    dumps and stage 5's speaker statistics average."""
    conf = yaml_file.load(config) or {}
    name = conf.get("frontend", frontend_choices.default)
    return frontend_choices.get_class(name)(**(conf.get("frontend_conf") or {})).eval()


DEFAULT_LLM_CONF = {"name_or_path": None, "dtype": "auto", "attn_implementation": "sdpa",
                    "gradient_checkpointing": False}


KNOWN_TASKS = ("response", "emotion", "style", "asr")


class PalignPreprocessor(AbsPreprocessor):
    """Tokenize each task's reply with the LLM's tokenizer (+ end-of-turn) and, for the KL loss, each
    task's teacher prompt (``<task>_prompt``: the text user turn, rendered by the chat template);
    keep speech as float32 mono. A task whose student turn has ``{text}`` gets ``<task>_suffix``: the ids
    after the speech with this utterance's transcript (data field ``transcript``) filled in."""

    def __init__(self, train: bool, llm_name_or_path: str, system: Optional[str], tasks: List[str],
                 emotion_labels: Optional[List[str]] = None, prompts: Optional[Dict[str, str]] = None):
        super().__init__(train)
        self.chat = ChatTokenizer(llm_name_or_path, system)
        self.tasks = tasks
        self.emotion_ids = {str(label): i for i, label in enumerate(emotion_labels or [])}
        self.text_prompts = {t: u for t, u in (prompts or {}).items() if reads_text(u)}

    def __call__(self, uid: str, data: Dict[str, object]) -> Dict[str, np.ndarray]:
        out = {}
        for name, value in data.items():
            if name in self.tasks:
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"utterance '{uid}': empty '{name}' reply")
                out[name] = np.array(self.chat.reply_ids(value), dtype=np.int64)
            elif name.endswith("_prompt") and name[: -len("_prompt")] in self.tasks:
                user = value.replace("\\n", "\n")  # stage 4 writes one line per utterance
                out[name] = np.array(self.chat.encode(self.chat.render(user)), dtype=np.int64)
            elif name == "emotion_label":  # the auxiliary classifier's target (utt2emo)
                if value.strip() not in self.emotion_ids:
                    raise ValueError(f"utterance '{uid}': emotion label '{value.strip()}' is not in "
                                     f"aux_conf.labels {sorted(self.emotion_ids)}")
                out[name] = np.array([self.emotion_ids[value.strip()]], dtype=np.int64)
            elif name == "transcript":  # the CTC target (the text file), in the LLM's tokens
                ids = self.chat.encode(" ".join(value.split()))
                if not ids:
                    raise ValueError(f"utterance '{uid}': empty transcript")
                out[name] = np.array(ids, dtype=np.int64)
                for task, user in self.text_prompts.items():
                    out[f"{task}_suffix"] = np.array(self.chat.student_suffix(user, value, f"utterance '{uid}': "),
                                                     dtype=np.int64)
            elif name == "speech" and isinstance(value, np.ndarray):
                if value.ndim == 2 and value.shape[1] <= 8:  # (time, channels): stage 2 should have made it mono
                    value = value.mean(axis=1)
                out[name] = value.astype(np.float32)
            else:
                out[name] = value
        if "transcript" not in data and any(t in data for t in self.text_prompts):  # training rows
            raise ValueError(f"utterance '{uid}': the student prompts of {sorted(self.text_prompts)} read the "
                             f"transcript ({{text}}), but the data has no 'transcript' field (the text file)")
        return out


def construct(option: str, cls, conf: dict, **fixed):
    """``cls(**fixed, **conf)`` for ``--{option}`` / ``--{option}_conf``: a misspelt key or an unknown s3prl
    upstream (in a YAML or a received config.yaml) is an error that names the key and what is known, not a
    TypeError or a bare AssertionError."""
    conf = dict(conf or {})
    if cls is S3prlFrontend:
        from s3prl.nn import S3PRLUpstream

        upstream = (conf.get("frontend_conf") or {}).get("upstream")
        if upstream not in S3PRLUpstream.available_names():
            close = difflib.get_close_matches(str(upstream), S3PRLUpstream.available_names(), n=3)
            raise SystemExit(f"frontend_conf: s3prl has no upstream '{upstream}'" +
                             (f" (did you mean {', '.join(close)}?)" if close else " (s3prl.nn.S3PRLUpstream."
                              "available_names() lists them)"))
    known = [n for n, q in inspect.signature(cls).parameters.items()
             if n not in fixed and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    takes_any = any(q.kind == q.VAR_KEYWORD for q in inspect.signature(cls).parameters.values())
    unknown = [k for k in conf if k not in known]
    if unknown and not takes_any:
        raise SystemExit(f"{option}_conf: {cls.__name__} has no option '{unknown[0]}' "
                         f"(it takes: {', '.join(known)})")
    return cls(**fixed, **conf)


def resolve_aux_labels(args: argparse.Namespace):
    """``aux_conf.labels: from_data`` (one config for any corpus, as the smoke configs are): the sorted
    labels of the training and validation utt2emo, put into ``args`` so that config.yaml holds the list the model has."""
    aux = getattr(args, "aux_conf", None) or {}
    if aux.get("labels") != "from_data":
        return aux.get("labels")
    paths = [p for p, name, _ in (args.train_data_path_and_name_and_type or [])
             + (getattr(args, "valid_data_path_and_name_and_type", None) or []) if name == "emotion_label"]
    if not paths and not float(aux.get("weight", 0) or 0):
        aux["labels"] = []  # no classifier (the semantic-only baseline): no labels needed
        return aux["labels"]
    if not paths:
        raise SystemExit("aux_conf.labels: from_data needs the training utt2emo as emotion_label data "
                         "(palign.sh passes it when aux_conf.weight > 0)")
    aux["labels"] = sorted({label for path in paths for label in read_kv(path).values()})
    logging.info(f"aux_conf.labels from {', '.join(map(str, paths))}: {aux['labels']}")
    return aux["labels"]


def check_emotion_labels(data_path_and_name_and_type, labels) -> None:
    """Every utt2emo label read as ``emotion_label`` is one of ``aux_conf.labels``: checked before a
    job starts, so that a 'Sad' among 'sad' is named here and not a traceback in a stats job's log."""
    known = {str(x) for x in labels or []}
    for path, name, _ in data_path_and_name_and_type or []:
        if name != "emotion_label" or not Path(path).exists():
            continue
        for lineno, (utt, label) in enumerate(read_kv(path).items(), 1):
            if label not in known:
                raise SystemExit(f"{path}:{lineno}: utterance '{utt}': emotion label '{label}' is not in the "
                                 f"training config's aux_conf.labels {sorted(known)} (labels are case-sensitive: "
                                 f"map them with utils/relabel_data_dir.sh, or add the label to the config)")


class PalignTask(AbsTask):
    num_optimizers: int = 1
    class_choices_list = [frontend_choices, specaug_choices, normalize_choices, preencoder_choices, encoder_choices]
    trainer = Trainer

    @classmethod
    def get_parser(cls):
        parser = super().get_parser()
        parser.__class__ = cli.ArgumentParser  # a --config that is not plain YAML: an error naming file and line
        return cli.make_safe(parser)  # --*_conf values: plain data, never eval()ed

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument("--llm_conf", action=NestedDictAction, default=dict(DEFAULT_LLM_CONF),
                           help="frozen LLM: name_or_path (HF id or local folder), dtype (auto|bf16_if_native|bfloat16|float32),"
                                " attn_implementation, gradient_checkpointing; for benchmarks only: random_init"
                                " (config.json's shapes, random weights) and device (where to build it)")
        group.add_argument("--prompt_conf", default=None,
                           help="prompt YAML (system, student/teacher templates, emotion words) or a dict")
        group.add_argument("--student_prompts", action=NestedDictAction, default={},
                           help="{task: user turn}: replaces that task's student turn of prompt_conf; '{text}' "
                                "after '<speech>' gives the LLM the transcript beside the speech tokens")
        group.add_argument("--tasks", type=str, nargs="+", default=["response"],
                           help="alignment tasks; each is a text field of the data and a student prompt")
        group.add_argument("--speech_adapter_conf", action=NestedDictAction,
                           default={"tokens_per_second": 12.5, "hidden_size": 1024},
                           help="tokens_per_second (sets the frame stacking) or stack; hidden_size")
        group.add_argument("--task_conf", action=NestedDictAction, default={},
                           help="ratios: {task: share of rows}, weights: {task: loss weight}")
        group.add_argument("--max_target_tokens", type=int, default=0,
                           help="learn only the first N tokens of every target (0: all); the emotion shows "
                                "in the first tokens of a reply, and a shorter row costs less")
        group.add_argument("--aux_conf", action=NestedDictAction, default={},
                           help="auxiliary emotion classifier on the pooled encoder output: weight (0: off, the "
                                "paper's pure alignment), labels (the utt2emo labels, in order; from_data: the sorted "
                                "labels of the train and valid utt2emo, written into config.yaml)")
        group.add_argument("--teacher_meta", type=str_or_none, default=None,
                           help="stage 4's meta.yaml: training refuses targets written by other LLM weights "
                                "(checked where the file exists; a packed model used elsewhere skips it)")
        group.add_argument("--speaker_norm", type=str2bool, default=False,
                           help="subtract each speaker's mean frontend features (data field spk_mean, "
                                "written by bin/speaker_stats.py); one file alone is normalised by itself, "
                                "unless --speaker_norm_dropout > 0")
        group.add_argument("--speaker_norm_dropout", type=float, default=0.0,
                           help="share of training rows normalised by the training voices' average speaker mean "
                                "instead of their own, so that one file without speaker statistics is "
                                "normalised by that average at inference (the demo, palign_inference --wav)")
        group.add_argument("--ctc_conf", action=NestedDictAction, default={},
                           help="CTC on the transcript's LLM tokens from the speech tokens, whose classes are the "
                                "LLM's embeddings: weight (0: off, the paper's setup); data field transcript "
                                "(the text file)")
        group.add_argument("--encoder_only", type=str2bool, default=False,
                           help="train the encoder without the LLM (only the CTC and aux losses): the "
                                "pre-training that stage 6 runs first when the config has pretrain_conf")
        group.add_argument("--pretrain_conf", action=NestedDictAction, default={},
                           help="stage 6 pre-trains the encoder with --encoder_only true and these options "
                                "(e.g. max_epoch, num_iters_per_epoch, batch_size) and aligns from it; {}: no "
                                "pre-training. Read by palign.sh; the training program itself ignores it")
        group.add_argument("--prealign_conf", action=NestedDictAction, default={},
                           help="semantic pre-alignment: {share: S} makes the first S x max_epoch epochs the "
                                "semantic-only model's (aligned to the _neutral targets), from which stage 6 aligns "
                                "the rest; {}: none. Read by palign.sh; the training program itself ignores it")
        group.add_argument("--cache_prefix", type=str2bool, default=True,
                           help="take the prompt prefix shared by every row from the frozen LLM's KV cache")
        group.add_argument("--loss", type=str, default="ce", help="alignment loss: ce | kl")
        group.add_argument("--loss_conf", action=NestedDictAction, default={}, help="options of the loss")
        group.add_argument("--freeze_frontend", type=str2bool, default=True,
                           help="keep the SSL upstream frozen (its layer weights still train)")
        group.add_argument("--input_size", type=int_or_none, default=None,
                           help="feature dim when features were dumped by stage 3 (then no frontend)")
        group.add_argument("--frame_rate", type=float_or_none, default=None,
                           help="frames per second of dumped features (with --input_size)")
        group.add_argument("--init", type=str_or_none, default=None, help="ESPnet initialisation of the encoder")
        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--use_preprocessor", type=str2bool, default=True)
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable[
            [Collection[Tuple[str, Dict[str, np.ndarray]]]], Tuple[List[str], Dict[str, torch.Tensor]]]:
        return CommonCollateFn(float_pad_value=0.0, int_pad_value=IGNORE)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool):
        if not args.use_preprocessor:
            return None
        prompt_conf = load_prompt_conf(args.prompt_conf)
        labels = resolve_aux_labels(args)
        check_emotion_labels(args.train_data_path_and_name_and_type if train
                             else args.valid_data_path_and_name_and_type, labels)
        return PalignPreprocessor(train, args.llm_conf["name_or_path"], prompt_conf.get("system"), args.tasks,
                                  labels,
                                  student_prompts(prompt_conf, args.tasks, getattr(args, "student_prompts", None)))

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",)  # targets are optional: the tasks of the config decide which are read

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return KNOWN_TASKS + tuple(f"{t}_prompt" for t in KNOWN_TASKS) + ("spk_mean", "emotion_label", "transcript")

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> ParaAlignModel:
        resolve_aux_labels(args)
        llm_conf = {**DEFAULT_LLM_CONF, **(args.llm_conf or {})}
        if not llm_conf.get("name_or_path"):
            raise ValueError("llm_conf.name_or_path is required (an HF model id or a local folder)")
        args.prompt_conf = load_prompt_conf(args.prompt_conf)  # inlined: config.yaml stands alone
        system = args.prompt_conf.get("system")
        prompts = student_prompts(args.prompt_conf, args.tasks, getattr(args, "student_prompts", None))
        args.prompt_conf["student"].update(prompts)  # what config.yaml holds is what the model was trained with
        llm = FrozenLLM(llm_conf["name_or_path"], dtype=llm_conf["dtype"], system=system,
                        attn_implementation=llm_conf.get("attn_implementation"),
                        gradient_checkpointing=llm_conf.get("gradient_checkpointing", False),
                        random_init=llm_conf.get("random_init", False), device=llm_conf.get("device", "cpu"))
        meta = getattr(args, "teacher_meta", None)
        if meta and Path(meta).exists():
            check_meta(Path(meta), llm.fingerprint, llm.chat.tokenizer.chat_template, args.prompt_conf)
        elif meta:
            logging.warning(f"--teacher_meta {meta} does not exist here: the targets' LLM is not checked")

        if args.input_size is None:
            frontend = construct("frontend", frontend_choices.get_class(args.frontend), args.frontend_conf)
            input_size = frontend.output_size()
            fs = args.frontend_conf.get("fs", 16000)
            frame_rate = (humanfriendly.parse_size(fs) if isinstance(fs, str) else fs) / frontend.hop_length
        else:
            args.frontend, args.frontend_conf, frontend = None, {}, None
            input_size = args.input_size
            if not args.frame_rate:
                raise ValueError("--frame_rate is required with --input_size (dumped features)")
            frame_rate = args.frame_rate
        specaug = construct("specaug", specaug_choices.get_class(args.specaug), args.specaug_conf) if args.specaug else None
        if args.normalize and not getattr(args, "collect_stats", False):
            normalize = construct("normalize", normalize_choices.get_class(args.normalize), args.normalize_conf)
        else:  # stage 5 computes the statistics that global_mvn needs
            normalize = None
        preencoder = None
        if getattr(args, "preencoder", None):
            conf = dict(args.preencoder_conf or {})
            if args.preencoder == "linear":  # its input is the frontend's output
                if conf.setdefault("input_size", input_size) != input_size:
                    raise ValueError(f"preencoder_conf.input_size is {conf['input_size']}, but the frontend gives "
                                     f"{input_size}-dim features (leave it out: it is taken from the frontend)")
                args.preencoder_conf = conf
            preencoder = construct("preencoder", preencoder_choices.get_class(args.preencoder), conf)
            input_size = preencoder.output_size()
        encoder = construct("encoder", encoder_choices.get_class(args.encoder), args.encoder_conf, input_size=input_size)

        adapter_conf = dict(args.speech_adapter_conf)
        if "stack" not in adapter_conf:
            rate = encoder_frame_rate(encoder, input_size, frame_rate)  # a preencoder keeps the frame rate
            adapter_conf["stack"] = max(1, round(rate / adapter_conf.pop("tokens_per_second", 12.5)))
            logging.info(f"encoder output {rate:.1f} frames/s -> stacking {adapter_conf['stack']} "
                         f"-> {rate / adapter_conf['stack']:.1f} speech tokens/s")
        adapter_conf.pop("tokens_per_second", None)
        args.speech_adapter_conf = adapter_conf  # the stack is fixed from now on, also when reloaded
        adapter = construct("speech_adapter", SpeechAdapter, adapter_conf, input_size=encoder.output_size(),
                            output_size=llm.hidden_size)

        model = ParaAlignModel(
            frontend=frontend, specaug=specaug, normalize=normalize, preencoder=preencoder, encoder=encoder,
            adapter=adapter, llm=llm,
            prompts=prompts,
            loss=args.loss, loss_conf=args.loss_conf, freeze_frontend=args.freeze_frontend,
            task_ratios=(args.task_conf or {}).get("ratios"), task_weights=(args.task_conf or {}).get("weights"),
            max_target_tokens=getattr(args, "max_target_tokens", 0),
            aux_conf=getattr(args, "aux_conf", None), speaker_norm=getattr(args, "speaker_norm", False),
            speaker_norm_dropout=getattr(args, "speaker_norm_dropout", 0.0),
            cache_prefix=getattr(args, "cache_prefix", True), ctc_conf=getattr(args, "ctc_conf", None),
            encoder_only=getattr(args, "encoder_only", False))
        if args.init is not None:
            from espnet2.torch_utils.initialize import initialize

            initialize(model.encoder, args.init)
        return model


@torch.no_grad()
def encoder_frame_rate(encoder: AbsEncoder, input_size: int, frame_rate: float, seconds: float = 4.0) -> float:
    """Measure the encoder's output frames per second on dummy input (any subsampling scheme)."""
    frames = int(seconds * frame_rate)
    x = torch.zeros(1, frames, input_size)
    was_training = encoder.training
    encoder.eval()
    _, lengths, _ = encoder(x, torch.tensor([frames]))
    encoder.train(was_training)
    return float(lengths[0]) / seconds
