"""espnet2's unused text front-ends (g2p_en with nltk and inflect, tacotron_cleaner) stay unloaded when ParaAlign
starts, and load for real the first time they are used."""
import json
import sys

from conftest import ROOT, run

PROBE = """
import json, sys
import espnet_ext.tasks.palign  # imports espnet2's AbsTask, preprocessor and text modules
kinds = lambda: {m: type(sys.modules[m]).__name__ if m in sys.modules else None
                 for m in ("g2p_en", "nltk", "inflect", "tacotron_cleaner", "tacotron_cleaner.cleaners")}
at_start = kinds()
from espnet2.text.cleaner import TextCleaner
cleaned = TextCleaner(["tacotron"])("Mr. Smith paid $2 for 3 apples.")
from espnet2.text import phoneme_tokenizer
g2p_module = phoneme_tokenizer.g2p_en.G2p.__module__
print(json.dumps({"at_start": at_start, "cleaned": cleaned, "g2p_module": g2p_module, "after": kinds()}))
"""

DIRECT = """
import tacotron_cleaner.cleaners
print(tacotron_cleaner.cleaners.custom_english_cleaners("Mr. Smith paid $2 for 3 apples."))
"""


def test_unused_text_frontends_load_only_when_used():
    out = json.loads(run([sys.executable, "-c", PROBE], cwd=ROOT).stdout.strip().splitlines()[-1])
    start = out["at_start"]
    assert start["g2p_en"] == start["tacotron_cleaner.cleaners"] == "DeferredModule"
    assert start["nltk"] is None and start["inflect"] is None  # nltk.download is never reached
    # used: the real modules, giving what they give without the stand-ins
    direct = run([sys.executable, "-c", DIRECT], cwd=ROOT).stdout.strip()
    assert out["cleaned"] == direct == "MISTER SMITH PAID TWO DOLLARS FOR THREE APPLES."
    assert out["g2p_module"] == "g2p_en.g2p"
    assert out["after"]["tacotron_cleaner.cleaners"] == out["after"]["g2p_en"] == "module"
