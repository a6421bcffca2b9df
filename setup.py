"""ParaAlign: teach a frozen instruction-tuned LLM to hear how something is said."""
from setuptools import find_packages, setup

setup(
    name="paraalign",
    version="0.1.0",
    description="ESPnet-style recipes aligning speech encoders to a frozen LLM's behaviour, "
    "emotion and speaking style included",
    packages=find_packages(include=["espnet_ext", "espnet_ext.*"]),
    python_requires=">=3.9",
    install_requires=[
        "espnet>=202511",
        "espnet-s3prl",
        "torch>=2.1",
        "transformers>=4.45",
        "kaldiio",
        "soundfile",
        "pyyaml",
    ],
    license="Apache-2.0",
)
