"""Start-up of a ParaAlign program: importing the ESPnet task, with espnet2's unused text front-ends deferred
(espnet_ext.deferred_imports) vs loaded eagerly as espnet2 does by itself (g2p_en, nltk, inflect,
tacotron_cleaner imported first, which turns the deferral off).

Each variant runs in fresh processes, alternating, --repeats times; prints the medians and the ratio
deferred / eager (lower is better).

  python bench/startup_time.py [--repeats 3]
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "deferred": "import espnet_ext.tasks.palign",
    "eager": "import g2p_en, tacotron_cleaner.cleaners; import espnet_ext.tasks.palign",
}


def seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    seconds(VARIANTS["deferred"])  # warm the file cache
    times = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, code in VARIANTS.items():
            times[name].append(seconds(code))
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:9s} median {median[name]:.1f} s  ({', '.join(f'{x:.1f}' for x in t)})")
    print(f"ratio deferred/eager: {median['deferred'] / median['eager']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
